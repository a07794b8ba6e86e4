"""The event loop's CPU per prompt, in-process: the bot's real dispatcher (all middlewares and
routers, a real SQLite file, the worker stopped) against a bare aiogram echo dispatcher, both fed
the same burst of updates with no HTTP in between (a recording Bot API session answers).

It isolates what benchmarks/bot_overhead.py cannot: the update path alone, without the emulator,
the sockets and the worker that runs beside the burst there.

Two more dispatchers show the floor a bot that keeps its requests pays (nothing is lost on a
restart only if the job is written before the user is told it is queued): the echo plus one row per
prompt written and committed before it answers (SQLAlchemy Core on a SQLite file set up as ours
is, ``storage.db.create_engine``), one transaction per prompt ("durable echo") or one for all the
prompts that arrived while the last commit ran ("group-commit echo"). The ratios are the echo's
CPU per update over theirs, i.e. their throughput as a share of the echo's.

    python -m benchmarks.prompt_cpu [--users 100] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import time
from pathlib import Path

from aiogram import Bot, Dispatcher
from aiogram.types import Message, Update
from sqlalchemy import Column, Integer, MetaData, Table, Text, insert, update

from app.heap import settle_startup_heap
from storage.db import create_engine
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
    parser.add_argument("--rounds", type=int, default=5, help="bursts per dispatcher and kind of user (medians)")
    args = parser.parse_args(argv)

    harness = await start_harness(make_settings(Path(tempfile.mkdtemp(prefix="prompt-cpu-"))))
    await harness.app.queue.stop()  # the update path only
    echo = Dispatcher()

    @echo.message()
    async def answer(message: Message) -> None:
        await message.answer(message.text or "?")

    echo_bot = Bot(TOKEN, session=RecordingSession())

    # The durable echo: one committed row per prompt, then the answer.
    rows = Table(
        "prompts", MetaData(), Column("id", Integer, primary_key=True), Column("chat_id", Integer), Column("text", Text)
    )
    engine = create_engine(f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='durable-echo-')}/db.sqlite3")
    async with engine.begin() as conn:
        await conn.run_sync(rows.metadata.create_all)
    durable = Dispatcher()

    @durable.message()
    async def keep_and_answer(message: Message) -> None:
        async with engine.begin() as conn:
            await conn.execute(insert(rows).values(chat_id=message.chat.id, text=message.text))
        await message.answer(message.text or "?")

    durable_bot = Bot(TOKEN, session=RecordingSession())

    # The same with a group commit: the prompts that arrive while a commit is under way share the
    # next one (one INSERT of many rows), as the bot's admission does.
    waiting: list[tuple[dict[str, object], asyncio.Future[None]]] = []
    flushing: list[asyncio.Task[None]] = []

    async def flush() -> None:
        while waiting:
            batch = waiting[:]
            del waiting[:]
            async with engine.begin() as conn:
                await conn.execute(insert(rows), [values for values, _ in batch])
            for _, done in batch:
                done.set_result(None)
        flushing.clear()

    grouped = Dispatcher()

    @grouped.message()
    async def keep_together_and_answer(message: Message) -> None:
        done = asyncio.get_running_loop().create_future()
        waiting.append(({"chat_id": message.chat.id, "text": message.text}, done))
        if not flushing:
            flushing.append(asyncio.create_task(flush()))
        await done
        await message.answer(message.text or "?")

    grouped_bot = Bot(TOKEN, session=RecordingSession())

    def prompts(first_user: int, count: int) -> list[Update]:
        return [message_update(f"a lighthouse at dawn {i}", from_user=user(first_user + i)) for i in range(count)]

    await burst(harness.app.dispatcher, harness.bot, prompts(1, 10))  # warm-up
    await burst(echo, echo_bot, prompts(1, 10))
    await burst(durable, durable_bot, prompts(1, 10))
    await burst(grouped, grouped_bot, prompts(1, 10))
    settle_startup_heap()  # as the bot process does once it is up (app/__main__.py)
    dispatchers = {
        "echo": (echo, echo_bot),
        "durable echo": (durable, durable_bot),
        "group-commit echo": (grouped, grouped_bot),
        "bot": (harness.app.dispatcher, harness.bot),
    }
    try:
        # New users: fresh ids each round (the bot creates their rows); known users: the first
        # round's users again. The dispatchers take turns within each round; medians over the rounds.
        for label in ("new users", "known users"):
            figures: dict[str, list[float]] = {name: [] for name in dispatchers}
            for n in range(args.rounds):
                first_user = 1000 + (n * args.users if label == "new users" else 0)
                for name, (dispatcher, bot) in dispatchers.items():
                    figures[name].append(await burst(dispatcher, bot, prompts(first_user, args.users)))
                async with harness.app.db.session() as session:  # the next round is not held by the per-user limit
                    await session.execute(update(Job).values(status=JobStatus.DONE))
                    await session.commit()
            ms = {name: statistics.median(values) for name, values in figures.items()}
            echo_ms = ms["echo"]
            print(
                f"{label:12} echo {echo_ms:6.3f} ms per update"
                + "".join(f"   {name} {ms[name]:6.3f} ms ({echo_ms / ms[name]:.2f}x)" for name in ("durable echo", "group-commit echo"))
                + f"   bot {ms['bot']:6.3f} ms per prompt ({echo_ms / ms['bot']:.2f}x)"
            )
    finally:
        gc.unfreeze()
        await engine.dispose()
        await stop_harness(harness)


if __name__ == "__main__":
    asyncio.run(main())
