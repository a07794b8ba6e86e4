"""The one gate in front of every admin handler.

It is set on the admin router itself (messages and callbacks), so no admin handler can be reached
without it, and it is evaluated on the server for every update: a forged, replayed or stale admin
button pressed by someone who is not (or no longer) an admin fails here like any unknown button.
Updates it refuses fall through to the other routers, which answer them as unknown commands.
"""

from __future__ import annotations

from typing import Any

from aiogram.filters import Filter
from aiogram.types import TelegramObject
from aiogram.types import User as TelegramUser

from storage.admin_repositories import AdminRepository, AdminRole
from storage.models import User
from storage.repositories import Repositories


_ROLE_CACHE = "admin_filter_roles"


class AdminFilter(Filter):
    """Passes owners (ADMIN_IDS) and granted admins; hands ``admin_role`` to the handler."""

    def __init__(self, owner_only: bool = False) -> None:
        self.owner_only = owner_only

    async def __call__(
        self,
        event: TelegramObject,
        event_from_user: TelegramUser | None = None,
        repos: Repositories | None = None,
        user: User | None = None,
        admin_ids: frozenset[int] = frozenset(),
    ) -> bool | dict[str, Any]:
        if event_from_user is None or event_from_user.is_bot or repos is None:
            return False
        if user is not None and user.banned:
            return False
        # Several routers sit behind this gate: the role is read once per update (the update's
        # session carries it), not once per router.
        cache = repos.session.info.setdefault(_ROLE_CACHE, {})
        if event_from_user.id not in cache:
            cache[event_from_user.id] = await AdminRepository(repos.session).role(admin_ids, event_from_user.id)
        role = cache[event_from_user.id]
        if role is None or (self.owner_only and role != AdminRole.OWNER):
            return False
        return {"admin_role": role}
