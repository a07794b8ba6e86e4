"""/admin: an inline panel that reaches every admin feature; its buttons edit the panel in place."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from aiogram_i18n import I18nContext

from generation.backend import Backend
from handlers.admin import control
from handlers.admin.broadcast import ask_broadcast
from handlers.admin.common import AdminCb, AdminStates, admin_repos, esc, user_label
from handlers.admin.users import audit_view
from jobs.service import JobService
from storage.admin_repositories import AdminRole
from storage.repositories import Repositories


async def panel_view(
    i18n: I18nContext, repos: Repositories, admin_ids: frozenset[int], admin_role: str
) -> tuple[str, InlineKeyboardMarkup]:
    ar = admin_repos(repos)
    pause = await ar.control.pause_state()
    lines = [
        i18n.get(
            "admin-panel",
            role=i18n.get(f"admin-role-{admin_role}"),
            pending=await repos.jobs.count_pending(),
        )
    ]
    if pause.paused:
        lines.append(i18n.get("admin-state-paused", reason=esc(pause.reason or "—")))
    admins = [user_label(await repos.users.get(owner), owner) + " 👑" for owner in sorted(admin_ids)]
    admins += [user_label(await repos.users.get(g.user_id), g.user_id) for g in await ar.admins.granted()]
    lines.append(i18n.get("admin-panel-admins", admins=", ".join(admins) or "—"))
    if admin_role == AdminRole.OWNER:
        lines.append(i18n.get("admin-panel-owner-help"))
    builder = InlineKeyboardBuilder()
    for action in ("stats", "queue", "limits", "models", "broadcast", "user", "audit"):
        builder.button(text=i18n.get(f"admin-btn-{action}"), callback_data=AdminCb(action=action))
    builder.button(
        text=i18n.get("admin-btn-resume" if pause.paused else "admin-btn-pause"),
        callback_data=AdminCb(action="resume" if pause.paused else "pause"),
    )
    builder.adjust(2)
    return "\n\n".join(lines), builder.as_markup()


async def admin_command(
    message: Message, i18n: I18nContext, repos: Repositories, admin_ids: frozenset[int], admin_role: str
) -> None:
    text, markup = await panel_view(i18n, repos, admin_ids, admin_role)
    await message.answer(text, reply_markup=markup)


async def show(
    query: CallbackQuery,
    callback_data: AdminCb,
    i18n: I18nContext,
    repos: Repositories,
    jobs: JobService,
    admin_ids: frozenset[int],
    admin_role: str,
    generation_backend: Backend | None = None,
) -> None:
    action = callback_data.action
    if action == "panel":
        text, markup = await panel_view(i18n, repos, admin_ids, admin_role)
    elif action == "stats":
        text, markup = await control.stats_view(i18n, repos)
    elif action == "queue":
        text, markup = await control.queue_view(i18n, repos)
    elif action == "limits":
        text, markup = await control.limits_view(i18n, repos, jobs)
    elif action == "models":
        text, markup = await control.models_view(i18n, generation_backend)
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
    if callback_data.action == "broadcast":
        await ask_broadcast(query.message, i18n, state)
    else:
        await state.set_state(AdminStates.user_lookup)
        await query.message.answer(i18n.get("admin-user-ask"))


def create_router() -> Router:
    router = Router(name="admin-panel")
    router.message(Command("admin"))(admin_command)
    router.callback_query(AdminCb.filter(F.action.in_({"panel", "stats", "queue", "limits", "models", "audit"})))(show)
    router.callback_query(AdminCb.filter(F.action.in_({"broadcast", "user"})))(ask)
    return router
