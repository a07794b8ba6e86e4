"""Shared pieces of the admin routers: callback data, the admin context and the filters that add
it (and the user a command names), finding the target user, formatting."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum
from typing import Annotated, Any, Literal

from aiogram.filters import CommandObject, Filter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import InlineKeyboardButton, Message, MessageOriginHiddenUser, MessageOriginUser, TelegramObject
from aiogram_i18n import I18nContext
from pydantic import Field

from generation.backend import Backend, ModelId
from handlers.context import RequestContext
from storage.admin_repositories import AdminRepositories, AdminRole
from storage.models import User, utcnow
from storage.repositories import Repositories


# Ids as admins type them: ASCII digits only ("²" and "٣" are digits to str.isdigit, and int()
# takes "1_000"), within a signed 64-bit column.
_ID_RE = re.compile(r"-?[0-9]{1,19}")
MAX_DB_INT = 2**63 - 1

# Every admin button has the prefix "adm" and an action as its first field; each factory below
# takes its own actions (the enums are disjoint, tests/admin/test_callbacks.py), so exactly one of
# them parses a given button, and the fields after the action are typed: aiogram rejects a button
# whose id, model or limit does not parse before any handler runs. The buttons that carry an id or
# a model pack exactly as the untyped ``adm:<action>:<arg>`` did, so those already in chats keep
# working; the rest answer "this button has expired" (handlers.admin.expired_button).
DbId = Annotated[int, Field(gt=0, le=MAX_DB_INT)]  # a Telegram user id, a job or broadcast id


class AdminAction(StrEnum):
    """The panel's views and the buttons without an argument."""

    PANEL = "panel"
    STATS = "stats"
    QUEUE = "queue"
    LIMITS = "limits"
    MODELS = "models"
    AUDIT = "audit"
    PAUSE = "pause"
    RESUME = "resume"
    BROADCAST = "broadcast"
    USER = "user"


class AdminCb(CallbackData, prefix="adm"):
    """A view of the panel, or pause / resume / ask for a broadcast or a user. The admin router's
    filter checks the presser again on each press, for every admin button."""

    action: AdminAction


class UserAction(StrEnum):
    BAN = "ban"
    UNBAN = "unban"
    GRANT = "grant"
    REVOKE = "revoke"


class UserCb(CallbackData, prefix="adm"):
    """A button of a user's card."""

    action: UserAction
    user_id: DbId


class JobCb(CallbackData, prefix="adm"):
    """Cancel a job from /queue."""

    action: Literal["qcancel"] = "qcancel"
    job_id: DbId


class BroadcastAction(StrEnum):
    SEND = "bsend"
    CANCEL = "bcancel"


class BroadcastCb(CallbackData, prefix="adm"):
    action: BroadcastAction
    broadcast_id: DbId


class ModelAction(StrEnum):
    LOAD = "mload"
    UNLOAD = "munload"


class ModelCb(CallbackData, prefix="adm"):
    action: ModelAction
    model: ModelId


class LimitName(StrEnum):
    """The limits as admins type them (/limits <name> <value>) and as the buttons carry them."""

    USER = "user"
    DAILY = "daily"
    QUEUE = "queue"


class LimitCb(CallbackData, prefix="adm"):
    """A preset of /limits. ``value`` None: unlimited (only the daily quota can be)."""

    action: Literal["limit"] = "limit"
    name: LimitName
    value: int | None


class AdminStates(StatesGroup):
    broadcast = State()  # the next message is the broadcast
    user_lookup = State()  # the next message names a user (id, @username or a forwarded message)


def admin_repos(repos: Repositories) -> AdminRepositories:
    return AdminRepositories(repos.session)


