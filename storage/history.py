"""A user's own jobs, newest first, a page at a time (/history)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Job


class HistoryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def count(self, user_id: int) -> int:
        return int(await self.session.scalar(select(func.count()).select_from(Job).where(Job.user_id == user_id)) or 0)

    async def page(self, user_id: int, page: int, size: int) -> Sequence[Job]:
        """Jobs ``page * size`` to ``(page + 1) * size`` of this user (0-based pages), newest first."""
        query = select(Job).where(Job.user_id == user_id).order_by(Job.id.desc()).offset(page * size).limit(size)
        return (await self.session.execute(query)).scalars().all()
