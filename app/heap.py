"""The cycle collector, set for a long-running server once its start-up is done.

After start-up a bot or worker process holds a few hundred thousand objects that live as long as it
does: modules, aiogram's types, pydantic schemas, SQLAlchemy mappers, Fluent bundles, loaded models.
CPython's full (generation 2) collection walks every one of them: in the bot that is about 0.2 s of a
busy event loop, every few hundred updates, a pause that lands on whichever users are waiting then.
``gc.freeze()`` moves what exists now into a permanent generation that collections skip (what the
``gc`` module documents for exactly this); objects made later are collected as before.

A young collection runs every 700 new container objects by CPython's default: under a burst of
prompts about one every three prompts, each walking every young object alive at that moment, which is
the state of all the updates in flight. That was about a tenth of the event loop's time per prompt
(benchmarks/RESULTS.md); every :data:`YOUNG_THRESHOLD` objects it is half as much. Updates leave
next to no garbage in reference cycles (bot/i18n.py drops the one that held each update's
objects), so what waits for the rarer collections is small.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)

YOUNG_THRESHOLD = 10_000  # new container objects between young collections (CPython's default: 700)


def settle_startup_heap() -> int:
    """Collect once, keep everything alive now out of later collections, and collect the young
    generation less often; returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    frozen = gc.get_freeze_count()
    log.debug("%d start-up objects kept out of the cycle collector", frozen)
    return frozen
