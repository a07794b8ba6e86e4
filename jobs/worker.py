"""The GPU worker loop of the distributed mode (the process: ``python -m app.worker`` / ``kandinsky-worker``).

One process per GPU (``CUDA_VISIBLE_DEVICES``). It takes job ids from the Redis streams of the models
it serves (``--models`` / ``WORKER_MODELS``; all models by default), keeps those models loaded, runs
one job at a time on the GPU (or a batch: the jobs whose messages wait right behind it and share its
model, size and steps, up to ``BATCH_MAX_JOBS``) with the same :class:`jobs.runner.JobRunner` as
the embedded mode,
reports progress to the job's status message and sends the result itself through its own aiogram
``Bot`` (no dispatcher). ``/healthz`` and ``/metrics`` are served on ``--metrics-port`` / ``METRICS_PORT``.

The GPU does not wait for the rest: while it works, the requests of the jobs at the head of the
streams are built (photos, beautification: :meth:`Worker._build_ahead`); once a job's images are
made, the worker takes the next message while that job is finished (safety check, PNG, stored) and
delivered beside it (:class:`jobs.finishing.FinishingLine`: in order, a few at most). A message is
acknowledged only once its job is delivered: a worker that dies meanwhile leaves it to be taken over.

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
from sqlalchemy import select, text
from taskiq import Context, TaskiqDepends
from taskiq.acks import AcknowledgeType
from taskiq.kicker import AsyncKicker
from taskiq.receiver import Receiver

from generation.backend import ModelId
from jobs.claims import JobClaims
from jobs.delivery import SHUTDOWN_DELIVERY_GRACE_SECONDS
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
from jobs.finishing import FinishingLine, gpu_handed_over
from jobs.metrics import Metrics, gpu_memory
from jobs.positions import PositionRefresher
from jobs.runner import BuiltRequest, JobRunner, Outcome, PreparedJob, job_batch_key
from storage.control import QueueControlRepository
from storage.models import Job, JobStatus, User
from storage.repositories import Database

log = logging.getLogger("jobs.worker")

Ack = Callable[[], Awaitable[None]]
# While the GPU works, the heads of the streams are looked at this often for requests to build ahead.
AHEAD_POLL_SECONDS = 0.5


@dataclass
class Member:
    """A job of the unit a worker runs on the GPU (one job, or a batch), with its message's ack."""

    job_id: int
    before: str  # its status when its message was read
    ack: Ack
    prepared: PreparedJob | None = None
    outcome: Outcome | None = None
    failed: bool = False  # left unacknowledged: its message comes back after the idle timeout


