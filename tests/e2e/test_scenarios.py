"""The bot as a user meets it: the real ``python -m app`` process, over HTTP, against the emulator.

One emulator and one bot process serve the whole module (starting Python with aiogram takes seconds);
every test talks as its own user, so tests do not see each other's chats.
The restart test, last in the file, kills the module's bot process and starts it again.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from generation.styles import image_size
from playground.botproc import BotProcess
from tests.e2e.conftest import E2E_BACKEND, TOKEN
from playground.emulator import FaultRule
from tests.e2e.scenario import WAIT, World, choose, is_photo, largest, open_settings, open_world, wait_idle
from playground.users import button_texts, has_text, is_image

pytestmark = pytest.mark.asyncio(loop_scope="module")

MAX_SIDE = 512 if E2E_BACKEND == "fake" else 256


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> AsyncIterator[World]:
    # 25 steps of the default model take about 2 s with the fake backend: time to press Cancel.
    async with open_world(
        tmp_path_factory.mktemp("e2e"), E2E_BACKEND, request, FAKE_STEP_SECONDS=0.08, MAX_IMAGE_SIDE=MAX_SIDE
    ) as opened:
        yield opened


@pytest.fixture(autouse=True)
def _bot_still_alive(world: World) -> None:
    assert world.bot.running, f"the bot process died:\n{world.bot.log()}"


async def test_start_and_settings_navigation_change_the_next_image(world: World) -> None:
    user = world.user(first_name="Ann")
    await user.send_command("start")
    assert "Ann" in (await user.wait_for(has_text("Hi"), WAIT))["text"]

    menu = await open_settings(user)
    assert {"Model", "Aspect ratio", "Style", "Close"} <= set(button_texts(menu))
    menu = await choose(user, menu, "Model", "Kandinsky 3.1 Flash")
    assert "Model: Kandinsky 3.1 Flash" in menu["text"]
    menu = await choose(user, menu, "Aspect ratio", "16:9")
    width, height = image_size("16:9", MAX_SIDE)
    assert f"Aspect ratio: 16:9 ({width}×{height})" in menu["text"]
    # « Back from a section shows the menu again without changing anything.
    await user.press(menu, "Style")
    submenu = await user.wait_for(has_text("Choose the style"), WAIT)
    await user.press(submenu, "« Back")
    await user.wait_for(lambda m: m["message_id"] == menu["message_id"] and "16:9" in m["text"], WAIT)

    await user.send_text("a lighthouse on a cliff at dawn")
    photo = await user.wait_for(is_photo, WAIT)
    assert largest(photo) == (width, height)
    assert user.image(photo).size == (width, height)  # the uploaded file, not just the metadata
    assert "Kandinsky 3.1 Flash" in photo["caption"] and "a lighthouse on a cliff at dawn" in photo["caption"]
    assert {"🔁 Again", "📄 Original"} <= set(button_texts(photo))


async def test_a_prompt_is_one_image_and_four_images_come_as_one_album(world: World) -> None:
    user = world.user()
    await user.send_text("a red fox in the snow")
    status = await user.wait_for(has_text("Queued"), WAIT, kinds=("new",))
    assert button_texts(status) == ["✖️ Cancel"]
    photo = await user.wait_for(is_photo, WAIT)
    assert largest(photo) == (MAX_SIDE, MAX_SIDE) and "a red fox in the snow" in photo["caption"]
    await user.wait_for(lambda m: m["message_id"] == status["message_id"], WAIT, kinds=("deleted",))

    menu = await open_settings(user)
    await choose(user, menu, "Images per request", "4")
    await user.send_text("four owls on a branch")
    album = await user.wait_for_album(4, WAIT)
    assert all(largest(m) == (MAX_SIDE, MAX_SIDE) for m in album)
    assert "four owls on a branch" in album[0]["caption"]
    assert len({m["photo"][-1]["file_unique_id"] for m in album}) == 4
    buttons = await user.wait_for(has_text("4 images"), WAIT)
    assert "🔁 Again" in button_texts(buttons)
    await wait_idle(world)
    assert len(user.received(is_photo)) == 5  # one, then four: nothing twice


async def test_cancel_while_queued_and_while_running(world: World) -> None:
    user = world.user()
    # Kandinsky 2.2 takes 50 steps: a wide window to press Cancel while the job runs.
    menu = await choose(user, await open_settings(user), "Model", "Kandinsky 2.2")
    await user.send_text("first: a long job")
    first = await user.wait_for(has_text("Queued"), WAIT, kinds=("new",))
    await user.send_text("second: waits behind the first")
    second = await user.wait_for(has_text("Queued"), WAIT, kinds=("new",))

    # The first one runs (its status message says so); the second one waits.
    await user.wait_for(lambda m: m["message_id"] == first["message_id"] and "Generating" in m["text"], WAIT)
    query = await user.press(second, "Cancel")
    assert (await user.wait_for_answer(query, WAIT))["text"] == "✖️ Cancelled."
    await user.wait_for(lambda m: m["message_id"] == second["message_id"] and "Cancelled" in m["text"], WAIT)

    query = await user.press(first, "Cancel")
    assert (await user.wait_for_answer(query, WAIT))["text"] == "✖️ Cancelled."
    await user.wait_for(lambda m: m["message_id"] == first["message_id"] and "Cancelled" in m["text"], WAIT)

    # /cancel for what is queued; then the queue still works, and nothing cancelled ever arrives.
    await user.send_text("third: cancelled by command")
    await user.wait_for(has_text("Queued"), WAIT, kinds=("new",))
    await user.send_command("cancel")
    await user.wait_for(has_text("Cancelled:"), WAIT)
    await choose(user, menu, "Model", "Kandinsky 3.1 Flash")
    await user.send_text("fourth: kept")
    photo = await user.wait_for(is_photo, WAIT)
    assert "fourth: kept" in photo["caption"]
    jobs = [j for j in await wait_idle(world) if j["user_id"] == user.id]
    assert [j["status"] for j in jobs] == ["cancelled", "cancelled", "cancelled", "done"]
    assert len(user.received(is_photo)) == 1


async def test_bad_input_gets_a_clear_reply_and_the_bot_keeps_working(world: World) -> None:
    user = world.user()
    await user.send_text("x" * 5000)
    assert "the limit is 1,000" in (await user.wait_for(has_text("characters long"), WAIT))["text"]

    await user.send_document(random.Random(1).randbytes(3000), "picture.png", mime_type="image/png")
    reply = await user.wait_for(timeout=WAIT)
    assert reply.get("text") and "went wrong" not in reply["text"]

    await user.send_sticker()
    assert "not stickers" in (await user.wait_for(timeout=WAIT))["text"]

    await user.send_text("🎨🎨🎨")
    assert "Emoji alone" in (await user.wait_for(timeout=WAIT))["text"]

    await user.send_command("definitelynotacommand")
    assert "don't know this command" in (await user.wait_for(timeout=WAIT))["text"]

    menu = await open_settings(user)
    query = await user.press_raw(menu, "zz:forged:callback")
    answer = await user.wait_for_answer(query, WAIT)
    assert answer["text"] == "This button is no longer valid." and answer["show_alert"]
    query = await user.press_raw(menu, "set:model:no-such-model")
    assert (await user.wait_for_answer(query, WAIT))["text"] == "This button is no longer valid."

    await user.send_command("start")
    assert (await user.wait_for(has_text("Hi"), WAIT))["text"]
    assert not user.received(has_text("went wrong"))
    assert not user.received(is_image)


async def test_a_photo_telegram_rejects_is_sent_as_a_document(world: World) -> None:
    user = world.user()
    world.emulator.photo_max_bytes = 1000  # every result is "too big" for a photo now
    try:
        await user.send_text("a tiny photo limit")
        result = await user.wait_for(is_image, WAIT)
    finally:
        world.emulator.photo_max_bytes = 10 * 1024 * 1024
    assert "document" in result and result["document"]["mime_type"] == "image/png"
    assert "a tiny photo limit" in result["caption"]
    assert user.image(result).size == (MAX_SIDE, MAX_SIDE)
    rejected = world.emulator.calls_to("sendPhoto", ok=False, chat_id=user.chat_id)
    assert rejected and "PHOTO_SAVE_FILE_INVALID" in rejected[0].description


async def test_flood_every_prompt_gives_one_image_and_the_bot_waits_retry_after(world: World) -> None:
    users = [world.user() for _ in range(3)]
    for user in users:  # the fast model, so the test is about Telegram, not the GPU
        await choose(user, await open_settings(user), "Model", "Kandinsky 3.1 Flash")
    prompts = {user.id: [f"user {user.id} prompt {i}" for i in range(2)] for user in users}

    emulator = world.emulator
    first_call = len(emulator.calls)
    sending = frozenset(
        {
            "sendMessage",
            "sendPhoto",
            "sendMediaGroup",
            "sendDocument",
            "sendChatAction",
            "editMessageText",
            "editMessageReplyMarkup",
            "deleteMessage",
        }
    )
    emulator.add_faults(FaultRule(rate_429=0.3, retry_after=1, methods=sending, seed=11))
    try:
        for user in users:
            for prompt in prompts[user.id]:
                await user.send_text(prompt)
        for user in users:
            for _ in prompts[user.id]:
                await user.wait_for(is_photo, 90)
        await wait_idle(world, timeout=90)
        await asyncio.sleep(1.5)  # a duplicate, if there were one, would have time to arrive
    finally:
        emulator.clear_faults()

    for user in users:
        captions = sorted(m["caption"].split("\n")[0] for m in user.received(is_photo))
        assert captions == sorted(prompts[user.id]), captions
    calls = emulator.calls[first_call:]
    throttled = [c for c in calls if c.status == 429]
    assert len(throttled) >= 5, "the fault rule should have throttled a good share of the calls"
    assert emulator.flood_violations == [], [
        (v.call.method, v.call.chat_id, round(v.call.time - v.throttled_at, 2)) for v in emulator.flood_violations
    ]
    # A throttled photo was sent again only after retry_after seconds.
    for c in throttled:
        if c.method == "sendPhoto":
            retry = next(d for d in calls if d.time > c.time and d.method == "sendPhoto" and d.chat_id == c.chat_id)
            assert retry.time - c.time >= c.retry_after


async def test_restart_after_sigkill_delivers_each_image_exactly_once(world: World) -> None:
    """Runs last: it replaces the module's bot process with a restarted one on the same database."""
    emulator = world.emulator
    user = world.user()
    prompts = ["one: a cat", "two: a dog", "three: a bird"]
    # Telegram refuses photos for a while: the first job is generated but cannot be delivered.
    emulator.add_faults(FaultRule(rate_5xx=1.0, status_5xx=502, methods=frozenset({"sendPhoto"})))
    try:
        for prompt in prompts:
            await user.send_text(prompt)
            await user.wait_for(has_text("Queued"), WAIT, kinds=("new",))
        deadline = time.monotonic() + WAIT
        while not any(j["status"] == "generated" for j in world.jobs() if j["user_id"] == user.id):
            assert time.monotonic() < deadline, [dict(j) for j in world.jobs()]
            await asyncio.sleep(0.1)
        assert len([j for j in world.jobs() if j["user_id"] == user.id]) == 3
    finally:
        await world.bot.kill()  # SIGKILL: no shutdown handler runs
        emulator.clear_faults()
    assert not user.received(is_photo)

    world.bot = BotProcess(emulator, TOKEN, world.bot.env, world.tmp / "bot-restarted.log")
    await world.bot.start(ready_timeout=120)
    for _ in prompts:
        await user.wait_for(is_photo, WAIT)
    jobs = [j for j in await wait_idle(world) if j["user_id"] == user.id]
    await asyncio.sleep(1.5)  # time for a duplicate to show up, if the bot made one
    captions = sorted(m["caption"].split("\n")[0] for m in user.received(is_photo))
    assert captions == sorted(prompts)
    assert [j["status"] for j in jobs] == ["done"] * 3
    # The job generated before the crash was delivered, not generated again.
    assert jobs[0]["attempts"] == 1
