"""Queue positions in the distributed mode: the refresher on real Redis, then the bot and a GPU worker
on PostgreSQL and Redis keeping the waiting users' "queued, position N" messages true after a
cancellation (learnt by the bot) and after a job starts (learnt by the worker)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiogram import Bot
from aiogram.methods import EditMessageText, TelegramMethod
from redis.asyncio import Redis

from jobs.positions import PositionRefresher, lock_key
from storage.models import JobStatus
from tests.fakes import RecordingSession, message_update, user
from tests.scale.conftest import REDIS_URL
from tests.scale.test_distributed_inprocess import ALL, cluster


class Witness:
    """What the queue looked like when each refresh read it, and whether two refreshes overlapped."""

    def __init__(self) -> None:
        self.version = 0  # "the queue": bumped by each change
        self.reads: list[int] = []
        self.running = 0
        self.overlapped = False

    def refresh_fn(self, seconds: float) -> Any:
        async def refresh() -> None:
            self.running += 1
            self.overlapped |= self.running > 1
            self.reads.append(self.version)
            await asyncio.sleep(seconds)
            self.running -= 1

        return refresh


async def test_refreshes_of_several_processes_are_serialised_and_lose_no_change(redis_prefix):
    witness = Witness()
    clients = [Redis.from_url(REDIS_URL) for _ in range(3)]
    # Three processes (the bot and two workers), each with its own connection and refresher.
    refreshers = [
        PositionRefresher(witness.refresh_fn(0.15), client, redis_prefix, settle_seconds=0.01) for client in clients
    ]
    try:
        for round_ in range(4):
            for refresher in refreshers:  # each learns of a change while others may be refreshing
                witness.version += 1
                refresher.request()
                await asyncio.sleep(0.04 * round_)
        for refresher in refreshers:
            await refresher.idle()
        assert not witness.overlapped
        # The last refresh read the queue after the last change: no change was lost.
        assert witness.reads[-1] == witness.version == 12
        # Coalesced: far fewer refreshes than the 12 changes.
        assert sum(r.refreshes for r in refreshers) < 12
        assert await clients[0].exists(lock_key(redis_prefix)) == 0  # released
    finally:
        for refresher in refreshers:
            await refresher.close()
        for client in clients:
            await client.aclose()


async def test_a_lock_left_by_a_dead_process_expires(redis_prefix, redis):
    witness = Witness()
    await redis.set(lock_key(redis_prefix), "dead", px=300)  # a process died while refreshing
    client = Redis.from_url(REDIS_URL)
    refresher = PositionRefresher(witness.refresh_fn(0.0), client, redis_prefix, settle_seconds=0.0)
    try:
        refresher.request()
        await refresher.idle()
        assert witness.reads == []  # the other process holds the lock: left to it
        await asyncio.sleep(0.35)
        witness.version += 1
        refresher.request()
        await refresher.idle()
        assert witness.reads == [1]
    finally:
        await refresher.close()
        await client.aclose()


class Timeline:
    """The Telegram calls of every process in the order they were made."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, TelegramMethod[Any]]] = []

    def session(self, process: str) -> RecordingSession:
        timeline = self

        class Recorded(RecordingSession):
            async def make_request(self, bot: Bot, method: TelegramMethod[Any], timeout: int | None = None) -> Any:
                timeline.calls.append((process, method))
                return await super().make_request(bot, method, timeout)

        return Recorded()

    def shown(self, chat_id: int, message_id: int | None) -> tuple[str, str] | None:
        """The message's text now (the last edit of any process) and the process that wrote it."""
        for process, call in reversed(self.calls):
            if isinstance(call, EditMessageText) and (call.chat_id, call.message_id) == (chat_id, message_id):
                return call.text or "", process
        return None


async def test_positions_stay_true_after_a_cancel_and_after_a_start_on_a_worker(tmp_path, pg_database, redis_prefix):
    timeline = Timeline()
    async with cluster(
        tmp_path, pg_database.url, redis_prefix, [], step=0.1, session_factory=timeline.session, batch_max_jobs=1
    ) as c:  # one job at a time: the others wait in line
        ann, bob, cid, dan = (user(4100 + i, first_name=n, username=n.lower()) for i, n in enumerate(["Ann", "Bob", "Cid", "Dan"]))
        for u in (ann, bob, cid, dan):
            await c.feed(message_update("/start", from_user=u))
            await c.feed(message_update(f"a picture for {u.first_name}", from_user=u))
        c.add_worker(ALL)  # all four wait when the first GPU worker comes up
        a, b, cj, d = await c.wait(lambda js: js[0].status == JobStatus.RUNNING)

        async def shows(job: Any, text: str, process: str | None = None, timeout: float = 10.0) -> None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                shown = timeline.shown(job.chat_id, job.status_message_id)
                if shown is not None and shown[0].startswith(text) and process in (None, shown[1]):
                    return
                await asyncio.sleep(0.02)
            raise AssertionError(f"job {job.id}: {timeline.shown(job.chat_id, job.status_message_id)}, not {text!r}")

        # Ann's job started on the worker: the worker moved the others up.
        await shows(b, "⏳ Queued, position 1", "worker")
        await shows(cj, "⏳ Queued, position 2", "worker")
        await shows(d, "⏳ Queued, position 3", "worker")
        # Bob cancels his waiting job in the bot process: the bot moves Cid and Dan up.
        await c.feed(message_update("/cancel", from_user=bob))
        await shows(cj, "⏳ Queued, position 1", "bot")
        await shows(d, "⏳ Queued, position 2", "bot")
        assert [j.status for j in await c.jobs()][:2] == [JobStatus.RUNNING, JobStatus.CANCELLED]
        # Ann cancels her running job: the worker starts Cid's, and moves Dan up.
        await c.feed(message_update("/cancel", from_user=ann))
        await c.wait(lambda js: js[2].status == JobStatus.RUNNING)
        await shows(d, "⏳ Queued, position 1", "worker")
        await c.feed(message_update("/cancel", from_user=cid))
        await c.feed(message_update("/cancel", from_user=dan))
        await c.wait(lambda js: all(j.status == JobStatus.CANCELLED for j in js))
