"""Everything no other router took: a short answer, never an exception. Included last."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import CallbackQuery, Message
from aiogram_i18n import I18nContext


async def edited(message: Message, i18n: I18nContext) -> None:
    await message.reply(i18n.get("input-edited"))


async def unsupported(message: Message, i18n: I18nContext) -> None:
    """Voice, locations, contacts...: what the bot does understand, as /help says it."""
    await message.answer(i18n.get("input-unsupported"))


async def sticker(message: Message, i18n: I18nContext) -> None:
    await message.answer(i18n.get("input-sticker"))


async def unknown_callback(query: CallbackQuery, i18n: I18nContext) -> None:
    """Forged, stale or foreign callback data."""
    await query.answer(i18n.get("callback-unknown"), show_alert=True)


def create_router() -> Router:
    router = Router(name="fallback")
    router.edited_message()(edited)
    router.message(F.sticker)(sticker)
    router.message()(unsupported)
    router.callback_query()(unknown_callback)
    return router
