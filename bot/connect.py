"""Reaching Telegram before anything else: the first getMe, retried with backoff, one line per try.

A bot started without a network to Telegram (a firewall, DNS, a Bot API server that is not up yet)
says so in one line and tries again, waiting longer each time, instead of dying with a traceback. A
token Telegram refuses is a configuration error: no retry helps, so it ends the process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiogram import Bot
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import GetMe
from aiogram.types import User

log = logging.getLogger(__name__)

UNREACHABLE = (TelegramNetworkError, TelegramServerError, ClientDecodeError)


class TokenRejected(Exception):
    """Telegram does not know the token (401 Unauthorized, or 404 for a token of a deleted bot)."""


def telegram_host(bot: Bot) -> str:
    base = bot.session.api.base.format(token="TOKEN", method="getMe")
    return urlsplit(base).netloc or base


async def wait_for_telegram(
    bot: Bot,
    *,
    first_delay: float = 1.0,
    max_delay: float = 60.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> User:
    """The bot's own User from getMe, once Telegram answers; waits 1, 2, 4, ... up to ``max_delay``
    seconds between tries. The request skips the session's retry middleware: this loop is the retry,
    and it is not bounded (a bot is useless until Telegram answers)."""
    delay = first_delay
    failures = 0
    while True:
        try:
            me = await bot.session.make_request(bot, GetMe(), timeout=15)
        except (TelegramUnauthorizedError, TelegramNotFound) as exc:
            raise TokenRejected(str(exc)) from None
        except UNREACHABLE as exc:
            failures += 1
            reason = getattr(exc, "message", None) or type(exc).__name__
            log.warning(
                "Cannot reach Telegram at %s (%s); trying again in %.0f s", telegram_host(bot), reason, delay
            )
            await sleep(delay)
            delay = min(max_delay, delay * 2)
            continue
        if failures:
            log.info("Telegram answers again at %s", telegram_host(bot))
        return me
