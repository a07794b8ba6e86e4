"""The emulator itself, driven by a real aiogram Bot over HTTP, the way the bot process talks to it."""

from __future__ import annotations

import asyncio
import io
import random
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaDocument,
    InputMediaPhoto,
)
from aiohttp import web
from PIL import Image

from tests.e2e.conftest import TOKEN
from playground.emulator import FaultRule, TelegramEmulator
from playground.users import button_texts, has_text, image_bytes


@pytest.fixture
async def bot(emulator: TelegramEmulator) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(emulator.base_url))
    bot = Bot(TOKEN, session=session)
    try:
        yield bot
    finally:
        await session.close()


def png(width: int, height: int, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    return image_bytes(Image.new("RGB", (width, height), colour))


def keyboard(*labels: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=label, callback_data=f"pick:{label}") for label in labels]]
    )


async def test_get_me_and_unknown_methods(emulator: TelegramEmulator, bot: Bot) -> None:
    me = await bot.get_me()
    assert me.id == 123456 and me.is_bot and me.username == "TestKandinskyBot"

    async with aiohttp.ClientSession() as http:
        async with http.post(f"{emulator.base_url}/bot{TOKEN}/noSuchMethod") as resp:
            assert resp.status == 404
            assert await resp.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
        async with http.post(f"{emulator.base_url}/bot1:wrong/getMe") as resp:
            assert resp.status == 401
            assert (await resp.json())["description"] == "Unauthorized"
        # Telegram also takes JSON bodies and query strings; method names are case-insensitive.
        async with http.post(f"{emulator.base_url}/bot{TOKEN}/GETME", json={}) as resp:
            assert (await resp.json())["result"]["id"] == 123456
    assert [c.method for c in emulator.calls] == ["getMe", "noSuchMethod", "getMe", "getMe"]


async def test_messages_edits_and_telegram_errors(emulator: TelegramEmulator, bot: Bot) -> None:
    user = emulator.user()
    first = await bot.send_message(user.chat_id, "hello", reply_markup=keyboard("A", "B"))
    second = await bot.send_message(user.chat_id, "world")
    assert second.message_id == first.message_id + 1
    assert first.chat.id == user.chat_id and first.from_user.id == 123456

    edited = await bot.edit_message_text("hello again", chat_id=user.chat_id, message_id=first.message_id)
    assert edited.text == "hello again" and edited.edit_date is not None
    assert edited.reply_markup is None  # an edit without a keyboard removes it, like on Telegram

    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("hello again", chat_id=user.chat_id, message_id=first.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=user.chat_id, message_id=999)
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(42, "nobody there")
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(user.chat_id, "x" * 4097)
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(user.chat_id, "x", reply_markup=keyboard("y" * 70))

    with_markup = await bot.edit_message_reply_markup(
        chat_id=user.chat_id, message_id=second.message_id, reply_markup=keyboard("C")
    )
    assert button_texts(with_markup.model_dump(exclude_none=True)) == ["C"]
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_reply_markup(chat_id=user.chat_id, message_id=second.message_id, reply_markup=keyboard("C"))

    assert await bot.delete_message(user.chat_id, second.message_id)
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(user.chat_id, second.message_id)

    # The user saw all of it, in order, as snapshots.
    assert (await user.wait_for(has_text("hello")))["text"] == "hello"
    assert (await user.wait_for(has_text("world")))["text"] == "world"
    assert (await user.wait_for(kinds=("edited",)))["text"] == "hello again"
    assert button_texts(await user.wait_for(kinds=("edited",))) == ["C"]
    assert (await user.wait_for(kinds=("deleted",)))["message_id"] == second.message_id

    user.block()
    from aiogram.exceptions import TelegramForbiddenError

    with pytest.raises(TelegramForbiddenError, match="blocked"):
        await bot.send_message(user.chat_id, "still there?")


