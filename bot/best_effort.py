"""Marks Telegram calls whose failure does not matter (progress edits).

The session's retry middleware reads :data:`BEST_EFFORT`: a throttled best-effort call is dropped,
not retried, so progress edits never hold up results under Telegram's rate limits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

BEST_EFFORT: ContextVar[bool] = ContextVar("telegram_best_effort", default=False)


@contextlib.contextmanager
def best_effort() -> Iterator[None]:
    token = BEST_EFFORT.set(True)
    try:
        yield
    finally:
        BEST_EFFORT.reset(token)
