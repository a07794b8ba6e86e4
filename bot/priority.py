"""Answers first: work that no user is waiting on at this moment yields to updates being handled.

Under a burst of prompts the bot's one event loop (and its one link to Telegram) is shared by the
handlers answering them and by everything the worker says meanwhile: status edits, chat actions,
results of jobs that finished, queue positions. A user who just wrote waits for the answer; an
edit of a status message can wait a moment. So:

- :class:`UpdatesInFlight`, the dispatcher's first update middleware, counts the updates being
  handled and marks the handler's context as answering one;
- :class:`AnswersFirst`, a request middleware on the bot's session, holds a Bot API call made
  outside any handler (the worker, deliveries, background refreshes) while updates are being
  handled, for at most ``max_wait`` seconds, so nothing waits long and nothing is dropped.
  ``getUpdates`` never waits: it is how the next updates arrive;
- the embedded worker's finishing and delivering of results (checks, PNG encoding, storing) waits
  the same way (jobs.queue.EmbeddedQueue ``answers_first``): it is CPU work on the same loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from aiogram import BaseMiddleware
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.methods import GetUpdates
from aiogram.methods.base import TelegramType
from aiogram.types import TelegramObject

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.methods import Response, TelegramMethod

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]

# The longest background work waits for the updates being handled to be answered.
MAX_WAIT_SECONDS = 1.0

_answering: ContextVar[bool] = ContextVar("answering_an_update", default=False)


class UpdatesInFlight(BaseMiddleware):
    """Counts the updates being handled; background chat work waits for a quiet moment."""

    def __init__(self) -> None:
        self.count = 0
        self._quiet = asyncio.Event()
        self._quiet.set()

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        self.count += 1
        self._quiet.clear()
        token = _answering.set(True)
        try:
            return await handler(event, data)
        finally:
            _answering.reset(token)
            self.count -= 1
            if self.count == 0:
                self._quiet.set()

    async def quiet(self, at_most: float) -> None:
        """Return when no update is being handled, or after ``at_most`` seconds."""
        if self.count == 0:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._quiet.wait(), at_most)


class AnswersFirst(BaseRequestMiddleware):
    """A Bot API call from outside the handlers waits while updates are being handled (bounded)."""

    def __init__(self, updates: UpdatesInFlight, max_wait: float = MAX_WAIT_SECONDS) -> None:
        self.updates = updates
        self.max_wait = max_wait

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        if self.updates.count and not _answering.get() and not isinstance(method, GetUpdates):
            await self.updates.quiet(self.max_wait)
        return await make_request(bot, method)
