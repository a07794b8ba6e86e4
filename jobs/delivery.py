"""Delivery: a generated job's stored images to the chat, once.

Images are stored before delivery (:class:`jobs.results.ResultStore`), so a send Telegram refused
is retried later without generating again (the embedded queue's and the workers' retry loops call
:meth:`Delivery.deliver` again). Several processes may deliver: a delivery claim in the database
(:mod:`jobs.claims`) lets one of them send; ``generated -> done`` is a conditional update.
"""

from __future__ import annotations

import logging
from typing import Any

from jobs.claims import JobClaims
from jobs.events import JobContext, JobEvents
from jobs.results import ResultStore
from storage.models import JobStatus, User, utcnow
from storage.repositories import Database, Repositories

log = logging.getLogger(__name__)


class Delivery:
    def __init__(
        self, db: Database, events: JobEvents, results: ResultStore, worker_id: str, lease_seconds: float
    ) -> None:
        self.db = db
        self.events = events
        self.results = results
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds  # longer than a send can take, flood-control waits included
        self._delivering: set[int] = set()  # one delivery at a time per job in this process

    async def _load(self, job_id: int) -> JobContext | None:
        async with self.db.session() as session:
            job = await Repositories(session).jobs.get(job_id)
            if job is None:
                return None
            user = await session.get(User, job.user_id)
            return JobContext(job=job, locale=user.language if user else "en")

    async def _transition(self, job_id: int, from_: list[str], to: str, **values: Any) -> bool:
        async with self.db.session() as session:
            moved = await Repositories(session).jobs.transition(job_id, from_, to, **values)
            await session.commit()
            return moved

    async def deliver(self, job_id: int) -> bool:
        """Send a generated job's stored images; on success mark it done. Safe to call again."""
        if job_id in self._delivering:
            return False
        self._delivering.add(job_id)
        try:
            return await self._deliver(job_id)
        finally:
            self._delivering.discard(job_id)

    async def _claim_delivery(self, job_id: int) -> bool:
        # The in-process guard above is not enough when several processes deliver: claim the
        # delivery in the database, so that only one of them sends the result.
        async with self.db.session() as session:
            claimed = await JobClaims(session).claim_delivery(job_id, self.worker_id, self.lease_seconds)
            await session.commit()
            return claimed

    async def _release_delivery(self, job_id: int) -> None:
        async with self.db.session() as session:
            await JobClaims(session).release(job_id, self.worker_id)
            await session.commit()

    async def _deliver(self, job_id: int) -> bool:
        ctx = await self._load(job_id)
        if ctx is None or ctx.job.status != JobStatus.GENERATED:
            return False
        if not await self._claim_delivery(job_id):
            return False
        paths = self.results.paths(job_id)
        try:
            file_ids = await self.events.deliver(ctx, paths)
        except Exception:
            log.warning("delivery of job %s failed; it will be retried", job_id, exc_info=True)
            await self._release_delivery(job_id)
            return False
        return await self._transition(
            job_id,
            [JobStatus.GENERATED],
            JobStatus.DONE,
            result_file_ids=file_ids,
            finished_at=utcnow(),
            claimed_by=None,
            claim_expires_at=None,
        )

