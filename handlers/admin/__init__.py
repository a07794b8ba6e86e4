"""Admin commands and buttons. Everything here sits behind :class:`bot.admin_filter.AdminFilter`.

The filter is set on this router, so it guards every handler below, messages and callbacks alike.
Updates from anyone else fall through to the next routers and get exactly the answer an unknown
command or an unknown button gets: nothing shows that admin features exist. The filter also adds
``admin`` (:class:`handlers.admin.common.AdminContext`), the one argument most admin handlers take.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import StateFilter, or_f
from aiogram.types import CallbackQuery
from aiogram_i18n import I18nContext

from bot.admin_filter import AdminFilter
from handlers.admin import broadcast, control, panel, users
from handlers.admin.common import AdminCb, AdminContextFilter, AdminStates


async def expired_button(query: CallbackQuery, i18n: I18nContext) -> None:
    """An admin button none of the routers above parses: one sent before its format changed (the
    panel's views, the limit presets), or forged. An admin is told to open a fresh panel."""
    await query.answer(i18n.get("admin-button-expired"), show_alert=True)


def create_router() -> Router:
    router = Router(name="admin")
    # Private chats only: an admin's /stats in a group would show the group what only admins may see.
    # The role is read only for messages an admin handler can take (commands, the admin flows'
    # replies): a prompt, nearly every message, goes on without a database read.
    router.message.filter(
        F.chat.type == ChatType.PRIVATE, or_f(F.text.startswith("/"), StateFilter(AdminStates)), AdminFilter(), AdminContextFilter()
    )
    router.callback_query.filter(F.message.chat.type == ChatType.PRIVATE, AdminFilter(), AdminContextFilter())
    expired = Router(name="admin-expired")  # a router of its own: the parent's handlers would go first
    expired.callback_query(F.data.startswith(f"{AdminCb.__prefix__}:"))(expired_button)
    router.include_routers(
        panel.create_router(), users.create_router(), control.create_router(), broadcast.create_router(), expired
    )
    return router
