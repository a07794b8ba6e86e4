"""app.event_loop: the processes run on uvloop when it is there, on asyncio's loop when asked or when not."""

from __future__ import annotations

import asyncio
import logging
import sys

import uvloop

from app import event_loop


async def running_loop() -> type:
    await asyncio.sleep(0)
    await asyncio.to_thread(lambda: None)  # the database drivers answer from threads
    return type(asyncio.get_running_loop())


def test_uvloop_by_default():
    assert event_loop.run(running_loop()) is uvloop.Loop


def test_asyncio_when_asked():
    loop = event_loop.run(running_loop(), "asyncio")
    assert loop is not uvloop.Loop and issubclass(loop, asyncio.BaseEventLoop)


def test_asyncio_when_uvloop_is_missing(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` raises ImportError
    with caplog.at_level(logging.WARNING, logger="app.event_loop"):
        loop = event_loop.run(running_loop())
    assert loop is not uvloop.Loop
    assert "uvloop is not installed" in caplog.text
