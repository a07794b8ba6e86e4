"""Limits and the daily quota changed from the chat take effect at once; /pause and /resume."""

from __future__ import annotations

import asyncio
import re

from aiogram.methods import SendMessage

from storage.models import JobStatus
from tests.admin.conftest import OTHER, OWNER, USER, press, say
from tests.fakes import buttons


async def test_daily_quota_from_the_chat(harness):
    h = harness
    await say(h, "/start", OWNER)
    texts = await say(h, "/limits daily 2", OWNER)
    assert texts[0] == "Saved: daily = 2. It applies from the next request."
    assert "Jobs per user per day (UTC): 2" in texts[1]
    for prompt in ("one fox", "two foxes"):
        await say(h, prompt, USER)
        await h.wait_jobs_settled()
    texts = await say(h, "three foxes", USER)
    assert re.fullmatch(
        r"You have made your 2 pictures for today\. The limit resets at midnight UTC, in \d+ h \d+ min\.", texts[-1]
    ), texts
    assert len(await h.jobs()) == 2
    # another user has a quota of their own
    await say(h, "a cat", OTHER)
    assert [j.status for j in await h.wait_jobs_settled()] == [JobStatus.DONE] * 3
    # the button turns the quota off again, at once
    await say(h, "/limits", OWNER)
    labels = dict(buttons(h.session.of(SendMessage)[-1].reply_markup))
    await press(h, labels["daily: off"], OWNER)
    await say(h, "three foxes", USER)
    jobs = await h.wait_jobs_settled()
    assert len(jobs) == 4 and jobs[-1].status == JobStatus.DONE


async def test_pending_and_queue_caps_from_the_chat(harness):
    h = harness
    h.backend.step_seconds = 0.2  # the first job runs (25 steps) while the test acts
    await say(h, "/start", OWNER)
    await say(h, "/limits user 1", OWNER)
    await say(h, "one fox", USER)
    texts = await say(h, "two foxes", USER)
    assert texts[-1] == "You already have 1 picture in progress. Wait for it or /cancel."
    await say(h, "/limits user 3", OWNER)
    await say(h, "/limits queue 2", OWNER)
    await say(h, "two foxes", USER)
    texts = await say(h, "a cat", OTHER)
    assert texts[-1] == "The queue is full right now. Please try again in a few minutes."
    h.backend.step_seconds = 0.0
    await h.wait_jobs_settled()
    # bad values are refused and change nothing
    assert (await say(h, "/limits user 0", OWNER))[0].startswith("Usage: /limits")
    assert (await say(h, "/limits daily lots", OWNER))[0].startswith("Usage: /limits")
    assert (await say(h, "/limits speed 3", OWNER))[0].startswith("Usage: /limits")
    texts = await say(h, "/limits", OWNER)
    assert "Jobs in progress per user: 3" in texts[-1] and "Jobs in progress in all: 2" in texts[-1]
    assert "Jobs per user per day (UTC): unlimited" in texts[-1]


async def test_pause_and_resume(harness):
    h = harness
    h.backend.step_seconds = 0.2  # the first job runs (25 steps) while the test acts
    await say(h, "/start", OWNER)
    await say(h, "a red fox", USER)
    await say(h, "a blue fox", USER)
    await h.wait_for(lambda: len(h.backend.calls) == 1)
    texts = await say(h, "/pause GPU maintenance", OWNER)
    assert texts[-1].startswith("⏸ Paused:") and "GPU maintenance" in texts[-1]
    h.backend.step_seconds = 0.0
    # the running job finishes; the queued one waits; new requests are told why they are refused
    await h.wait_for(lambda: h.app.queue.idle.is_set() and len(h.backend.calls) == 1, timeout=10)
    await asyncio.sleep(0.3)
    assert [j.status for j in await h.jobs()] == [JobStatus.DONE, JobStatus.QUEUED]
    texts = await say(h, "a cat", OTHER)
    assert texts[-1] == "⏸ New pictures are paused for a while: GPU maintenance\nPlease try again later."
    assert "Paused: GPU maintenance" in (await say(h, "/queue", OWNER))[-1]
    texts = await say(h, "/resume", OWNER)
    assert texts[-1] == "▶️ Resumed. Waiting: 1."
    jobs = await h.wait_jobs_settled(timeout=5)
    assert [j.status for j in jobs] == [JobStatus.DONE, JobStatus.DONE]
    assert (await say(h, "/resume", OWNER))[-1] == "The queue is not paused."
    # the panel's button pauses without a reason
    from handlers.admin.common import AdminCb

    await press(h, AdminCb(action="pause").pack(), OWNER)
    texts = await say(h, "a cat", OTHER)
    assert texts[-1] == "⏸ New pictures are paused for a while. Please try again later."
    await press(h, AdminCb(action="resume").pack(), OWNER)
    await say(h, "a cat", OTHER)
    assert (await h.wait_jobs_settled())[-1].status == JobStatus.DONE


async def test_pause_survives_a_restart(tmp_path):
    from tests.admin.conftest import OWNER_ID
    from tests.conftest import make_settings, start_harness, stop_harness

    settings = make_settings(tmp_path, admin_ids=[OWNER_ID])
    h = await start_harness(settings)
    try:
        await say(h, "/pause", OWNER)
    finally:
        await stop_harness(h)
    h = await start_harness(settings)
    try:
        assert (await say(h, "a cat", USER))[-1].startswith("⏸ New pictures are paused")
        await say(h, "/resume", OWNER)
        await say(h, "a cat", USER)
        assert (await h.wait_jobs_settled())[-1].status == JobStatus.DONE
    finally:
        await stop_harness(h)


async def test_daily_quota_default_from_the_environment(tmp_path):
    from tests.admin.conftest import OWNER_ID
    from tests.conftest import make_settings, start_harness, stop_harness

    h = await start_harness(make_settings(tmp_path, admin_ids=[OWNER_ID], daily_quota=1))
    try:
        await say(h, "one fox", USER)
        await h.wait_jobs_settled()
        assert (await say(h, "two foxes", USER))[-1].startswith("You have made your 1 picture for today.")
        assert "Jobs per user per day (UTC): 1" in (await say(h, "/limits", OWNER))[-1]
        await say(h, "/limits daily 5", OWNER)  # the chat overrides the environment
        await say(h, "two foxes", USER)
        assert [j.status for j in await h.wait_jobs_settled()] == [JobStatus.DONE, JobStatus.DONE]
    finally:
        await stop_harness(h)
