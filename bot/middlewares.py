"""Cross-cutting work around every update: a unit of work, the user row, bans, chat scope."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.enums import ChatType
from aiogram.types import CallbackQuery, Message, TelegramObject
from aiogram.types import User as TelegramUser

from bot.i18n import translator
from bot.unit_of_work import update_session
from storage.repositories import Database, Repositories

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class DatabaseMiddleware(BaseMiddleware):
    """Gives handlers ``repos`` (one session per update) and commits when the handler succeeds.

    The session is committed before every Bot API call the handler makes (bot.unit_of_work), so
    no transaction is open while Telegram answers."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        async with self.db.session() as session:
            repos = Repositories(session)
            data["repos"] = repos
            with update_session(session):
                result = await handler(event, data)
            await session.commit()
            return result


class UserMiddleware(BaseMiddleware):
    """Loads (or creates) the user row; a banned user gets one notice and is ignored after that.

    The row is written only when something changed (or ``last_seen`` is a few minutes old) and is
    committed at once: the handler starts without a transaction open."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        tg_user: TelegramUser | None = data.get("event_from_user")
        if tg_user is None or tg_user.is_bot:
            return await handler(event, data)
        repos: Repositories = data["repos"]
        user = await repos.users.upsert_seen(tg_user.id, tg_user.username, tg_user.first_name, tg_user.language_code)
        await repos.commit()
        data["user"] = user
        if user.banned:
            if not user.ban_notified:
                user.ban_notified = True
                await repos.commit()
                bot: Bot = data["bot"]
                chat = data.get("event_chat")
                if chat is not None and chat.type == ChatType.PRIVATE:
                    await bot.send_message(chat.id, translator()("banned", user.language))
            return None
        return await handler(event, data)


class ChatScopeMiddleware(BaseMiddleware):
    """Private chats only, unless the bot is mentioned (or a command is addressed to it) in a group.

    In a group the mention is cut out, so ``@bot a red fox`` reads as the prompt ``a red fox``.
    """

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if isinstance(event, CallbackQuery):
            return await handler(event, data)
        if not isinstance(event, Message) or event.chat.type == ChatType.PRIVATE:
            return await handler(event, data)
        bot: Bot = data["bot"]
        me = await bot.me()
        mention = f"@{me.username}".lower() if me.username else None
        text = event.text or event.caption or ""
        if mention is None or mention not in text.lower():
            return None
        if event.text is not None:
            start = text.lower().index(mention)
            stripped = (text[:start] + text[start + len(mention) :]).strip()
            event = event.model_copy(update={"text": stripped, "entities": None})
        elif event.caption is not None:  # a photo to restyle: "@bot a watercolour" reads "a watercolour"
            start = text.lower().index(mention)
            stripped = (text[:start] + text[start + len(mention) :]).strip()
            event = event.model_copy(update={"caption": stripped, "caption_entities": None})
        return await handler(event, data)
