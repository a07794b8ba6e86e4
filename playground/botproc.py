"""The real bot process (``python -m app``) pointed at the emulator, as an operator would run it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from playground.emulator import TelegramEmulator

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def bot_env(
    emulator: TelegramEmulator, token: str, data_dir: Path, *, backend: str = "fake", **overrides: object
) -> dict[str, str]:
    """The environment of a bot process: settings as environment variables, like in production."""
    env = {
        key: value
        for key, value in os.environ.items()
        # Nothing from the developer's own bot configuration leaks into the test.
        if key in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "VIRTUAL_ENV")
    }
    env.update(
        {
            "PYTHONPATH": str(PROJECT_ROOT),
            "PYTHONUNBUFFERED": "1",
            "BOT_TOKEN": token,
            "TELEGRAM_API_URL": emulator.base_url,
            "DATA_DIR": str(data_dir),
            "DATABASE_URL": f"sqlite+aiosqlite:///{data_dir / 'bot.db'}",
            "GENERATION_BACKEND": backend,
            "FAKE_STEP_SECONDS": "0.01",
            "PROGRESS_EDIT_INTERVAL": "0.5",
            "DELIVERY_RETRY_SECONDS": "1",
            "MAX_PENDING_PER_USER": "10",
            "ADMIN_IDS": "1",
            "LOG_LEVEL": "INFO",
            "OMP_NUM_THREADS": "1",
        }
    )
    env.update({key.upper(): str(value) for key, value in overrides.items()})
    return env


class BotProcess:
    """One ``python -m app`` process; its output goes to ``log_path``."""

    def __init__(self, emulator: TelegramEmulator, token: str, env: Mapping[str, str], log_path: Path) -> None:
        self.emulator = emulator
        self.token = token
        self.env = dict(env)
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None
        self.started_at = 0.0

    async def start(self, ready_timeout: float = 60.0, argv: list[str] | None = None) -> None:
        """Start the process (``python -m app`` unless ``argv`` says otherwise) and wait until it
        long-polls the emulator."""
        self.started_at = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                *(argv or ["-m", "app"]),
                env=self.env,
                cwd=str(self.log_path.parent),  # no stray .env file is read
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        started_at = self.started_at
        waiting = asyncio.create_task(
            self.emulator.wait_for_call(
                lambda c: c.token == self.token and c.method == "getUpdates" and c.time >= started_at,
                timeout=ready_timeout,
                in_flight=True,  # polling: its first long poll may wait its whole timeout for an update
            )
        )
        exited = asyncio.create_task(self.process.wait())
        done, _ = await asyncio.wait({waiting, exited}, return_when=asyncio.FIRST_COMPLETED)
        if exited in done:
            waiting.cancel()
            raise RuntimeError(f"the bot exited with {self.process.returncode} on start:\n{self.log()}")
        exited.cancel()
        await waiting  # raises TimeoutError with the log below if the bot never polled

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, like a crash or an OOM kill."""
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()

    async def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait (the graceful shutdown path); SIGKILL if it hangs."""
        if not self.running:
            return self.process.returncode if self.process else None
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except asyncio.TimeoutError:
            await self.kill()
            raise AssertionError(f"the bot did not stop within {timeout}s on SIGTERM:\n{self.log()}") from None

    def log(self, tail: int = 8000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except FileNotFoundError:
            return ""
