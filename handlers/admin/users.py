"""/ban, /unban, /user, /grant, /revoke, /audit, and the buttons of a user's card."""

from __future__ import annotations

from typing import Any

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from aiogram_i18n import I18nContext

from bot.admin_menu import hide_admin_menu, show_admin_menu
from bot.i18n import translator
from bot.notifier import TelegramNotifier
from jobs.params import shown_prompt
from jobs.service import JobService
from handlers.admin.common import (
    AdminCb,
    AdminStates,
    Target,
    admin_repos,
    back_button,
    esc,
    find_user,
    fmt_time,
    forwarded_target,
    resolve_target,
    user_label,
)
from storage.admin_repositories import AdminRole
from storage.models import User
from storage.repositories import Repositories

Reply = tuple[str, dict[str, Any]]  # an i18n key and its arguments


# -- the actions, shared by commands and buttons ---------------------------------------------
async def ban(
    bot: Bot,
    repos: Repositories,
    jobs: JobService,
    notifier: TelegramNotifier,
    admin_ids: frozenset[int],
    admin: User,
    target: User,
    reason: str,
) -> Reply:
    if await admin_repos(repos).admins.role(admin_ids, target.id) is not None:
        return "admin-ban-admin", {}
    if target.banned:
        return "admin-ban-already", {"user": user_label(target)}
    target.banned = True
    target.ban_notified = False
    cancelled = await jobs.cancel_all(repos, target.id)  # commits: the worker must not start them
    t = translator()
    for job in cancelled.queued:
        await notifier.withdrawn(job, target.language)
    # The one notice now, so the user knows why the pictures stopped; if it cannot be sent, the
    # middleware sends it on the user's next message.
    try:
        await bot.send_message(target.id, t("banned", target.language))
        target.ban_notified = True
    except TelegramAPIError:
        pass
    await admin_repos(repos).admins.audit(admin.id, "ban", target.id, reason or None)
    return "admin-banned", {
        "user": user_label(target),
        "queued": len(cancelled.queued),
        "running": len(cancelled.running),
    }


async def unban(bot: Bot, repos: Repositories, admin: User, target: User) -> Reply:
    if not target.banned:
        return "admin-unban-not-banned", {"user": user_label(target)}
    target.banned = False
    target.ban_notified = False
    await admin_repos(repos).admins.audit(admin.id, "unban", target.id)
    try:
        await bot.send_message(target.id, translator()("admin-unbanned-notice", target.language))
    except TelegramAPIError:
        pass
    return "admin-unbanned", {"user": user_label(target)}


async def grant(repos: Repositories, admin_ids: frozenset[int], admin: User, role: str, target: User) -> Reply:
    if role != AdminRole.OWNER:
        return "admin-owner-only", {}
    if target.id in admin_ids:
        return "admin-grant-owner", {"user": user_label(target)}
    if target.banned:
        return "admin-grant-banned", {"user": user_label(target)}
    if not await admin_repos(repos).admins.grant(target.id, admin.id):
        return "admin-grant-already", {"user": user_label(target)}
    await admin_repos(repos).admins.audit(admin.id, "grant", target.id)
    return "admin-granted", {"user": user_label(target)}


async def revoke(repos: Repositories, admin_ids: frozenset[int], admin: User, role: str, target: User) -> Reply:
    if role != AdminRole.OWNER:
        return "admin-owner-only", {}
    if target.id in admin_ids:
        return "admin-revoke-owner", {"user": user_label(target)}
    if not await admin_repos(repos).admins.revoke(target.id):
        return "admin-revoke-not-admin", {"user": user_label(target)}
    await admin_repos(repos).admins.audit(admin.id, "revoke", target.id)
    return "admin-revoked", {"user": user_label(target)}


async def update_menu(bot: Bot, reply_key: str, target: User, user_commands: tuple[str, ...]) -> None:
    """A new admin sees the admin commands in their menu; a former admin no longer does."""
    if reply_key == "admin-granted":
        await show_admin_menu(bot, target.id, AdminRole.ADMIN, target.language, user_commands)
    elif reply_key == "admin-revoked":
        await hide_admin_menu(bot, target.id)


# -- the user card ---------------------------------------------------------------------------
async def user_card(
    i18n: I18nContext, repos: Repositories, admin_ids: frozenset[int], viewer_role: str, target: User
) -> tuple[str, InlineKeyboardMarkup]:
    ar = admin_repos(repos)
    role = await ar.admins.role(admin_ids, target.id)
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
    if role is None:
        if target.banned:
            builder.button(text=i18n.get("admin-btn-unban"), callback_data=AdminCb(action="unban", arg=str(target.id)))
        else:
            builder.button(text=i18n.get("admin-btn-ban"), callback_data=AdminCb(action="ban", arg=str(target.id)))
    if viewer_role == AdminRole.OWNER and role != AdminRole.OWNER and not target.banned:
        if role == AdminRole.ADMIN:
            builder.button(
                text=i18n.get("admin-btn-revoke"), callback_data=AdminCb(action="revoke", arg=str(target.id))
            )
        else:
            builder.button(text=i18n.get("admin-btn-grant"), callback_data=AdminCb(action="grant", arg=str(target.id)))
    builder.adjust(2)
    builder.row(back_button(i18n))
    return "\n".join(lines), builder.as_markup()


