"""Cross-cutting work around every update: a unit of work, the user row, bans, chat scope."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError
from aiogram.types import Message, TelegramObject, Update
from aiogram.types import User as TelegramUser

from bot.i18n import translator
from bot.unit_of_work import update_session
from storage.db import has_work_to_commit
from storage.repositories import Database, Repositories
from storage.user_cache import UserDirectory

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
            if has_work_to_commit(session):  # most updates wrote nothing since their last Bot API call
                await session.commit()
            return result


class UserMiddleware(BaseMiddleware):
    """Loads (or creates) the user row; a banned user gets one notice and is ignored after that.

    The row comes from the :class:`storage.user_cache.UserDirectory` (kept between updates, first
    contacts created in batches). It is written only when something changed (or ``last_seen`` is a
    few minutes old) and is then committed at once: the handler starts without a write transaction
    open."""

    def __init__(self, users: UserDirectory) -> None:
        self.users = users

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        tg_user: TelegramUser | None = data.get("event_from_user")
        if tg_user is None:
            return await handler(event, data)
        if tg_user.is_bot:
            # Other bots, and anonymous group admins (Telegram sends them as "GroupAnonymousBot"):
            # nobody to keep a row for or to check rights of. A button press is acknowledged.
            if isinstance(event, Update) and event.callback_query is not None:
                with contextlib.suppress(TelegramAPIError):
                    await event.callback_query.answer()
            return None
        repos: Repositories = data["repos"]
        user = await self.users.attach(repos.session, tg_user)
        if repos.users.note_seen(user, tg_user.username, tg_user.first_name):  # most updates change nothing
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

    An update outer middleware, ahead of the database: a group message (new or edited) that is not
    addressed to the bot is dropped before anything is read or written, so group members who
    never talk to the bot get no user row. In a group the mention is cut out, so
    ``@bot a red fox`` reads as the prompt ``a red fox``.
    """

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if not isinstance(event, Update):
            return await handler(event, data)
        for field in ("message", "edited_message"):
            message: Message | None = getattr(event, field)
            if message is None or message.chat.type == ChatType.PRIVATE:
                continue
            addressed = await self._addressed(message, data["bot"])
            if addressed is None:
                return None
            event = event.model_copy(update={field: addressed})
        return await handler(event, data)

    @staticmethod
    async def _addressed(message: Message, bot: Bot) -> Message | None:
        """The message with the bot's mention cut out; None when it does not mention the bot."""
        me = await bot.me()
        mention = f"@{me.username}".lower() if me.username else None
        text = message.text or message.caption or ""
        if mention is None or mention not in text.lower():
            return None
        start = text.lower().index(mention)
        stripped = (text[:start] + text[start + len(mention) :]).strip()
        if message.text is not None:
            return message.model_copy(update={"text": stripped, "entities": None})
        # a photo to restyle: "@bot a watercolour" reads "a watercolour"
        return message.model_copy(update={"caption": stripped, "caption_entities": None})
