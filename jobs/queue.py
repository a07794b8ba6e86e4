"""The job queue: handlers submit job ids, workers take them.

:class:`JobQueue` is the boundary. The embedded default runs one worker inside the bot process; the
distributed mode sends the same job ids to GPU worker processes instead, without touching handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from generation.backend import GenerationError
from jobs.delivery import SHUTDOWN_DELIVERY_GRACE_SECONDS
from jobs.finishing import FinishingLine, gpu_handed_over
from jobs.runner import BuiltRequest, JobRunner, Outcome, PreparedJob, job_batch_key
from storage.control import QueueControlRepository
from storage.models import Job
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
# Awaited before work that no user is waiting on right now (finishing and delivering results):
# returns when the updates being handled are answered, or after a bounded wait (bot/priority.py).
YieldFn = Callable[[], Awaitable[None]]
MAX_CONCURRENT_DELIVERIES = 8


# After a job arrives, the look-ahead waits this long for more before it reads the queue again.
AHEAD_SETTLE_SECONDS = 0.05

# With nothing queued, the worker reads the queue again this often even if no job's arrival woke it.
IDLE_RECHECK_SECONDS = 5.0


class EmbeddedQueue:
    """One GPU worker inside the bot process.

    It takes jobs oldest-first, round-robin across users; the pipeline itself runs in a worker
    thread (JobRunner), never on the event loop. The GPU never waits for the rest of the bot: while
    one job (or batch) generates, the requests of the next are built (photos downloaded, prompt
    beautified and checked) and the previous one is checked, encoded, stored and delivered. The
    next job is still picked (and claimed) only once the GPU is free, so a user who writes
    meanwhile is served in turn.

    Jobs that share a :func:`generation.backend.batch_key` (the model, size, steps) run as one batch
    of up to ``batch_max_jobs``, whoever sent them: the partners of the next job are the following
    jobs of the round-robin order with its key, so batching keeps the fairness. Generated-but-
    undelivered jobs are delivered again every ``delivery_retry_seconds``.

    ``answers_first``: awaited before a finished unit is checked, encoded and stored and before a
    result is delivered. The worker shares the bot's event loop (and its two CPU cores) with the
    handlers; under a burst of prompts the users who just wrote get their answers first, and the
    results follow a moment later. The GPU does not wait for it: generation goes on meanwhile.
    """

    def __init__(
        self,
        db: Database,
        runner: JobRunner,
        delivery_retry_seconds: float = 30.0,
        on_queue_moved: QueueMovedFn | None = None,
        max_attempts: int = 3,
        batch_max_jobs: int = 1,
        answers_first: YieldFn | None = None,
        shutdown_delivery_grace: float = SHUTDOWN_DELIVERY_GRACE_SECONDS,
    ) -> None:
        self.db = db
        self.shutdown_delivery_grace = shutdown_delivery_grace
        self.answers_first = answers_first
        self.runner = runner
        self.max_attempts = max_attempts  # a job started this often without finishing fails
        self.batch_max_jobs = max(1, batch_max_jobs)  # 1: every job runs alone
        self.delivery_retry_seconds = delivery_retry_seconds
        self.on_queue_moved = on_queue_moved
        runner.on_dequeued = self._dequeued
        self._wake = asyncio.Event()  # a job arrived, or /resume: the worker looks at the queue
        self._arrived = asyncio.Event()  # the same, for the look-ahead while the GPU works
        self._tasks: list[asyncio.Task[None]] = []
        # Finishing (safety check, PNG, store, delivery) runs beside the next generation.
        self._finishing = FinishingLine(on_done=self._update_idle)
        self._generating = False
        # Clear while the next unit is claimed (from the current unit's last step) until it is on the
        # GPU; set when none is coming. A finished unit's CPU work (check, PNG encoding) waits for it
        # (jobs.finishing.gpu_handed_over).
        self._handed_over = asyncio.Event()
        self._handed_over.set()
        self._queue_empty = False
        # Requests built ahead (photos, beautified prompt) for the jobs the GPU takes next.
        self._ahead: dict[int, asyncio.Task[BuiltRequest | None]] = {}
        # Jobs the pick has taken for the GPU. A look-ahead that read the queue before their claim
        # was committed still sees them queued: it must not build them again (a second LLM call).
        self._taken: set[int] = set()
        self._keys: dict[int, tuple[Any, ...] | None] = {}  # queued job -> its batch key
        # Results are sent beside the generation, not before the next job: a chat under flood
        # control (up to minutes) holds up its own delivery only. At most a few at once.
        self._deliveries: dict[int, asyncio.Task[None]] = {}  # job -> its delivery under way
        self._delivery_slots = asyncio.Semaphore(MAX_CONCURRENT_DELIVERIES)
        # One delivery at a time per chat: results arrive in order, and a chat's flood control
        # is met by one send, not several at once.
        self._chat_locks: dict[int, tuple[asyncio.Lock, int]] = {}  # chat -> (lock, deliveries using it)
        self._stopping = False
        self.idle = asyncio.Event()  # set while there is nothing to do (tests wait on it)

    async def submit(self, job_id: int) -> None:
        self._wake.set()
        self._arrived.set()

    async def cancel(self, job_id: int) -> None:
        self.runner.cancel(job_id)

    async def wake(self) -> None:
        self._wake.set()
        self._arrived.set()

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
        """Stop taking jobs; jobs being prepared or generated are interrupted and returned to the
        queue, jobs past the GPU finish; their deliveries get a few seconds, then what is left is
        delivered after the restart."""
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
        # Deliveries under way may end (a photo being uploaded is recorded as sent); those still
        # going after the grace are dropped: their jobs stay "generated" and are delivered after the
        # restart (at-least-once).
        if self._deliveries:
            await asyncio.wait(set(self._deliveries.values()), timeout=self.shutdown_delivery_grace)
        left = list(self._deliveries.values())
        for task in left:
            task.cancel()
        for task in left:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- choosing the next jobs -------------------------------------------------------------------
    async def _next_job_ids(self) -> tuple[list[int], set[int]]:
        """The next job, and its batch partners: the following jobs of the round-robin order that
        share its batch key (empty: nothing queued, or /pause); and the ids of all queued jobs."""
        async with self.db.session() as session:
            if (await QueueControlRepository(session).pause_state()).paused:  # /pause: queued jobs wait
                return [], set()
            order = await Repositories(session).jobs.round_robin_order()
        if not order:
            return [], set()
        queued = {job.id for job in order}
        key = self._batch_key(order[0]) if self.batch_max_jobs > 1 else None
        if key is None:
            return [order[0].id], queued
        unit = [order[0].id]
        for job in order[1:]:
            if len(unit) == self.batch_max_jobs:
                break
            if self._batch_key(job) == key:
                unit.append(job.id)
        for job_id in [j for j in self._keys if j not in queued]:  # started, cancelled: not asked again
            del self._keys[job_id]
        return unit, queued

    def _batch_key(self, job: Job) -> tuple[Any, ...] | None:
        """:func:`jobs.runner.job_batch_key`, once per job: a queued job's request does not change,
        and each pick (and each look-ahead) walks the queue."""
        if job.id not in self._keys:
            self._keys[job.id] = job_batch_key(job)
        return self._keys[job.id]

    async def _next_unit(self) -> list[PreparedJob] | None:
        """Wait for queued jobs, then claim and prepare the next one with its batch partners (with
        the requests built ahead while the GPU worked, where there are). None: the queue is stopping."""
        while not self._stopping:
            self._wake.clear()
            try:
                job_ids, _ = await self._next_job_ids()
            except Exception:
                log.exception("the worker could not read the queue")
                job_ids = []
            if not job_ids:
                self._queue_empty = True
                self._handed_over.set()  # nothing goes to the GPU: finishing need not wait
                self._update_idle()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=IDLE_RECHECK_SECONDS)
                continue
            self._queue_empty = False
            self.idle.clear()  # the positions behind move up as each start commits (_dequeued)
            self._taken.update(job_ids)
            prepared = await asyncio.gather(
                *(self.runner.prepare_built(job_id, self._ahead.pop(job_id, None)) for job_id in job_ids),
                return_exceptions=True,
            )
            unit = []
            for job_id, result in zip(job_ids, prepared):
                if isinstance(result, BaseException):
                    log.error("worker failed to prepare job %s", job_id, exc_info=result)
                elif result is not None:
                    unit.append(result)
            if unit:
                return unit
        return None

    async def _build_ahead(self, gpu_free: asyncio.Event) -> None:
        """While the GPU works: build the requests of the jobs it takes next, again whenever a job
        arrives. Nothing is claimed here: the next pick is made when the GPU is free, as fair as
        ever, and uses what was built for it (a build the pick passed over waits for its turn)."""
        while not gpu_free.is_set():
            self._arrived.clear()
            try:
                job_ids, queued = await self._next_job_ids()
            except Exception:
                log.warning("could not look ahead in the queue", exc_info=True)
                job_ids, queued = [], set(self._ahead) | self._taken
            for job_id in list(self._ahead):
                if job_id not in queued:  # cancelled, or claimed: what was built for it goes
                    self._ahead.pop(job_id).cancel()
            self._taken &= queued  # a taken job seen no longer queued is claimed for good
            for job_id in job_ids:
                if job_id not in self._ahead and job_id not in self._taken:
                    self._ahead[job_id] = asyncio.create_task(self.runner.build(job_id), name=f"build-{job_id}")
            # Until a job arrives or the GPU is free.
            waits = {asyncio.create_task(self._arrived.wait()), asyncio.create_task(gpu_free.wait())}
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waits:
                    waiter.cancel()
            if not gpu_free.is_set():
                # A burst of prompts is a stream of arrivals: read the queue once for all of them,
                # not once each (every read walks the whole queue).
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(gpu_free.wait(), AHEAD_SETTLE_SECONDS)

    def _update_idle(self) -> None:
        if self._queue_empty and not self._generating and not self._finishing:
            self.idle.set()

    # -- the pipeline ------------------------------------------------------------------------------
    async def _work_loop(self) -> None:
        """The GPU's loop: while one unit (a job or a batch) generates, the requests of the next are
        built and the previous unit is finished (checked, encoded, stored, delivered) beside it. As
        the unit's last step begins, the next unit is picked and claimed (``upcoming``), so that
        the GPU goes on at once, and the pick still sees the jobs that arrived meanwhile."""
        lookahead: asyncio.Task[None] | None = None
        upcoming: asyncio.Task[list[PreparedJob] | None] | None = None
        try:
            while not self._stopping:
                unit = await upcoming if upcoming is not None else await self._next_unit()
                upcoming = None
                if unit is None:
                    continue
                if self._stopping:  # claimed while the shutdown began: back to the queue
                    self.runner.interrupt([p.job_id for p in unit])
                if self._finishing.full:
                    self._handed_over.set()  # the finishing goes first now
                await self._finishing.room()  # finishing lags: let it catch up
                self._generating = True
                gpu_free = asyncio.Event()
                lookahead = asyncio.create_task(self._build_ahead(gpu_free), name="build-ahead")

                def near_end(gpu_free: asyncio.Event = gpu_free) -> None:
                    nonlocal upcoming
                    gpu_free.set()  # the look-ahead ends after its current pick (not awaited: the GPU is next)
                    if upcoming is None and not self._stopping:
                        self._handed_over.clear()  # this unit's finishing waits for the next one's start
                        upcoming = asyncio.create_task(self._next_unit(), name="claim-next")

                try:
                    outcomes = await self.runner.generate(unit, near_end, started=self._handed_over.set)
                except Exception:
                    log.exception("worker failed on jobs %s", [p.job_id for p in unit])
                    outcomes = [GenerationError("internal") for _ in unit]
                finally:
                    self._generating = False
                    gpu_free.set()
                self._finish_beside(unit, outcomes)
        finally:
            self._handed_over.set()  # no unit goes to the GPU from here on
            if upcoming is not None:  # claimed as the shutdown began: back to the queue
                if not self._stopping:  # the loop failed: stop waiting for jobs
                    upcoming.cancel()
                self.runner.interrupt_all()
                await asyncio.wait({upcoming})
                unit = None if upcoming.cancelled() else upcoming.result()
                if unit:
                    self.runner.interrupt([p.job_id for p in unit])
                    self._finish_beside(unit, await self.runner.generate(unit))
            if lookahead is not None:
                await asyncio.wait({lookahead})
            for task in self._ahead.values():
                task.cancel()
            if self._ahead:
                await asyncio.wait(set(self._ahead.values()))
            self._ahead.clear()
            await self._finishing.wait()

    def _finish_beside(self, unit: list[PreparedJob], outcomes: list[Outcome]) -> None:
        self._finishing.start([p.job_id for p in unit], lambda previous: self._finish(unit, outcomes, previous))

    async def _finish(self, unit: list[PreparedJob], outcomes: list[Outcome], previous: asyncio.Task[None] | None) -> None:
        await gpu_handed_over(self._handed_over)
        if self.answers_first is not None:
            await self.answers_first()
        results = await asyncio.gather(
            *(self.runner.finish(p, outcome) for p, outcome in zip(unit, outcomes)), return_exceptions=True
        )
        for p, result in zip(unit, results):
            if isinstance(result, BaseException):
                log.error("worker failed to finish job %s", p.job_id, exc_info=result)
        if previous is not None:  # the earlier unit's results go out first
            await asyncio.wait({previous})
        for p in unit:
            self._deliver_beside(p.job_id)

    def _deliver_beside(self, job_id: int) -> None:
        task = asyncio.create_task(self._deliver(job_id), name=f"deliver-{job_id}")
        self._deliveries[job_id] = task

        def done(task: asyncio.Task[None]) -> None:
            if self._deliveries.get(job_id) is task:
                del self._deliveries[job_id]

        task.add_done_callback(done)

    async def _deliver(self, job_id: int) -> None:
        if self.answers_first is not None:
            await self.answers_first()
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
        """Deliver again the generated jobs nobody is sending now (after a restart, or a passing
        failure), as tasks beside the rest: a shutdown gives them their grace like any delivery."""
        async with self.db.session() as session:
            job_ids = await Repositories(session).jobs.undelivered_ids()
        for job_id in job_ids:
            # Jobs still on the finishing line are delivered there, in their order.
            if job_id in self.runner.running_ids or self._finishing.holds(job_id) or job_id in self._deliveries:
                continue
            self._deliver_beside(job_id)
