"""A GPU worker process of the distributed mode: ``python -m app.worker`` / ``kandinsky-worker``.

The wiring of one worker process (settings, database, backend, guard, runner, the Redis stream
broker, its own aiogram ``Bot`` for the results); the loop itself is :class:`jobs.worker.Worker`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import time
from typing import Any

from aiogram import Bot
from redis.asyncio import Redis

from app import event_loop
from app.config import Settings, describe_error
from app.heap import settle_startup_heap
from app.wiring import create_backend, create_bot, create_guard, create_runner, position_refresher
from bot.i18n import translator
from bot.logging_setup import configure_logging
from bot.notifier import TelegramNotifier
from generation.backend import Backend, ModelId
from jobs.distributed import TASK_NAME, JobStreamBroker, stream_name
from jobs.metrics import Metrics, MetricsRequestMiddleware, add_routes, monitoring_application, start_server
from jobs.retention import ResultsJanitor
from jobs.worker import Worker, WorkerConfig, generate_job
from storage.db import create_engine, create_sessionmaker
from storage.repositories import Database

log = logging.getLogger("app.worker")

DEFAULT_METRICS_PORT = 9100


def worker_config(settings: Settings) -> WorkerConfig:
    return WorkerConfig(
        redis_prefix=settings.redis_prefix,
        heartbeat_seconds=settings.worker_heartbeat_seconds,
        lease_seconds=settings.job_lease_seconds,
        max_job_attempts=settings.max_job_attempts,
        delivery_retry_seconds=settings.delivery_retry_seconds,
        batch_max_jobs=settings.batch_max_jobs,
    )


def default_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def parse_models(values: list[str]) -> list[ModelId]:
    """Model ids (``kandinsky-3.1``) or short forms (``3.1``, ``3.1-flash``, ``flash``); empty: all."""
    if not values:
        return list(ModelId)
    aliases = {str(m): m for m in ModelId}
    aliases.update({str(m).removeprefix("kandinsky-"): m for m in ModelId})
    aliases.update({"flash": ModelId.K31_FLASH, "refiner": ModelId.K31_REFINER})
    models: list[ModelId] = []
    for value in values:
        model = aliases.get(value.strip().lower())
        if model is None:
            raise ValueError(f"unknown model {value!r}; known: {', '.join(str(m) for m in ModelId)}")
        if model not in models:
            models.append(model)
    return models


async def wait_for_head(url: str, timeout: float = 120.0) -> None:
    """Wait until the bot has migrated the database (workers never migrate: two processes running
    the same migration at once would collide)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy.pool import NullPool

    from storage.db import create_engine
    from storage.migrate import alembic_config

    heads = set(ScriptDirectory.from_config(alembic_config(url)).get_heads())
    engine = create_engine(url, poolclass=NullPool)
    deadline = time.monotonic() + timeout
    try:
        while True:
            problem = "is not migrated"
            try:
                async with engine.connect() as conn:
                    current = await conn.run_sync(lambda c: set(MigrationContext.configure(c).get_current_heads()))
                if current == heads:
                    return
            except Exception as exc:  # not reachable yet
                problem = f"is unreachable ({exc})"
            if time.monotonic() > deadline:
                raise SystemExit(f"the database {problem}: start the bot first (it migrates the database)")
            log.info("waiting for the database: it %s", problem)
            await asyncio.sleep(1.0)
    finally:
        await engine.dispose()


def build_worker(
    settings: Settings,
    models: list[ModelId],
    name: str,
    backend: Backend | None = None,
    bot: Bot | None = None,
) -> tuple[Worker, Any]:
    """The worker and a coroutine function that closes what it opened (tests pass a bot and backend)."""
    if not settings.redis_url:
        raise ValueError("REDIS_URL is not set: workers take their jobs from Redis")
    metrics = Metrics("worker")
    bot = bot or create_bot(settings)
    bot.session.middleware(MetricsRequestMiddleware(metrics))
    engine = create_engine(settings.db_url, pool_pre_ping=True)
    db = Database(create_sessionmaker(engine))
    notifier = TelegramNotifier(bot, translator(), edit_interval=settings.progress_edit_interval)
    runner = create_runner(
        settings,
        db,
        backend or create_backend(settings),
        notifier,
        create_guard(settings),  # beautification and the safety checks run where the images are made
        metrics,
        worker_id=name,
        lease_seconds=settings.job_lease_seconds,
    )
    broker = JobStreamBroker(
        settings.redis_url,
        [stream_name(settings.redis_prefix, str(m)) for m in models],
        idle_timeout=settings.worker_idle_timeout,
        consumer_name=name,
    )
    broker.register_task(generate_job, task_name=TASK_NAME)
    redis = Redis.from_url(settings.redis_url)
    positions = position_refresher(settings, db, notifier, redis)  # jobs start and end here
    worker = Worker(worker_config(settings), models, db, runner, broker, redis, metrics, name, positions)

    async def close() -> None:
        if runner.guard is not None:
            await runner.guard.close()
        await redis.aclose()
        await bot.session.close()
        await engine.dispose()

    return worker, close


async def serve(settings: Settings, models: list[ModelId], name: str, metrics_port: int) -> None:
    await wait_for_head(settings.db_url)
    worker, close = build_worker(settings, models, name)
    for model in models:  # keep the served models resident: the first job does not pay the load
        await asyncio.to_thread(worker.runner.backend.load, model)
    settle_startup_heap()  # the loaded pipelines live as long as the process
    token = settings.metrics_token
    app = monitoring_application(token.get_secret_value() if token else None)
    add_routes(app, worker.metrics, worker.health, worker.refresh_metrics)
    http = await start_server(app, settings.metrics_host, metrics_port) if metrics_port else None
    janitor = ResultsJanitor(worker.db, settings.results_dir, settings.results_retention)
    await janitor.start()  # the results this host stores

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("worker %s serving %s; /metrics on %s:%s", name, ", ".join(models), settings.metrics_host, metrics_port or "-")
    try:
        await worker.run(stop)
    finally:
        await janitor.stop()
        if http is not None:
            await http.cleanup()
        await close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="kandinsky-worker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", help="comma-separated models to serve (default: WORKER_MODELS, else all)")
    parser.add_argument("--name", help="worker name in the queue and the database (default: WORKER_NAME or host-pid)")
    parser.add_argument("--metrics-port", type=int, help=f"/healthz and /metrics port (default: METRICS_PORT or {DEFAULT_METRICS_PORT}; 0: off)")
    args = parser.parse_args(argv)
    try:
        settings = Settings()
        models = parse_models(args.models.split(",") if args.models else settings.worker_models)
    except Exception as exc:
        print(describe_error(exc), file=sys.stderr)
        raise SystemExit(2) from None
    if not settings.redis_url:
        print("Configuration error: REDIS_URL is not set (workers take their jobs from Redis)", file=sys.stderr)
        raise SystemExit(2)
    configure_logging(settings.log_level, settings.secrets())  # the bot token never reaches the log
    port = args.metrics_port if args.metrics_port is not None else (settings.metrics_port or DEFAULT_METRICS_PORT)
    event_loop.run(serve(settings, models, args.name or settings.worker_name or default_name(), port), settings.event_loop)


if __name__ == "__main__":
    main()
