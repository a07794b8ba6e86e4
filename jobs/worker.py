"""The GPU worker loop of the distributed mode (the process: ``python -m app.worker`` / ``kandinsky-worker``).

One process per GPU (``CUDA_VISIBLE_DEVICES``). It takes job ids from the Redis streams of the models
it serves (``--models`` / ``WORKER_MODELS``; all models by default), keeps those models loaded, runs
one job at a time on the GPU with the same :class:`jobs.runner.JobRunner` as the embedded mode,
reports progress to the job's status message and sends the result itself through its own aiogram
``Bot`` (no dispatcher). ``/healthz`` and ``/metrics`` are served on ``--metrics-port`` / ``METRICS_PORT``.

The GPU does not wait for the rest: once a job's images are made, the worker takes the next message
while that job is finished (safety check, PNG, stored) and delivered beside it
(:class:`jobs.finishing.FinishingLine`: in order, a few at most). A message is acknowledged only
once its job is delivered, as before: a worker that dies meanwhile leaves it to be taken over.

While a job runs the worker renews its claim on it every ``WORKER_HEARTBEAT_SECONDS`` and reads the
job's ``cancel_requested`` flag at the same time (the bot also announces cancellations on a Redis
channel, which stops the job at once). A worker killed in the middle of a job stops renewing: the
job's message is claimed by another worker after ``WORKER_IDLE_TIMEOUT``, which takes the job over
once its claim has expired (``JOB_LEASE_SECONDS``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import text
from taskiq import Context, TaskiqDepends
from taskiq.acks import AcknowledgeType
from taskiq.kicker import AsyncKicker
from taskiq.receiver import Receiver

from generation.backend import ModelId
from jobs.claims import JobClaims
from jobs.distributed import (
    TASK_NAME,
    WAKE,
    JobStreamBroker,
    cancel_requested,
    control_channel,
    forgotten_ids,
    forgotten_key,
    stream_name,
    wait_closed,
)
from jobs.events import JobContext
from jobs.finishing import FinishingLine
from jobs.metrics import Metrics, gpu_memory
from jobs.positions import PositionRefresher
from jobs.runner import JobRunner, Outcome, PreparedJob
from storage.control import QueueControlRepository
from storage.models import Job, JobStatus, User
from storage.repositories import Database

log = logging.getLogger("jobs.worker")

Ack = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class WorkerConfig:
    """What the worker loop needs of the operator's settings (``app.config.Settings`` fills it)."""

    redis_prefix: str = "kandinsky"
    heartbeat_seconds: float = 10.0  # claim renewal and cancel check of the running job
    lease_seconds: float = 60.0  # a running job's claim (must fit the heartbeat twice)
    max_job_attempts: int = 3  # workers that died on one job before it fails
    delivery_retry_seconds: float = 30.0


