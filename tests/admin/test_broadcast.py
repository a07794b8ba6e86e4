"""/broadcast: preview, Send, background delivery under the rate, 403s, the report, restarts."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from aiogram.exceptions import TelegramForbiddenError
from aiogram.methods import SendMessage, SendPhoto
from aiogram.types import MessageEntity, PhotoSize
from sqlalchemy import select

from storage.admin_models import Broadcast, BroadcastRecipient, BroadcastStatus, RecipientStatus
from storage.repositories import Repositories
from tests.admin.conftest import OWNER, OWNER_ID, get_user, press, say
from tests.conftest import BotHarness, make_settings, start_harness, stop_harness
from tests.fakes import buttons, message_update, sticker_update, user

TEXT = "Big news: Kandinsky 3.1 Flash is here!"
ENTITIES = [MessageEntity(type="bold", offset=0, length=8)]
USER_IDS = list(range(5000, 5049))  # 49 users + the owner = 50 recipients
BLOCKED = set(USER_IDS[3::10])  # 5 of them blocked the bot


def plain(entities: list[MessageEntity] | None) -> list[dict[str, Any]]:
    return [e.model_dump(exclude_none=True) for e in entities or []]


async def add_users(h: BotHarness, ids: list[int]) -> None:
    async with h.app.db.session() as session:
        repos = Repositories(session)
        for user_id in ids:
            await repos.users.upsert_seen(user_id, f"u{user_id}", "User", "en")
        await session.commit()


def refuse_blocked(h: BotHarness, sends: list[int] | None = None) -> None:
    """The API answers 403 for users who blocked the bot; ``sends`` records every broadcast send."""

    def failure(method: Any) -> Exception | None:
        if method.text == TEXT and sends is not None:
            sends.append(int(method.chat_id))
        if int(method.chat_id) in BLOCKED:
            return TelegramForbiddenError(method=method, message="Forbidden: bot was blocked by the user")
        return None

    h.session.failures[SendMessage] = failure


async def compose(h: BotHarness) -> str:
    """The owner writes the broadcast; returns the Send button's callback data."""
    assert (await say(h, "/broadcast", OWNER))[-1].startswith("Send the message to broadcast")
    update = message_update(TEXT, from_user=OWNER)
    await h.feed(update.model_copy(update={"message": update.message.model_copy(update={"entities": ENTITIES})}))
    preview = h.session.of(SendMessage)[-1]
    assert preview.text == TEXT and plain(preview.entities) == plain(ENTITIES) and preview.parse_mode is None
    labels = dict(buttons(preview.reply_markup))
    assert set(labels) == {"📣 Send to 50 users", "✖️ Cancel"}
    return labels["📣 Send to 50 users"]


def report_texts(*harnesses: BotHarness) -> list[str]:
    return [
        c.text for h in harnesses for c in h.session.of(SendMessage) if c.chat_id == OWNER_ID and "finished" in c.text
    ]


async def wait_report(h: BotHarness) -> str:
    await h.wait_for(lambda: report_texts(h), timeout=15)
    return report_texts(h)[0]


def delivered(*harnesses: BotHarness) -> Counter[int]:
    """Broadcast messages per chat (not the owner's preview, which carries the buttons)."""
    return Counter(
        int(c.chat_id)
        for h in harnesses
        for c in h.session.of(SendMessage)
        if c.text == TEXT and c.reply_markup is None
    )


