"""Bot and worker processes for the scaling tests: start, wait until healthy, stop or kill, read logs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Process:
    """One ``python -m ...`` child with its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path, health_port: int) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.health_port = health_port
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        log = self.log_path.open("ab")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, *self.args, cwd=ROOT, env=self.env, stdout=log, stderr=asyncio.subprocess.STDOUT
            )
        finally:
            log.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def health(self) -> dict[str, Any] | None:
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(
                    f"http://127.0.0.1:{self.health_port}/healthz", timeout=aiohttp.ClientTimeout(total=5)
                ) as resp:
                    return await resp.json() if resp.status == 200 else None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            return None

    async def metrics(self) -> str:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{self.health_port}/metrics") as resp:
                assert resp.status == 200
                return await resp.text()

    async def wait_metric(self, name: str, value: float, timeout: float = 10.0, **labels: str) -> str:
        """The metrics text once the sample ``name{labels}`` has reached ``value``."""
        deadline = time.monotonic() + timeout
        while True:
            text = await self.metrics()
            if metric_value(text, name, **labels) >= value or time.monotonic() > deadline:
                assert metric_value(text, name, **labels) == value, (name, labels, text)
                return text
            await asyncio.sleep(0.1)

    async def wait_healthy(self, timeout: float = 120.0) -> dict[str, Any]:
        """Start-up takes a few seconds (imports), more on a busy machine."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise AssertionError(f"{self.name} exited with {self.proc and self.proc.returncode}:\n{self.tail()}")
            health = await self.health()
            if health is not None:
                return health
            await asyncio.sleep(0.2)
        raise AssertionError(f"{self.name} not healthy in {timeout}s:\n{self.tail()}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)

    async def stop(self, timeout: float = 20.0) -> None:
        if not self.running:
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    def tail(self, lines: int = 60) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"


def metric_value(text: str, name: str, **labels: str) -> float:
    """A sample's value from Prometheus text (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def base_env(**values: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "DATABASE_", "REDIS_", "WEBHOOK_"))}
    env.update({k: str(v) for k, v in values.items()})
    return env
