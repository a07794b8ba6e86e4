"""The inpainting Mini App in a real browser (Debian's headless Chromium, driven by Playwright): the
page the bot serves, opened the way Telegram opens it (signed initData in the URL fragment), against
the real bot process and the emulator."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import shutil
import socket
import time
from collections.abc import AsyncIterator
from urllib.parse import quote, urlencode

import aiohttp
import pytest
import pytest_asyncio
from PIL import Image

from tests.e2e.conftest import TOKEN
from tests.e2e.scenario import WAIT, World, is_photo, open_world, wait_idle
from tests.e2e.users import buttons

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (scripts/setup.sh installs it)"),
]

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def signed_init_data(user_id: int, token: str = TOKEN, auth_date: int | None = None) -> str:
    """initData as Telegram signs it (HMAC-SHA256 keyed by HMAC("WebAppData", bot token))."""
    fields = {
        "auth_date": str(auth_date or int(time.time())),
        "query_id": "AAHdF6IQAAAAAN0XohDhrOrc",
        "user": json.dumps({"id": user_id, "first_name": "Ann", "language_code": "en"}, separators=(",", ":")),
    }
    check = "\n".join(f"{k}={v}" for k, v in sorted(fields.items()))
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    fields["hash"] = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    return urlencode(fields)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> AsyncIterator[World]:
    port = free_port()
    async with open_world(
        tmp_path_factory.mktemp("e2e-webapp"), "fake", request, MAX_IMAGE_SIDE=256,
        WEBAPP_URL=f"http://127.0.0.1:{port}", WEBAPP_LISTEN=f"127.0.0.1:{port}",
    ) as opened:
        yield opened


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def open_page(browser, url: str, init_data: str):
    page = await browser.new_page(viewport={"width": 420, "height": 800}, has_touch=True)
    # No internet here: Telegram's own script fails fast instead of hanging; the page reads the fragment.
    await page.route("https://telegram.org/**", lambda route: route.abort())
    await page.goto(f"{url}#tgWebAppData={quote(init_data)}&tgWebAppVersion=7.0&tgWebAppPlatform=web")
    return page


async def test_paint_a_stroke_and_the_inpainting_job_gets_that_mask(world: World, browser) -> None:
    user = world.user(first_name="Ann", language_code="ru")
    await user.send_text("a cat on a sofa")
    result = await user.wait_for(is_photo, WAIT)
    [inpaint] = [b for b in buttons(result) if "web_app" in b]
    assert inpaint["text"] == "🖌 Перерисовать"
    url = inpaint["web_app"]["url"]
    assert "lang=ru" in url

    page = await open_page(browser, url, signed_init_data(user.id))
    await page.wait_for_selector("body[data-ready='1']", timeout=WAIT * 1000)
    assert await page.input_value("#prompt") == "" and await page.text_content("#submit") == "Перерисовать"
    box = await page.locator("#strokes").bounding_box()
    # A horizontal stroke across the middle, left third to right third.
    y = box["y"] + box["height"] / 2
    await page.mouse.move(box["x"] + box["width"] * 0.3, y)
    await page.mouse.down()
    for i in range(1, 11):
        await page.mouse.move(box["x"] + box["width"] * (0.3 + 0.04 * i), y)
    await page.mouse.up()
    # A finger: a short vertical stroke near the top right, as real touch events (Chromium's CDP).
    cdp = await page.context.new_cdp_session(page)
    x = box["x"] + box["width"] * 0.8
    await cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": box["y"] + box["height"] * 0.1}]})
    for i in range(1, 6):
        point = {"x": x, "y": box["y"] + box["height"] * (0.1 + 0.04 * i)}
        await cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
    await cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    await page.fill("#prompt", "a sleeping dog")
    await page.click("#submit")
    await page.wait_for_selector("body[data-job-id]", timeout=WAIT * 1000)
    assert await page.text_content("#status") == "В очереди. Картинка придёт в чат."
    job_id = int(await page.get_attribute("body", "data-job-id"))

    repainted = await user.wait_for(lambda m: is_photo(m) and m["message_id"] != result["message_id"], WAIT)
    assert repainted["caption"].startswith("Перерисовка: a sleeping dog")
    jobs = await wait_idle(world)
    [job] = [j for j in jobs if j["id"] == job_id]
    params = json.loads(job["params"])
    assert job["user_id"] == user.id and job["status"] == "done" and params["prompt"] == "a sleeping dog"
    mask = Image.open(io.BytesIO(base64.b64decode(params["extra"]["mask"]))).convert("L")
    w, h = mask.size
    assert mask.getpixel((w // 2, h // 2)) == 255  # on the stroke
    assert mask.getpixel((int(w * 0.4), h // 2)) == 255
    assert mask.getpixel((w // 2, h // 8)) == 0 and mask.getpixel((w // 10, h // 2)) == 0  # off the strokes
    assert mask.getpixel((int(w * 0.8), int(h * 0.2))) == 255  # the finger's stroke
    await page.close()


async def test_forged_init_data_is_refused(world: World, browser) -> None:
    user = world.user(first_name="Mallory")
    await user.send_text("a castle")
    result = await user.wait_for(is_photo, WAIT)
    [inpaint] = [b for b in buttons(result) if "web_app" in b]
    victim_jobs = len(world.jobs())

    # Someone else's id in the user field, the hash left as it was: the signature no longer matches.
    forged = signed_init_data(user.id).replace(f"%22id%22%3A{user.id}", f"%22id%22%3A{user.id + 1}")
    page = await open_page(browser, inpaint["web_app"]["url"], forged)
    await page.wait_for_function("document.getElementById('status').textContent.length > 0", timeout=WAIT * 1000)
    assert await page.text_content("#status") == "This page must be opened from the bot's button in Telegram."
    assert await page.is_disabled("#submit")
    await page.close()

    # Straight to the API: a wrong bot token's signature, and a stale one, are refused too.
    base = inpaint["web_app"]["url"].split("/webapp/")[0]
    body = {"job": result["message_id"], "prompt": "x", "mask": "data:image/png;base64,"}
    async with aiohttp.ClientSession() as http:
        for init_data in (
            signed_init_data(user.id, token="654321:" + "x" * 35),
            signed_init_data(user.id, auth_date=int(time.time()) - 3 * 24 * 3600),
            "",
        ):
            async with http.post(f"{base}/webapp/api/inpaint", json=dict(body, initData=init_data)) as response:
                assert response.status == 403
    assert len(world.jobs()) == victim_jobs
