"""Fixtures of the end-to-end suite: the Telegram Bot API emulator on a free local port."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from playground.emulator import TelegramEmulator
from tests.fixtures_models import tiny_models_dir  # noqa: F401 - a session fixture, for the diffusers backend

# <digits>:<35 characters>, the shape of a real token (aiogram checks it).
TOKEN = "123456:TESTabcdefghijklmnopqrstuvwxyz012345"[: len("123456:") + 35]

# The generation backend of the bot process in test_scenarios.py: "fake" by default; "diffusers" runs
# them all on the tiny random-weight checkpoints on the CPU (E2E_MODELS_DIR, or written for the
# session). test_diffusers_scenarios.py always runs its scenarios on the tiny checkpoints.
E2E_BACKEND = os.environ.get("E2E_BACKEND", "fake")


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
