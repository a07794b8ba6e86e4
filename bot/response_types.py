"""Keeps aiogram's parsed-response classes alive: a request middleware on the bot's session.

aiogram validates every Bot API answer with ``Response[method.__returning__]``, a pydantic generic
class made on first use. pydantic keeps such classes in a cache of *weak* references, and a class
is freed only by the cycle collector (a class refers to itself through its MRO), so in a busy
process each garbage collection drops them and the next answer builds the class again: schema
generation for ``Response[Message]`` takes milliseconds, and under a burst it was the bot's single
largest cost (about a seventh of its CPU in benchmarks/bot_overhead.py). Holding one strong
reference per returned type, made the first time that type is needed, keeps the cache warm.

Install with ``bot.session.middleware(KeepResponseTypes())``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.methods import Response
from aiogram.methods.base import TelegramType

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.methods import TelegramMethod

# returned type -> its Response class; module-wide, since pydantic's cache is module-wide too.
_KEPT: dict[Any, type] = {}


def keep_response_type(returning: Any) -> type:
    """The ``Response[returning]`` class, made once and never freed."""
    kept = _KEPT.get(returning)
    if kept is None:
        kept = _KEPT[returning] = Response[returning]  # type: ignore[index]
    return kept


class KeepResponseTypes(BaseRequestMiddleware):
    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        keep_response_type(method.__returning__)
        return await make_request(bot, method)
