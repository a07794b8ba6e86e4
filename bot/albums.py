"""Albums: Telegram sends each photo of an album as its own update, sharing a ``media_group_id``.

:class:`AlbumMiddleware` collects them into one request: the first update of an album waits until no
new item has arrived for ``wait`` seconds, then goes on with every item in ``data["album"]`` (sorted
by message id); the other updates stop here. It is an *update* outer middleware registered before the
database middleware, so waiting holds no database session and the followers touch nothing.

It must also come before the FSM middleware: with event isolation (a lock per user and chat, as
with Redis in the distributed mode) the first item would hold the lock while it waits and the
others would queue behind it instead of joining it. :func:`install` puts it first.

This relies on updates being handled concurrently (aiogram's polling and webhook handlers do so);
the album lives in this process's memory, so with several bot replicas behind a webhook, Telegram's
updates of one chat must reach one replica (they do with a single webhook consumer).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiogram import BaseMiddleware, Dispatcher
from aiogram.types import Message, TelegramObject, Update

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


@dataclass
class _Album:
    messages: list[Message]
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


class AlbumMiddleware(BaseMiddleware):
    def __init__(self, wait: float = 1.0) -> None:
        self.wait = wait
        self._albums: dict[tuple[int, str], _Album] = {}

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        message = event.message if isinstance(event, Update) else None
        if message is None or message.media_group_id is None:
            return await handler(event, data)
        key = (message.chat.id, message.media_group_id)
        album = self._albums.get(key)
        if album is not None:  # a later item: hand it to the first one and stop here
            album.messages.append(message)
            album.arrived.set()
            return None
        album = self._albums[key] = _Album([message])
        try:
            while True:  # a sliding window: wait until the album has been quiet for `wait` seconds
                album.arrived.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(album.arrived.wait(), timeout=self.wait)
                if not album.arrived.is_set():
                    break
        finally:
            del self._albums[key]
        data["album"] = sorted(album.messages, key=lambda m: m.message_id)
        return await handler(event, data)


def install(dispatcher: Dispatcher, wait: float) -> AlbumMiddleware:
    """Register the album collector as the dispatcher's first update middleware (before the FSM's)."""
    album = AlbumMiddleware(wait)
    managers = dispatcher.update.outer_middleware
    earlier = list(managers)  # the FSM middleware, registered when the Dispatcher was made
    for middleware in earlier:
        managers.unregister(middleware)
    managers.register(album)
    for middleware in earlier:
        managers.register(middleware)
    return album
