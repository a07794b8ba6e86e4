"""The bot's HTTP side: the webhook (several replicas behind a load balancer), ``/healthz``, ``/metrics``.

Webhook mode (``WEBHOOK_URL``): Telegram posts updates to the URL; every replica listens on
``WEBHOOK_LISTEN`` at the URL's path and accepts only requests that carry the secret in
``X-Telegram-Bot-Api-Secret-Token`` (aiogram's ``SimpleRequestHandler``; others get 401). The secret
is ``WEBHOOK_SECRET``, or, when the operator sets none, one derived from the bot token: the same on
every replica without coordination, unknown to anyone who does not hold the token, and registered
with ``setWebhook`` at start-up. ``/healthz`` and ``/metrics`` have their own listener in either mode
(``METRICS_HOST``, default 127.0.0.1, and ``METRICS_PORT``), behind ``METRICS_TOKEN`` when set.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import signal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web
from sqlalchemy import text

from app.config import Settings
from app.wiring import App
from jobs.metrics import add_routes, gpu_memory, monitoring_application, parse_listen, start_server

if TYPE_CHECKING:
    from handlers.webapp import WebAppDeps

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
    token = app.settings.metrics_token
    web_app = monitoring_application(token.get_secret_value() if token else None)
    assert app.metrics is not None
    add_routes(web_app, app.metrics, health_check(app), metrics_refresher(app))
    return web_app


async def start_monitoring(app: App) -> web.AppRunner | None:
    """``/healthz`` and ``/metrics`` on ``METRICS_HOST:METRICS_PORT``; None when no port is set."""
    if not app.settings.metrics_port:
        return None
    runner = await start_server(monitoring_app(app), app.settings.metrics_host, app.settings.metrics_port)
    log.info("/healthz and /metrics on %s:%s", app.settings.metrics_host, app.settings.metrics_port)
    return runner


def webhook_secret(settings: Settings) -> str:
    """``WEBHOOK_SECRET``, or a secret derived from the bot token (HMAC-SHA256, hex: a form Telegram
    accepts). Never none: a webhook without a secret would take updates from anyone."""
    if settings.webhook_secret is not None:
        return settings.webhook_secret.get_secret_value()
    token = settings.bot_token.get_secret_value().encode()
    return hmac.new(token, b"kandinsky-bot webhook secret", hashlib.sha256).hexdigest()


def webapp_deps(app: App) -> "WebAppDeps":
    from bot.i18n import translator
    from handlers.webapp import WebAppDeps

    return WebAppDeps(app.bot, app.db, app.jobs, app.notifier, translator(), app.settings.max_image_side)


def webhook_app(app: App) -> web.Application:
    settings = app.settings
    assert settings.webhook_url
    secret = webhook_secret(settings)
    if settings.webhook_secret is None:
        log.info("WEBHOOK_SECRET is not set: using a secret derived from the bot token")
    web_app = web.Application()
    if settings.webapp_url:  # the inpainting Mini App on the same server
        from handlers.webapp import add_routes as add_webapp_routes

        add_webapp_routes(web_app, webapp_deps(app))
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
    monitoring = await start_monitoring(app)
    try:
        await _wait_for_signal()
    finally:
        if monitoring is not None:
            await monitoring.cleanup()
        await runner.cleanup()  # runs the dispatcher's shutdown: the queue stops, the session closes
        await app.bot.session.close()


async def run_polling(app: App) -> None:
    monitoring = await start_monitoring(app)
    webapp = None
    if app.settings.webapp_url:
        from handlers.webapp import create_app as create_webapp

        host, port = parse_listen(app.settings.webapp_listen)
        webapp = await start_server(create_webapp(webapp_deps(app)), host, port)
        log.info("inpainting Mini App on %s:%s (public URL %s)", host, port, app.settings.webapp_url)
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
        if webapp is not None:
            await webapp.cleanup()
        await app.bot.session.close()