async def test_broadcast_to_50_users_5_blocked(harness):
    h = harness
    await say(h, "/start", OWNER)
    await add_users(h, USER_IDS)
    refuse_blocked(h)
    send = await compose(h)
    calls = await press(h, send, OWNER)
    assert "Broadcast #1 is being sent to 50 users" in [c.text for c in calls if isinstance(c, SendMessage)][0]
    report = await wait_report(h)
    assert report == "📣 Broadcast #1 finished: 45 delivered, 5 blocked the bot, 0 failed (of 50)."
    counts = delivered(h)
    assert set(counts) == set(USER_IDS) | {OWNER_ID}  # one attempt each, the blocked ones included
    assert set(counts.values()) == {1}
    sent = [c for c in h.session.of(SendMessage) if c.text == TEXT and c.reply_markup is None]
    assert all(plain(c.entities) == plain(ENTITIES) and c.parse_mode is None for c in sent)
    for user_id in BLOCKED:
        assert (await get_user(h, user_id)).blocked_bot
    assert not (await get_user(h, USER_IDS[0])).blocked_bot
    # a second press (or a replayed button) sends nothing more
    await press(h, send, OWNER)
    await asyncio.sleep(0.2)
    assert delivered(h) == counts and len(report_texts(h)) == 1
    assert "blocked the bot 5" in (await say(h, "/stats", OWNER))[-1]
    # the next broadcast skips users already known to have blocked the bot, without a send
    h.session.clear()
    send = await compose(h)
    await press(h, send, OWNER)
    assert (await wait_report(h)) == "📣 Broadcast #2 finished: 45 delivered, 5 blocked the bot, 0 failed (of 50)."
    assert set(delivered(h)) == (set(USER_IDS) - BLOCKED) | {OWNER_ID}
    # a user who writes again has unblocked the bot
    h.session.failures.clear()
    await say(h, "/start", user(sorted(BLOCKED)[0]))
    assert not (await get_user(h, sorted(BLOCKED)[0])).blocked_bot


async def test_broadcast_resumes_after_a_restart_and_sends_nobody_twice(tmp_path):
    settings = make_settings(tmp_path, admin_ids=[OWNER_ID], broadcast_rate=100.0)
    first = await start_harness(settings)
    sends_first: list[int] = []
    try:
        await say(first, "/start", OWNER)
        await add_users(first, USER_IDS)
        refuse_blocked(first, sends_first)
        send = await compose(first)
        await press(first, send, OWNER)
        await first.wait_for(lambda: len(sends_first) >= 20, timeout=10)
    finally:
        await stop_harness(first)  # mid-broadcast
    assert 20 <= len(sends_first) < 50
    assert report_texts(first) == []

    second = await start_harness(settings)
    sends_second: list[int] = []
    try:
        refuse_blocked(second, sends_second)
        report = await wait_report(second)
    finally:
        await stop_harness(second)
    assert report == "📣 Broadcast #1 finished: 45 delivered, 5 blocked the bot, 0 failed (of 50)."
    assert sends_second and not set(sends_first) & set(sends_second)
    counts = delivered(first, second)
    assert set(counts) == set(USER_IDS) | {OWNER_ID} and set(counts.values()) == {1}


async def test_crash_mid_batch_never_resends(tmp_path):
    """Rows claimed before a crash may have been sent: they are counted as failed, not sent again."""
    settings = make_settings(tmp_path, admin_ids=[OWNER_ID])
    h = await start_harness(settings)
    await stop_harness(h)
    async with h.app.db.session() as session:  # the state a crash leaves behind
        repos = Repositories(session)
        await repos.users.upsert_seen(OWNER_ID, "olga", "Olga", "en")
        for user_id in (1, 2, 3, 4):
            await repos.users.upsert_seen(user_id, None, "U", "en")
        session.add(
            Broadcast(id=1, admin_id=OWNER_ID, admin_chat_id=OWNER_ID, text=TEXT, status=BroadcastStatus.SENDING)
        )
        await session.flush()
        statuses = {
            OWNER_ID: RecipientStatus.SENT,
            1: RecipientStatus.SENDING,
            2: RecipientStatus.SENDING,
            3: RecipientStatus.PENDING,
            4: RecipientStatus.PENDING,
        }
        session.add_all(BroadcastRecipient(broadcast_id=1, user_id=u, status=s) for u, s in statuses.items())
        await session.commit()
    h = await start_harness(settings)
    try:
        report = await wait_report(h)
    finally:
        await stop_harness(h)
    assert report == "📣 Broadcast #1 finished: 3 delivered, 0 blocked the bot, 2 failed (of 5)."
    assert sorted(delivered(h)) == [3, 4]


