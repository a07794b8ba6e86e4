"""Fixtures of the end-to-end suite: the Telegram Bot API emulator on a free local port."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.e2e.botproc import BotProcess, bot_env
from tests.e2e.emulator import TelegramEmulator

# <digits>:<35 characters>, the shape of a real token (aiogram checks it).
TOKEN = "123456:TESTabcdefghijklmnopqrstuvwxyz012345"[: len("123456:") + 35]


@pytest.fixture
async def emulator() -> AsyncIterator[TelegramEmulator]:
    emu = TelegramEmulator()
    emu.add_bot(TOKEN)
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()
    # A real Bot API method the emulator does not emulate must not pass unnoticed.
    assert not emu.unsupported_calls, [c.method for c in emu.unsupported_calls]


# The generation backend of the bot process: "fake" by default; "diffusers" runs the tiny
# random-weight checkpoints in E2E_MODELS_DIR on the CPU (once the diffusers backend exists).
E2E_BACKEND = os.environ.get("E2E_BACKEND", "fake")


def backend_env() -> dict[str, str]:
    if E2E_BACKEND == "fake":
        return {}
    if importlib.util.find_spec("generation.diffusers_backend") is None:
        pytest.skip("E2E_BACKEND=diffusers needs generation.diffusers_backend")
    models_dir = os.environ.get("E2E_MODELS_DIR")
    if not models_dir:
        pytest.skip("E2E_BACKEND=diffusers needs E2E_MODELS_DIR (python -m generation.tiny DIR)")
    return {"KANDINSKY_MODELS_DIR": models_dir, "GENERATION_DEVICE": "cpu"}


StartBot = Callable[..., Awaitable[BotProcess]]


@pytest.fixture
async def start_bot(emulator: TelegramEmulator, tmp_path: Path) -> AsyncIterator[StartBot]:
    """Starts ``python -m bot`` against the emulator; settings overrides as keyword arguments.

    Every process started here shares one data directory and database, so a second start is a
    restart. All of them are stopped at the end of the test.
    """
    processes: list[BotProcess] = []

    async def start(**overrides: object) -> BotProcess:
        env = bot_env(emulator, TOKEN, tmp_path / "data", backend=E2E_BACKEND, **{**backend_env(), **overrides})
        process = BotProcess(emulator, TOKEN, env, tmp_path / "bot.log")
        processes.append(process)
        await process.start()
        return process

    yield start
    for process in processes:
        await process.stop()
    if processes:  # pytest shows this only for a failed test
        print(f"---- bot log ({tmp_path / 'bot.log'}) ----\n{processes[-1].log(20000)}")
