"""Admin commands and buttons. Everything here sits behind :class:`bot.admin_filter.AdminFilter`.

The filter is set on this router, so it guards every handler below, messages and callbacks alike.
Updates from anyone else fall through to the next routers and get exactly the answer an unknown
command or an unknown button gets: nothing shows that admin features exist.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ChatType

from bot.admin_filter import AdminFilter
from handlers.admin import broadcast, control, panel, users


def create_router() -> Router:
    router = Router(name="admin")
    # Private chats only: an admin's /stats in a group would show the group what only admins may see.
    router.message.filter(F.chat.type == ChatType.PRIVATE, AdminFilter())
    router.callback_query.filter(F.message.chat.type == ChatType.PRIVATE, AdminFilter())
    router.include_routers(
        panel.create_router(), users.create_router(), control.create_router(), broadcast.create_router()
    )
    return router
