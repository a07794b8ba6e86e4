"""Private-bot mode: who may use the bot, and one polite refusal for everyone else.

Allowed: the owners (``ADMIN_IDS``) and granted admins, the users ``ALLOWED_USERS`` names (numeric
ids, or @usernames, compared without case), and whoever opened an owner's invite link
(``/invite`` -> ``t.me/<bot>?start=inv_<code>``; each code works for one user). Anybody else gets one
message saying the bot is private (in a private chat; stored, so a restart does not repeat it) and is
ignored after that. The middleware runs after the user row is loaded, before any handler.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.enums import ChatType
from aiogram.types import CallbackQuery, Message, TelegramObject, Update
from aiogram.types import User as TelegramUser

from bot.i18n import translator
from storage.access import AccessRepository
from storage.admin_repositories import AdminRepository
from storage.models import User
from storage.repositories import Repositories

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]
INVITE_PREFIX = "inv_"


def invite_link(bot_username: str, code: str) -> str:
    return f"https://t.me/{bot_username}?start={INVITE_PREFIX}{code}"


class AccessList:
    """``ALLOWED_USERS`` split into ids and lower-case usernames."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.ids: set[int] = set()
        self.usernames: set[str] = set()
        for entry in entries:
            entry = str(entry).strip()
            if entry.isdigit():
                self.ids.add(int(entry))
            elif entry:
                self.usernames.add(entry.removeprefix("@").lower())

    def names(self, user: TelegramUser) -> bool:
        return user.id in self.ids or (user.username is not None and user.username.lower() in self.usernames)


def _invite_code(event: Update) -> str | None:
    message = event.message
    text = (message.text or "") if message is not None else ""
    command, _, payload = text.partition(" ")
    if command.split("@", 1)[0] == "/start" and payload.strip().startswith(INVITE_PREFIX):
        return payload.strip()[len(INVITE_PREFIX):]
    return None


class PrivateAccessMiddleware(BaseMiddleware):
    def __init__(self, allowed: Iterable[str], admin_ids: frozenset[int]) -> None:
        self.allowed = AccessList(allowed)
        self.admin_ids = admin_ids

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        tg_user: TelegramUser | None = data.get("event_from_user")
        user: User | None = data.get("user")
        if tg_user is None or tg_user.is_bot or user is None:
            return await handler(event, data)
        repos: Repositories = data["repos"]
        if await self._allowed(tg_user, repos):
            return await handler(event, data)
        code = _invite_code(event) if isinstance(event, Update) else None
        if code and await AccessRepository(repos.session).redeem(code, tg_user.id):
            await repos.commit()
            log.info("user %s joined the private bot with an invite", tg_user.id)
            await self._say(data, user, "private-invite-accepted")
            return await handler(event, data)
        if isinstance(event, Update) and event.callback_query is not None:
            await event.callback_query.answer(translator()("private-refused", user.language), show_alert=True)
            return None
        if not user.private_refused:
            chat = data.get("event_chat")
            if chat is not None and chat.type == ChatType.PRIVATE:
                user.private_refused = True
                await repos.commit()
                key = "private-invite-invalid" if code else "private-refused"
                await self._say(data, user, key)
        return None

    async def _allowed(self, tg_user: TelegramUser, repos: Repositories) -> bool:
        if tg_user.id in self.admin_ids or self.allowed.names(tg_user):
            return True
        if await AccessRepository(repos.session).invited(tg_user.id):
            return True
        return await AdminRepository(repos.session).role(self.admin_ids, tg_user.id) is not None

    @staticmethod
    async def _say(data: dict[str, Any], user: User, key: str) -> None:
        bot: Bot = data["bot"]
        chat = data.get("event_chat")
        if chat is not None:
            await bot.send_message(chat.id, translator()(key, user.language))


