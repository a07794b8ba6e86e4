"""The runtime settings the job system reads on every admission: the pause and the limits.

Admins change them from the chat (``storage.admin_repositories.ControlRepository`` writes the same
``bot_settings`` rows); the job service, the queue and the workers only read them, through
:class:`QueueControlRepository`, and so never depend on the admin repositories.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.admin_models import BotSetting
from storage.models import Job, JobStatus, utcnow


def day_start(now: datetime | None = None) -> datetime:
    """Midnight UTC of the current day: daily quotas and "today" statistics count from it."""
    now = now or utcnow()
    return now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class Limits:
    max_pending_per_user: int
    max_pending_total: int
    daily_quota: int | None = None  # jobs per user per UTC day; None: unlimited


LIMIT_KEYS = ("max_pending_per_user", "max_pending_total", "daily_quota")


@dataclass(frozen=True)
class PauseState:
    paused: bool
    reason: str | None = None


def _limits(stored: dict[str, Any], defaults: Limits) -> Limits:
    return Limits(
        max_pending_per_user=int(stored.get("max_pending_per_user") or defaults.max_pending_per_user),
        max_pending_total=int(stored.get("max_pending_total") or defaults.max_pending_total),
        daily_quota=stored["daily_quota"] if "daily_quota" in stored else defaults.daily_quota,
    )


def _pause(stored: dict[str, Any]) -> PauseState:
    value = stored.get("paused")
    if not value:
        return PauseState(False)
    return PauseState(True, value.get("reason") if isinstance(value, dict) else None)


class QueueControlRepository:
    """Reads the pause and the limits (stored in ``bot_settings``) and counts jobs for the quota."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _values(self, keys: Sequence[str]) -> dict[str, Any]:
        rows = await self.session.execute(select(BotSetting.key, BotSetting.value).where(BotSetting.key.in_(keys)))
        return dict(rows.tuples().all())

    async def limits(self, defaults: Limits) -> Limits:
        """The stored limits, falling back to the defaults from the environment for unset ones."""
        return _limits(await self._values(LIMIT_KEYS), defaults)

    async def pause_state(self) -> PauseState:
        return _pause(await self._values(("paused",)))

    async def admission(self, defaults: Limits) -> tuple[PauseState, Limits]:
        """The pause and the limits in one read (every prompt's admission needs both)."""
        stored = await self._values(("paused", *LIMIT_KEYS))
        return _pause(stored), _limits(stored, defaults)

    async def jobs_since(self, user_id: int, since: datetime) -> int:
        """Jobs that count against the daily quota: created since ``since`` and not withdrawn.

        Cancelled jobs (no picture came of them) and jobs that failed on our side do not count.
        """
        query = select(func.count(Job.id)).where(
            Job.user_id == user_id,
            Job.created_at >= since,
            Job.status.not_in([JobStatus.FAILED, JobStatus.CANCELLED]),
        )
        return int((await self.session.execute(query)).scalar_one())
