"""How long jobs take, from the jobs table: the basis of the estimated wait in the queue."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Job, JobStatus

RECENT_JOBS = 20


async def average_run_seconds(session: AsyncSession, model: str, recent: int = RECENT_JOBS) -> float | None:
    """The mean time from start to finish of the model's last ``recent`` finished jobs; None when it
    has none yet (no estimate is better than a made-up one)."""
    rows = (
        await session.execute(
            select(Job.started_at, Job.finished_at)
            .where(
                Job.model == model,
                Job.status == JobStatus.DONE,
                Job.started_at.is_not(None),
                Job.finished_at.is_not(None),
            )
            .order_by(Job.id.desc())
            .limit(recent)
        )
    ).all()
    durations = [(finished - started).total_seconds() for started, finished in rows]
    durations = [d for d in durations if d >= 0]
    return sum(durations) / len(durations) if durations else None


def wait_estimate(position: int, average: float | None) -> int | None:
    """Seconds until a job at ``position`` (1 = next) is done: the jobs ahead and its own run."""
    if average is None:
        return None
    return max(1, round(position * average))


class RunTimeEstimates:
    """:func:`average_run_seconds` per model, remembered for ``ttl`` seconds.

    Every "Queued" message and every queue-position refresh shows an estimate; under a burst of
    prompts the same few rows would be read for each of them. An estimate a few seconds old is as
    good as a fresh one. "No history yet" is not remembered: the first finished job gives the next
    prompt its estimate at once. Requests that find no fresh figure while one is being read wait for
    that read instead of making their own (a burst of prompts makes one read, not one each)."""

    def __init__(self, ttl: float = 5.0) -> None:
        self.ttl = ttl
        self._known: dict[str, tuple[float, float | None]] = {}  # model -> (monotonic time read, average)
        self._reading: dict[str, asyncio.Future[float | None]] = {}

    async def average(self, session: AsyncSession, model: str) -> float | None:
        now = time.monotonic()
        known = self._known.get(model)
        if known is not None and known[1] is not None and now - known[0] < self.ttl:
            return known[1]
        reading = self._reading.get(model)
        if reading is not None:
            return await asyncio.shield(reading)
        reading = self._reading[model] = asyncio.get_running_loop().create_future()
        try:
            average = await average_run_seconds(session, model)
        except BaseException as exc:
            reading.set_exception(exc if isinstance(exc, Exception) else RuntimeError("the read was cancelled"))
            reading.exception()  # retrieved: the waiting requests get it, or nobody does
            raise
        finally:
            del self._reading[model]
        self._known[model] = (now, average)
        reading.set_result(average)
        return average