async def test_photos_keep_their_true_size_and_download(emulator: TelegramEmulator, bot: Bot) -> None:
    user = emulator.user()
    data = png(1000, 600)
    sent = await bot.send_photo(user.chat_id, BufferedInputFile(data, "result.png"), caption="a cat")
    assert sent.caption == "a cat"
    largest = sent.photo[-1]
    assert (largest.width, largest.height) == (1000, 600)
    assert [(p.width, p.height) for p in sent.photo[:-1]] == [(90, 54), (320, 192), (800, 480)]
    # The upload really was multipart with an attach:// reference.
    call = emulator.calls_to("sendPhoto")[0]
    assert call.params["photo"].startswith("attach://")

    file = await bot.get_file(largest.file_id)
    downloaded = await bot.download(file)
    assert downloaded.read() == data
    thumb = await bot.download(sent.photo[0].file_id)
    assert Image.open(thumb).size == (90, 54)

    # Re-sending by file_id works; an unknown file_id is Telegram's error.
    again = await bot.send_photo(user.chat_id, largest.file_id)
    assert again.photo[-1].file_id == largest.file_id
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.send_photo(user.chat_id, "no-such-file")
    with pytest.raises(TelegramBadRequest, match="IMAGE_PROCESS_FAILED"):
        await bot.send_photo(user.chat_id, BufferedInputFile(b"not an image", "x.png"))
    with pytest.raises(TelegramBadRequest, match="PHOTO_INVALID_DIMENSIONS"):
        await bot.send_photo(user.chat_id, BufferedInputFile(png(1050, 50), "strip.png"))

    photo_message = await user.wait_for(lambda m: "photo" in m)
    assert user.image(photo_message).size == (1000, 600)


async def test_documents_and_media_groups(emulator: TelegramEmulator, bot: Bot) -> None:
    user = emulator.user()
    doc = await bot.send_document(user.chat_id, BufferedInputFile(png(64, 64), "image.png"), caption="as a file")
    assert doc.document.file_name == "image.png" and doc.document.mime_type == "image/png"
    assert (await bot.download(doc.document.file_id)).read() == png(64, 64)

    sizes = [(256, 256), (384, 256), (256, 384), (128, 64)]
    album = await bot.send_media_group(
        user.chat_id,
        [
            InputMediaPhoto(media=BufferedInputFile(png(w, h), f"{i}.png"), caption="four" if i == 0 else None)
            for i, (w, h) in enumerate(sizes)
        ],
    )
    assert len(album) == 4 and len({m.media_group_id for m in album}) == 1
    assert [(m.photo[-1].width, m.photo[-1].height) for m in album] == sizes
    assert album[0].caption == "four"
    assert [m.message_id for m in album] == list(range(doc.message_id + 1, doc.message_id + 5))

    documents = await bot.send_media_group(
        user.chat_id, [InputMediaDocument(media=BufferedInputFile(png(8, 8), f"{i}.png")) for i in range(2)]
    )
    assert all(m.document for m in documents)
    with pytest.raises(TelegramBadRequest, match="from 2 to 10"):
        await bot.send_media_group(user.chat_id, [InputMediaPhoto(media=BufferedInputFile(png(8, 8), "a.png"))])

    received = await user.wait_for_album(4)
    assert [(m["photo"][-1]["width"], m["photo"][-1]["height"]) for m in received] == sizes


async def test_long_polling_waits_without_spinning_and_honours_offset(emulator: TelegramEmulator, bot: Bot) -> None:
    user = emulator.user(first_name="Ann", username="ann")
    assert await bot.get_updates(timeout=0) == []

    started = time.monotonic()
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.3)
    assert not poll.done()
    await user.send_text("hi there")
    updates = await asyncio.wait_for(poll, 2)
    assert time.monotonic() - started < 2
    assert [u.message.text for u in updates] == ["hi there"]
    assert updates[0].message.from_user.username == "ann"
    # One waiting request, not a loop of them.
    assert len(emulator.calls_to("getUpdates")) == 2

    # Unconfirmed updates come again; offset confirms them.
    again = await bot.get_updates(timeout=0)
    assert [u.update_id for u in again] == [updates[0].update_id]
    await user.send_command("start")
    await user.send_command("settings", "now")
    newer = await bot.get_updates(offset=updates[0].update_id + 1, timeout=0)
    assert [u.message.text for u in newer] == ["/start", "/settings now"]
    assert newer[1].message.entities[0].type == "bot_command" and newer[1].message.entities[0].length == 9
    assert await bot.get_updates(offset=newer[-1].update_id + 1, timeout=0) == []

    # A new long poll ends the one still waiting, like Telegram does.
    old = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.2)
    new = asyncio.create_task(bot.get_updates(timeout=1))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates"):
        await asyncio.wait_for(old, 2)
    assert await asyncio.wait_for(new, 3) == []


