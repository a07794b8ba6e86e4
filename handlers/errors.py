"""The global error handler: log with the update id, tell the user something went wrong."""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.types import ErrorEvent

from bot.i18n import normalize_locale, translator

log = logging.getLogger(__name__)


async def on_error(event: ErrorEvent, bot: Bot) -> bool:
    update = event.update
    log.error("update %s failed", update.update_id, exc_info=event.exception)
    message = update.message or (update.callback_query.message if update.callback_query else None)
    source = update.message or update.callback_query
    user = source.from_user if source is not None else None
    if message is not None and message.chat.type == "private":
        try:
            await bot.send_message(
                message.chat.id, translator()("error-generic", normalize_locale(user.language_code if user else None))
            )
        except Exception:  # the chat may be gone or Telegram down: the log has the error already
            log.warning("could not tell chat %s about the error", message.chat.id)
    return True


def create_router() -> Router:
    router = Router(name="errors")
    router.errors()(on_error)
    return router
