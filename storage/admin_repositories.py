"""Queries of the admin features: roles, audit, runtime limits and pause, statistics, broadcasts."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

from sqlalchemy import case, delete, func, insert, literal, null, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.admin_models import (
    AdminGrant,
    AuditEntry,
    BotSetting,
    Broadcast,
    BroadcastRecipient,
    BroadcastStatus,
    RecipientStatus,
)
from storage.control import LIMIT_KEYS, Limits, PauseState, QueueControlRepository, day_start
from storage.models import PENDING_STATUSES, Job, JobStatus, User, utcnow
from storage.repositories import _insert_for

__all__ = ["Limits", "PauseState", "day_start", "ControlRepository"]  # also importable from here


class AdminRole(StrEnum):
    OWNER = "owner"  # listed in ADMIN_IDS; grants and revokes admin rights
    ADMIN = "admin"  # granted by an owner, stored in admin_grants


# ---------------------------------------------------------------------------------------------
# Roles and audit
# ---------------------------------------------------------------------------------------------
class AdminRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def role(self, owner_ids: frozenset[int], user_id: int) -> AdminRole | None:
        if user_id in owner_ids:
            return AdminRole.OWNER
        if await self.session.get(AdminGrant, user_id) is not None:
            return AdminRole.ADMIN
        return None

    async def grant(self, user_id: int, granted_by: int) -> bool:
        """False when the user is an admin already."""
        if await self.session.get(AdminGrant, user_id) is not None:
            return False
        self.session.add(AdminGrant(user_id=user_id, granted_by=granted_by))
        await self.session.flush()
        return True

    async def revoke(self, user_id: int) -> bool:
        result = await self.session.execute(delete(AdminGrant).where(AdminGrant.user_id == user_id))
        return (result.rowcount or 0) > 0

    async def granted(self) -> Sequence[AdminGrant]:
        return (await self.session.execute(select(AdminGrant).order_by(AdminGrant.created_at))).scalars().all()

    async def audit(self, admin_id: int, action: str, target: object = None, details: str | None = None) -> None:
        self.session.add(
            AuditEntry(
                admin_id=admin_id,
                action=action,
                target=None if target is None else str(target)[:128],
                details=details,
            )
        )
        await self.session.flush()

    async def latest_audit(self, limit: int = 20) -> Sequence[AuditEntry]:
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        return (await self.session.execute(query)).scalars().all()


# ---------------------------------------------------------------------------------------------
# Runtime settings: limits and pause, stored in bot_settings and read on every admission
# ---------------------------------------------------------------------------------------------
class ControlRepository(QueueControlRepository):
    """The admins' side of the runtime settings: the job system only reads them
    (:class:`storage.control.QueueControlRepository`)."""

    async def _set(self, key: str, value: Any, updated_by: int | None) -> None:
        # An upsert: two admins changing the same setting at once cannot collide on the key.
        insert_ = _insert_for(self.session)
        values = {"value": value, "updated_by": updated_by, "updated_at": utcnow()}
        statement = insert_(BotSetting).values(key=key, **values)
        await self.session.execute(statement.on_conflict_do_update(index_elements=["key"], set_=values))

    async def set_limit(self, key: str, value: int | None, updated_by: int) -> None:
        if key not in LIMIT_KEYS:
            raise KeyError(key)
        await self._set(key, value, updated_by)

    async def set_pause(self, paused: bool, reason: str | None, updated_by: int) -> None:
        await self._set("paused", {"reason": reason} if paused else None, updated_by)


# ---------------------------------------------------------------------------------------------
# Statistics and lookups for /stats, /queue, /user
# ---------------------------------------------------------------------------------------------
@dataclass
class JobCounts:
    by_model: dict[str, int] = field(default_factory=dict)
    by_mode: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


@dataclass
class Timing:
    jobs: int
    median_wait: float | None  # seconds between created and started
    median_generation: float | None  # seconds between started and generated


@dataclass
class Stats:
    users_total: int
    users_today: int
    users_week: int
    users_banned: int
    users_blocked: int
    today: JobCounts
    week: JobCounts
    timing: dict[str, Timing]  # per model, last 7 days
    queued: int
    running: int


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    # SQLite hands back naive datetimes: all stored times are UTC.
    if later.tzinfo is None:
        later = later.replace(tzinfo=timezone.utc)
    if earlier.tzinfo is None:
        earlier = earlier.replace(tzinfo=timezone.utc)
    return (later - earlier).total_seconds()


class StatsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _count(self, query: Any) -> int:
        return int((await self.session.execute(query)).scalar_one())

    async def _job_counts(self, since: datetime) -> JobCounts:
        counts = JobCounts()
        for column, target in (
            (Job.model, counts.by_model),
            (Job.kind, counts.by_mode),
            (Job.status, counts.by_status),
        ):
            rows = await self.session.execute(
                select(column, func.count(Job.id)).where(Job.created_at >= since).group_by(column).order_by(column)
            )
            target.update({str(key): int(n) for key, n in rows.tuples().all()})
        return counts

    async def collect(self, now: datetime | None = None) -> Stats:
        now = now or utcnow()
        today, week = day_start(now), now - timedelta(days=7)
        users = select(func.count(User.id))
        timing: dict[str, Timing] = {}
        rows = await self.session.execute(
            select(Job.model, Job.created_at, Job.started_at, Job.generated_at).where(
                Job.created_at >= week, Job.started_at.is_not(None)
            )
        )
        waits: dict[str, list[float]] = {}
        generation: dict[str, list[float]] = {}
        for model, created, started, generated in rows.tuples().all():
            wait = _seconds(started, created)
            if wait is not None:
                waits.setdefault(model, []).append(wait)
            took = _seconds(generated, started)
            if took is not None:
                generation.setdefault(model, []).append(took)
        for model in sorted(waits):
            timing[model] = Timing(
                jobs=len(waits[model]),
                median_wait=statistics.median(waits[model]),
                median_generation=statistics.median(generation[model]) if generation.get(model) else None,
            )
        return Stats(
            users_total=await self._count(users),
            users_today=await self._count(users.where(User.last_seen >= today)),
            users_week=await self._count(users.where(User.last_seen >= week)),
            users_banned=await self._count(users.where(User.banned.is_(True))),
            users_blocked=await self._count(users.where(User.blocked_bot.is_(True))),
            today=await self._job_counts(today),
            week=await self._job_counts(week),
            timing=timing,
            queued=await self._count(select(func.count(Job.id)).where(Job.status == JobStatus.QUEUED)),
            running=await self._count(select(func.count(Job.id)).where(Job.status == JobStatus.RUNNING)),
        )

    async def pending_jobs(self, limit: int = 30) -> Sequence[Job]:
        """Running jobs first, then the queue oldest-first."""
        query = (
            select(Job)
            .where(Job.status.in_(PENDING_STATUSES))
            .order_by((Job.status == JobStatus.RUNNING).desc(), Job.id)
            .limit(limit)
        )
        return (await self.session.execute(query)).scalars().all()

    async def user_job_counts(self, user_id: int) -> dict[str, int]:
        rows = await self.session.execute(
            select(Job.status, func.count(Job.id)).where(Job.user_id == user_id).group_by(Job.status)
        )
        return {str(status): int(n) for status, n in rows.tuples().all()}

    async def last_jobs(self, user_id: int, limit: int = 5) -> Sequence[Job]:
        query = select(Job).where(Job.user_id == user_id).order_by(Job.id.desc()).limit(limit)
        return (await self.session.execute(query)).scalars().all()


# ---------------------------------------------------------------------------------------------
# Broadcasts
# ---------------------------------------------------------------------------------------------
@dataclass
class BroadcastReport:
    delivered: int
    blocked: int
    failed: int
    pending: int

    @property
    def total(self) -> int:
        return self.delivered + self.blocked + self.failed + self.pending


class BroadcastRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, broadcast_id: int) -> Broadcast | None:
        return await self.session.get(Broadcast, broadcast_id)

    async def add(self, broadcast: Broadcast) -> Broadcast:
        self.session.add(broadcast)
        await self.session.flush()
        return broadcast

    async def eligible_count(self) -> int:
        query = select(func.count(User.id)).where(User.banned.is_(False))
        return int((await self.session.execute(query)).scalar_one())

    async def start(self, broadcast_id: int) -> int | None:
        """Draft -> sending, with one recipient row per user who is not banned.

        Returns the number of recipients, or None if the broadcast is no longer a draft (a second
        press of Send, or a replayed button). Users already known to have blocked the bot are
        recorded as blocked without a send.
        """
        moved = await self.session.execute(
            update(Broadcast)
            .where(Broadcast.id == broadcast_id, Broadcast.status == BroadcastStatus.DRAFT)
            .values(status=BroadcastStatus.SENDING, started_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount != 1:
            return None
        # One INSERT ... SELECT, however many users there are.
        blocked = User.blocked_bot.is_(True)
        recipients = select(
            literal(broadcast_id),
            User.id,
            case((blocked, literal(str(RecipientStatus.BLOCKED))), else_=literal(str(RecipientStatus.PENDING))),
            case((blocked, literal("blocked before")), else_=null()),
        ).where(User.banned.is_(False))
        await self.session.execute(
            insert(BroadcastRecipient).from_select(["broadcast_id", "user_id", "status", "error"], recipients)
        )
        count = select(func.count()).where(BroadcastRecipient.broadcast_id == broadcast_id)
        return int((await self.session.execute(count)).scalar_one())

    async def cancel_draft(self, broadcast_id: int) -> bool:
        result = await self.session.execute(
            update(Broadcast)
            .where(Broadcast.id == broadcast_id, Broadcast.status == BroadcastStatus.DRAFT)
            .values(status=BroadcastStatus.CANCELLED, finished_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1

    async def sending_ids(self) -> list[int]:
        query = select(Broadcast.id).where(Broadcast.status == BroadcastStatus.SENDING).order_by(Broadcast.id)
        return list((await self.session.execute(query)).scalars().all())

    async def abandon_claimed(self) -> int:
        """After a crash: recipients claimed but not recorded may or may not have got the message.

        They are never sent again (nobody gets a broadcast twice); they count as failed.
        """
        result = await self.session.execute(
            update(BroadcastRecipient)
            .where(BroadcastRecipient.status == RecipientStatus.SENDING)
            .values(status=RecipientStatus.FAILED, error="interrupted")
            .execution_options(synchronize_session=False)
        )
        return result.rowcount or 0

    async def claim(self, broadcast_id: int, limit: int) -> list[int]:
        """Mark up to ``limit`` pending recipients as being sent to; returns their user ids.

        The update is conditional and returns the rows it moved, so two broadcasters (replicas)
        never claim the same recipient.
        """
        candidates = (
            select(BroadcastRecipient.user_id)
            .where(
                BroadcastRecipient.broadcast_id == broadcast_id,
                BroadcastRecipient.status == RecipientStatus.PENDING,
            )
            .order_by(BroadcastRecipient.user_id)
            .limit(limit)
        )
        user_ids = list((await self.session.execute(candidates)).scalars().all())
        if not user_ids:
            return []
        claimed = await self.session.execute(
            update(BroadcastRecipient)
            .where(
                BroadcastRecipient.broadcast_id == broadcast_id,
                BroadcastRecipient.user_id.in_(user_ids),
                BroadcastRecipient.status == RecipientStatus.PENDING,
            )
            .values(status=RecipientStatus.SENDING)
            .returning(BroadcastRecipient.user_id)
            .execution_options(synchronize_session=False)
        )
        return sorted(claimed.scalars().all())

    async def record(self, broadcast_id: int, user_id: int, status: str, error: str | None = None) -> None:
        await self.session.execute(
            update(BroadcastRecipient)
            .where(BroadcastRecipient.broadcast_id == broadcast_id, BroadcastRecipient.user_id == user_id)
            .values(status=status, error=error, sent_at=utcnow() if status == RecipientStatus.SENT else None)
            .execution_options(synchronize_session=False)
        )
        if status == RecipientStatus.BLOCKED:
            await self.session.execute(
                update(User)
                .where(User.id == user_id)
                .values(blocked_bot=True)
                .execution_options(synchronize_session=False)
            )

    async def report(self, broadcast_id: int) -> BroadcastReport:
        rows = await self.session.execute(
            select(BroadcastRecipient.status, func.count())
            .where(BroadcastRecipient.broadcast_id == broadcast_id)
            .group_by(BroadcastRecipient.status)
        )
        counts = {str(status): int(n) for status, n in rows.tuples().all()}
        return BroadcastReport(
            delivered=counts.get(RecipientStatus.SENT, 0),
            blocked=counts.get(RecipientStatus.BLOCKED, 0),
            failed=counts.get(RecipientStatus.FAILED, 0),
            pending=counts.get(RecipientStatus.PENDING, 0) + counts.get(RecipientStatus.SENDING, 0),
        )

    async def finish(self, broadcast_id: int) -> bool:
        """Sending -> done once nothing is pending; True for the one caller that moved it."""
        result = await self.session.execute(
            update(Broadcast)
            .where(Broadcast.id == broadcast_id, Broadcast.status == BroadcastStatus.SENDING)
            .values(status=BroadcastStatus.DONE, finished_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1


@dataclass
class AdminRepositories:
    """The admin repositories over one session (the handlers' unit of work)."""

    session: AsyncSession

    def __post_init__(self) -> None:
        self.admins = AdminRepository(self.session)
        self.control = ControlRepository(self.session)
        self.stats = StatsRepository(self.session)
        self.broadcasts = BroadcastRepository(self.session)
