"""Queue positions in the status messages: refreshed in the background, coalesced, after a burst.

Every job that starts (or leaves the queue) moves the jobs behind it up. Refreshing their status
messages each time would, under a burst, run one refresh per started job, each reading the queue
and editing up to fifty messages, on the event loop that is answering the burst. So:

- :class:`bot.priority.UpdatesInFlight` counts the updates being handled;
- :class:`QueuePositions` coalesces requests into one refresh at a time, at most one per
  ``interval`` (Telegram's per-chat throttle of status edits is the same), and lets the updates in
  flight be answered first (for at most ``max_defer`` seconds: positions are never stale for long).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from bot.notifier import TelegramNotifier
from bot.priority import UpdatesInFlight
from storage.estimates import RunTimeEstimates, average_run_seconds, wait_estimate
from storage.repositories import Database, Repositories

log = logging.getLogger(__name__)

REFRESHED_JOBS = 50  # status messages refreshed per pass: the head of the queue


async def refresh_queue_positions(
    db: Database, notifier: TelegramNotifier, estimates: RunTimeEstimates | None = None
) -> None:
    """The jobs at the head of the queue: their status messages show their positions (best effort).

    One read (jobs with their owners' languages), then the edits, with no session open."""
    async with db.session() as session:
        queued = await Repositories(session).jobs.queued_with_language(limit=REFRESHED_JOBS)
        averages: dict[str, float | None] = {}
        for job, _ in queued:
            if job.model not in averages:
                averages[job.model] = (
                    await estimates.average(session, job.model)
                    if estimates is not None
                    else await average_run_seconds(session, job.model)
                )
    for position, (job, language) in enumerate(queued, start=1):
        eta = wait_estimate(position, averages[job.model])
        await notifier.queued(job, language or "en", position, eta)


class QueuePositions:
    """Refreshes queue positions in the background: coalesced, rate-limited, after the updates in flight."""

    def __init__(
        self,
        db: Database,
        notifier: TelegramNotifier,
        estimates: RunTimeEstimates | None = None,
        updates: UpdatesInFlight | None = None,
        interval: float = 1.0,
        max_defer: float = 2.0,
    ) -> None:
        self.db = db
        self.notifier = notifier
        self.estimates = estimates
        self.updates = updates
        self.interval = interval
        self.max_defer = max_defer
        self._wanted = False
        self._task: asyncio.Task[None] | None = None
        self.passes = 0  # refreshes run (tests)

    def moved(self) -> None:
        """The queue moved: a refresh will follow (one for any number of calls while it waits)."""
        self._wanted = True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="queue-positions")

    async def _run(self) -> None:
        while self._wanted:
            if self.updates is not None:
                await self.updates.quiet(self.max_defer)
            self._wanted = False
            try:
                await refresh_queue_positions(self.db, self.notifier, self.estimates)
            except Exception:
                log.warning("could not update queue positions", exc_info=True)
            self.passes += 1
            if self._wanted and self.interval > 0:
                await asyncio.sleep(self.interval)

    async def idle(self) -> None:
        """Wait for the refresh under way, if any (tests, shutdown)."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await self.idle()
            self._task = None
