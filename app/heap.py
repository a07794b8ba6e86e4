"""The long-lived heap of a process, kept out of the cycle collector's full passes.

After start-up a bot or worker process holds a few hundred thousand objects that live as long as it
does: modules, aiogram's types, pydantic schemas, SQLAlchemy mappers, Fluent bundles, loaded models.
CPython's full (generation 2) collection walks every one of them: in the bot that is about 0.2 s of a
busy event loop, every few hundred updates, a pause that lands on whichever users are waiting then.
``gc.freeze()`` moves what exists now into a permanent generation that collections skip (what the
``gc`` module documents for exactly this); objects made later are collected as before.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def freeze_startup_heap() -> int:
    """Collect once, then keep everything alive now out of later collections; returns how many
    objects were frozen."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.debug("%d start-up objects kept out of the cycle collector", frozen)
    return frozen
