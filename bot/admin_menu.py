"""The command menu of admin chats: the users' commands plus the admin ones.

Telegram shows a chat-scoped command list only in that chat, so admin commands never appear in
anybody else's menu. Set on start-up for owners and granted admins, on /grant, removed on /revoke.
Best effort: a chat Telegram does not know yet (an owner who never started the bot) is skipped.
"""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BotCommand, BotCommandScopeChat

from bot.i18n import translator
from storage.admin_repositories import AdminRepository, AdminRole
from storage.models import User
from storage.repositories import Database

log = logging.getLogger(__name__)

ADMIN_COMMANDS = (
    "admin",
    "stats",
    "queue",
    "pause",
    "resume",
    "ban",
    "unban",
    "user",
    "limits",
    "broadcast",
    "models",
    "audit",
)
OWNER_COMMANDS = ("grant", "revoke", "invite")


async def show_admin_menu(bot: Bot, chat_id: int, role: str, locale: str, user_commands: tuple[str, ...]) -> None:
    t = translator()
    names = user_commands + ADMIN_COMMANDS + (OWNER_COMMANDS if role == AdminRole.OWNER else ())
    commands = [BotCommand(command=c, description=t(f"cmd-{c}", locale)) for c in names]
    try:
        await bot.set_my_commands(commands, scope=BotCommandScopeChat(chat_id=chat_id))
    except TelegramAPIError as exc:
        log.info("no admin menu for chat %s: %s", chat_id, exc.message)


async def hide_admin_menu(bot: Bot, chat_id: int) -> None:
    try:
        await bot.delete_my_commands(scope=BotCommandScopeChat(chat_id=chat_id))
    except TelegramAPIError as exc:
        log.info("could not remove the admin menu of chat %s: %s", chat_id, exc.message)


async def show_admin_menus(bot: Bot, db: Database, owner_ids: frozenset[int], user_commands: tuple[str, ...]) -> None:
    """On start-up: every owner's and granted admin's chat gets the admin menu."""
    async with db.session() as session:
        grants = [g.user_id for g in await AdminRepository(session).granted()]
        chats = [(owner, AdminRole.OWNER) for owner in sorted(owner_ids)] + [(g, AdminRole.ADMIN) for g in grants]
        users = {user_id: await session.get(User, user_id) for user_id, _ in chats}
    for chat_id, role in chats:
        user = users[chat_id]
        await show_admin_menu(bot, chat_id, role, user.language if user else "en", user_commands)