async def test_photo_broadcast_and_cancel(harness):
    h = harness
    await say(h, "/start", OWNER)
    await add_users(h, [11, 12])
    await say(h, "/broadcast", OWNER)
    assert "Hi, Olga!" in (await say(h, "/start", OWNER))[-1]  # commands still work while composing
    await h.feed(sticker_update(OWNER))
    assert h.session.texts()[-1].startswith("A broadcast is a text or a photo")
    assert (await say(h, "Draft to cancel", OWNER)) == ["Draft to cancel"]  # the preview
    labels = dict(buttons(h.session.of(SendMessage)[-1].reply_markup))
    await press(h, labels["✖️ Cancel"], OWNER)
    calls = await press(h, labels["📣 Send to 3 users"], OWNER)  # too late: it was cancelled
    assert [c.text for c in calls if hasattr(c, "show_alert")] == ["This broadcast was already sent or cancelled."]
    await asyncio.sleep(0.1)
    assert [c.chat_id for c in h.session.of(SendMessage) if c.text == "Draft to cancel"] == [OWNER_ID]
    # a photo with a caption
    await say(h, "/broadcast", OWNER)
    photo = [
        PhotoSize(file_id="small", file_unique_id="s", width=90, height=90),
        PhotoSize(file_id="big", file_unique_id="b", width=900, height=900),
    ]
    await h.feed(message_update(None, from_user=OWNER, photo=photo, caption="New styles!"))
    preview = h.session.of(SendPhoto)[-1]
    assert preview.photo == "big" and preview.caption == "New styles!"
    await press(h, dict(buttons(preview.reply_markup))["📣 Send to 3 users"], OWNER)
    report = await wait_report(h)
    assert report == "📣 Broadcast #2 finished: 3 delivered, 0 blocked the bot, 0 failed (of 3)."
    photos = [c for c in h.session.of(SendPhoto) if c.reply_markup is None]
    assert sorted(int(c.chat_id) for c in photos) == sorted([OWNER_ID, 11, 12])
    assert {(c.photo, c.caption) for c in photos} == {("big", "New styles!")}
    async with h.app.db.session() as session:
        statuses = [b.status for b in (await session.execute(select(Broadcast).order_by(Broadcast.id))).scalars()]
    assert statuses == [BroadcastStatus.CANCELLED, BroadcastStatus.DONE]


async def test_flood_control_is_retried_and_bad_chats_fail(harness):
    from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter

    h = harness
    await say(h, "/start", OWNER)
    await add_users(h, [21, 22, 23])
    attempts: Counter[int] = Counter()

    def failure(method: Any) -> Exception | None:
        if method.text != TEXT or method.reply_markup is not None:
            return None
        chat = int(method.chat_id)
        attempts[chat] += 1
        if chat == 21 and attempts[chat] == 1:  # 429 once: not sent, so sent again after the wait
            return TelegramRetryAfter(method=method, message="Too Many Requests: retry after 0", retry_after=0)
        if chat == 22:
            return TelegramBadRequest(method=method, message="Bad Request: chat not found")
        return None

    h.session.failures[SendMessage] = failure
    await say(h, "/broadcast", OWNER)
    await say(h, TEXT, OWNER)
    await press(h, dict(buttons(h.session.of(SendMessage)[-1].reply_markup))["📣 Send to 4 users"], OWNER)
    assert (await wait_report(h)) == "📣 Broadcast #1 finished: 3 delivered, 0 blocked the bot, 1 failed (of 4)."
    assert attempts == {21: 2, 22: 1, 23: 1, OWNER_ID: 1}
    async with h.app.db.session() as session:
        rows = (await session.execute(select(BroadcastRecipient).order_by(BroadcastRecipient.user_id))).scalars().all()
    assert {r.user_id: (r.status, r.error) for r in rows}[22] == (RecipientStatus.FAILED, "Bad Request: chat not found")
