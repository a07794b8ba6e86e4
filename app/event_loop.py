"""The event loop a process runs on: uvloop where it is installed (Linux, macOS), else asyncio's own.

The bot's one event loop carries every update, Bot API call and database round trip of the process;
uvloop (libuv underneath, as aiogram's documentation suggests for production) does the loop's own
work (sockets, timers, callbacks from the database threads) in less time. In
benchmarks/bot_overhead.py it gave about 13% more updates a second (benchmarks/RESULTS.md).
``EVENT_LOOP=asyncio`` keeps asyncio's loop (to tell a fault apart, or where uvloop is missing).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


def run(main: Coroutine[Any, Any, T], loop: str = "uvloop") -> T:
    """``asyncio.run(main)`` on ``loop`` (``uvloop`` or ``asyncio``; uvloop not installed: asyncio)."""
    if loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            log.warning("uvloop is not installed: running on asyncio's event loop")
        else:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(main)
    return asyncio.run(main)
