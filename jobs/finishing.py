"""Jobs past the GPU, finished beside the next generation.

Once a job (or a batch) has its images, the rest of its work (the output safety check, PNG encoding,
storing, delivering) is CPU and network work the GPU need not wait for. Both GPU loops, the embedded
queue and a distributed worker, hand it to a :class:`FinishingLine`: each unit's finishing runs as a
task that is given the task of the unit before it (results go out in the order they were made), and
the loop waits for room before the next generation when ``limit`` units are still being finished
(images do not pile up in memory when finishing is slower than the GPU).

A unit's finishing begins once the next unit is on the GPU (:func:`gpu_handed_over`): the check and
the PNG encoding, begun at once, slowed the next unit's claim and start (3 ms per image, 30-80 ms
per batch of four, measured with benchmarks/gpu_utilization.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

MAX_PENDING_FINISHES = 2  # units generated but not yet finished, before the GPU waits for them

# A finished unit's check and PNG encoding wait at most this long for the next unit to be on the GPU
# (:func:`gpu_handed_over`).
HANDOVER_WAIT_SECONDS = 0.2

# A unit's finishing, given the task finishing the unit before it (None: nothing is before it).
FinishFn = Callable[[asyncio.Task[None] | None], Awaitable[None]]


class FinishingLine:
    def __init__(self, limit: int = MAX_PENDING_FINISHES, on_done: Callable[[], None] | None = None) -> None:
        self.limit = limit
        self.on_done = on_done  # called after each unit's finishing ends
        self._tasks: dict[asyncio.Task[None], frozenset[int]] = {}  # finishing -> its jobs' ids
        self._last: asyncio.Task[None] | None = None

    def __bool__(self) -> bool:
        return bool(self._tasks)

    def holds(self, job_id: int) -> bool:
        """The job is being finished here."""
        return any(job_id in job_ids for job_ids in self._tasks.values())

    @property
    def full(self) -> bool:
        """:meth:`room` would wait."""
        return len(self._tasks) >= self.limit

    async def room(self) -> None:
        """Return once fewer than ``limit`` units are being finished."""
        while self.full:
            await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)

    def start(self, job_ids: Iterable[int], finish: FinishFn, name: str = "finish") -> None:
        task = asyncio.create_task(finish(self._last), name=name)  # type: ignore[arg-type]
        self._last = task
        self._tasks[task] = frozenset(job_ids)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        del self._tasks[task]
        if self._last is task:
            self._last = None
        if self.on_done is not None:
            self.on_done()

    async def wait(self, timeout: float | None = None) -> None:
        """Until every unit started so far is finished (or ``timeout``)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)


async def gpu_handed_over(*signals: asyncio.Event) -> None:
    """Return once any of ``signals`` is set (the next unit is on the GPU, or none is coming), or after
    :data:`HANDOVER_WAIT_SECONDS`: finishing is never held up for long."""
    if any(signal.is_set() for signal in signals):
        return
    waits = [asyncio.ensure_future(signal.wait()) for signal in signals]
    try:
        await asyncio.wait(waits, timeout=HANDOVER_WAIT_SECONDS, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
