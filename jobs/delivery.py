"""Delivery: a generated job's stored images to the chat, at least once.

Images are stored before delivery (:class:`jobs.results.ResultStore`), so a send Telegram refused
for a passing reason is retried later without generating again (the embedded queue's and the
workers' retry loops call :meth:`Delivery.deliver` again), after a growing wait
(:class:`DeliveryRetry`), a bounded number of times. A refusal for good
(:class:`jobs.events.DeliveryRefused`) ends the job at once. Several processes may deliver: a
delivery claim in the database (:mod:`jobs.claims`) lets one of them send; ``generated -> done`` is
a conditional update. A crash after Telegram took the photo and before that update sends it again
after the restart: delivery is at-least-once (README "Security and limits").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from jobs.claims import JobClaims, lease
from jobs.events import DeliveryRefused, JobContext, JobEvents
from jobs.results import ResultStore
from storage.models import JobStatus, User, utcnow
from storage.repositories import Database, Repositories

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryRetry:
    """When a passing failure is tried again: ``base`` seconds, doubling per failure up to ``cap``;
    after ``max_attempts`` failures the job fails as undeliverable."""

    base: float = 30.0
    cap: float = 3600.0
    max_attempts: int = 10

    def delay(self, failures: int) -> float:
        return min(self.base * 2 ** max(failures - 1, 0), self.cap)


# On shutdown, deliveries under way get this long to end. One cut off after Telegram took the photo
# but before the job was marked done would send the photo again after the restart. (Well inside
# Docker's default 10 s between SIGTERM and SIGKILL.)
SHUTDOWN_DELIVERY_GRACE_SECONDS = 5.0

# The claim a job waiting out its delivery back-off carries (jobs.claims): nobody may claim it
# before ``claim_expires_at``.
BACKOFF_HOLDER = "delivery-backoff"


class Delivery:
    def __init__(
        self,
        db: Database,
        events: JobEvents,
        results: ResultStore,
        worker_id: str,
        lease_seconds: float,
        retry: DeliveryRetry | None = None,
    ) -> None:
        self.db = db
        self.retry = retry or DeliveryRetry()
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

    async def _back_off(self, job_id: int, failures: int, delay: float) -> None:
        """Count the failure and hold the job's claim until the next try (no process takes it sooner)."""
        async with self.db.session() as session:
            await Repositories(session).jobs.set_values(
                job_id, delivery_attempts=failures, claimed_by=BACKOFF_HOLDER, claim_expires_at=lease(delay)
            )
            await session.commit()

    async def _end_undeliverable(self, ctx: JobContext, reason: str, blocked: bool = False) -> None:
        """The result cannot reach the chat: the job fails (it no longer counts toward the user's
        limit); a user who blocked the bot is marked, and broadcasts skip them until they return."""
        async with self.db.session() as session:
            repos = Repositories(session)
            moved = await repos.jobs.transition(
                ctx.job.id,
                [JobStatus.GENERATED],
                JobStatus.FAILED,
                error=reason,
                finished_at=utcnow(),
                claimed_by=None,
                claim_expires_at=None,
            )
            if blocked:
                await repos.users.mark_blocked(ctx.job.user_id)
            await session.commit()
        if moved and not blocked:
            try:  # the chat may take a text where it refused the picture
                await self.events.failed(ctx, "undeliverable")
            except Exception:
                log.info("job %s: could not tell the chat either", ctx.job.id)

    async def _deliver(self, job_id: int) -> bool:
        ctx = await self._load(job_id)
        if ctx is None or ctx.job.status != JobStatus.GENERATED:
            return False
        if not await self._claim_delivery(job_id):
            return False
        paths = self.results.paths(job_id)
        try:
            file_ids = await self.events.deliver(ctx, paths)
        except DeliveryRefused as exc:
            log.warning("job %s: Telegram refused its result for good (%s); the job ends", job_id, exc.reason)
            await self._end_undeliverable(ctx, exc.reason, blocked=exc.blocked)
            return False
        except Exception:
            failures = ctx.job.delivery_attempts + 1
            if failures >= self.retry.max_attempts:
                log.warning("job %s: delivery failed %d times; giving up", job_id, failures, exc_info=True)
                await self._end_undeliverable(ctx, "undeliverable")
                return False
            delay = self.retry.delay(failures)
            log.warning("job %s: delivery failed (%d); next try in %.0f s", job_id, failures, delay, exc_info=True)
            await self._back_off(job_id, failures, delay)
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

