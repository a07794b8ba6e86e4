"""A job that takes the process down with it fails after three starts, with a clear message (issue 14)."""

from __future__ import annotations

import asyncio

from aiogram.methods import EditMessageText, SendPhoto
from sqlalchemy import update

from generation.fake import FakeBackend
from storage.models import Job
from tests.conftest import make_settings, start_harness, stop_harness
from tests.fakes import message_update


class PoisonBackend(FakeBackend):
    """Draws forever: the job is "running" whenever the process goes down."""

    def generate(self, request, progress=None):  # type: ignore[override]
        self.calls.append(request)
        while True:
            if progress is not None:
                progress(1, 25)  # raises once the job is interrupted
            import time

            time.sleep(0.02)


async def crash(harness) -> None:
    """The process dies while the job runs: no shutdown handler gets to put it back in the queue."""
    await stop_harness(harness)
    async with harness.app.db.session() as session:
        await session.execute(update(Job).values(status="running"))
        await session.commit()


async def test_a_job_started_three_times_fails_instead_of_starting_again(tmp_path):
    settings = make_settings(tmp_path)
    harness = await start_harness(settings, PoisonBackend())
    await harness.feed(message_update("a poison prompt"))
    for start in range(1, 4):
        await harness.wait_for(lambda: len(harness.backend.calls) == 1, timeout=15)
        [job] = await harness.jobs()
        assert job.status == "running" and job.attempts == start
        await crash(harness)
        harness = await start_harness(settings, PoisonBackend())
    try:
        await asyncio.sleep(0.5)
        [job] = await harness.jobs()
        assert job.status == "failed" and job.error == "crashed" and job.attempts == 3
        assert harness.backend.calls == []  # not started a fourth time
        edits = [e.text for e in harness.session.of(EditMessageText)]
        assert edits and "stopped the generator several times in a row" in edits[-1]
        assert harness.session.of(SendPhoto) == []
    finally:
        await stop_harness(harness)
