"""app.heap: the start-up heap is kept out of later collections, and later garbage is still collected."""

from __future__ import annotations

import gc
import weakref

import pytest

from app.heap import freeze_startup_heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cycle collector frees it


@pytest.fixture
def unfrozen():
    yield
    gc.unfreeze()  # the rest of the suite runs with the ordinary collector


def test_the_startup_heap_leaves_the_collected_generations(unfrozen) -> None:
    long_lived = Node()  # like a module, a schema, a loaded model: alive from start-up on
    frozen = freeze_startup_heap()
    assert frozen == gc.get_freeze_count()
    assert not any(obj is long_lived for obj in gc.get_objects())  # no generation holds it any more
    assert long_lived.me is long_lived


def test_garbage_made_after_the_freeze_is_still_collected(unfrozen) -> None:
    freeze_startup_heap()
    later = Node()
    gone = weakref.ref(later)
    del later
    gc.collect()
    assert gone() is None
