"""bot.retry over real HTTP: a flood of sends through the emulator's 429s and 5xx."""

from __future__ import annotations

import asyncio
import contextlib

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramAPIError

from bot.best_effort import best_effort
from bot.retry import RetryMiddleware
from tests.e2e.conftest import TOKEN
from playground.emulator import FaultRule, TelegramEmulator


async def progress_edit(call) -> None:
    """A best-effort status edit, as bot.notifier.TelegramNotifier.edit_status makes it."""
    with best_effort(), contextlib.suppress(TelegramAPIError):
        await call


async def test_every_message_arrives_once_and_throttled_chats_are_left_alone(emulator: TelegramEmulator) -> None:
    emulator.add_faults(FaultRule(rate_429=0.3, rate_5xx=0.1, retry_after=1, seed=3))
    session = AiohttpSession(api=TelegramAPIServer.from_base(emulator.base_url))
    session.middleware(RetryMiddleware(base_delay=0.05, max_attempts=8))
    bot = Bot(TOKEN, session=session)
    users = [emulator.user() for _ in range(4)]
    try:
        progress = [await bot.send_message(u.chat_id, "0%") for u in users]

        async def chat(user, status) -> None:
            for i in range(3):
                await progress_edit(bot.edit_message_text(f"{(i + 1) * 20}%", chat_id=user.chat_id, message_id=status.message_id))
                await bot.send_message(user.chat_id, f"result {i}")

        await asyncio.wait_for(asyncio.gather(*(chat(u, p) for u, p in zip(users, progress))), 60)
    finally:
        await session.close()

    for user in users:
        texts = [m["text"] for m in user.received() if m["text"].startswith("result")]
        assert texts == [f"result {i}" for i in range(3)]
    injected = [c for c in emulator.calls if c.status == 429]
    assert injected, "the seed should have produced some 429s"
    assert emulator.flood_violations == []  # nobody came back before retry_after
