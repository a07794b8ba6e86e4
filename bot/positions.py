"""Queue positions in the status messages: one refresh, cheap, after the updates being handled.

Whichever process learns that the queue moved asks its :class:`jobs.positions.PositionRefresher`
(coalesced; in the distributed mode serialised across processes) to run
:func:`refresh_queue_positions`. Under a burst of prompts the refresh lets the updates being handled
be answered first (for at most ``max_defer`` seconds: positions are never stale for long), then reads
the head of the queue with its owners' languages in one query, and edits with no session open.
"""

from __future__ import annotations

from bot.notifier import TelegramNotifier
from bot.priority import UpdatesInFlight
from storage.estimates import RunTimeEstimates, average_run_seconds, wait_estimate
from storage.repositories import Database, Repositories

REFRESHED_JOBS = 50  # status messages refreshed per pass: the head of the queue


async def refresh_queue_positions(
    db: Database,
    notifier: TelegramNotifier,
    estimates: RunTimeEstimates | None = None,
    updates: UpdatesInFlight | None = None,
    max_defer: float = 2.0,
) -> int:
    """The jobs at the head of the queue: their status messages show their positions (best effort).

    One read (jobs with their owners' languages), then the edits, with no session open. Returns how
    many messages were edited (the refresher paces the next refresh by it)."""
    if updates is not None:
        await updates.quiet(max_defer)
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
    edits = 0
    for position, (job, language) in enumerate(queued, start=1):
        eta = wait_estimate(position, averages[job.model])
        edits += await notifier.queued(job, language or "en", position, eta)
    return edits