async def test_user_media_is_downloadable_and_valid(emulator: TelegramEmulator, bot: Bot) -> None:
    user = emulator.user()
    await user.send_photo(Image.new("RGB", (300, 200), (10, 200, 10)), caption="make it a painting")
    await user.send_album([Image.new("RGB", (64, 64)), Image.new("RGB", (96, 64)), Image.new("RGB", (64, 96))], "fuse")
    await user.send_document(b"\x00\x01random bytes", "picture.png")
    await user.send_sticker("🐱")

    updates = await bot.get_updates(timeout=0)  # aiogram validates every object on the way
    photo_message, *album, document_message, sticker_message = [u.message for u in updates]
    assert photo_message.caption == "make it a painting"
    assert (photo_message.photo[-1].width, photo_message.photo[-1].height) == (300, 200)
    downloaded = Image.open(await bot.download(photo_message.photo[-1].file_id))
    assert downloaded.format == "JPEG" and downloaded.size == (300, 200)

    assert len(album) == 3 and len({m.media_group_id for m in album}) == 1 and album[0].caption == "fuse"
    assert [(m.photo[-1].width, m.photo[-1].height) for m in album] == [(64, 64), (96, 64), (64, 96)]

    assert document_message.document.file_name == "picture.png"
    file = await bot.get_file(document_message.document.file_id)
    assert (await bot.download(file)).read() == b"\x00\x01random bytes"
    assert sticker_message.sticker.emoji == "🐱"


async def test_inline_buttons_and_callback_answers(emulator: TelegramEmulator, bot: Bot) -> None:
    user = emulator.user()
    sent = await bot.send_message(user.chat_id, "pick one", reply_markup=keyboard("One", "Two"))
    menu = await user.wait_for(has_text("pick one"))
    query_id = await user.press(menu, "Two")
    with pytest.raises(LookupError):
        await user.press(menu, "Three")

    (update,) = await bot.get_updates(timeout=1)
    assert update.callback_query.data == "pick:Two"
    assert update.callback_query.message.message_id == sent.message_id
    assert await bot.answer_callback_query(update.callback_query.id, text="picked")
    assert (await user.wait_for_answer(query_id))["text"] == "picked"
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(update.callback_query.id)

    # Buttons are pressed on the message as it is now.
    await bot.edit_message_reply_markup(chat_id=user.chat_id, message_id=sent.message_id, reply_markup=keyboard("Three"))
    await user.press(menu, "Three")
    stale = await user.press_raw(menu, "from:an-old-version")
    updates = await bot.get_updates(offset=update.update_id + 1, timeout=1)
    assert [u.callback_query.data for u in updates] == ["pick:Three", "from:an-old-version"]
    assert updates[1].callback_query.id == stale

    await bot.send_chat_action(user.chat_id, "upload_photo")
    assert [a for _, a in user.chat.actions] == ["upload_photo"]
    assert await bot.set_my_commands([BotCommand(command="start", description="Start")])
    assert [c.command for c in await bot.get_my_commands()] == ["start"]


async def test_fault_injection_flood_control_and_call_record(bot: Bot) -> None:
    emulator = TelegramEmulator()
    emulator.add_bot(TOKEN)
    await emulator.start()
    bot.session.api = TelegramAPIServer.from_base(emulator.base_url)
    try:
        user = emulator.user()
        rule = FaultRule(rate_429=1.0, retry_after=1, methods=frozenset({"sendMessage"}))
        emulator.add_faults(rule)
        with pytest.raises(TelegramRetryAfter) as caught:
            await bot.send_message(user.chat_id, "one")
        assert caught.value.retry_after == 1
        rule.rate_429 = 0.0
        # Coming back before retry_after is hammering: answered 429 again and recorded (a call sent
        # within flood_grace of the 429 was merely in flight: answered 429, not recorded).
        with pytest.raises(TelegramRetryAfter):
            await bot.send_message(user.chat_id, "in flight")
        assert emulator.flood_violations == []
        await asyncio.sleep(emulator.flood_grace)
        with pytest.raises(TelegramRetryAfter):
            await bot.send_message(user.chat_id, "two")
        assert len(emulator.flood_violations) == 1
        assert (await bot.get_me()).id == 123456  # other methods are not covered by the rule
        await asyncio.sleep(1.05)
        assert (await bot.send_message(user.chat_id, "three")).text == "three"
        sends = emulator.calls_to("sendMessage")
        assert [c.status for c in sends] == [429, 429, 429, 200]
        assert sends[3].time - sends[0].time >= 1.0 and sends[0].retry_after == 1 and sends[0].injected

        emulator.clear_faults()
        emulator.add_faults(FaultRule(rate_5xx=1.0, methods=frozenset({"sendPhoto"})))
        with pytest.raises(TelegramServerError):
            await bot.send_photo(user.chat_id, BufferedInputFile(png(8, 8), "a.png"))
        assert user.received(lambda m: "photo" in m) == []  # a failed call changes nothing
    finally:
        await bot.session.close()
        await emulator.stop()


