"""/admin: an inline panel that reaches every admin feature; its buttons edit the panel in place."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from aiogram_i18n import I18nContext

from handlers.admin import control
from handlers.admin.broadcast import ask_broadcast
from handlers.admin.common import AdminAction as A
from handlers.admin.common import AdminCb, AdminContext, AdminStates, esc, user_label
from handlers.admin.users import audit_view
from storage.admin_repositories import AdminRole


async def panel_view(admin: AdminContext) -> tuple[str, InlineKeyboardMarkup]:
    i18n, repos, ar = admin.i18n, admin.repos, admin.store
    pause = await ar.control.pause_state()
    lines = [
        i18n.get(
            "admin-panel",
            role=i18n.get(f"admin-role-{admin.role}"),
            pending=await repos.jobs.count_pending(),
        )
    ]
    if pause.paused:
        lines.append(i18n.get("admin-state-paused", reason=esc(pause.reason or "—")))
    admins = [user_label(await repos.users.get(owner), owner) + " 👑" for owner in sorted(admin.owners)]
    admins += [user_label(await repos.users.get(g.user_id), g.user_id) for g in await ar.admins.granted()]
    lines.append(i18n.get("admin-panel-admins", admins=", ".join(admins) or "—"))
    if admin.role == AdminRole.OWNER:
        lines.append(i18n.get("admin-panel-owner-help"))
    builder = InlineKeyboardBuilder()
    for action in (A.STATS, A.QUEUE, A.LIMITS, A.MODELS, A.BROADCAST, A.USER, A.AUDIT):
        builder.button(text=i18n.get(f"admin-btn-{action}"), callback_data=AdminCb(action=action))
    builder.button(
        text=i18n.get("admin-btn-resume" if pause.paused else "admin-btn-pause"),
        callback_data=AdminCb(action=A.RESUME if pause.paused else A.PAUSE),
    )
    builder.adjust(2)
    return "\n\n".join(lines), builder.as_markup()


async def admin_command(message: Message, admin: AdminContext) -> None:
    text, markup = await panel_view(admin)
    await message.answer(text, reply_markup=markup)


async def show(query: CallbackQuery, callback_data: AdminCb, admin: AdminContext) -> None:
    i18n, repos = admin.i18n, admin.repos
    action = callback_data.action
    if action == A.PANEL:
        text, markup = await panel_view(admin)
    elif action == A.STATS:
        text, markup = await control.stats_view(i18n, repos)
    elif action == A.QUEUE:
        text, markup = await control.queue_view(i18n, repos)
    elif action == A.LIMITS:
        text, markup = await control.limits_view(i18n, repos, admin.request.jobs)
    elif action == A.MODELS:
        text, markup = await control.models_view(i18n, admin.backend)
    else:
        text, markup = await audit_view(i18n, repos)
    await query.answer()
    if isinstance(query.message, Message):
        try:
            await query.message.edit_text(text, reply_markup=markup)
        except TelegramAPIError:  # unchanged, or too old to edit: send it afresh
            await query.message.answer(text, reply_markup=markup)


async def ask(query: CallbackQuery, callback_data: AdminCb, i18n: I18nContext, state: FSMContext) -> None:
    """Buttons that need the admin's next message: the broadcast itself, or whom to look up."""
    await query.answer()
    if not isinstance(query.message, Message):
        return
    if callback_data.action == A.BROADCAST:
        await ask_broadcast(query.message, i18n, state)
    else:
        await state.set_state(AdminStates.user_lookup)
        await query.message.answer(i18n.get("admin-user-ask"))


def create_router() -> Router:
    router = Router(name="admin-panel")
    router.message(Command("admin"))(admin_command)
    views = {A.PANEL, A.STATS, A.QUEUE, A.LIMITS, A.MODELS, A.AUDIT}
    router.callback_query(AdminCb.filter(F.action.in_(views)))(show)
    router.callback_query(AdminCb.filter(F.action.in_({A.BROADCAST, A.USER})))(ask)
    return router
