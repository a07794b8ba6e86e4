"""Deliveries Telegram refuses (issue 14, item 4): permanent errors end the job, passing ones back off
with a cap, undelivered jobs count toward the user's limit, captions fit in UTF-16 units."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramNetworkError
from aiogram.methods import EditMessageText, SendMessage, SendPhoto
from sqlalchemy import select

from handlers.admin.common import BroadcastCb
from storage.admin_models import Broadcast
from storage.models import User
from tests.conftest import make_settings, start_harness, stop_harness
from tests.e2e.emulator import MAX_CAPTION_LENGTH, _text_length, _TelegramHTML
from tests.fakes import callback_update, message_update, user

OWNER = user(7, first_name="Olga")
ANN = user(1001)


@pytest.fixture
def settings(tmp_path: Path):
    return make_settings(tmp_path, admin_ids=[OWNER.id], broadcast_rate=1000.0, delivery_retry_seconds=0.05)


async def _user(harness, user_id: int) -> User:
    async with harness.app.db.session() as session:
        return await session.get(User, user_id)


async def test_a_user_who_blocked_the_bot_is_marked_tried_once_and_skipped_by_broadcasts(harness):
    h = harness
    await h.feed(message_update("/start", from_user=OWNER))
    h.session.failures[SendPhoto] = lambda m: TelegramForbiddenError(method=m, message="Forbidden: bot was blocked by the user")
    await h.feed(message_update("a red fox", from_user=ANN))
    [job] = await h.wait_jobs_settled()
    await asyncio.sleep(0.5)  # ten retry intervals
    assert job.status == "failed" and job.error == "blocked"
    assert len(h.session.of(SendPhoto)) == 1  # one upload, no retries
    assert (await _user(h, ANN.id)).blocked_bot

    await h.feed(message_update("/broadcast", from_user=OWNER))
    await h.feed(message_update("News for everyone", from_user=OWNER))
    async with h.app.db.session() as session:
        draft = (await session.execute(select(Broadcast))).scalars().one()
    await h.feed(callback_update(BroadcastCb(action="bsend", broadcast_id=draft.id).pack(), from_user=OWNER))
    await h.wait_for(lambda: any("finished" in (c.text or "") for c in h.session.of(SendMessage)), timeout=10)
    sent_to = [c.chat_id for c in h.session.of(SendMessage) if c.text == "News for everyone" and c.reply_markup is None]
    assert ANN.id not in sent_to and OWNER.id in sent_to


async def test_a_permanent_refusal_ends_the_job_with_a_message(harness):
    h = harness
    h.session.failures[SendPhoto] = lambda m: TelegramBadRequest(method=m, message="Bad Request: wrong file identifier")
    await h.feed(message_update("a red fox", from_user=ANN))
    [job] = await h.wait_jobs_settled()
    await asyncio.sleep(0.5)
    assert job.status == "failed" and job.error.startswith("refused")
    assert len(h.session.of(SendPhoto)) == 1
    assert "could not be sent" in h.session.of(EditMessageText)[-1].text
    assert not (await _user(h, ANN.id)).blocked_bot


async def test_passing_failures_back_off_and_give_up_after_the_cap(tmp_path: Path):
    settings = make_settings(
        tmp_path, delivery_retry_seconds=0.1, delivery_retry_max_seconds=0.4, delivery_max_attempts=5
    )
    h = await start_harness(settings)
    try:
        tries: list[float] = []

        def down(method):
            tries.append(time.monotonic())
            return TelegramNetworkError(method=method, message="Request timeout error")

        h.session.failures[SendPhoto] = down
        await h.feed(message_update("a red fox", from_user=ANN))
        [job] = await h.wait_jobs_settled(timeout=15)
        assert job.status == "failed" and job.error == "undeliverable" and job.delivery_attempts == 4
        assert len(tries) == 5  # then it stops: no upload every retry interval for ever
        await asyncio.sleep(0.5)
        assert len(tries) == 5
        gaps = [b - a for a, b in zip(tries, tries[1:])]
        for gap, backoff in zip(gaps, (0.1, 0.2, 0.4, 0.4)):  # doubling, up to the cap
            assert gap >= backoff * 0.9, gaps
        assert gaps[2] > gaps[0] + 0.15 and gaps[3] < 0.4 + 0.5, gaps
        assert "could not be sent" in h.session.of(EditMessageText)[-1].text
    finally:
        await stop_harness(h)


async def test_undelivered_jobs_count_toward_the_users_limit(tmp_path: Path):
    settings = make_settings(tmp_path, max_pending_per_user=2, delivery_retry_seconds=60)
    h = await start_harness(settings)
    try:
        h.session.failures[SendPhoto] = lambda m: TelegramNetworkError(method=m, message="Request timeout error")
        for prompt in ("a red fox", "a grey wolf"):
            await h.feed(message_update(prompt, from_user=ANN))

        async def both_waiting() -> bool:
            return [j.status for j in await h.jobs()] == ["generated", "generated"]

        await h.wait_for(both_waiting, timeout=15)
        await h.feed(message_update("a brown bear", from_user=ANN))
        assert h.session.of(SendMessage)[-1].text.startswith("You already have 2 pictures in progress")
        assert len(await h.jobs()) == 2
    finally:
        await stop_harness(h)


async def test_a_caption_of_emoji_fits_telegrams_limit(harness):
    h = harness
    prompt = "a " + "🦊" * 998  # 1000 characters, 1998 UTF-16 units
    await h.feed(message_update(prompt, from_user=ANN))
    [job] = await h.wait_jobs_settled()
    caption = h.session.of(SendPhoto)[-1].caption
    plain, _ = _TelegramHTML().parse(caption)  # what Telegram counts: the text, without the markup
    assert _text_length(plain) <= MAX_CAPTION_LENGTH
    assert plain.startswith("a 🦊🦊") and "…" in plain and plain.endswith(f"seed {job.params['seed']}")
