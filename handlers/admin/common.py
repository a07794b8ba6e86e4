"""Shared pieces of the admin routers: callback data, finding the target user, formatting."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum

from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import InlineKeyboardButton, Message, MessageOriginHiddenUser, MessageOriginUser
from aiogram_i18n import I18nContext

from storage.admin_repositories import AdminRepositories
from storage.models import User, utcnow
from storage.repositories import Repositories


class AdminAction(StrEnum):
    PANEL = "panel"
    STATS = "stats"
    QUEUE = "queue"
    QUEUE_CANCEL = "qcancel"
    LIMITS = "limits"
    LIMIT = "limit"
    MODELS = "models"
    MODEL_LOAD = "mload"
    MODEL_UNLOAD = "munload"
    AUDIT = "audit"
    PAUSE = "pause"
    RESUME = "resume"
    BROADCAST = "broadcast"
    BROADCAST_SEND = "bsend"
    BROADCAST_CANCEL = "bcancel"
    USER = "user"
    BAN = "ban"
    UNBAN = "unban"
    GRANT = "grant"
    REVOKE = "revoke"


class AdminCb(CallbackData, prefix="adm"):
    """Every admin button. The admin router's filter checks the presser again on each press."""

    action: AdminAction
    arg: str = ""  # a user or job id, a model, a limit


class AdminStates(StatesGroup):
    broadcast = State()  # the next message is the broadcast
    user_lookup = State()  # the next message names a user (id, @username or a forwarded message)


def admin_repos(repos: Repositories) -> AdminRepositories:
    return AdminRepositories(repos.session)


def back_button(i18n: I18nContext) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=i18n.get("admin-btn-back"), callback_data=AdminCb(action="panel").pack())


def esc(value: object) -> str:
    return html.escape(str(value)) if value is not None else "—"


def user_label(user: User | None, user_id: int | None = None) -> str:
    """``@name (id)`` for a reply in HTML."""
    if user is None:
        return f"<code>{user_id}</code>"
    name = f"@{user.username}" if user.username else (user.first_name or "")
    return f"{esc(name)} (<code>{user.id}</code>)".strip()


def fmt_time(value: datetime | None) -> str:
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def fmt_duration(i18n: I18nContext, seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return i18n.get("admin-duration-s", n=round(seconds, 1))
    minutes = int(seconds // 60)
    if minutes < 60:
        return i18n.get("admin-duration-min", n=minutes)
    return i18n.get("admin-duration-h", h=minutes // 60, m=minutes % 60)


def age(value: datetime) -> float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return (utcnow() - value).total_seconds()


def fmt_bytes(n: int | None) -> str:
    if not n:
        return "0 B"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} GiB"


@dataclass
class Target:
    user: User | None
    rest: str  # what follows the user in the command: the reason
    error: str | None = None  # an i18n key when no user could be found


async def find_user(repos: Repositories, token: str) -> User | None:
    token = token.strip()
    if token.lstrip("-").isdigit():
        return await repos.users.get(int(token))
    if token.startswith("@") and len(token) > 1:
        return await repos.users.get_by_username(token)
    return None


async def forwarded_target(message: Message, repos: Repositories, rest: str = "") -> Target | None:
    """The user whose forwarded message this is; None when it is not a forward of a user."""
    origin = message.forward_origin
    if isinstance(origin, MessageOriginHiddenUser):  # the user's privacy settings hide the id
        return Target(None, rest, "admin-target-hidden")
    tg_user = origin.sender_user if isinstance(origin, MessageOriginUser) else message.forward_from
    if tg_user is None:
        return None
    user = await repos.users.get(tg_user.id)
    return Target(user, rest, None if user else "admin-user-not-found")


async def resolve_target(message: Message, args: str | None, repos: Repositories) -> Target:
    """The user a command is about: ``<id or @username> [rest]``, or the sender of the message
    the admin replied to (a forwarded message of that user), with the arguments as ``rest``."""
    args = (args or "").strip()
    reply = message.reply_to_message
    if reply is not None:
        target = await forwarded_target(reply, repos, args)
        if target is not None:
            return target
        author = reply.from_user
        if (
            author is not None
            and not author.is_bot
            and author.id != (message.from_user.id if message.from_user else None)
        ):
            user = await repos.users.get(author.id)  # a reply to the user's own message (in a group)
            return Target(user, args, None if user else "admin-user-not-found")
    if not args:
        return Target(None, "", "admin-target-missing")
    token, _, rest = args.partition(" ")
    user = await find_user(repos, token)
    return Target(user, rest.strip(), None if user else "admin-user-not-found")