def test_fault_draws_are_seeded() -> None:
    def draws(seed: int) -> list[str | None]:
        rule = FaultRule(rate_429=0.3, rate_5xx=0.1, seed=seed)
        return [rule.draw() for _ in range(200)]

    assert draws(7) == draws(7) and draws(7) != draws(8)
    outcomes = draws(7)
    assert 40 <= outcomes.count("429") <= 80 and 5 <= outcomes.count("5xx") <= 40


class WebhookReceiver:
    """A stand-in for a bot replica in webhook mode: records the updates Telegram pushes to it."""

    def __init__(self, status: int = 200, reply: dict | None = None) -> None:
        self.status = status
        self.reply = reply
        self.updates: list[dict] = []
        self.secrets: list[str | None] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.secrets.append(request.headers.get("X-Telegram-Bot-Api-Secret-Token"))
        if self.status != 200:
            return web.Response(status=self.status)
        self.updates.append(await request.json())
        return web.json_response(self.reply or {})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/webhook", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/webhook"

    async def stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


async def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_webhook_push_split_between_replicas_and_retried(emulator: TelegramEmulator, bot: Bot) -> None:
    first, second, broken = WebhookReceiver(), WebhookReceiver(), WebhookReceiver(status=500)
    for receiver in (first, second, broken):
        await receiver.start()
    try:
        user = emulator.user()
        assert await bot.set_webhook(first.url, secret_token="s3cret-token", drop_pending_updates=True)
        info = await bot.get_webhook_info()
        assert info.url == first.url and info.pending_update_count == 0
        with pytest.raises(TelegramConflictError, match="webhook is active"):
            await bot.get_updates(timeout=0)

        await user.send_text("pushed")
        await wait_until(lambda: len(first.updates) == 1)
        assert first.updates[0]["message"]["text"] == "pushed" and first.secrets == ["s3cret-token"]

        # Two replicas behind one URL: the updates are split between them.
        emulator.bots[TOKEN].balance_webhook([first.url, second.url])
        for i in range(4):
            await user.send_text(f"n{i}")
        await wait_until(lambda: len(first.updates) + len(second.updates) == 5)
        assert len(first.updates) == 3 and len(second.updates) == 2

        # A replica that fails gets the update again later; it is not lost.
        emulator.bots[TOKEN].balance_webhook([broken.url])
        await user.send_text("retry me")
        await wait_until(lambda: len(broken.secrets) >= 2)
        assert (await bot.get_webhook_info()).last_error_message.startswith("Wrong response from the webhook: 500")
        emulator.bots[TOKEN].balance_webhook([second.url])
        await wait_until(lambda: any(u["message"]["text"] == "retry me" for u in second.updates))

        # Back to polling: nothing pending is lost.
        assert await bot.delete_webhook()
        assert (await bot.get_webhook_info()).url == ""
        await user.send_text("polled")
        assert [u.message.text for u in await bot.get_updates(timeout=1)] == ["polled"]
    finally:
        for receiver in (first, second, broken):
            await receiver.stop()


async def test_webhook_reply_with_a_method_is_executed(emulator: TelegramEmulator, bot: Bot) -> None:
    user = emulator.user()
    receiver = WebhookReceiver(reply={"method": "sendMessage", "chat_id": user.chat_id, "text": "from the reply"})
    await receiver.start()
    try:
        await bot.set_webhook(receiver.url)
        await user.send_text("hi")
        assert (await user.wait_for(has_text("from the reply"), timeout=5))["text"] == "from the reply"
    finally:
        await bot.delete_webhook()
        await receiver.stop()


async def test_photo_limit_is_configurable_for_fallback_tests(emulator: TelegramEmulator, bot: Bot) -> None:
    emulator.photo_max_bytes = 1000
    user = emulator.user()
    noisy = Image.frombytes("RGB", (64, 64), random.Random(0).randbytes(64 * 64 * 3))  # PNG can't shrink noise
    buf = io.BytesIO()
    noisy.save(buf, "PNG")
    with pytest.raises(TelegramBadRequest, match="PHOTO_SAVE_FILE_INVALID"):
        await bot.send_photo(user.chat_id, BufferedInputFile(buf.getvalue(), "big.png"))
    assert (await bot.send_document(user.chat_id, BufferedInputFile(buf.getvalue(), "big.png"))).document