# -- commands --------------------------------------------------------------------------------
async def ban_command(
    message: Message,
    command: CommandObject,
    bot: Bot,
    i18n: I18nContext,
    user: User,
    repos: Repositories,
    jobs: JobService,
    notifier: TelegramNotifier,
    admin_ids: frozenset[int],
) -> None:
    target = await resolve_target(message, command.args, repos)
    if target.user is None:
        await message.answer(i18n.get(target.error or "admin-user-not-found", command="ban"))
        return
    key, kwargs = await ban(bot, repos, jobs, notifier, admin_ids, user, target.user, target.rest)
    await message.answer(i18n.get(key, **kwargs))


async def unban_command(
    message: Message, command: CommandObject, bot: Bot, i18n: I18nContext, user: User, repos: Repositories
) -> None:
    target = await resolve_target(message, command.args, repos)
    if target.user is None:
        await message.answer(i18n.get(target.error or "admin-user-not-found", command="unban"))
        return
    key, kwargs = await unban(bot, repos, user, target.user)
    await message.answer(i18n.get(key, **kwargs))


async def grant_command(
    message: Message,
    command: CommandObject,
    bot: Bot,
    i18n: I18nContext,
    user: User,
    repos: Repositories,
    admin_ids: frozenset[int],
    admin_role: str,
    user_commands: tuple[str, ...] = (),
) -> None:
    if admin_role != AdminRole.OWNER:
        await message.answer(i18n.get("admin-owner-only"))
        return
    target = await resolve_target(message, command.args, repos)
    if target.user is None:
        await message.answer(i18n.get(target.error or "admin-user-not-found", command=command.command))
        return
    action = grant if command.command == "grant" else revoke
    key, kwargs = await action(repos, admin_ids, user, admin_role, target.user)
    await message.answer(i18n.get(key, **kwargs))
    await update_menu(bot, key, target.user, user_commands)


async def user_command(
    message: Message,
    command: CommandObject,
    i18n: I18nContext,
    user: User,
    repos: Repositories,
    admin_ids: frozenset[int],
    admin_role: str,
) -> None:
    target = await resolve_target(message, command.args, repos)
    if target.user is None:
        await message.answer(i18n.get(target.error or "admin-user-not-found", command="user"))
        return
    await admin_repos(repos).admins.audit(user.id, "user_view", target.user.id)
    text, markup = await user_card(i18n, repos, admin_ids, admin_role, target.user)
    await message.answer(text, reply_markup=markup)


async def user_lookup(
    message: Message,
    i18n: I18nContext,
    user: User,
    repos: Repositories,
    admin_ids: frozenset[int],
    admin_role: str,
    state: FSMContext,
) -> None:
    """The answer to the panel's "User" button: an id, an @username or a forwarded message."""
    target = await forwarded_target(message, repos)
    if target is None:
        found = await find_user(repos, message.text or "")
        target = Target(found, "", None if found else "admin-user-not-found")
    await state.clear()
    if target.user is None:
        await message.answer(i18n.get(target.error or "admin-user-not-found", command="user"))
        return
    await admin_repos(repos).admins.audit(user.id, "user_view", target.user.id)
    text, markup = await user_card(i18n, repos, admin_ids, admin_role, target.user)
    await message.answer(text, reply_markup=markup)


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
async def user_button(
    query: CallbackQuery,
    callback_data: AdminCb,
    bot: Bot,
    i18n: I18nContext,
    user: User,
    repos: Repositories,
    jobs: JobService,
    notifier: TelegramNotifier,
    admin_ids: frozenset[int],
    admin_role: str,
    user_commands: tuple[str, ...] = (),
) -> None:
    target = await find_user(repos, callback_data.arg)
    if target is None:
        await query.answer(i18n.get("admin-user-not-found", command="user"), show_alert=True)
        return
    action = callback_data.action
    if action == "ban":
        key, kwargs = await ban(bot, repos, jobs, notifier, admin_ids, user, target, "")
    elif action == "unban":
        key, kwargs = await unban(bot, repos, user, target)
    elif action == "grant":
        key, kwargs = await grant(repos, admin_ids, user, admin_role, target)
    else:
        key, kwargs = await revoke(repos, admin_ids, user, admin_role, target)
    await query.answer()
    await update_menu(bot, key, target, user_commands)
    if isinstance(query.message, Message):
        await query.message.answer(i18n.get(key, **kwargs))
        text, markup = await user_card(i18n, repos, admin_ids, admin_role, target)
        try:
            await query.message.edit_text(text, reply_markup=markup)
        except TelegramAPIError:
            pass


def create_router() -> Router:
    router = Router(name="admin-users")
    router.message(Command("ban"))(ban_command)
    router.message(Command("unban"))(unban_command)
    router.message(Command("grant", "revoke"))(grant_command)
    router.message(Command("user"))(user_command)
    router.message(StateFilter(AdminStates.user_lookup), ~F.text.startswith("/"))(user_lookup)
    router.message(Command("audit"))(audit_command)
    router.callback_query(AdminCb.filter(F.action.in_({"ban", "unban", "grant", "revoke"})))(user_button)
    return router