@dataclass(frozen=True)
class WorkerConfig:
    """What the worker loop needs of the operator's settings (``app.config.Settings`` fills it)."""

    redis_prefix: str = "kandinsky"
    heartbeat_seconds: float = 10.0  # claim renewal and cancel check of the running job
    lease_seconds: float = 60.0  # a running job's claim (must fit the heartbeat twice)
    max_job_attempts: int = 3  # workers that died on one job before it fails
    delivery_retry_seconds: float = 30.0
    batch_max_jobs: int = 1  # queued jobs sharing model, size and steps that run as one batch


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
        self.current_jobs: list[int] = []  # on the GPU here (a batch, or one job)
        self.jobs_done = 0
        self.started = time.monotonic()
        self._tasks: list[asyncio.Task[Any]] = []
        # Jobs past the GPU being finished and delivered beside the next one.
        self._finishing = FinishingLine()
        # Clear from the end of a unit's GPU call until the next unit is on the GPU: the finished
        # unit's CPU work waits for that, or for the listener to find no message (gpu_handed_over).
        self._handed_over = asyncio.Event()
        self._handed_over.set()
        self._wake = asyncio.Event()  # /resume was announced
        # Requests built ahead (photos, beautified prompt) for the jobs at the head of the streams.
        self._ahead: dict[int, asyncio.Task[BuiltRequest | None]] = {}
        # While paused, the pause flag is read this often; /resume also wakes the worker at once.
        self.pause_poll_seconds = max(config.heartbeat_seconds, 5.0)

    # -- one message ------------------------------------------------------------------------------
    @property
    def current_job(self) -> int | None:
        """The job on the GPU here (the first of its batch)."""
        return self.current_jobs[0] if self.current_jobs else None

    async def process(self, job_id: int, ack: Ack) -> None:
        """Do what is left of a job, and ``ack`` its message once the job is finished with. Returns as
        soon as the GPU is done with it: the finishing and the delivery go on beside the next job.
        Not acknowledged: another live worker holds the job (the message is looked at again later),
        or something failed (it comes back after the idle timeout).

        A queued job takes the jobs behind it in its model's stream that share its batch key along
        (up to ``batch_max_jobs`` in all, :meth:`_partners`): they run as one batch, and each
        message is acknowledged once its own job is finished with."""
        if job_id in self.current_jobs or self._finishing.holds(job_id):
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
        if self._finishing.full:
            self._handed_over.set()  # the finishing goes first now
        await self._finishing.room()  # finishing lags behind the GPU: let it catch up
        unit = [Member(job_id, status, ack)]
        if status == JobStatus.QUEUED and model in self.models:  # (partners come from this worker's streams only)
            try:
                unit += await self._partners(job)
            except Exception:  # the job runs alone; messages taken meanwhile come back after the idle timeout
                log.warning("could not look for batch partners of job %s", job_id, exc_info=True)
        self.current_jobs = [m.job_id for m in unit]
        heartbeat = asyncio.create_task(self._keep_claims(self.current_jobs), name=f"heartbeat-{job_id}")
        try:
            prepared = await asyncio.gather(
                *(self.runner.prepare_built(m.job_id, self._ahead.pop(m.job_id, None)) for m in unit),
                return_exceptions=True,
            )
            for member, result in zip(unit, prepared):
                if isinstance(result, BaseException):  # left unacknowledged: it comes back later
                    log.error("job %s could not be prepared", member.job_id, exc_info=result)
                    member.failed = True
                else:
                    member.prepared = result
            ready = [m for m in unit if m.prepared is not None]
            gpu_free = asyncio.Event()
            lookahead = asyncio.create_task(self._build_ahead(gpu_free), name="build-ahead") if ready else None
            on_gpu = [m.prepared for m in ready if m.prepared is not None]
            try:
                outcomes = await self.runner.generate(on_gpu, started=self._handed_over.set) if on_gpu else []
            finally:
                gpu_free.set()
                if ready and not self.stopping:
                    self._handed_over.clear()
                if lookahead is not None:
                    await asyncio.wait({lookahead})  # it ends after its current look
            for member, outcome in zip(ready, outcomes):
                member.outcome = outcome
        except BaseException:
            await wait_closed(heartbeat)
            self._queue_moved()
            raise
        finally:
            self.current_jobs = []
        if all(m.failed for m in unit):  # nothing to finish; the messages come back after the idle timeout
            await wait_closed(heartbeat)
            self._queue_moved()
            return
        self._finishing.start(
            [m.job_id for m in unit],
            lambda previous: self._finish(unit, heartbeat, previous),
            name=f"finish-{job_id}",
        )

    async def _partners(self, lead: Job) -> list[Member]:
        """The jobs whose messages come next in the lead's stream, as far as they share its batch key
        (and are queued), read by this worker (XREADGROUP): they run in one batch with it. The
        stream's order is kept: a job that cannot join ends the look, and those behind it wait for
        their turn. Other workers of the stream that wait for work are left an even share of what
        matches."""
        room = self.config.batch_max_jobs - 1
        key = job_batch_key(lead) if room > 0 else None
        if key is None:
            return []
        stream = stream_name(self.config.redis_prefix, lead.model)
        next_ids = await self.broker.peek(stream, room)
        if not next_ids:
            return []
        async with self.db.session() as session:
            rows = {j.id: j for j in (await session.execute(select(Job).where(Job.id.in_(next_ids)))).scalars()}
        joinable: list[int] = []
        for job_id in next_ids:
            job = rows.get(job_id)
            if job is None or job.status != JobStatus.QUEUED or job_batch_key(job) != key:
                break
            joinable.append(job_id)
        if not joinable:
            return []
        # Workers of this stream that wait for work get their share: a batch on one GPU takes
        # longer than its jobs spread over idle ones.
        idle = await self.broker.idle_workers(stream)
        share = -(-(1 + len(joinable)) // (1 + idle))  # the lead and its partners, split evenly
        joining = set(joinable[: share - 1])
        if not joining:
            return []
        partners = []
        for job_id, message in await self.broker.take(stream, len(joining)):
            if job_id in joining:
                partners.append(Member(job_id, JobStatus.QUEUED, message.ack))
            else:  # another worker took the looked-at messages first: this one goes to the back
                log.info("job %s was taken in place of a batch partner; it is sent again", job_id)
                if job_id is not None:
                    await self._send_again(job_id, lead.model)
                await message.ack()
        return partners

    async def _build_ahead(self, gpu_free: asyncio.Event) -> None:
        """While the GPU works: build the requests of the jobs whose messages wait at the head of this
        worker's streams (photos downloaded, prompt beautified and checked), so that the GPU does not
        wait for them when their turn comes here. No message is read for this worker, no job
        claimed: a job another worker takes meanwhile is dropped from the builds at the next look."""
        while not gpu_free.is_set():
            try:
                heads = set()
                for stream in self.broker.streams:
                    heads.update(await self.broker.peek(stream, self.config.batch_max_jobs))
            except Exception:
                if cancel_requested():
                    raise asyncio.CancelledError from None
                log.warning("could not look ahead in the streams", exc_info=True)
                heads = set(self._ahead)
            for job_id in [j for j in self._ahead if j not in heads]:  # taken elsewhere, or cancelled
                self._ahead.pop(job_id).cancel()
            for job_id in heads:
                if job_id not in self._ahead:
                    self._ahead[job_id] = asyncio.create_task(self.runner.build(job_id), name=f"build-{job_id}")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(gpu_free.wait(), AHEAD_POLL_SECONDS)

    async def _finish(
        self, unit: list[Member], heartbeat: asyncio.Task[None], previous: asyncio.Task[None] | None
    ) -> None:
        """Check, encode and store a generated unit's jobs, deliver them after the unit before, then
        acknowledge each job's message (the claims are renewed until the jobs are stored)."""
        try:
            await gpu_handed_over(self._handed_over, self.broker.waiting)
            generated = [m for m in unit if m.prepared is not None]
            finished = await asyncio.gather(
                *(self.runner.finish(m.prepared, m.outcome) for m in generated), return_exceptions=True
            )
            for member, result in zip(generated, finished):
                if isinstance(result, BaseException):
                    log.error(
                        "job %s could not be finished; its message comes back after the idle timeout",
                        member.job_id,
                        exc_info=result,
                    )
                    member.failed = True
        finally:
            await wait_closed(heartbeat)
            self._queue_moved()  # finished (the estimated waits move) or back in the queue
        if previous is not None:  # the earlier unit's results go out first
            await asyncio.wait({previous})
        # A batch's results go to their chats side by side; a chat's own results, in order.
        chats: dict[object, list[Member]] = {}
        for member in unit:
            if not member.failed:  # (one that did not reach the GPU here goes alone: it may have nothing to send)
                chat = member.prepared.ctx.job.chat_id if member.prepared is not None else ("job", member.job_id)
                chats.setdefault(chat, []).append(member)
        await asyncio.gather(*(self._deliver_in_order(members) for members in chats.values()))

    async def _deliver_in_order(self, members: list[Member]) -> None:
        for member in members:
            try:
                await self.runner.deliver(member.job_id)
                await self._after_run(member.job_id, member.before)
                await member.ack()
            except Exception:
                log.exception(
                    "job %s could not be finished; its message comes back after the idle timeout", member.job_id
                )

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
            # A claim of this worker's own name is from an earlier life of it (the jobs it holds now
            # were turned away at the top of process()).
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

    async def _keep_claims(self, job_ids: list[int]) -> None:
        """Renew the claims on the running jobs and stop those their users cancelled."""
        interval = self.config.heartbeat_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                async with self.db.session() as session:
                    claims = JobClaims(session)
                    cancelled = [
                        job_id for job_id in job_ids if await claims.renew(job_id, self.name, self.config.lease_seconds)
                    ]
                    await session.commit()
            except Exception:
                if cancel_requested():
                    raise asyncio.CancelledError from None
                log.warning("could not renew the claims on jobs %s", job_ids, exc_info=True)
                continue
            for job_id in cancelled:
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

    async def _retry_deliveries(self, stop: asyncio.Event) -> None:
        """Results Telegram refused are sent again later (only those whose images are on this disk).
        Once ``stop`` is set the delivery under way may end (a shutdown waits a few seconds for it)
        and no other begins."""
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.delivery_retry_seconds)
            if stop.is_set():
                return
            try:
                async with self.db.session() as session:
                    job_ids = await JobClaims(session).deliverable_ids(self.name)
                for job_id in job_ids:
                    if stop.is_set():
                        return
                    # Jobs still on the finishing line are delivered there, in their order.
                    if job_id in self.runner.running_ids or self._finishing.holds(job_id):
                        continue
                    if not self.runner.result_paths(job_id):
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
            "current_jobs": list(self.current_jobs),
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
        retrying = asyncio.create_task(self._retry_deliveries(stop), name="delivery-retry")
        self._tasks = [asyncio.create_task(self._listen_control(), name="control"), retrying]
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
            for task in self._ahead.values():  # built for jobs this worker no longer takes
                task.cancel()
            self._ahead.clear()
            await wait_closed(stopper)
            # A retried delivery under way may end, as the finishing line's did.
            await asyncio.wait({retrying}, timeout=SHUTDOWN_DELIVERY_GRACE_SECONDS)
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
