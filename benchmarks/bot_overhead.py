"""How much the bot itself costs: the real ``python -m app`` process with the ``fake`` backend.

Many scripted users send a prompt at the same moment to the bot, over HTTP, through the local
Telegram Bot API emulator (tests/e2e/emulator.py). Printed per bot:

- updates handled per second (a prompt counts as handled when the bot's first answer arrives);
- p50 / p99 time from a user's prompt to the bot's first answer;
- p50 / p99 time from a finished job (``generated_at`` in the database) to the photo being
  accepted by Telegram (the emulator's answer to sendPhoto).

In the same run, rounds alternate with a bare aiogram echo bot (benchmarks/echo_bot.py) on the same
emulator, so the ratio between the two holds on a noisy machine.

With ``--floor`` a third bot takes turns with them: the real bot whose prompt handler answers like
the echo (benchmarks/floor_bot.py). No change to the job's own work can bring the bot past it.

With ``--known-users`` every round's users are the same ones, who have written before (an uncounted
round introduces them); by default each round's users are new, so each prompt is a first contact.

The last line is the CPU a bot could spend per update and still answer at 0.8x the echo's
throughput on this machine, where the emulator and the scripted users (this process, measured too)
share the CPUs with it: on one event loop, and over all CPUs together.

    python benchmarks/bot_overhead.py [--users 100] [--rounds 3] [--side 256] [--floor] [--known-users]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
from collections import Counter
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timezone
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from playground.botproc import BotProcess, bot_env  # noqa: E402
from storage.models import Job  # noqa: E402
from playground.emulator import TelegramEmulator  # noqa: E402

BOT_TOKEN = "123456:BENCHabcdefghijklmnopqrstuvwxyz0123"
ECHO_TOKEN = "654321:ECHOabcdefghijklmnopqrstuvwxyz01234"
FLOOR_TOKEN = "765432:FLOORbcdefghijklmnopqrstuvwxyz01234"
FLOOR_USERS = 10_000_000  # the floor bot's users: other ids, should it share the bot's database
ANSWER_METHODS = frozenset({"sendMessage", "sendPhoto", "sendMediaGroup", "sendDocument"})


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Figures:
    handled: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # the bot process's CPU while the round's prompts were being answered
    # This process's CPU meanwhile: the emulator and the scripted users, who share the machine's CPUs
    emulator_cpu_seconds: float = 0.0
    first_answer: list[float] = field(default_factory=list)
    delivery: list[float] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.handled / self.seconds if self.seconds else 0.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if q < 100 else max(values)


async def one_round(
    emulator: TelegramEmulator,
    token: str,
    users: int,
    first_user: int,
    figures: Figures,
    timeout: float,
    pid: int | None = None,
) -> list[int]:
    """Every user sends one prompt at once; wait for each user's first answer."""
    # The emulator shares this process and keeps every call; a full collection walking them all
    # stalled rounds at random (~150 ms, echo and bot alike). What exists now is left out of them.
    gc.collect()
    gc.freeze()
    cpu_before = process_cpu_seconds(pid) if pid else 0.0
    emulator_cpu_before = time.process_time()
    scripted = [emulator.user(token, user_id=first_user + i, first_name=f"U{i}") for i in range(users)]
    first_call = len(emulator.calls)
    sent_at: dict[int, float] = {}
    for i, user in enumerate(scripted):
        sent_at[user.chat_id] = time.monotonic()
        await user.send_text(f"benchmark prompt {first_user + i}: a lighthouse at dawn")
    answered: dict[int, float] = {}
    deadline = time.monotonic() + timeout
    pending: list = []  # calls recorded but not answered yet (their ``finished`` comes later)
    read = first_call
    while len(answered) < users:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{users - len(answered)} of {users} prompts got no answer in {timeout}s")
        async with emulator.calls_changed:
            await asyncio.wait_for(emulator.calls_changed.wait(), timeout)
        # Only the calls new since the last look, and those still unanswered then: this loop shares
        # the emulator's process, and rescanning every call of the round on each change would slow
        # the emulator most in the rounds with the most calls.
        pending.extend(emulator.calls[read:])
        read = len(emulator.calls)
        waiting = []
        for call in pending:
            if call.token != token or call.method not in ANSWER_METHODS:
                continue
            if call.finished is None:
                waiting.append(call)
                continue
            chat = int(call.chat_id) if call.ok else None
            if chat in sent_at and chat not in answered:
                answered[chat] = call.finished
        pending = waiting
    if pid:
        figures.cpu_seconds += process_cpu_seconds(pid) - cpu_before
    figures.emulator_cpu_seconds += time.process_time() - emulator_cpu_before
    start = min(sent_at.values())
    figures.handled += users
    figures.seconds += max(answered.values()) - start
    figures.first_answer.extend(answered[c] - sent_at[c] for c in answered)
    return [u.chat_id for u in scripted]


