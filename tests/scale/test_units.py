"""Pieces of the distributed mode that need no services: settings, models, metrics, listen addresses."""

from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter
from aiogram.methods import SendMessage

from app.worker import main, parse_models
from generation.backend import ModelId
from jobs.distributed import stream_name
from jobs.metrics import Metrics, MetricsRequestMiddleware, gpu_memory, parse_listen
from tests.conftest import make_settings
from tests.fakes import TOKEN, RecordingSession


def test_models_by_id_or_short_name():
    assert parse_models([]) == list(ModelId)
    assert parse_models(["kandinsky-3.1-flash", "2.2", "3.1-FLASH"]) == [ModelId.K31_FLASH, ModelId.K22]
    with pytest.raises(ValueError, match="unknown model 'sdxl'"):
        parse_models(["sdxl"])


def test_scaling_settings_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKER_MODELS", "kandinsky-2.2, kandinsky-3.1")
    monkeypatch.setenv("WEBHOOK_SECRET", "s3cret")
    settings = make_settings(tmp_path, redis_url="redis://r:6379/0")
    assert settings.worker_models == ["kandinsky-2.2", "kandinsky-3.1"]
    assert settings.webhook_secret is not None and settings.webhook_secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    assert stream_name(settings.redis_prefix, "kandinsky-2.2") == "kandinsky:jobs:kandinsky-2.2"


def test_worker_refuses_to_start_without_redis(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env
    with pytest.raises(SystemExit) as exc:
        main(["--models", "flash"])
    assert exc.value.code == 2
    assert "REDIS_URL is not set" in capsys.readouterr().err
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    with pytest.raises(SystemExit):
        main(["--models", "sdxl"])
    assert "unknown model 'sdxl'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0.0.0.0:8080", ("0.0.0.0", 8080)), (":9000", ("0.0.0.0", 9000)), ("8443", ("0.0.0.0", 8443)),
     ("[::1]:8080", ("::1", 8080)), ("10.0.0.5", ("10.0.0.5", 8080))],
)
def test_listen_addresses(value, expected):
    assert parse_listen(value) == expected


async def test_telegram_calls_errors_and_retries_are_counted():
    metrics = Metrics("test")
    session = RecordingSession()
    attempts = {"n": 0}

    def flaky(method):
        attempts["n"] += 1
        if attempts["n"] == 1:
            return TelegramRetryAfter(method=method, message="Too Many Requests: retry after 1", retry_after=1)
        if method.text == "bad":
            return TelegramBadRequest(method=method, message="Bad Request: chat not found")
        return None

    session.failures[SendMessage] = flaky

    async def retry_once(make_request, bot, method):  # stands for bot.retry's RetryMiddleware
        try:
            return await make_request(bot, method)
        except TelegramRetryAfter:
            return await make_request(bot, method)

    session.middleware(retry_once)
    session.middleware(MetricsRequestMiddleware(metrics))  # inside the retry: sees every attempt
    bot = Bot(TOKEN, session=session)
    await bot.send_message(1, "hello")
    with pytest.raises(TelegramBadRequest):
        await bot.send_message(1, "bad")

    def value(name: str, **labels: str) -> float:
        return metrics.registry.get_sample_value(name, labels) or 0.0

    assert value("kandinsky_telegram_requests_total", method="SendMessage") == 3
    assert value("kandinsky_telegram_retries_total", method="SendMessage") == 1
    assert value("kandinsky_telegram_errors_total", method="SendMessage", error="retry_after") == 1
    assert value("kandinsky_telegram_errors_total", method="SendMessage", error="TelegramBadRequest") == 1


def test_gpu_memory_without_torch_is_zero(monkeypatch):
    import sys

    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert gpu_memory() == [("none", 0)]


async def test_embedded_bot_serves_health_and_metrics(harness):
    """The embedded mode (no Redis) has /healthz and /metrics too (METRICS_PORT), generation times included."""
    import aiohttp

    from jobs.metrics import start_server
    from app.web import monitoring_app
    from tests.fakes import message_update

    await harness.feed(message_update("/start"))
    await harness.feed(message_update("timed in the bot process"))
    await harness.wait_jobs_settled()
    runner = await start_server(monitoring_app(harness.app), "127.0.0.1", 0)
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                assert resp.status == 200
                assert (await resp.json())["queue"] == "embedded"
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                text = await resp.text()
    finally:
        await runner.cleanup()
    assert 'kandinsky_generation_seconds_count{model="kandinsky-3.1"} 1.0' in text
    assert 'kandinsky_jobs{model="kandinsky-3.1",status="done"} 1.0' in text
    assert 'kandinsky_telegram_requests_total{method="SendPhoto"} 1.0' in text


def test_heartbeat_must_fit_in_the_lease(tmp_path):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="at most half of JOB_LEASE_SECONDS"):
        make_settings(tmp_path, job_lease_seconds=3, worker_heartbeat_seconds=2)
    assert make_settings(tmp_path, job_lease_seconds=4, worker_heartbeat_seconds=2).job_lease_seconds == 4