class Worker:
    def __init__(
        self,
        config: WorkerConfig,
        models: list[ModelId],
        db: Database,
        runner: JobRunner,
        broker: JobStreamBroker,
        redis: Redis,
        metrics: Metrics,
        name: str,
        positions: PositionRefresher | None = None,
    ) -> None:
        self.config = config
        self.models = models
        self.db = db
        self.runner = runner
        self.broker = broker
        self.redis = redis
        self.metrics = metrics
        self.name = name
        # The waiting jobs' positions: this worker learns first when a job starts or ends here.
        self.positions = positions
        if positions is not None:
            runner.on_dequeued = lambda _job_id: positions.request()
        self.stopping = False
        self.current_job: int | None = None
        self.jobs_done = 0
        self.started = time.monotonic()
        self._tasks: list[asyncio.Task[Any]] = []
        # Jobs past the GPU being finished and delivered beside the next one.
        self._finishing = FinishingLine()
        self._wake = asyncio.Event()  # /resume was announced
        # While paused, the pause flag is read this often; /resume also wakes the worker at once.
        self.pause_poll_seconds = max(config.heartbeat_seconds, 5.0)

    # -- one message ------------------------------------------------------------------------------
    async def process(self, job_id: int, ack: Ack) -> None:
        """Do what is left of a job, and ``ack`` its message once the job is finished with. Returns as
        soon as the GPU is done with it: the finishing and the delivery go on beside the next job.
        Not acknowledged: another live worker holds the job (the message is looked at again later),
        or something failed (it comes back after the idle timeout)."""
        if job_id == self.current_job or self._finishing.holds(job_id):
            # Its message came back to this very worker (unacknowledged past the idle timeout while
            # the job is finished): the job is in hand; the finishing acknowledges the message.
            return
        async with self.db.session() as session:
            job = await session.get(Job, job_id)
            if job is None:
                log.warning("job %s does not exist; dropping its message", job_id)
                await ack()
                return
            status, model, attempts = job.status, job.model, job.attempts
            claimed_by, expires = job.claimed_by, job.claim_expires_at
        if model not in self.models:
            log.warning("job %s is for %s, which this worker does not serve; it runs it anyway", job_id, model)
        if status == JobStatus.RUNNING:  # its message came back: was its worker lost?
            if not await self._take_over(job_id, attempts, claimed_by, expires):
                return
            status = JobStatus.QUEUED
        if status == JobStatus.QUEUED and not await self._wait_while_paused():
            await self._send_again(job_id, model)  # stopping while paused: leave the job to another worker
            await ack()
            return
        await self._finishing.room()  # finishing lags behind the GPU: let it catch up
        self.current_job = job_id
        heartbeat = asyncio.create_task(self._keep_claim(job_id), name=f"heartbeat-{job_id}")
        try:
            prepared = await self.runner.prepare(job_id)
            outcomes = await self.runner.generate([prepared]) if prepared is not None else []
        except BaseException:
            await wait_closed(heartbeat)
            self._queue_moved()
            raise
        finally:
            self.current_job = None
        self._finishing.start(
            [job_id],
            lambda previous: self._finish(job_id, status, prepared, outcomes, heartbeat, ack, previous),
            name=f"finish-{job_id}",
        )

    async def _finish(
        self,
        job_id: int,
        before: str,
        prepared: PreparedJob | None,
        outcomes: list[Outcome],
        heartbeat: asyncio.Task[None],
        ack: Ack,
        previous: asyncio.Task[None] | None,
    ) -> None:
        """Check, encode and store a generated job, deliver it after the one before, then acknowledge
        its message (the claim is renewed until the job is stored)."""
        try:
            try:
                if prepared is not None:
                    await self.runner.finish(prepared, outcomes[0])
            finally:
                await wait_closed(heartbeat)
                self._queue_moved()  # finished (the estimated waits move) or back in the queue
            if previous is not None:  # the earlier job's results go out first
                await asyncio.wait({previous})
            await self.runner.deliver(job_id)
            await self._after_run(job_id, before)
            await ack()
        except Exception:
            log.exception("job %s could not be finished; its message comes back after the idle timeout", job_id)

    def _queue_moved(self) -> None:
        if self.positions is not None:
            self.positions.request()

    async def _take_over(self, job_id: int, attempts: int, holder: str | None, expires: Any) -> bool:
        """A running job whose message came back: take it over if its worker is gone."""
        async with self.db.session() as session:
            claims = JobClaims(session)
            if attempts >= self.config.max_job_attempts:
                if await claims.fail_expired(job_id, "crashed"):
                    await session.commit()
                    log.error("job %s failed: its workers died %d times", job_id, attempts)
                    ctx = await self._context(job_id)
                    if ctx is not None:
                        await self.runner.events.failed(ctx, "crashed")
                    return True
                return False
            # A claim of this worker's own name is from an earlier life of it (one job at a time).
            if not await claims.requeue_expired(job_id, owner=self.name):
                log.info("job %s is still running on %s (claim until %s)", job_id, holder, expires)
                return False
            await session.commit()
        log.warning("job %s: its worker %s stopped answering; taking it over", job_id, holder)
        return True

    async def _wait_while_paused(self) -> bool:
        """Hold the job while an admin has paused the queue (/pause). False: the worker is stopping."""
        logged = False
        while not self.stopping:
            async with self.db.session() as session:
                if not (await QueueControlRepository(session).pause_state()).paused:
                    return True
            if not logged:
                log.info("the queue is paused; waiting for /resume")
                logged = True
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.pause_poll_seconds)
        return False

    async def _send_again(self, job_id: int, model: str) -> None:
        """A fresh message for the job, so that another worker starts it at once."""
        kicker: AsyncKicker[Any, Any] = AsyncKicker(TASK_NAME, self.broker, {})
        await kicker.with_labels(queue_name=stream_name(self.config.redis_prefix, model)).kiq(job_id)

    async def _context(self, job_id: int) -> JobContext | None:
        async with self.db.session() as session:
            job = await session.get(Job, job_id)
            if job is None:
                return None
            user = await session.get(User, job.user_id)
            return JobContext(job=job, locale=user.language if user else "en")

    async def _after_run(self, job_id: int, before: str) -> None:
        async with self.db.session() as session:
            job = await session.get(Job, job_id)
        if job is None:
            return
        if job.status == JobStatus.QUEUED and self.stopping:
            await self._send_again(job_id, job.model)  # interrupted by a shutdown
            return
        if job.status == before:  # a duplicate message: nothing was left to do
            return
        self.metrics.jobs_processed.labels(job.model, job.status).inc()
        self.jobs_done += 1

    async def _keep_claim(self, job_id: int) -> None:
        """Renew the claim on the running job and stop it if its user cancelled it."""
        interval = self.config.heartbeat_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                async with self.db.session() as session:
                    cancel = await JobClaims(session).renew(job_id, self.name, self.config.lease_seconds)
                    await session.commit()
            except Exception:
                if cancel_requested():
                    raise asyncio.CancelledError from None
                log.warning("could not renew the claim on job %s", job_id, exc_info=True)
                continue
            if cancel:
                self.runner.cancel(job_id)

    # -- background -------------------------------------------------------------------------------
    async def delete_forgotten(self) -> int:
        """Delete the stored images of every job /forgetface listed, also while this worker was offline."""
        listed = await self.redis.zrange(forgotten_key(self.config.redis_prefix), 0, -1)
        job_ids = [int(item) for item in listed if self.runner.results.folder(int(item)).exists()]
        if job_ids:
            await asyncio.to_thread(self.runner.results.delete, job_ids)
            log.info("deleted the stored images of %d forgotten job(s)", len(job_ids))
        return len(job_ids)

    async def _listen_control(self) -> None:
        """Cancellations (a job id), wake-ups after /resume and /forgetface's deletions from the bot."""
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(control_channel(self.config.redis_prefix))
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        data = message["data"].decode() if isinstance(message["data"], bytes) else str(message["data"])
                        if data == WAKE:
                            self._wake.set()
                        elif forgotten := forgotten_ids(data):  # /forgetface: images made from a face
                            await asyncio.to_thread(self.runner.results.delete, forgotten)
                            log.info("deleted the stored images of %d forgotten job(s)", len(forgotten))
                        elif data.isdigit() and self.runner.cancel(int(data)):
                            log.info("job %s cancelled by its user", data)
            except asyncio.CancelledError:
                raise
            except Exception:
                if cancel_requested():
                    raise asyncio.CancelledError from None
                log.warning("control channel lost; reconnecting", exc_info=True)
                await asyncio.sleep(1.0)

    async def _retry_deliveries(self) -> None:
        """Results Telegram refused are sent again later (only those whose images are on this disk)."""
        while True:
            await asyncio.sleep(self.config.delivery_retry_seconds)
            try:
                async with self.db.session() as session:
                    job_ids = await JobClaims(session).deliverable_ids(self.name)
                for job_id in job_ids:
                    if job_id in self.runner.running_ids or not self.runner.result_paths(job_id):
                        continue
                    await self.runner.deliver(job_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                if cancel_requested():
                    raise asyncio.CancelledError from None
                log.warning("delivery retry round failed", exc_info=True)

    async def health(self) -> dict[str, Any]:
        async with self.db.session() as session:
            await session.execute(text("SELECT 1"))
        await self.redis.ping()
        return {
            "status": "stopping" if self.stopping else "ok",
            "worker": self.name,
            "models": [str(m) for m in self.models],
            "current_job": self.current_job,
            "jobs_done": self.jobs_done,
            "uptime_seconds": round(time.monotonic() - self.started, 1),
        }

    async def refresh_metrics(self) -> None:
        self.metrics.set_gpu_memory(gpu_memory())
        await self.metrics.refresh_jobs(self.db)

    # -- the process --------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        self.broker.is_worker_process = True
        self.broker.state.worker = self  # the task reads the worker from taskiq's state
        receiver = Receiver(
            self.broker,
            max_async_tasks=1,  # one job at a time on the GPU
            max_prefetch=0,  # and no other message taken meanwhile: idle workers get the next one
            ack_type=AcknowledgeType.MANUAL,  # the task acknowledges once the job is finished with
            propagate_exceptions=False,
        )
        try:
            await self.delete_forgotten()
        except Exception:
            log.warning("could not read the forgotten jobs; they are deleted on the next start", exc_info=True)
        self._tasks = [
            asyncio.create_task(self._listen_control(), name="control"),
            asyncio.create_task(self._retry_deliveries(), name="delivery-retry"),
        ]
        finish = asyncio.Event()

        async def on_stop() -> None:
            await stop.wait()
            log.info("stopping: the running job (if any) goes back to the queue")
            self.stopping = True
            self.broker.closing.set()  # the listener ends; the receiver then waits for the job
            self.runner.interrupt_all()
            self._wake.set()
            await asyncio.sleep(60)
            finish.set()  # a last resort if the listener did not end

        stopper = asyncio.create_task(on_stop())
        try:
            await receiver.listen(finish)
        finally:
            await self._finishing.wait(timeout=60)  # jobs past the GPU are stored and delivered first
            await wait_closed(stopper)
            for task in self._tasks:
                await wait_closed(task)
            if self.positions is not None:  # a job handed back on the way out moved the others down
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.positions.idle(), timeout=10)
                await self.positions.close()
            try:
                await asyncio.wait_for(self.broker.shutdown(), timeout=10)
            except asyncio.TimeoutError:
                log.warning("the broker did not shut down within 10 s")
            log.info("worker %s stopped", self.name)


async def generate_job(job_id: int, context: Context = TaskiqDepends()) -> None:
    """The taskiq task: process one job id (the worker acknowledges the message once the job is
    finished with, unless another live worker holds it).

    An exception leaves the message unacknowledged, so it is redelivered after the idle timeout.
    """
    worker: Worker = context.state.worker
    await worker.process(int(job_id), context.ack)
