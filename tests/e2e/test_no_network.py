"""No network to Telegram at start: one clear line per try, growing waits, no traceback; the bot
starts polling as soon as Telegram answers."""

from __future__ import annotations

import asyncio
import re
import socket
import sys
from pathlib import Path

from playground.botproc import bot_env
from playground.emulator import TelegramEmulator
from tests.e2e.conftest import TOKEN


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_unreachable_telegram_is_one_line_per_try_then_the_bot_starts(tmp_path: Path) -> None:
    port = free_port()
    emulator = TelegramEmulator()
    emulator.add_bot(TOKEN)
    env = bot_env(emulator, TOKEN, tmp_path)
    env["TELEGRAM_API_URL"] = f"http://127.0.0.1:{port}"  # nobody listens there yet
    log_path = tmp_path / "bot.log"
    with open(log_path, "wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app", env=env, cwd=str(tmp_path), stdout=log, stderr=log
        )
    try:
        tries: list[str] = []
        for _ in range(300):  # until the second try was announced (1 s after the first)
            tries = [line for line in log_path.read_text().splitlines() if "Cannot reach Telegram" in line]
            if len(tries) >= 2:
                break
            await asyncio.sleep(0.1)
        assert len(tries) >= 2, log_path.read_text()
        waits = [int(re.search(r"trying again in (\d+) s", line).group(1)) for line in tries]
        assert waits[:2] == [1, 2]  # backoff
        assert f"127.0.0.1:{port}" in tries[0] and TOKEN.split(":")[1] not in log_path.read_text()

        await emulator.start(port=port)  # Telegram comes back
        await emulator.wait_for_call(lambda c: c.method == "getUpdates", timeout=30, in_flight=True)
        text = log_path.read_text()
        assert "Traceback" not in text, text
        assert "Telegram answers again" in text
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), 15)
        await emulator.stop()


async def test_a_token_telegram_refuses_is_one_line_and_exit_2(tmp_path: Path) -> None:
    emulator = TelegramEmulator()  # knows no bot: every token is answered 401
    await emulator.start()
    try:
        env = bot_env(emulator, TOKEN, tmp_path)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app", env=env, cwd=str(tmp_path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        await emulator.stop()
    assert process.returncode == 2, err.decode()
    assert "Telegram refused BOT_TOKEN" in err.decode() and "Traceback" not in err.decode()
