"""/ban, /unban, /user, /grant, /revoke, /audit, and the buttons of a user's card."""

from __future__ import annotations

from typing import Any

from aiogram import F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from aiogram_i18n import I18nContext

from bot.admin_menu import hide_admin_menu, show_admin_menu
from bot.i18n import translator
from jobs.params import shown_prompt
from handlers.admin.common import (
    AdminContext,
    AdminStates,
    Target,
    TargetFilter,
    UserAction,
    UserCb,
    admin_repos,
    back_button,
    esc,
    fmt_time,
    user_label,
)
from storage.admin_repositories import AdminRole
from storage.models import User
from storage.repositories import Repositories

Reply = tuple[str, dict[str, Any]]  # an i18n key and its arguments


# -- the actions, shared by commands and buttons ---------------------------------------------
async def ban(admin: AdminContext, target: User, reason: str = "") -> Reply:
    if await admin.store.admins.role(admin.owners, target.id) is not None:
        return "admin-ban-admin", {}
    if target.banned:
        return "admin-ban-already", {"user": user_label(target)}
    target.banned = True
    target.ban_notified = False
    request = admin.request
    cancelled = await request.jobs.cancel_all(request.repos, target.id)  # commits: the worker must not start them
    t = translator()
    for job in cancelled.queued:
        await request.notifier.withdrawn(job, target.language)
    # The one notice now, so the user knows why the pictures stopped; if it cannot be sent, the
    # middleware sends it on the user's next message.
    try:
        await request.bot.send_message(target.id, t("banned", target.language))
        target.ban_notified = True
    except TelegramAPIError:
        pass
    await admin.audit("ban", target.id, reason or None)
    return "admin-banned", {
        "user": user_label(target),
        "queued": len(cancelled.queued),
        "running": len(cancelled.running),
    }


async def unban(admin: AdminContext, target: User) -> Reply:
    if not target.banned:
        return "admin-unban-not-banned", {"user": user_label(target)}
    target.banned = False
    target.ban_notified = False
    await admin.audit("unban", target.id)
    try:
        await admin.request.bot.send_message(target.id, translator()("admin-unbanned-notice", target.language))
    except TelegramAPIError:
        pass
    return "admin-unbanned", {"user": user_label(target)}


async def set_admin(admin: AdminContext, target: User, granted: bool) -> Reply:
    """Grant (``granted``) or revoke admin rights: owners only, never an owner's."""
    action = "grant" if granted else "revoke"
    if admin.role != AdminRole.OWNER:
        return "admin-owner-only", {}
    if target.id in admin.owners:
        return f"admin-{action}-owner", {"user": user_label(target)}
    if granted and target.banned:
        return "admin-grant-banned", {"user": user_label(target)}
    admins = admin.store.admins
    if not (await admins.grant(target.id, admin.user.id) if granted else await admins.revoke(target.id)):
        return ("admin-grant-already" if granted else "admin-revoke-not-admin"), {"user": user_label(target)}
    await admin.audit(action, target.id)
    await update_menu(admin, target, granted)
    return ("admin-granted" if granted else "admin-revoked"), {"user": user_label(target)}


async def update_menu(admin: AdminContext, target: User, granted: bool) -> None:
    """A new admin sees the admin commands in their menu; a former admin no longer does."""
    if granted:
        await show_admin_menu(admin.request.bot, target.id, AdminRole.ADMIN, target.language, admin.user_commands)
    else:
        await hide_admin_menu(admin.request.bot, target.id)


async def apply(admin: AdminContext, action: UserAction, target: User, reason: str = "") -> Reply:
    if action == UserAction.BAN:
        return await ban(admin, target, reason)
    if action == UserAction.UNBAN:
        return await unban(admin, target)
    return await set_admin(admin, target, granted=action == UserAction.GRANT)


