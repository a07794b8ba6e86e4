"""The job queue: handlers submit job ids, workers take them.

:class:`JobQueue` is the boundary. The embedded default runs one worker inside the bot process; the
distributed mode sends the same job ids to GPU worker processes instead, without touching handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from jobs.runner import JobRunner
from storage.control import QueueControlRepository
from storage.repositories import Database, Repositories

log = logging.getLogger(__name__)


class JobQueue(Protocol):
    async def submit(self, job_id: int) -> None:
        """The job row is committed as queued: make sure a worker will take it."""
        ...

    async def cancel(self, job_id: int) -> None:
        """Stop the job at its next denoising step if it is running."""
        ...

    async def wake(self) -> None:
        """Taking jobs was resumed (/resume): look at the queue again now."""
        ...

    async def forget_results(self, job_ids: list[int]) -> None:
        """Delete these jobs' stored images wherever they are (/forgetface)."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


QueueMovedFn = Callable[[], Awaitable[None]]
MAX_CONCURRENT_DELIVERIES = 8


class EmbeddedQueue:
    """One GPU worker inside the bot process.

    It takes jobs oldest-first, round-robin across users, one at a time; the pipeline itself runs in
    a worker thread (JobRunner), never on the event loop. Generated-but-undelivered jobs are
    delivered again every ``delivery_retry_seconds``.
    """

    def __init__(
        self,
        db: Database,
        runner: JobRunner,
        delivery_retry_seconds: float = 30.0,
        on_queue_moved: QueueMovedFn | None = None,
        max_attempts: int = 3,
    ) -> None:
        self.db = db
        self.runner = runner
        self.max_attempts = max_attempts  # a job started this often without finishing fails
        self.delivery_retry_seconds = delivery_retry_seconds
        self.on_queue_moved = on_queue_moved
        runner.on_dequeued = self._dequeued
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # Results are sent beside the generation, not before the next job: a chat under flood
        # control (up to minutes) holds up its own delivery only. At most a few at once.
        self._deliveries: set[asyncio.Task[None]] = set()
        self._delivery_slots = asyncio.Semaphore(MAX_CONCURRENT_DELIVERIES)
        # One delivery at a time per chat: results arrive in order, and a chat's flood control
        # is met by one send, not several at once.
        self._chat_locks: dict[int, tuple[asyncio.Lock, int]] = {}  # chat -> (lock, deliveries using it)
        self._stopping = False
        self.idle = asyncio.Event()  # set while there is nothing to do (tests wait on it)

    async def submit(self, job_id: int) -> None:
        self._wake.set()

    async def cancel(self, job_id: int) -> None:
        self.runner.cancel(job_id)

    async def wake(self) -> None:
        self._wake.set()

    async def forget_results(self, job_ids: list[int]) -> None:
        # The embedded worker shares this process's result folder.
        await asyncio.to_thread(self.runner.results.delete, job_ids)

    async def recover(self) -> None:
        """After a restart: jobs left running are queued again, unless they were started
        ``max_attempts`` times already (a job that crashes the process fails, with a message to its
        user, instead of crashing it on every start); undelivered results are delivered."""
        async with self.db.session() as session:
            crashed = await Repositories(session).jobs.fail_crash_looping(self.max_attempts)
            requeued = await Repositories(session).jobs.requeue_running()
            await session.commit()
        if requeued:
            log.info("returned %d interrupted job(s) to the queue", requeued)
        for job in crashed:
            log.error("job %s failed: the process stopped during it %d times", job.id, job.attempts)
            await self.runner.notify_failed(job.id, "crashed")

    async def start(self) -> None:
        await self.recover()
        self._stopping = False
        self._tasks = [
            asyncio.create_task(self._work_loop(), name="embedded-worker"),
            asyncio.create_task(self._delivery_loop(), name="delivery-retry"),
        ]
        self._wake.set()

    async def stop(self) -> None:
        """Stop taking jobs; a running job is interrupted and returned to the queue."""
        self._stopping = True
        self.runner.interrupt_all()
        self._wake.set()
        for task in self._tasks:
            if task.get_name() == "delivery-retry":
                task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        # Deliveries still under way are dropped: their jobs stay "generated" and are delivered
        # after the restart (at-least-once).
        for task in list(self._deliveries):
            task.cancel()
        for task in list(self._deliveries):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _next_job_id(self) -> int | None:
        async with self.db.session() as session:
            if (await QueueControlRepository(session).pause_state()).paused:  # /pause: queued jobs wait
                return None
            job = await Repositories(session).jobs.next_round_robin()
            return job.id if job else None

    async def _work_loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                job_id = await self._next_job_id()
            except Exception:
                log.exception("the worker could not read the queue")
                job_id = None
            if job_id is None:
                self.idle.set()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=5.0)
                continue
            self.idle.clear()
            try:
                await self.runner.run(job_id, deliver=False)  # its start refreshes the positions behind it
            except Exception:
                log.exception("worker failed on job %s", job_id)
            self._deliver_beside(job_id)

    def _deliver_beside(self, job_id: int) -> None:
        task = asyncio.create_task(self._deliver(job_id), name=f"deliver-{job_id}")
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, job_id: int) -> None:
        async with self.db.session() as session:
            job = await Repositories(session).jobs.get(job_id)
            chat_id = job.chat_id if job is not None else 0
        lock, users = self._chat_locks.get(chat_id, (asyncio.Lock(), 0))
        self._chat_locks[chat_id] = (lock, users + 1)
        try:
            async with lock, self._delivery_slots:
                await self.runner.deliver(job_id)
        except Exception:
            log.exception("delivery of job %s failed", job_id)
        finally:
            lock, users = self._chat_locks[chat_id]
            if users == 1:
                del self._chat_locks[chat_id]
            else:
                self._chat_locks[chat_id] = (lock, users - 1)

    def _dequeued(self, job_id: int) -> None:
        """A job's start is committed: the positions behind it move up. (Refreshed after the commit,
        not before the run: a refresh that read the queue first would still count the starting job.)"""
        if self.on_queue_moved is not None:
            asyncio.create_task(self._safe_queue_moved())

    async def queue_moved(self) -> None:
        """Called by the job service when queued jobs were cancelled (positions behind them move up)."""
        if self.on_queue_moved is not None:
            asyncio.create_task(self._safe_queue_moved())

    async def _safe_queue_moved(self) -> None:
        try:
            assert self.on_queue_moved is not None
            await self.on_queue_moved()
        except Exception:
            log.warning("could not update queue positions", exc_info=True)

    async def _delivery_loop(self) -> None:
        while True:
            await self.redeliver()
            await asyncio.sleep(self.delivery_retry_seconds)

    async def redeliver(self) -> None:
        async with self.db.session() as session:
            job_ids = await Repositories(session).jobs.undelivered_ids()
        for job_id in job_ids:
            if job_id in self.runner.running_ids:
                continue
            await self._deliver(job_id)
