"""The bot's HTTP side: the webhook (several replicas behind a load balancer), ``/healthz``, ``/metrics``.

Webhook mode (``WEBHOOK_URL``): Telegram posts updates to the URL; every replica listens on
``WEBHOOK_LISTEN`` at the URL's path, checks ``WEBHOOK_SECRET`` (aiogram's ``SimpleRequestHandler``)
and serves ``/healthz`` and ``/metrics`` next to it. Polling mode (the default): ``/healthz`` and
``/metrics`` on their own port when ``METRICS_PORT`` is set.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any
from urllib.parse import urlsplit

from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web
from sqlalchemy import text

from app.wiring import App
from jobs.metrics import add_routes, gpu_memory, parse_listen, start_server

log = logging.getLogger(__name__)


def webhook_path(url: str) -> str:
    return urlsplit(url).path or "/"


def health_check(app: App) -> Any:
    async def health() -> dict[str, Any]:
        async with app.db.session() as session:
            await session.execute(text("SELECT 1"))
        body: dict[str, Any] = {"mode": "webhook" if app.settings.webhook_url else "polling"}
        redis = getattr(app.queue, "redis", None)
        if redis is not None:
            await redis.ping()
            body["queue"] = "redis"
        else:
            body["queue"] = "embedded"
        return body

    return health


def metrics_refresher(app: App) -> Any:
    async def refresh() -> None:
        assert app.metrics is not None
        app.metrics.set_gpu_memory(gpu_memory())  # the embedded mode generates in the bot process
        await app.metrics.refresh_jobs(app.db)

    return refresh


def monitoring_app(app: App) -> web.Application:
    web_app = web.Application()
    assert app.metrics is not None
    add_routes(web_app, app.metrics, health_check(app), metrics_refresher(app))
    return web_app


def webhook_app(app: App) -> web.Application:
    settings = app.settings
    assert settings.webhook_url
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    if secret is None:
        log.warning("WEBHOOK_SECRET is not set: anyone who finds the webhook URL can post updates to it")
    web_app = monitoring_app(app)
    SimpleRequestHandler(dispatcher=app.dispatcher, bot=app.bot, secret_token=secret).register(
        web_app, path=webhook_path(settings.webhook_url)
    )

    async def register_webhook() -> None:
        # Every replica registers the same public URL: idempotent, and a new replica needs no
        # coordination. Updates waiting at Telegram are kept (drop_pending_updates=False).
        await app.bot.set_webhook(
            settings.webhook_url,  # type: ignore[arg-type]
            secret_token=secret,
            allowed_updates=app.dispatcher.resolve_used_update_types(),
        )

    app.dispatcher.startup.register(register_webhook)
    setup_application(web_app, app.dispatcher, bot=app.bot)
    return web_app


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def run_webhook(app: App) -> None:
    host, port = parse_listen(app.settings.webhook_listen)
    runner = await start_server(webhook_app(app), host, port)
    log.info("webhook mode: listening on %s:%s%s", host, port, webhook_path(app.settings.webhook_url or ""))
    try:
        await _wait_for_signal()
    finally:
        await runner.cleanup()  # runs the dispatcher's shutdown: the queue stops, the session closes
        await app.bot.session.close()


async def run_polling(app: App) -> None:
    monitoring = None
    if app.settings.metrics_port:
        monitoring = await start_server(monitoring_app(app), "0.0.0.0", app.settings.metrics_port)
        log.info("/healthz and /metrics on port %s", app.settings.metrics_port)
    # Telegram refuses getUpdates while a webhook is set (a bot that ran in webhook mode before).
    if (await app.bot.get_webhook_info()).url:
        log.info("removing the webhook: this bot now uses long polling")
        await app.bot.delete_webhook(drop_pending_updates=False)
    log.info("starting long polling")
    # aiogram stops polling on SIGINT/SIGTERM, then runs the shutdown handlers (the queue returns
    # a running job to the queue), then we close the session.
    try:
        await app.dispatcher.start_polling(app.bot, handle_signals=True, close_bot_session=True)
    finally:
        if monitoring is not None:
            await monitoring.cleanup()
        await app.bot.session.close()
