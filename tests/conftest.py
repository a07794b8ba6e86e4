"""Shared fixtures: a migrated SQLite file, the real Dispatcher on a recording session, the fake backend."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot
from aiogram.types import Update
from sqlalchemy import select

from app.config import Settings
from app.wiring import App, build_app
from generation.fake import FakeBackend
from prompting.guard import ContentGuard
from storage.migrate import upgrade_async
from storage.models import Job, JobStatus
from tests.fakes import TOKEN, RecordingSession


# Folders whose tests are all slow, and the marker each also gets (pyproject.toml registers them).
FOLDER_MARKERS = {"e2e": ("slow", "e2e"), "scale": ("slow", "scale"), "generation": ("slow",), "faceswap": ("slow",)}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests_dir = Path(__file__).parent
    for item in items:
        parts = Path(str(item.path)).relative_to(tests_dir).parts
        for name in FOLDER_MARKERS.get(parts[0], ()) if len(parts) > 1 else ():
            item.add_marker(getattr(pytest.mark, name))


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        bot_token=TOKEN,
        data_dir=tmp_path / "data",
        generation_backend="fake",
        fake_step_seconds=0.0,
        delivery_retry_seconds=0.2,
        progress_edit_interval=0.0,
        admin_ids=[],
        beautify_backend="off",  # no LLM download in tests; tests/safety inject their own beautifier
    )
    values.update(overrides)
    return Settings(_env_file=None, **values)


class BotHarness:
    """The real Dispatcher and worker, talking to a recording session instead of Telegram."""

    def __init__(self, app: App, session: RecordingSession, backend: FakeBackend) -> None:
        self.app = app
        self.session = session
        self.backend = backend
        self.bot: Bot = app.bot

    async def feed(self, update: Update) -> Any:
        return await self.app.dispatcher.feed_update(self.bot, update)

    async def jobs(self) -> list[Job]:
        async with self.app.db.session() as session:
            return list((await session.execute(select(Job).order_by(Job.id))).scalars().all())

    async def wait_jobs_settled(self, timeout: float = 60.0) -> list[Job]:
        """Wait until no job is queued, running or waiting for delivery (a generous limit: a loaded
        machine may take long to write a 4096 px PNG; a settled queue returns at once)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            jobs = await self.jobs()
            if all(j.status not in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.GENERATED) for j in jobs):
                return jobs
            await asyncio.sleep(0.02)
        raise AssertionError(f"jobs did not settle: {[(j.id, j.status) for j in await self.jobs()]}")

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await predicate() if asyncio.iscoroutinefunction(predicate) else predicate():
                return
            await asyncio.sleep(0.02)
        raise AssertionError("condition not met in time")


async def start_harness(
    settings: Settings, backend: FakeBackend | None = None, guard: ContentGuard | None = None
) -> BotHarness:
    await upgrade_async(settings.db_url)
    session = RecordingSession()
    backend = backend or FakeBackend()
    bot = Bot(TOKEN, session=session)
    app = build_app(settings, bot=bot, backend=backend, guard=guard)
    await app.dispatcher.emit_startup(bot=bot, dispatcher=app.dispatcher)
    return BotHarness(app, session, backend)


async def stop_harness(harness: BotHarness) -> None:
    await harness.app.dispatcher.emit_shutdown(bot=harness.bot, dispatcher=harness.app.dispatcher)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def harness(settings: Settings) -> AsyncIterator[BotHarness]:
    h = await start_harness(settings)
    try:
        yield h
    finally:
        await stop_harness(h)
