"""The cycle collector, set for a long-running server once its start-up is done.

After start-up a bot or worker process holds a few hundred thousand objects that live as long as it
does: modules, aiogram's types, pydantic schemas, SQLAlchemy mappers, Fluent bundles, loaded models.
CPython's full (generation 2) collection walks every one of them: in the bot that is about 0.2 s of a
busy event loop, every few hundred updates, a pause that lands on whichever users are waiting then.
``gc.freeze()`` moves what exists now into a permanent generation that collections skip (what the
``gc`` module documents for exactly this); objects made later are collected as before.

Each update also leaves a few dozen objects in reference cycles (its database session with its
identity map and the rows in it, the FSM and i18n contexts tied to the handler data), which only the
collector frees. With CPython's default, a young collection every 700 new container objects, that is
one every two or three prompts, and each walks every young object alive at that moment, under a burst
the state of all the updates in flight: about 15% of the event loop's time per prompt, measured
(benchmarks/RESULTS.md). A young collection every :data:`YOUNG_THRESHOLD` objects instead costs
half as much; the garbage waiting for it is a few megabytes at most.
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