# -- the user card ---------------------------------------------------------------------------
async def user_card(admin: AdminContext, target: User) -> tuple[str, InlineKeyboardMarkup]:
    i18n, repos, ar = admin.i18n, admin.repos, admin.store
    role = await ar.admins.role(admin.owners, target.id)
    counts = await ar.stats.user_job_counts(target.id)
    last = await ar.stats.last_jobs(target.id)
    s = target.settings
    lines = [
        i18n.get(
            "admin-user-card",
            user=user_label(target),
            name=esc(target.first_name),
            language=target.language,
            created=fmt_time(target.created_at),
            seen=fmt_time(target.last_seen),
            role=i18n.get(f"admin-role-{role}") if role else i18n.get("admin-role-user"),
            banned=i18n.get("admin-yes" if target.banned else "admin-no"),
            blocked=i18n.get("admin-yes" if target.blocked_bot else "admin-no"),
        ),
        i18n.get(
            "admin-user-settings",
            model=esc(s.model if s else None),
            ratio=esc(s.aspect_ratio if s else None),
            style=esc(s.style if s else None),
            count=s.num_images if s else 1,
            beautify=i18n.get("admin-yes" if s and s.beautify else "admin-no"),
        ),
        i18n.get(
            "admin-user-counts",
            total=sum(counts.values()),
            details=", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "—",
        ),
        i18n.get(
            "admin-user-moderation",
            details=", ".join(
                f"{esc(k)}: {v}" for k, v in sorted((await repos.moderation.counts(user_id=target.id)).items())
            )
            or "—",
        ),
    ]
    if last:
        lines.append(i18n.get("admin-user-last-jobs"))
        for job in last:
            prompt = shown_prompt(job)
            lines.append(
                f"#{job.id} · {esc(job.kind)} · {esc(job.model)} · {esc(job.status)} · {fmt_time(job.created_at)}"
                + (f"\n   <i>{esc(prompt[:80])}</i>" if prompt else "")
            )
    builder = InlineKeyboardBuilder()

    def add(action: UserAction) -> None:
        builder.button(text=i18n.get(f"admin-btn-{action}"), callback_data=UserCb(action=action, user_id=target.id))

    if role is None:
        add(UserAction.UNBAN if target.banned else UserAction.BAN)
    if admin.role == AdminRole.OWNER and role != AdminRole.OWNER and not target.banned:
        add(UserAction.REVOKE if role == AdminRole.ADMIN else UserAction.GRANT)
    builder.adjust(2)
    builder.row(back_button(i18n))
    return "\n".join(lines), builder.as_markup()


# -- commands --------------------------------------------------------------------------------
async def ban_command(message: Message, target: Target | None, admin: AdminContext) -> None:
    if target is None:
        return  # answered by TargetFilter
    key, kwargs = await ban(admin, target.user, target.rest)
    await message.answer(admin.i18n.get(key, **kwargs))


async def unban_command(message: Message, target: Target | None, admin: AdminContext) -> None:
    if target is None:
        return
    key, kwargs = await unban(admin, target.user)
    await message.answer(admin.i18n.get(key, **kwargs))


async def grant_command(message: Message, command: CommandObject, target: Target | None, admin: AdminContext) -> None:
    if target is None:
        return
    key, kwargs = await set_admin(admin, target.user, granted=command.command == "grant")
    await message.answer(admin.i18n.get(key, **kwargs))


async def show_card(message: Message, admin: AdminContext, target: User) -> None:
    await admin.audit("user_view", target.id)
    text, markup = await user_card(admin, target)
    await message.answer(text, reply_markup=markup)


async def user_command(message: Message, target: Target | None, admin: AdminContext) -> None:
    if target is not None:
        await show_card(message, admin, target.user)


async def user_lookup(message: Message, target: Target | None, admin: AdminContext, state: FSMContext) -> None:
    """The answer to the panel's "User" button: an id, an @username or a forwarded message."""
    await state.clear()
    if target is not None:
        await show_card(message, admin, target.user)


async def audit_command(message: Message, i18n: I18nContext, repos: Repositories) -> None:
    text, markup = await audit_view(i18n, repos)
    await message.answer(text, reply_markup=markup)


async def audit_view(i18n: I18nContext, repos: Repositories) -> tuple[str, InlineKeyboardMarkup]:
    entries = await admin_repos(repos).admins.latest_audit(20)
    lines = [i18n.get("admin-audit-title")]
    if not entries:
        lines.append(i18n.get("admin-audit-empty"))
    for entry in entries:
        admin = await repos.users.get(entry.admin_id)
        line = f"{fmt_time(entry.created_at)} · {user_label(admin, entry.admin_id)} · <b>{esc(entry.action)}</b>"
        if entry.target:
            line += f" · {esc(entry.target)}"
        if entry.details:
            line += f" · <i>{esc(entry.details[:100])}</i>"
        lines.append(line)
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=[[back_button(i18n)]])


# -- the card's buttons ----------------------------------------------------------------------
async def user_button(query: CallbackQuery, callback_data: UserCb, admin: AdminContext) -> None:
    i18n = admin.i18n
    target = await admin.repos.users.get(callback_data.user_id)
    if target is None:
        await query.answer(i18n.get("admin-user-not-found", command="user"), show_alert=True)
        return
    key, kwargs = await apply(admin, callback_data.action, target)
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.answer(i18n.get(key, **kwargs))
        text, markup = await user_card(admin, target)
        try:
            await query.message.edit_text(text, reply_markup=markup)
        except TelegramAPIError:
            pass


def create_router() -> Router:
    router = Router(name="admin-users")
    router.message(Command("ban"), TargetFilter())(ban_command)
    router.message(Command("unban"), TargetFilter())(unban_command)
    router.message(Command("grant", "revoke"), TargetFilter(owner_only=True))(grant_command)
    router.message(Command("user"), TargetFilter())(user_command)
    router.message(StateFilter(AdminStates.user_lookup), ~F.text.startswith("/"), TargetFilter())(user_lookup)
    router.message(Command("audit"))(audit_command)
    router.callback_query(UserCb.filter())(user_button)
    return router
