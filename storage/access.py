"""Invite codes of a private bot: created by owners, each redeemed by one user."""

from __future__ import annotations

import secrets

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import InviteCode, utcnow


class AccessRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create_invite(self, owner_id: int) -> str:
        code = secrets.token_urlsafe(12)  # 16 characters of A-Z a-z 0-9 - _, as deep links allow
        self.session.add(InviteCode(code=code, created_by=owner_id))
        await self.session.flush()
        return code

    async def redeem(self, code: str, user_id: int) -> bool:
        """Use a code for ``user_id``: True once per code (a conditional update: two users racing for
        one code cannot both win), and True again for the user who already holds it."""
        result = await self.session.execute(
            update(InviteCode)
            .where(InviteCode.code == code, InviteCode.used_by.is_(None))
            .values(used_by=user_id, used_at=utcnow())
        )
        if result.rowcount:
            return True
        holder = await self.session.scalar(select(InviteCode.used_by).where(InviteCode.code == code))
        return holder == user_id

    async def invited(self, user_id: int) -> bool:
        found = await self.session.scalar(select(InviteCode.code).where(InviteCode.used_by == user_id).limit(1))
        return found is not None
