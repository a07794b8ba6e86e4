"""Claims on jobs for processes that share one database (the distributed mode).

A job row carries ``claimed_by`` (a worker name) and ``claim_expires_at``. Every query here is one
conditional UPDATE, so two workers racing for the same job never both win:

- a running job's claim is renewed by its worker while it generates (:meth:`JobClaims.renew`); once it
  has expired the worker is presumed dead and the job may be taken over (:meth:`requeue_expired`);
- a generated job is delivered by whoever claims it first (:meth:`claim_delivery`), so a result is
  sent once even when several workers retry undelivered jobs; a claim whose holder died expires and
  the delivery is retried by someone else.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Job, JobStatus, utcnow


def lease(seconds: float, now: datetime | None = None) -> datetime:
    return (now or utcnow()) + timedelta(seconds=seconds)


def _claim_free(owner: str, now: datetime) -> Any:
    """The claim is free for ``owner``: nobody holds it, it expired, or ``owner`` holds it already."""
    return or_(Job.claim_expires_at.is_(None), Job.claim_expires_at < now, Job.claimed_by == owner)


class JobClaims:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _update(self, *where: Any, **values: Any) -> int:
        result = await self.session.execute(
            update(Job).where(*where).values(**values).execution_options(synchronize_session=False)
        )
        return result.rowcount or 0

    async def renew(self, job_id: int, owner: str, seconds: float) -> bool | None:
        """Extend ``owner``'s claim on a running job; return its ``cancel_requested`` flag.

        None when ``owner`` no longer holds the job (it finished, or another worker took it over).
        """
        result = await self.session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.RUNNING, Job.claimed_by == owner)
            .values(claim_expires_at=lease(seconds))
            .returning(Job.cancel_requested)
            .execution_options(synchronize_session=False)
        )
        row = result.first()
        return None if row is None else bool(row[0])

    async def requeue_expired(self, job_id: int, owner: str | None = None, now: datetime | None = None) -> bool:
        """A running job whose worker stopped renewing its claim goes back to queued.

        ``owner``: a claim held by this name counts as expired too (its holder is the caller's
        previous life)."""
        now = now or utcnow()
        return (
            await self._update(
                Job.id == job_id,
                Job.status == JobStatus.RUNNING,
                _claim_free(owner, now) if owner else or_(Job.claim_expires_at.is_(None), Job.claim_expires_at < now),
                status=JobStatus.QUEUED,
                started_at=None,
                claimed_by=None,
                claim_expires_at=None,
            )
            == 1
        )

    async def fail_expired(self, job_id: int, error: str, now: datetime | None = None) -> bool:
        """A running job whose workers keep dying on it (``attempts`` exhausted) fails for good."""
        now = now or utcnow()
        return (
            await self._update(
                Job.id == job_id,
                Job.status == JobStatus.RUNNING,
                or_(Job.claim_expires_at.is_(None), Job.claim_expires_at < now),
                status=JobStatus.FAILED,
                error=error,
                finished_at=now,
                claimed_by=None,
                claim_expires_at=None,
            )
            == 1
        )

    async def claim_delivery(self, job_id: int, owner: str, seconds: float) -> bool:
        """Take the right to deliver a generated job for ``seconds``."""
        now = utcnow()
        return (
            await self._update(
                Job.id == job_id,
                Job.status == JobStatus.GENERATED,
                _claim_free(owner, now),
                claimed_by=owner,
                claim_expires_at=lease(seconds, now),
            )
            == 1
        )

    async def release(self, job_id: int, owner: str) -> None:
        """Give a claim back at once (a delivery Telegram refused: anyone may retry it later)."""
        await self._update(Job.id == job_id, Job.claimed_by == owner, claim_expires_at=None)

    async def deliverable_ids(self, owner: str, limit: int = 100) -> list[int]:
        """Generated jobs nobody is delivering right now, oldest first."""
        now = utcnow()
        result = await self.session.execute(
            select(Job.id)
            .where(Job.status == JobStatus.GENERATED, _claim_free(owner, now))
            .order_by(Job.id)
            .limit(limit)
        )
        return list(result.scalars().all())

    async def counts(self) -> list[tuple[str, str, int]]:
        """(status, model, number of jobs) for the metrics."""
        result = await self.session.execute(
            select(Job.status, Job.model, func.count(Job.id)).group_by(Job.status, Job.model)
        )
        return [(status, model, int(n)) for status, model, n in result.all()]