async def test_html_parse_mode_becomes_entities_like_on_telegram(emulator: TelegramEmulator, bot: Bot) -> None:
    user = emulator.user()
    sent = await bot.send_message(user.chat_id, "<b>Settings</b>\nModel: &lt;K3&gt;", parse_mode="HTML")
    assert sent.text == "Settings\nModel: <K3>"
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [("bold", 0, 8)]
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(user.chat_id, "a <script> tag", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(user.chat_id, "<b>unclosed", parse_mode="HTML")
    photo = await bot.send_photo(user.chat_id, BufferedInputFile(png(8, 8), "a.png"), caption="<i>x</i>", parse_mode="HTML")
    assert photo.caption == "x" and photo.caption_entities[0].type == "italic"


async def test_gateway_html_errors(emulator: TelegramEmulator, bot: Bot) -> None:
    from aiogram.exceptions import ClientDecodeError

    user = emulator.user()
    emulator.add_faults(FaultRule(rate_5xx=1.0, status_5xx=502, html_5xx=True, methods=frozenset({"sendMessage"})))
    with pytest.raises(ClientDecodeError):  # what aiogram makes of nginx's HTML page
        await bot.send_message(user.chat_id, "x")
    assert emulator.calls_to("sendMessage")[0].status == 502


async def test_send_video_reads_the_mp4(emulator: TelegramEmulator, bot: Bot, tmp_path) -> None:
    import numpy as np

    from generation.video_io import write_mp4

    frames = [np.full((48, 64, 3), 20 * i, dtype=np.uint8) for i in range(9)]
    video = write_mp4(iter(frames), tmp_path / "clip.mp4", fps=3)
    chat = emulator.user().chat_id
    sent = await bot.send_video(
        chat,
        BufferedInputFile(video.path.read_bytes(), "clip.mp4"),
        caption="a clip",
        thumbnail=BufferedInputFile(video.thumbnail, "thumb.jpg"),
        width=video.width,
        height=video.height,
        duration=round(video.duration),
    )
    assert (sent.video.width, sent.video.height, sent.video.duration) == (64, 48, 3)
    assert sent.caption == "a clip"
    # The same video again by its file id.
    again = await bot.send_video(chat, sent.video.file_id)
    assert again.video.file_id == sent.video.file_id


async def test_a_call_under_way_is_found_before_it_is_answered(emulator: TelegramEmulator, bot: Bot) -> None:
    """How a test knows that a bot polls: its long poll is seen when it arrives, not after its timeout."""
    started = time.monotonic()
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    record = await emulator.wait_for_call(lambda c: c.method == "getUpdates", timeout=2, in_flight=True)
    assert record.finished is None and not poll.done()
    assert time.monotonic() - started < 2
    # Without in_flight the same wait needs the answer.
    with pytest.raises(asyncio.TimeoutError):
        await emulator.wait_for_call(lambda c: c.method == "getUpdates", timeout=0.5)
    await emulator.user().send_text("hi")
    assert [u.message.text for u in await asyncio.wait_for(poll, 2)] == ["hi"]
    assert (await emulator.wait_for_call(lambda c: c.method == "getUpdates", timeout=1)).finished is not None


async def test_a_held_answer_ends_when_the_emulator_stops() -> None:
    """hold_answers: the message is in the chat at once, its answer comes later, or when the emulator
    stops (the test is over: nobody waits out the hold)."""
    emulator = TelegramEmulator()
    emulator.add_bot(TOKEN)
    await emulator.start()
    session = AiohttpSession(api=TelegramAPIServer.from_base(emulator.base_url))
    held_bot = Bot(TOKEN, session=session)
    try:
        user = emulator.user()
        emulator.hold_answers("sendMessage", 30)
        sending = asyncio.create_task(held_bot.send_message(user.id, "held"))
        await user.wait_for(has_text("held"), 2)  # taken at once
        await asyncio.sleep(0.3)
        assert not sending.done()  # the answer is held
        started = time.monotonic()
        await emulator.stop()
        assert time.monotonic() - started < 5
        assert (await asyncio.wait_for(sending, 5)).text == "held"
    finally:
        await session.close()
        await emulator.stop()
