"""The distributed mode as it runs: bot and GPU worker processes (fake backend) on PostgreSQL and
Redis, talking to the Telegram Bot API emulator (tests/e2e/emulator.py).

One stack serves the first three tests (start-up is the slow part): a bot on long polling and two
workers, ``worker-a`` for Kandinsky 3.1, 3.1 Flash and 2.2, ``worker-b`` for 3.1 Flash, 2.2 and the
3.1 refiner. The last of them kills a worker. The webhook test starts two bot replicas of its own.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select, update

from bot.keyboards import SettingsActionCb, SettingsCb
from storage.db import create_engine, create_sessionmaker
from storage.migrate import upgrade_async
from storage.models import Job, JobStatus, UserSettings
from storage.repositories import Database
from playground.emulator import TelegramEmulator
from playground.users import ScriptedUser, has_text
from tests.scale.conftest import REDIS_URL, fresh_pg_database, redis_namespace
from tests.scale.processes import Process, base_env, free_port, metric_value

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    # The first test also starts three Python processes, which on a busy 2-core machine can take
    # a minute or more; the default 300 s per test is too tight for that alone.
    pytest.mark.timeout(600),
]

TOKEN = "123456:" + "S" * 35
STEP_SECONDS = 0.04  # Flash (4 steps) 0.16 s, 3.1 (25 steps) 1 s, 2.2 (50 steps) 2 s per image
WORKER_A = ("worker-a", "kandinsky-3.1,kandinsky-3.1-flash,kandinsky-2.2")
WORKER_B = ("worker-b", "kandinsky-3.1-flash,kandinsky-2.2,kandinsky-3.1-refiner")


@dataclass
class Stack:
    emulator: TelegramEmulator
    db: Database
    bot: Process
    workers: dict[str, Process]
    env: dict[str, str]

    def logs(self) -> str:
        return "\n\n".join(f"--- {p.name} ---\n{p.tail(40)}" for p in [self.bot, *self.workers.values()])

    async def jobs(self) -> list[Job]:
        async with self.db.session() as session:
            return list((await session.execute(select(Job).order_by(Job.id))).scalars().all())

    async def wait_jobs(self, predicate: Any, timeout: float = 60.0) -> list[Job]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            jobs = await self.jobs()
            if predicate(jobs):
                return jobs
            await asyncio.sleep(0.1)
        raise AssertionError(f"jobs: {[(j.id, j.model, j.status, j.claimed_by) for j in await self.jobs()]}\n{self.logs()}")

    async def choose_model(self, user: ScriptedUser, model: str) -> None:
        """The user's model (a setting; its /settings flow has its own tests). The user row is
        committed after /start is answered, hence the retry."""
        for _ in range(100):
            async with self.db.session() as session:
                result = await session.execute(
                    update(UserSettings).where(UserSettings.user_id == user.id).values(model=model)
                )
                await session.commit()
            if result.rowcount == 1:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"user {user.id} has no settings row")


def stack_env(pg_url: str, prefix: str, emulator: TelegramEmulator, data_dir: Path, **extra: Any) -> dict[str, str]:
    return base_env(
        BOT_TOKEN=TOKEN,
        TELEGRAM_API_URL=emulator.base_url,
        DATABASE_URL=pg_url,
        REDIS_URL=REDIS_URL,
        REDIS_PREFIX=prefix,
        DATA_DIR=data_dir,
        GENERATION_BACKEND="fake",
        FAKE_STEP_SECONDS=STEP_SECONDS,
        BEAUTIFY_BACKEND="off",
        SAFETY_IMAGE_FILTER="false",  # the NSFW model is not what these tests are about (tests/safety)
        PROGRESS_EDIT_INTERVAL="0.3",
        MAX_PENDING_PER_USER="3",
        DELIVERY_RETRY_SECONDS="1",
        WORKER_HEARTBEAT_SECONDS="0.2",
        JOB_LEASE_SECONDS="1",
        WORKER_IDLE_TIMEOUT="2",
        LOG_LEVEL="INFO",
        **extra,
    )


async def start_emulator() -> TelegramEmulator:
    emulator = TelegramEmulator()
    emulator.add_bot(TOKEN)
    await emulator.start()
    return emulator


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    tmp = tmp_path_factory.mktemp("scale-stack")
    async with fresh_pg_database() as pg, redis_namespace() as prefix:
        await upgrade_async(pg.url)  # as a bot replica would on start; workers wait for it
        emulator = await start_emulator()
        engine = create_engine(pg.url)
        env = stack_env(pg.url, prefix, emulator, tmp / "data")
        bot_port = free_port()
        bot = Process("bot", ["-m", "app"], {**env, "METRICS_PORT": str(bot_port)}, tmp, bot_port)
        workers = {}
        for name, models in (WORKER_A, WORKER_B):
            port = free_port()
            args = ["-m", "app.worker", "--name", name, "--models", models, "--metrics-port", str(port)]
            workers[name] = Process(name, args, env, tmp, port)
        s = Stack(emulator, Database(create_sessionmaker(engine)), bot, workers, env)
        try:
            for process in (bot, *workers.values()):
                await process.start()
            for process in (bot, *workers.values()):
                await process.wait_healthy()
            yield s
        finally:
            for process in (bot, *workers.values()):
                await process.stop()
            await engine.dispose()
            await emulator.stop()
        assert not emulator.unsupported_calls, [c.method for c in emulator.unsupported_calls]


async def start_users(stack: Stack, count: int, first_id: int, model: str) -> list[ScriptedUser]:
    users = [stack.emulator.user(user_id=first_id + i, first_name=f"User{i}") for i in range(count)]
    for u in users:
        await u.send_command("start")
    for u in users:
        await u.wait_for(timeout=30)  # the greeting
        await stack.choose_model(u, model)
    return users


def photos(user: ScriptedUser) -> list[dict[str, Any]]:
    return user.received(lambda m: "photo" in m)


async def test_thirty_prompts_from_ten_users_arrive_once_each(stack: Stack):
    users = await start_users(stack, 10, 700_000, "kandinsky-3.1-flash")
    done_before = {name: (await w.health() or {}).get("jobs_done", 0) for name, w in stack.workers.items()}
    prompts = {u.id: [f"prompt {n} of user {u.id}" for n in range(3)] for u in users}
    for n in range(3):
        for u in users:
            await u.send_text(prompts[u.id][n])

    for u in users:
        for prompt in prompts[u.id]:
            await u.wait_for(lambda m, p=prompt: "photo" in m and p in (m.get("caption") or ""), timeout=60)
    await asyncio.sleep(1.0)  # a duplicate would come now

    for u in users:
        captions = [m.get("caption") or "" for m in photos(u)]
        assert len(captions) == 3, captions
        assert all(sum(p in c for c in captions) == 1 for p in prompts[u.id]), captions
    jobs = await stack.wait_jobs(lambda js: len(js) == 30 and all(j.status == JobStatus.DONE for j in js))
    assert {j.attempts for j in jobs} == {1}
    sent = stack.emulator.calls_to("sendPhoto", ok=True)
    assert len(sent) == 30
    # Both workers took a share; together exactly the 30 jobs (a worker counts a job just after its
    # photo went out).
    deadline = time.monotonic() + 10
    while True:
        done_after = {name: (await w.health() or {}).get("jobs_done", 0) for name, w in stack.workers.items()}
        shares = {name: done_after[name] - done_before[name] for name in done_after}
        if sum(shares.values()) >= 30 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert sum(shares.values()) == 30 and all(shares.values()), shares

    # The bot's /metrics reads the queue from the database; the workers' count what they did.
    bot_metrics = await stack.bot.metrics()
    assert metric_value(bot_metrics, "kandinsky_jobs", status="done", model="kandinsky-3.1-flash") == 30
    assert metric_value(bot_metrics, "kandinsky_queue_length", model="kandinsky-3.1-flash") == 0
    assert metric_value(bot_metrics, "kandinsky_telegram_requests_total", method="SendMessage") > 0
    worker_metrics = await stack.workers["worker-a"].wait_metric(
        "kandinsky_generation_seconds_count", shares["worker-a"], model="kandinsky-3.1-flash"
    )
    assert metric_value(worker_metrics, "kandinsky_telegram_requests_total", method="SendPhoto") == shares["worker-a"]


async def test_workers_get_only_the_jobs_of_their_models(stack: Stack):
    k31 = await start_users(stack, 1, 710_000, "kandinsky-3.1")  # worker-a only
    refiner = await start_users(stack, 1, 710_100, "kandinsky-3.1-refiner")  # worker-b only
    for u in (*k31, *refiner):
        for n in range(2):
            await u.send_text(f"routed {n} for {u.id}")
    for u in (*k31, *refiner):
        for n in range(2):
            await u.wait_for(lambda m, t=f"routed {n} for {u.id}": "photo" in m and t in (m.get("caption") or ""), timeout=60)

    jobs_total = "kandinsky_worker_jobs_total"
    # A worker counts a job once it has finished with it, just after the photo went out.
    a = await stack.workers["worker-a"].wait_metric(jobs_total, 2, model="kandinsky-3.1", status="done")
    b = await stack.workers["worker-b"].wait_metric(jobs_total, 2, model="kandinsky-3.1-refiner", status="done")
    assert metric_value(a, jobs_total, model="kandinsky-3.1-refiner", status="done") == 0
    assert metric_value(b, jobs_total, model="kandinsky-3.1", status="done") == 0


async def test_a_worker_killed_mid_job_hands_it_over_and_it_is_delivered_once(stack: Stack):
    (u,) = await start_users(stack, 1, 720_000, "kandinsky-2.2")  # both workers serve 2.2; 2 s a job
    await u.send_text("a job that outlives its worker")
    jobs = await stack.wait_jobs(lambda js: any(j.user_id == u.id and j.status == JobStatus.RUNNING for j in js))
    job = next(j for j in jobs if j.user_id == u.id)
    victim = stack.workers[job.claimed_by]
    survivor = next(w for w in stack.workers.values() if w is not victim)
    await asyncio.sleep(0.3)  # in the middle of its denoising steps
    victim.kill()

    photo = await u.wait_for(lambda m: "photo" in m, timeout=60)
    assert "a job that outlives its worker" in photo["caption"]
    await asyncio.sleep(1.5)  # a second delivery would come now
    assert len(photos(u)) == 1
    assert len(stack.emulator.calls_to("sendPhoto", ok=True, chat_id=u.id)) == 1
    (job,) = [j for j in await stack.jobs() if j.user_id == u.id]
    assert job.status == JobStatus.DONE and job.attempts == 2  # started on the victim, finished on the survivor
    health = await survivor.health()
    assert health is not None and health["current_job"] is None


async def test_two_webhook_replicas_keep_one_users_fsm_flow(tmp_path: Path):
    async with fresh_pg_database() as pg, redis_namespace() as prefix:
        await upgrade_async(pg.url)
        emulator = await start_emulator()
        engine = create_engine(pg.url)
        db = Database(create_sessionmaker(engine))
        ports = [free_port(), free_port()]
        public_url = f"http://127.0.0.1:{ports[0]}/telegram/webhook"  # what a load balancer would expose
        secret = secrets.token_urlsafe(24)
        env = stack_env(pg.url, prefix, emulator, tmp_path / "data", WEBHOOK_URL=public_url, WEBHOOK_SECRET=secret)
        monitoring = [free_port(), free_port()]  # /healthz and /metrics listen apart from the webhook
        replicas = [
            Process(
                f"replica-{i}",
                ["-m", "app"],
                {**env, "WEBHOOK_LISTEN": f"127.0.0.1:{port}", "METRICS_PORT": str(metrics_port)},
                tmp_path,
                metrics_port,
            )
            for i, (port, metrics_port) in enumerate(zip(ports, monitoring))
        ]
        try:
            for replica in replicas:
                await replica.start()
            for replica in replicas:
                health = await replica.wait_healthy()
                assert health["mode"] == "webhook" and health["queue"] == "redis"
            bot_state = emulator.bots[TOKEN]
            assert bot_state.webhook is not None and bot_state.webhook.url == public_url
            bot_state.balance_webhook([f"http://127.0.0.1:{port}/telegram/webhook" for port in ports])

            u = emulator.user(user_id=730_000, first_name="Fsm")
            await u.send_command("settings")
            menu = await u.wait_for(lambda m: bool(m.get("reply_markup")), timeout=30)
            await u.press(menu, data=SettingsCb(section="neg").pack())
            section = await u.wait_for(kinds=("edited",), timeout=30)
            await u.press(section, data=SettingsActionCb(section="neg", action="set").pack())
            await u.wait_for(has_text("Send the negative prompt"), timeout=30)
            await u.send_text("blurry, extra fingers")  # the state was set on the other replica
            await u.wait_for(has_text("Negative prompt saved: blurry, extra fingers"), timeout=30)

            # The answer goes out before the handler's unit of work commits: poll for the row.
            deadline = time.monotonic() + 10
            while True:
                async with db.session() as session:
                    saved = await session.get(UserSettings, u.id)
                if (saved and saved.negative_prompt) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            assert saved is not None and saved.negative_prompt == "blurry, extra fingers"
            # The four updates went to the replicas in turn: the flow crossed replicas every step.
            urls = [d.url for d in bot_state.webhook_deliveries if d.status == 200]
            assert len(urls) == 4 and len(set(urls)) == 2
            assert all(a != b for a, b in zip(urls, urls[1:]))
            # No update reached a handler without the secret (aiogram rejects those with 401).
            assert all(d.status == 200 for d in bot_state.webhook_deliveries)
            metrics = await replicas[1].metrics()
            assert metric_value(metrics, "kandinsky_telegram_requests_total", method="SendMessage") >= 1
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n" + "\n".join(f"--- {r.name} ---\n{r.tail(40)}" for r in replicas)) from exc
        finally:
            for replica in replicas:
                await replica.stop()
            await engine.dispose()
            await emulator.stop()
        assert not emulator.unsupported_calls, [c.method for c in emulator.unsupported_calls]