class JobReader:
    """Reads the bot's job rows from its database (SQLite or PostgreSQL) through the project's models."""

    def __init__(self, url: str) -> None:
        from storage.db import create_engine

        self.engine = create_engine(url)

    async def jobs_of(self, chats: list[int], after: int = 0) -> list[Job]:
        """The jobs of these chats with ids above ``after`` (a round's, when it is the last id before it)."""
        from sqlalchemy import select
        from sqlalchemy.ext.asyncio import AsyncSession

        async with AsyncSession(self.engine) as session:
            query = select(Job).where(Job.chat_id.in_(chats), Job.id > after)
            return list((await session.execute(query)).scalars())

    async def last_id(self) -> int:
        from sqlalchemy import func, select
        from sqlalchemy.ext.asyncio import AsyncSession

        async with AsyncSession(self.engine) as session:
            return (await session.execute(select(func.max(Job.id)))).scalar() or 0

    async def close(self) -> None:
        await self.engine.dispose()


async def wait_delivered(
    emulator: TelegramEmulator, reader: JobReader, chats: list[int], figures: Figures, timeout: float, after: int = 0
) -> None:
    """Until every job of these chats (with ids above ``after``) is done; then job finished -> photo
    accepted, per job."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = await reader.jobs_of(chats, after)
        if len(jobs) == len(chats) and all(j.status in ("done", "failed", "cancelled") for j in jobs):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"jobs still pending after {timeout}s: {[j.status for j in jobs]}")
        await asyncio.sleep(0.2)
    photo_sent = {}
    for call in emulator.calls:
        if call.method == "sendPhoto" and call.ok:
            photo_sent[call.result["photo"][-1]["file_id"]] = call.wall + (call.finished - call.time)
    for job in jobs:
        if job.status != "done":
            continue
        file_id = job.result_file_ids[0]
        generated = job.generated_at
        assert generated is not None
        if generated.tzinfo is None:  # SQLite drops the zone; the bot stores UTC
            generated = generated.replace(tzinfo=timezone.utc)
        figures.delivery.append(photo_sent[file_id] - generated.timestamp())


def report(name: str, figures: Figures) -> None:
    ms = 1000.0
    line = (
        f"{name:<14} {figures.per_second:8.1f} updates/s   first answer p50 {percentile(figures.first_answer, 50) * ms:7.1f} ms"
        f"  p99 {percentile(figures.first_answer, 99) * ms:7.1f} ms"
    )
    if figures.cpu_seconds:
        line += f"   CPU {figures.cpu_seconds / figures.handled * ms:5.2f} ms per update"
    if figures.delivery:
        line += (
            f"   job finished -> photo sent p50 {percentile(figures.delivery, 50) * ms:7.1f} ms"
            f"  p99 {percentile(figures.delivery, 99) * ms:7.1f} ms"
        )
    print(line)


def print_ratio(name: str, figures: Figures, echo: Figures) -> None:
    print(
        f"ratio ({name} / echo): {figures.per_second / echo.per_second:.2f}x throughput, "
        f"{percentile(figures.first_answer, 50) / percentile(echo.first_answer, 50):.2f}x p50 first answer"
    )


def print_cpu_budget(echo: Figures, bot: Figures, cpus: int, share: float = 0.8) -> None:
    """The CPU a bot may spend per update to answer a burst at ``share`` of the echo's throughput here.

    The bot, the emulator and the scripted users share this machine's CPUs. At that throughput an
    update may take at most 1 / throughput of one CPU in a bot that answers on one event loop (one
    core), and, however the bot's work were spread over processes, at most ``cpus`` / throughput of
    all CPUs together, less what the emulator and the users spend on it.
    """
    if not (echo.per_second and bot.handled and bot.cpu_seconds):
        return
    ms = 1000.0
    target = share * echo.per_second
    emulator = bot.emulator_cpu_seconds / bot.handled
    print(
        f"CPU per update at {share:.1f}x the echo's throughput ({target:.0f} updates/s, {cpus} CPUs): "
        f"at most {ms / target:.2f} ms on one event loop, {(cpus / target - emulator) * ms:.2f} ms over all CPUs "
        f"(the emulator and users take {emulator * ms:.2f} ms); the kandinsky bot takes {bot.cpu_seconds / bot.handled * ms:.2f} ms"
    )


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100, help="users sending a prompt at once, per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--side", type=int, default=256, help="MAX_IMAGE_SIDE of the fake images")
    parser.add_argument(
        "--step-seconds",
        type=float,
        default=0.0,
        help="FAKE_STEP_SECONDS: the stand-in GPU's time per step (0: an infinitely fast GPU, so the "
        "worker finishes and delivers jobs as fast as the CPU allows, beside the burst)",
    )
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--profile", default="", help="write a cProfile of the bot process to this file")
    parser.add_argument(
        "--database-url", default="", help="the bot's DATABASE_URL (default: SQLite in a temporary folder)"
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also time the bot with prompts answered like the echo (benchmarks/floor_bot.py)",
    )
    parser.add_argument(
        "--known-users",
        action="store_true",
        help="the same users in every round, introduced by an uncounted round (default: new users each round)",
    )
    parser.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="a setting for the bot's process (repeatable)"
    )
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bot-overhead-"))
    emulator = TelegramEmulator()
    emulator.add_bot(BOT_TOKEN)
    emulator.add_bot(ECHO_TOKEN, username="EchoBot")
    emulator.add_bot(FLOOR_TOKEN, username="FloorBot")
    await emulator.start()
    data_dir = tmp / "data"
    env = bot_env(
        emulator,
        BOT_TOKEN,
        data_dir,
        FAKE_STEP_SECONDS=args.step_seconds,
        MAX_IMAGE_SIDE=args.side,
        MAX_PENDING_PER_USER=10,
        MAX_PENDING_TOTAL=100_000,
        PROGRESS_EDIT_INTERVAL=2.0,
        LOG_LEVEL="WARNING",
    )
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    for setting in args.env:
        key, _, value = setting.partition("=")
        env[key] = value
    reader = JobReader(env["DATABASE_URL"])
    bot = BotProcess(emulator, BOT_TOKEN, env, tmp / "bot.log")
    echo_env = {**env, "BOT_TOKEN": ECHO_TOKEN}
    echo = BotProcess(emulator, ECHO_TOKEN, echo_env, tmp / "echo.log")
    echo_script = str(PROJECT_ROOT / "benchmarks" / "echo_bot.py")
    floor: BotProcess | None = None
    if args.floor:
        floor_env = {**env, "BOT_TOKEN": FLOOR_TOKEN, "DATA_DIR": str(tmp / "floor")}
        if not args.database_url:
            floor_env["DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp / 'floor' / 'bot.db'}"
        floor = BotProcess(emulator, FLOOR_TOKEN, floor_env, tmp / "floor.log")
    try:
        profile = ["-m", "cProfile", "-o", os.path.abspath(args.profile), "-m", "app"] if args.profile else None
        await bot.start(ready_timeout=180, argv=profile)
        await echo.start(ready_timeout=180, argv=[echo_script])
        if floor is not None:
            await floor.start(ready_timeout=180, argv=[str(PROJECT_ROOT / "benchmarks" / "floor_bot.py")])
        cpu = os.cpu_count()
        print(
            f"{args.users} users at once, {args.rounds} rounds, fake backend {args.side}px, "
            f"{args.step_seconds} s per step, {cpu} CPUs"
        )
        # A warm-up round each: first-contact paths, connection pools, SQLite file growth.
        await one_round(emulator, ECHO_TOKEN, 10, 1, Figures(), args.timeout)
        warm = await one_round(emulator, BOT_TOKEN, 10, 1, Figures(), args.timeout)
        if floor is not None:
            await one_round(emulator, FLOOR_TOKEN, 10, FLOOR_USERS + 1, Figures(), args.timeout)
        await wait_delivered(emulator, reader, warm, Figures(), args.timeout)

        if args.known_users:  # their first contacts, not counted
            before = await reader.last_id()
            known = await one_round(emulator, BOT_TOKEN, args.users, 1000, Figures(), args.timeout)
            await wait_delivered(emulator, reader, known, Figures(), args.timeout, after=before)
            if floor is not None:
                await one_round(emulator, FLOOR_TOKEN, args.users, FLOOR_USERS + 1000, Figures(), args.timeout)

        bot_figures, echo_figures, floor_figures = Figures(), Figures(), Figures()
        for r in range(args.rounds):
            first_user = 1000 if args.known_users else 1000 + r * args.users
            await one_round(emulator, ECHO_TOKEN, args.users, first_user, echo_figures, args.timeout, echo.pid)
            if floor is not None:
                await one_round(
                    emulator, FLOOR_TOKEN, args.users, FLOOR_USERS + first_user, floor_figures, args.timeout, floor.pid
                )
            before = await reader.last_id()
            chats = await one_round(emulator, BOT_TOKEN, args.users, first_user, bot_figures, args.timeout, bot.pid)
            await wait_delivered(emulator, reader, chats, bot_figures, args.timeout, after=before)
        report("echo bot", echo_figures)
        if floor is not None:
            report("floor bot", floor_figures)
        report("kandinsky bot", bot_figures)
        by_method = Counter(c.method for c in emulator.calls if c.token == BOT_TOKEN)
        prompts = 10 + (args.rounds + args.known_users) * args.users  # the warm-up, the introduction, the rounds
        print("kandinsky bot API calls per prompt: " + ", ".join(f"{m} {n / prompts:.2f}" for m, n in by_method.most_common()))
        print_ratio("kandinsky", bot_figures, echo_figures)
        if floor is not None:
            print_ratio("floor", floor_figures, echo_figures)
        print_cpu_budget(echo_figures, bot_figures, os.cpu_count() or 1)
    finally:
        await bot.stop()
        await echo.stop()
        if floor is not None:
            await floor.stop()
        await emulator.stop()
        await reader.close()
    errors = [line for line in bot.log(10**7).splitlines() if " ERROR " in line]
    if errors:
        print(f"{len(errors)} errors in the bot log ({tmp / 'bot.log'}), e.g.: {errors[0]}")


if __name__ == "__main__":
    asyncio.run(main())
