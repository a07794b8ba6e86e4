"""What the scenario modules share: one emulator and one real bot process per module, and user steps."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from playground.botproc import BotProcess, bot_env
from tests.e2e.conftest import E2E_BACKEND, TOKEN
from playground.emulator import TelegramEmulator
from playground.users import ScriptedUser, button_texts, has_text

# Generous: the machine running the suite may be busy; tiny diffusers models on a CPU are slower still.
WAIT = 30.0 if E2E_BACKEND == "fake" else 180.0


@dataclass
class World:
    emulator: TelegramEmulator
    bot: BotProcess
    data_dir: Path
    tmp: Path
    _next_user: int = 200_000

    def user(self, token: str = TOKEN, **kwargs: object) -> ScriptedUser:
        self._next_user += 1
        return self.emulator.user(token, user_id=self._next_user, **kwargs)

    def jobs(self, data_dir: Path | None = None) -> list[sqlite3.Row]:
        """The bot's job rows, read straight from its SQLite file."""
        db = sqlite3.connect(f"file:{(data_dir or self.data_dir) / 'bot.db'}?mode=ro", uri=True, timeout=10)
        db.row_factory = sqlite3.Row
        try:
            return db.execute("SELECT id, user_id, status, attempts, params FROM jobs ORDER BY id").fetchall()
        finally:
            db.close()


def models_env(backend: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """Settings for the generation backend: the diffusers one runs the tiny checkpoints on the CPU."""
    if backend == "fake":
        return {}
    models_dir = os.environ.get("E2E_MODELS_DIR") or str(request.getfixturevalue("tiny_models_dir"))
    return {"KANDINSKY_MODELS_DIR": models_dir, "GENERATION_DEVICE": "cpu"}


@contextlib.asynccontextmanager
async def open_world(
    tmp: Path, backend: str, request: pytest.FixtureRequest, **settings: object
) -> AsyncIterator[World]:
    """The emulator and a started ``python -m app``; the logs are printed (shown for a failed test)."""
    emulator = TelegramEmulator()
    emulator.add_bot(TOKEN)
    await emulator.start()
    env = bot_env(emulator, TOKEN, tmp / "data", backend=backend, **{**models_env(backend, request), **settings})
    world = World(emulator, BotProcess(emulator, TOKEN, env, tmp / "bot.log"), tmp / "data", tmp)
    try:
        await world.bot.start(ready_timeout=180)
        yield world
    finally:
        await world.bot.stop()  # a test may have replaced the process (restart)
        await emulator.stop()
        for log in sorted(tmp.glob("*.log")):
            print(f"---- {log.name} ----\n{log.read_text(errors='replace')[-20000:]}")
    assert not emulator.unsupported_calls, [c.method for c in emulator.unsupported_calls]


def is_photo(message: dict) -> bool:
    return "photo" in message


def largest(message: dict) -> tuple[int, int]:
    size = message["photo"][-1]
    return size["width"], size["height"]


async def open_settings(user: ScriptedUser) -> dict:
    await user.send_command("settings")
    return await user.wait_for(has_text("Settings"), WAIT)


async def choose(user: ScriptedUser, menu: dict, section: str, option: str) -> dict:
    """In the settings menu: open ``section``, pick ``option``; returns the menu shown again."""
    await user.press(menu, section)
    submenu = await user.wait_for(lambda m: m["message_id"] == menu["message_id"] and option in button_texts(m), WAIT)
    query = await user.press(submenu, option)
    assert (await user.wait_for_answer(query, WAIT))["text"] == "Saved."
    return await user.wait_for(lambda m: m["message_id"] == menu["message_id"] and "Settings" in m["text"], WAIT)


async def wait_idle(world: World, data_dir: Path | None = None, timeout: float = WAIT) -> list[sqlite3.Row]:
    """Until no job is queued, running or waiting for delivery."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = world.jobs(data_dir)
        if all(j["status"] not in ("queued", "running", "generated") for j in jobs):
            return jobs
        assert time.monotonic() < deadline, [dict(j) for j in jobs]
        await asyncio.sleep(0.2)
