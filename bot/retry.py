"""Surviving Telegram's rate limits and transient faults: a request middleware on the bot's session.

Telegram answers a bot that sends too fast with HTTP 429 and ``retry_after`` and keeps the chat under
flood control until that time has passed; calls that come earlier only extend the wait. So
:class:`RetryMiddleware` remembers, per chat, when the chat may be talked to again, holds every call to
that chat until then and retries the throttled call once the time has come. Transient failures
(network errors, 5xx, a gateway's non-JSON error page) are retried with exponential backoff and jitter.
Both are bounded: after ``max_attempts`` tries, or when Telegram asks for a wait longer than
``max_retry_after``, the error goes to the caller (a result delivery is then retried later by the
delivery loop, without generating the image again).

Cosmetic calls are best-effort: progress edits run inside :func:`bot.best_effort.best_effort`, and
chat actions always are. They are never retried, and a best-effort call to
a chat under flood control is dropped at once (:class:`DroppedUnderFloodControl`) instead of being sent,
so a progress bar never delays the result or provokes a longer ban.

Install with ``bot.session.middleware(RetryMiddleware())``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import GetUpdates, SendChatAction
from aiogram.methods.base import TelegramType
from aiogram.utils.chat_action import ChatActionSender

from bot.best_effort import BEST_EFFORT, best_effort

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.methods import Response, TelegramMethod

log = logging.getLogger(__name__)


# Methods that are cosmetic whatever the context: losing one changes nothing the user needs.
BEST_EFFORT_METHODS: tuple[type, ...] = (SendChatAction,)

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (TelegramNetworkError, TelegramServerError, ClientDecodeError)


class DroppedUnderFloodControl(TelegramRetryAfter):
    """A best-effort call that was not sent because its chat is under Telegram's flood control."""


def is_best_effort(method: TelegramMethod[Any]) -> bool:
    return BEST_EFFORT.get() or isinstance(method, BEST_EFFORT_METHODS)


class RetryMiddleware(BaseRequestMiddleware):
    def __init__(
        self,
        *,
        max_attempts: int = 5,
        base_delay: float = 0.5,
        max_delay: float = 20.0,
        max_retry_after: float = 120.0,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        # chat key -> monotonic time before which Telegram told us not to talk to the chat
        self._not_before: dict[Any, float] = {}

    @staticmethod
    def _chat_key(method: TelegramMethod[Any]) -> Any:
        chat_id = getattr(method, "chat_id", None)
        return str(chat_id) if chat_id is not None else None

    def throttled_for(self, method: TelegramMethod[Any]) -> float:
        """Seconds the method's chat is still under flood control (0 when it is not)."""
        return max(0.0, self._not_before.get(self._chat_key(method), 0.0) - self._clock())

    def _backoff(self, attempt: int) -> float:
        delay = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return delay * self._rng.uniform(0.5, 1.0)

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        if isinstance(method, GetUpdates):  # polling has its own backoff in the dispatcher
            return await make_request(bot, method)
        cosmetic = is_best_effort(method)
        key = self._chat_key(method)
        attempt = 0
        while True:
            attempt += 1
            wait = self._not_before.get(key, 0.0) - self._clock()
            if wait > 0:
                # Cosmetic calls are dropped; so is any call when the ban is too long to wait out
                # here (the caller, e.g. the delivery loop, tries again later instead of hanging).
                if cosmetic or wait > self.max_retry_after:
                    raise DroppedUnderFloodControl(method, "chat under flood control", max(1, round(wait)))
                await self._sleep(wait)
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as e:
                until = self._clock() + e.retry_after
                self._not_before[key] = max(self._not_before.get(key, 0.0), until)
                if cosmetic or attempt >= self.max_attempts or e.retry_after > self.max_retry_after:
                    raise
                log.warning(
                    "%s throttled in chat %s: waiting %ss (attempt %d)", type(method).__name__, key, e.retry_after, attempt
                )
            except TRANSIENT_ERRORS as e:
                if cosmetic or attempt >= self.max_attempts:
                    if isinstance(e, ClientDecodeError):
                        # A gateway's HTML error page, not a Telegram answer: give callers the
                        # TelegramAPIError they handle, not a decoding error.
                        raise TelegramServerError(method, f"undecodable answer: {e.message}") from e
                    raise
                delay = self._backoff(attempt)
                log.warning("%s failed (%s): retrying in %.2fs (attempt %d)", type(method).__name__, e, delay, attempt)
                await self._sleep(delay)
            finally:
                self._forget_expired()

    def _forget_expired(self) -> None:
        if len(self._not_before) > 1000:
            now = self._clock()
            self._not_before = {k: v for k, v in self._not_before.items() if v > now}


class BestEffortChatActionSender(ChatActionSender):
    """aiogram's ChatActionSender, but a dropped or failed action does not end it.

    The stock sender's loop dies on the first error (and leaves an unretrieved task exception),
    so one throttled ``upload_photo`` would end the indicator for the rest of the job.
    """

    async def _worker(self) -> None:
        try:
            await self._wait(self.initial_sleep)
            while not self._close_event.is_set():
                start = time.monotonic()
                try:
                    await self.bot.send_chat_action(
                        chat_id=self.chat_id, action=self.action, message_thread_id=self.message_thread_id
                    )
                except (TelegramAPIError, ClientDecodeError) as e:
                    log.debug("chat action %s in chat %s dropped: %s", self.action, self.chat_id, e)
                await self._wait(self.interval - (time.monotonic() - start))
        finally:
            self._closed_event.set()
