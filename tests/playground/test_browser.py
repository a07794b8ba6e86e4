"""The playground in a real browser: headless Chromium (Debian's ``chromium`` package, driven by
Playwright) opens the web chat, changes a setting by pressing the bot's buttons, sends a prompt, reads
the picture from the page and presses a button under it.

The page's picture is compared with the file the bot uploaded to the emulator, pixel by pixel, and its
shape with the aspect ratio chosen on the page.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from playground.__main__ import Playground

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
WAIT_MS = 30_000


@pytest.fixture
async def playground(tmp_path: Path) -> AsyncIterator[Playground]:
    env = {"FAKE_STEP_SECONDS": "0.01", "PROGRESS_EDIT_INTERVAL": "0.5", "MAX_IMAGE_SIDE": "256", "OMP_NUM_THREADS": "1"}
    world = Playground(tmp_path / "playground", backend="fake", env=env)
    await world.start()
    try:
        yield world
    finally:
        await world.stop()
    assert not world.emulator.unsupported_calls, [c.method for c in world.emulator.unsupported_calls]


async def _send_video(playground: Playground) -> None:
    """sendVideo as the bot would call it (multipart upload), straight to the emulator."""
    import aiohttp

    from playground.__main__ import PLAYGROUND_TOKEN, PLAYGROUND_USER_ID

    form = aiohttp.FormData()
    form.add_field("chat_id", str(PLAYGROUND_USER_ID))
    form.add_field("video", "attach://clip")
    form.add_field("clip", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64, filename="clip.mp4", content_type="video/mp4")
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{playground.emulator.base_url}/bot{PLAYGROUND_TOKEN}/sendVideo", data=form) as resp:
            assert (await resp.json())["ok"]


async def test_prompt_settings_and_buttons_in_a_real_browser(playground: Playground) -> None:
    from playwright.async_api import async_playwright, expect

    assert shutil.which(CHROMIUM) or Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: `apt-get install chromium` (scripts/setup.sh test installs it)"
    )
    assert playground.page is not None
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 900, "height": 900})
            page.set_default_timeout(WAIT_MS)
            await page.goto(playground.page.url)
            await page.wait_for_selector("body[data-ready='1']")
            bot_messages = page.locator("[data-testid=message][data-from=bot]")

            # /start from the typed command: the greeting and the main reply keyboard.
            await page.fill("[data-testid=input]", "/start")
            await page.press("[data-testid=input]", "Enter")
            await expect(page.locator("[data-testid=message][data-from=user]").first).to_contain_text("/start")
            await expect(bot_messages.first).to_contain_text("Hi, You!")

            # A settings change: the reply keyboard's Settings button, then the inline menu's buttons.
            await page.locator("[data-testid=reply-button]", has_text="Settings").click()
            settings = bot_messages.filter(has_text="Aspect ratio").last
            await settings.locator("[data-testid=button]", has_text="Aspect ratio").click()
            await settings.locator("[data-testid=button]", has_text=re.compile(r"^16:9$")).click()
            await expect(settings).to_contain_text("Aspect ratio: 16:9")  # the menu, edited in place
            await expect(page.locator("[data-testid=toast]")).to_contain_text("Saved")

            # A prompt: the status message, then the photo with its caption and buttons.
            await page.fill("[data-testid=input]", "a red fox in the snow")
            await page.press("[data-testid=input]", "Enter")
            result = bot_messages.filter(has=page.locator("[data-testid=photo]")).last
            await expect(result.locator("[data-testid=caption]")).to_contain_text("a red fox in the snow")
            photo = result.locator("[data-testid=photo]")
            await expect(photo).to_have_js_property("complete", True)

            # The picture as the page shows it, read back through a canvas (lossless).
            data_url = await photo.evaluate(
                """img => { const c = document.createElement('canvas'); c.width = img.naturalWidth;
                   c.height = img.naturalHeight; c.getContext('2d').drawImage(img, 0, 0); return c.toDataURL('image/png'); }"""
            )
            shown = Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB")
            file_id = await photo.get_attribute("data-file-id")
            sent = Image.open(io.BytesIO(playground.emulator.file_bytes(file_id))).convert("RGB")
            assert shown.size == sent.size
            assert ImageChops.difference(shown, sent).getbbox() is None  # the very pixels the bot sent
            width, height = shown.size
            assert abs(width / height - 16 / 9) < 0.25, shown.size  # the ratio chosen on the page

            # A button under the result: Reuse seed answers with an alert naming the caption's seed.
            caption = await result.locator("[data-testid=caption]").inner_text()
            seed = re.search(r"seed (\d+)", caption).group(1)
            await result.locator("[data-testid=button]", has_text="Reuse seed").click()
            alert = page.locator("[data-testid=alert]")
            await expect(alert).to_contain_text(f"Seed {seed} is now used")
            await alert.get_by_role("button", name="OK").click()
            await expect(alert).to_be_hidden()

            # An album (two pictures in one bubble), then the originals as documents.
            await page.fill("[data-testid=input]", "two owls --n 2")
            await page.press("[data-testid=input]", "Enter")
            album = page.locator("[data-testid=album]").last
            await expect(album.locator("[data-testid=photo]")).to_have_count(2)
            follow_up = bot_messages.filter(has_text="2 images, seeds").last
            await follow_up.locator("[data-testid=button]", has_text="📄 1").click()  # per image: 📄 1, 📄 2
            documents = page.locator("[data-testid=document]")
            await expect(documents).to_have_count(1)
            await follow_up.locator("[data-testid=button]", has_text="📄 2").click()
            await expect(documents).to_have_count(2)
            await expect(documents.first).to_contain_text(".png")

            # A video the bot sends (animations are coming): a player in the chat.
            await _send_video(playground)
            await expect(page.locator("[data-testid=video]")).to_have_count(1)
        finally:
            await browser.close()