@dataclass
class AdminContext:
    """The admin side of one request, added as ``admin`` by :class:`AdminContextFilter`: the request
    (bot, the admin as ``user``, repositories, job service, notifier, translations), the admin's
    role, and what the admin features reach. An admin handler names it instead of seven arguments."""

    request: RequestContext
    role: AdminRole
    owners: frozenset[int]  # ADMIN_IDS
    user_commands: tuple[str, ...] = ()  # the command menu that an admin's menu adds to
    backend: Backend | None = None  # /models; None where the workers hold the models

    @property
    def i18n(self) -> I18nContext:
        return self.request.i18n

    @property
    def repos(self) -> Repositories:
        return self.request.repos

    @property
    def user(self) -> User:
        """The admin."""
        return self.request.user

    @property
    def store(self) -> AdminRepositories:
        return admin_repos(self.repos)

    async def audit(self, action: str, target: object = None, details: str | None = None) -> None:
        await self.store.admins.audit(self.user.id, action, target, details)


class AdminContextFilter(Filter):
    """Adds ``admin`` (:class:`AdminContext`). Set on the admin router after
    :class:`bot.admin_filter.AdminFilter`, which found the role."""

    async def __call__(
        self,
        event: TelegramObject,
        admin_role: AdminRole,
        request: RequestContext | None = None,
        admin_ids: frozenset[int] = frozenset(),
        user_commands: tuple[str, ...] = (),
        generation_backend: Backend | None = None,
    ) -> bool | dict[str, Any]:
        if request is None:  # no chat (an inline message's button): nothing an admin feature answers
            return False
        return {"admin": AdminContext(request, admin_role, admin_ids, user_commands, generation_backend)}


class TargetFilter(Filter):
    """Adds ``target``: the user a command names (``/ban <id or @username> [reason]``, or a reply to
    the user's message) or, with no command, the message answering the panel's "User" button (an
    id, an @username or a forwarded message). When there is none it answers why itself and adds
    ``target=None`` (the handler only returns), like :class:`handlers.filters.PromptFilter`.
    ``owner_only``: an admin who is not an owner is told so first."""

    def __init__(self, owner_only: bool = False) -> None:
        self.owner_only = owner_only

    async def __call__(
        self, message: Message, admin: AdminContext, command: CommandObject | None = None
    ) -> dict[str, Any]:
        if self.owner_only and admin.role != AdminRole.OWNER:
            await message.answer(admin.i18n.get("admin-owner-only"))
            return {"target": None}
        if command is not None:
            target = await resolve_target(message, command.args, admin.repos)
        else:
            target = await forwarded_target(message, admin.repos) or await typed_target(message, admin.repos)
        if target.user is None:
            name = command.command if command is not None else "user"
            await message.answer(admin.i18n.get(target.error or "admin-user-not-found", command=name))
            return {"target": None}
        return {"target": target}


def back_button(i18n: I18nContext) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=i18n.get("admin-btn-back"), callback_data=AdminCb(action=AdminAction.PANEL).pack())


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




def parse_int(text: str | None, low: int = -MAX_DB_INT, high: int = MAX_DB_INT) -> int | None:
    """The integer ``text`` spells in ASCII digits (an optional leading minus), if within
    ``low``..``high``; None for anything else (every admin argument typed in a command goes through this)."""
    text = (text or "").strip()
    if not _ID_RE.fullmatch(text):
        return None
    value = int(text)
    return value if low <= value <= high else None


def parse_id(text: str | None) -> int | None:
    """A Telegram user id, a job id, a broadcast id: a positive 64-bit integer."""
    return parse_int(text, 1, MAX_DB_INT)


async def find_user(repos: Repositories, token: str) -> User | None:
    token = token.strip()
    if token[:1].isdigit() or token[:1] == "-":
        user_id = parse_id(token)
        return await repos.users.get(user_id) if user_id is not None else None
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


async def typed_target(message: Message, repos: Repositories) -> Target:
    """The user a message's text names: an id or an @username."""
    user = await find_user(repos, message.text or "")
    return Target(user, "", None if user else "admin-user-not-found")


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
