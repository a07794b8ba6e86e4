"""Fixtures of the end-to-end suite: the Telegram Bot API emulator on a free local port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

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
