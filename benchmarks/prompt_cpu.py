"""The event loop's CPU per prompt, in-process: the bot's real dispatcher (all middlewares and
routers, a real SQLite file, the worker stopped) against a bare aiogram echo dispatcher, both fed
the same burst of updates with no HTTP in between (a recording Bot API session answers).

It isolates what benchmarks/bot_overhead.py cannot: the update path alone, without the emulator,
the sockets and the worker that runs beside the burst there.

    python -m benchmarks.prompt_cpu [--users 100]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import time
from pathlib import Path

from aiogram import Bot, Dispatcher
from aiogram.types import Message, Update
from sqlalchemy import update

from app.heap import settle_startup_heap
from storage.models import Job, JobStatus
from tests.conftest import TOKEN, make_settings, start_harness, stop_harness
from tests.fakes import RecordingSession, message_update, user


async def burst(dispatcher: Dispatcher, bot: Bot, updates: list[Update]) -> float:
    """Main-thread CPU milliseconds per update while the burst is handled concurrently (as polling does)."""
    started = time.thread_time()
    await asyncio.gather(*(dispatcher.feed_update(bot, u) for u in updates))
    return (time.thread_time() - started) * 1000 / len(updates)


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100)
    args = parser.parse_args(argv)

    harness = await start_harness(make_settings(Path(tempfile.mkdtemp(prefix="prompt-cpu-"))))
    await harness.app.queue.stop()  # the update path only
    echo = Dispatcher()

    @echo.message()
    async def answer(message: Message) -> None:
        await message.answer(message.text or "?")

    echo_bot = Bot(TOKEN, session=RecordingSession())

    def prompts(first_user: int, count: int) -> list[Update]:
        return [message_update(f"a lighthouse at dawn {i}", from_user=user(first_user + i)) for i in range(count)]

    await burst(harness.app.dispatcher, harness.bot, prompts(1, 10))  # warm-up
    await burst(echo, echo_bot, prompts(1, 10))
    settle_startup_heap()  # as the bot process does once it is up (app/__main__.py)
    try:
        for label in ("new users", "known users"):  # the same users twice: first contact, then known
            echo_ms = await burst(echo, echo_bot, prompts(1000, args.users))
            bot_ms = await burst(harness.app.dispatcher, harness.bot, prompts(1000, args.users))
            print(f"{label:12} echo {echo_ms:6.3f} ms per update   bot {bot_ms:6.3f} ms per prompt   ratio {echo_ms / bot_ms:.2f}x")
            async with harness.app.db.session() as session:  # the next round is not held by the per-user limit
                await session.execute(update(Job).values(status=JobStatus.DONE))
                await session.commit()
    finally:
        gc.unfreeze()
        await stop_harness(harness)


if __name__ == "__main__":
    asyncio.run(main())
