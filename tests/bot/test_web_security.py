"""The HTTP side under hostile requests: forged webhook updates, open monitoring endpoints (issue 14)."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import aiohttp
import pytest
from aiogram import Bot
from aiogram.methods import SendMessage, SetWebhook
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError

from app.wiring import build_app
from jobs.metrics import start_server
from app.web import start_monitoring, webhook_app
from generation.fake import FakeBackend
from storage.admin_repositories import AdminRepositories
from storage.migrate import upgrade_async
from storage.repositories import Repositories
from tests.conftest import make_settings
from tests.fakes import TOKEN, RecordingSession, message_update, user

OWNER_ID = 5_000_001
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_webhook_without_a_secret_setting_still_rejects_forged_updates(tmp_path: Path):
    settings = make_settings(tmp_path, webhook_url="https://bot.example.com/telegram/webhook", admin_ids=[OWNER_ID])
    assert settings.webhook_secret is None
    await upgrade_async(settings.db_url)
    session = RecordingSession()
    bot = Bot(TOKEN, session=session)
    app = build_app(settings, bot=bot, backend=FakeBackend())
    runner = await start_server(webhook_app(app), "127.0.0.1", 0)  # its start-up runs the dispatcher's
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/telegram/webhook"
    try:
        registered = session.of(SetWebhook)
        assert len(registered) == 1 and registered[0].secret_token, "setWebhook must carry a secret"
        secret = registered[0].secret_token
        assert len(secret) >= 32 and TOKEN.split(":")[1] not in secret

        forged = message_update("/pause we are closed", from_user=user(OWNER_ID, first_name="Owner"))
        body = json.dumps(forged.model_dump(mode="json", exclude_none=True))
        async with aiohttp.ClientSession(headers={"Content-Type": "application/json"}) as http:
            for headers in ({}, {SECRET_HEADER: "guessed"}, {SECRET_HEADER: ""}):
                async with http.post(url, data=body, headers=headers) as resp:
                    assert resp.status == 401, headers
            await asyncio.sleep(0.3)
            assert session.of(SendMessage) == []
            async with app.db.session() as db_session:
                assert not (await AdminRepositories(db_session).control.pause_state()).paused
                assert await Repositories(db_session).users.get(OWNER_ID) is None

            genuine = message_update("/start", from_user=user(7001))
            async with http.post(
                url, data=json.dumps(genuine.model_dump(mode="json", exclude_none=True)), headers={SECRET_HEADER: secret}
            ) as resp:
                assert resp.status == 200
        for _ in range(100):
            if session.of(SendMessage):
                break
            await asyncio.sleep(0.05)
        assert session.of(SendMessage) and session.of(SendMessage)[0].chat_id == 7001
    finally:
        await runner.cleanup()


def test_the_secret_is_the_same_on_every_replica_and_follows_the_setting(tmp_path: Path):
    from app.web import webhook_secret

    a = make_settings(tmp_path, webhook_url="https://x/y")
    b = make_settings(tmp_path / "other", webhook_url="https://x/y")
    assert webhook_secret(a) == webhook_secret(b)  # replicas need no coordination
    assert webhook_secret(make_settings(tmp_path, webhook_secret="given-by_operator1")) == "given-by_operator1"


@pytest.mark.parametrize("value", ["has spaces", "x" * 257, "semi;colon", "ключ"])
def test_a_webhook_secret_telegram_would_refuse_stops_the_start(tmp_path: Path, value: str):
    with pytest.raises(ValidationError, match="WEBHOOK_SECRET"):
        make_settings(tmp_path, webhook_secret=value)


# -- /healthz and /metrics ----------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path):
    return make_settings(tmp_path, metrics_port=_free_port(), metrics_token="scrape-me")


async def test_monitoring_binds_loopback_and_wants_the_token(harness, monkeypatch):
    assert make_settings(Path("/tmp")).metrics_host == "127.0.0.1"
    runner = await start_monitoring(harness.app)
    assert runner is not None
    host, port = runner.addresses[0][:2]
    try:
        assert host == "127.0.0.1"
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            for path in ("/healthz", "/metrics"):
                for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "scrape-me"}):
                    async with http.get(base + path, headers=headers) as resp:
                        assert resp.status == 401, (path, headers)
                        assert "kandinsky" not in await resp.text()
            auth = {"Authorization": "Bearer scrape-me"}
            async with http.get(base + "/healthz", headers=auth) as resp:
                assert resp.status == 200 and (await resp.json())["status"] == "ok"
            async with http.get(base + "/metrics", headers=auth) as resp:
                assert resp.status == 200 and "kandinsky_up" in await resp.text()

            def broken_session():
                raise OperationalError(
                    "SELECT 1", {}, Exception('password authentication failed for user "bot" at db.internal:5432')
                )

            monkeypatch.setattr(harness.app.db, "session", broken_session)
            async with http.get(base + "/healthz", headers=auth) as resp:
                assert resp.status == 503
                assert await resp.json() == {"status": "error", "role": "bot"}
    finally:
        await runner.cleanup()
