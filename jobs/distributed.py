"""The distributed job queue: job ids go to GPU worker processes through taskiq Redis streams.

The bot writes the job row (as in the embedded mode) and sends only its id, as a taskiq message to the
stream of the job's model (``<prefix>:jobs:<model>``), so a worker started for some models only ever
reads their streams and never swaps models in and out. Workers (``app.worker``) read one
message at a time and acknowledge it when the job is finished; a message whose worker died stays
pending in the consumer group and is claimed by another worker after ``idle_timeout``. The job row
decides what is left to do (jobs.claims, jobs.runner), so a message delivered twice never
generates a finished job again nor sends its result twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from typing import Any

from redis.asyncio import Redis, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import select
from taskiq import AckableMessage
from taskiq.kicker import AsyncKicker
from taskiq_redis import RedisStreamBroker

from generation.backend import GenerationError, GenerationRequest, ModelId, ProgressFn
from generation.styles import MODELS
from jobs.positions import PositionRefresher
from storage.models import Job, JobStatus
from storage.repositories import Database

log = logging.getLogger(__name__)

TASK_NAME = "kandinsky.generate"
CONSUMER_GROUP = "gpu-workers"


def stream_name(prefix: str, model: str) -> str:
    """The stream a model's jobs go to."""
    return f"{prefix}:jobs:{model}"


FORGET = "forget:"  # control message: "forget:1,2,3", delete these jobs' stored images


def forget_message(job_ids: list[int]) -> str:
    return FORGET + ",".join(str(int(job_id)) for job_id in job_ids)


def forgotten_ids(message: str) -> list[int]:
    """The job ids of a :func:`forget_message` (empty for any other message)."""
    if not message.startswith(FORGET):
        return []
    return [int(part) for part in message[len(FORGET):].split(",") if part.isdigit()]


# Forgotten job ids stay listed this long, so a worker that was offline when /forgetface was sent
# still deletes those pictures when it starts (longer than any result is kept).
FORGOTTEN_KEEP_SECONDS = 30 * 24 * 3600


def forgotten_key(prefix: str) -> str:
    """Sorted set of forgotten job ids (score: when), read by every worker as it starts."""
    return f"{prefix}:forgotten"


def control_channel(prefix: str) -> str:
    """Pub/sub channel from the bot to the workers: a cancelled job's id, or ``wake`` after /resume."""
    return f"{prefix}:control"


WAKE = "wake"


def idle_key(stream: str) -> str:
    """Sorted set of the workers of a stream that wait for work (score: when last seen waiting)."""
    return f"{stream}:idle"


# A worker waiting for work says so once a poll round (``poll_seconds``, one by default); a mark
# older than this is a worker that stopped or died.
IDLE_FRESH_SECONDS = 5.0


def all_streams(prefix: str, models: Iterable[str] = MODELS) -> list[str]:
    return [stream_name(prefix, str(m)) for m in models]


class JobStreamBroker(RedisStreamBroker):
    """taskiq's :class:`RedisStreamBroker`, made for GPU workers.

    - It reads the streams of several models, strictly one message at a time (``XREADGROUP COUNT 1``
      on one stream after another; XREADGROUP over several streams would take one from each). The
      worker then takes the batch partners of that message's job from its stream itself
      (:meth:`peek`, :meth:`take`).
    - It claims messages of dead workers (``XAUTOCLAIM`` after ``idle_timeout``) on every round,
      also while the streams are quiet: the stock ``listen`` only looks for them after it received a
      new message, so a job whose worker died would wait for the next job to arrive.
    - An acknowledged message is deleted, so a stream's length is its backlog.
    - Consumer groups start at the beginning of a stream (id ``0``): jobs sent before the first
      worker ever started are not skipped.
    """

    def __init__(
        self,
        url: str,
        streams: list[str],
        *,
        idle_timeout: float = 900.0,
        poll_seconds: float = 1.0,
        consumer_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        if not streams:
            raise ValueError("a JobStreamBroker needs at least one stream")
        super().__init__(
            url,
            queue_name=streams[0],
            consumer_group_name=CONSUMER_GROUP,
            consumer_name=consumer_name,
            consumer_id="0",
            xread_block=int(poll_seconds * 1000),
            idle_timeout=int(idle_timeout * 1000),
            unacknowledged_batch_size=1,
            xread_count=1,
            additional_streams={s: ">" for s in streams[1:]},
            **kwargs,
        )
        self.streams = list(streams)
        self.poll_seconds = poll_seconds
        self._rotation = 0
        self._idle = False  # this worker is listed as waiting for work (:meth:`_say_idle`)
        self.waiting = asyncio.Event()  # the listener found no message and waits for one
        # Set to stop listening: the listener returns within ``poll_seconds`` instead of being
        # cancelled in the middle of a Redis command.
        self.closing = asyncio.Event()

    def _ack_generator(self, id: str, queue_name: str) -> Callable[[], Awaitable[None]]:  # noqa: A002
        async def _ack() -> None:
            async with Redis(connection_pool=self.connection_pool) as conn:
                async with conn.pipeline(transaction=True) as pipe:
                    pipe.xack(queue_name, self.consumer_group_name, id)
                    pipe.xdel(queue_name, id)
                    await pipe.execute()

        return _ack

    def _message(self, stream: Any, msg_id: Any, fields: dict[bytes, bytes]) -> AckableMessage:
        stream = _text(stream)
        return AckableMessage(data=fields[b"data"], ack=self._ack_generator(id=msg_id, queue_name=stream))

    async def _reclaim_one(self, conn: Redis) -> AckableMessage | None:
        """A message some worker took but did not acknowledge within ``idle_timeout``."""
        for stream in self.streams:
            _next, claimed, *_deleted = await conn.xautoclaim(
                stream,
                self.consumer_group_name,
                self.consumer_name,
                min_idle_time=self.idle_timeout,
                start_id="0-0",
                count=1,
            )
            for msg_id, fields in claimed:
                if fields:  # None: the entry was deleted meanwhile
                    log.info("reclaimed message %s of %s from a silent worker", msg_id, stream)
                    return self._message(stream, msg_id, fields)
        return None

    async def _read_one(self, conn: Redis) -> AckableMessage | None:
        """One new message, the streams taken in turn so that no model starves the others."""
        count = len(self.streams)
        for i in range(count):
            stream = self.streams[(self._rotation + i) % count]
            fetched = await conn.xreadgroup(
                self.consumer_group_name, self.consumer_name, {stream: ">"}, count=1, noack=False
            )
            for _stream, messages in fetched or []:
                for msg_id, fields in messages:
                    self._rotation = (self._rotation + i + 1) % count
                    return self._message(stream, msg_id, fields)
        return None

    async def _say_idle(self, conn: Redis, idle: bool) -> None:
        """This worker waits for work (or no longer does), in each of its streams' idle sets."""
        if not idle and not self._idle:  # not listed: nothing to take back
            return
        self._idle = idle
        async with conn.pipeline(transaction=False) as pipe:
            for stream in self.streams:
                if idle:
                    pipe.zadd(idle_key(stream), {self.consumer_name: time.time()})
                else:
                    pipe.zrem(idle_key(stream), self.consumer_name)
            await pipe.execute()

    async def _say_busy(self, conn: Redis) -> None:
        """:meth:`_say_idle` False, best effort: a mark left behind goes stale in a few seconds."""
        with contextlib.suppress(RedisConnectionError, RedisTimeoutError):
            await self._say_idle(conn, False)

    async def idle_workers(self, stream: str) -> int:
        """How many other workers of ``stream`` wait for work now (seen waiting in the last few seconds)."""
        async with Redis(connection_pool=self.connection_pool) as conn:
            waiting = await conn.zrangebyscore(idle_key(stream), time.time() - IDLE_FRESH_SECONDS, "+inf")
        return sum(1 for name in waiting if _text(name) != self.consumer_name)

    def job_id(self, data: bytes) -> int | None:
        """The job id a message's data carries (None: not one of ours)."""
        try:
            return int(self.formatter.loads(data).args[0])
        except Exception:  # noqa: BLE001 - whatever does not parse is left to the receiver
            return None

    async def peek(self, stream: str, count: int) -> list[int]:
        """The job ids of the next ``count`` messages of ``stream`` that no worker has taken yet, in
        order, without taking them."""
        async with Redis(connection_pool=self.connection_pool) as conn:
            groups = await conn.xinfo_groups(stream)
            last = next((g["last-delivered-id"] for g in groups if _text(g["name"]) == self.consumer_group_name), None)
            if last is None:
                return []
            entries = await conn.xrange(stream, min=f"({_text(last)}", max="+", count=count)
        ids = [self.job_id(fields.get(b"data", b"")) for _msg_id, fields in entries if fields]
        return [job_id for job_id in ids if job_id is not None]

    async def take(self, stream: str, count: int) -> list[tuple[int | None, AckableMessage]]:
        """Up to ``count`` new messages of ``stream``, taken by this worker at once (no wait), with
        their job ids."""
        async with Redis(connection_pool=self.connection_pool) as conn:
            fetched = await conn.xreadgroup(
                self.consumer_group_name, self.consumer_name, {stream: ">"}, count=count, noack=False
            )
        messages = [self._message(stream, msg_id, fields) for _s, entries in fetched or [] for msg_id, fields in entries]
        return [(self.job_id(message.data), message) for message in messages]

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        async with Redis(connection_pool=self.connection_pool) as conn:
            while not self.closing.is_set():
                # A cancellation can get lost inside the Redis client: redis-py sends commands
                # through asyncio.wait_for, which before Python 3.12 drops a cancellation that comes
                # as the command finishes. The listener would then poll on for ever in a task that
                # its reader (taskiq's receiver on shutdown, asyncio.wait_for) waits for without a
                # limit. So the loop looks at the task's own state as well.
                if cancel_requested():
                    raise asyncio.CancelledError
                try:
                    message = await self._reclaim_one(conn) or await self._read_one(conn)
                    if message is None:
                        self.waiting.set()
                        await self._say_idle(conn, True)
                        # Nothing to do: wait for a new entry on any of the streams without taking
                        # it (XREAD, not XREADGROUP), then take it one at a time above.
                        await conn.xread({s: "$" for s in self.streams}, count=1, block=self.block)
                        continue
                except (RedisConnectionError, RedisTimeoutError) as exc:  # Redis restarts: wait for it
                    if cancel_requested():  # the client's error stands for the cancellation
                        raise asyncio.CancelledError from None
                    log.warning("Redis is unreachable (%s); retrying", exc)
                    await asyncio.sleep(self.poll_seconds)
                    continue
                except ResponseError as exc:
                    if "NOGROUP" not in str(exc):
                        raise
                    # A Redis without persistence restarted empty: declare the groups again
                    # (the bot's orphan sweep sends the queued jobs again).
                    log.warning("the consumer groups are gone (%s); declaring them again", exc)
                    await self._declare_consumer_group()
                    continue
                self.waiting.clear()
                await self._say_busy(conn)
                yield message
            await self._say_busy(conn)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def create_kicker_broker(redis_url: str, prefix: str) -> JobStreamBroker:
    """The bot's side: sends to every model's stream (and declares their consumer groups)."""
    return JobStreamBroker(redis_url, all_streams(prefix))


class DistributedQueue:
    """:class:`jobs.queue.JobQueue` for the distributed mode: the bot side."""

    def __init__(
        self,
        db: Database,
        broker: JobStreamBroker,
        redis: Redis,
        prefix: str,
        sweep_seconds: float = 60.0,
        positions: PositionRefresher | None = None,
    ) -> None:
        self.db = db
        self.broker = broker
        self.redis = redis
        self.prefix = prefix
        self.sweep_seconds = sweep_seconds
        # The queue positions of waiting jobs, refreshed when this process cancels one (the GPU
        # workers refresh them when jobs start and end).
        self.positions = positions
        self._sweeper: asyncio.Task[None] | None = None

    async def submit(self, job_id: int) -> None:
        async with self.db.session() as session:
            model = (await session.execute(select(Job.model).where(Job.id == job_id))).scalar_one()
        await self.send(job_id, model)

    async def send(self, job_id: int, model: str) -> None:
        kicker: AsyncKicker[Any, Any] = AsyncKicker(TASK_NAME, self.broker, {})
        await kicker.with_labels(queue_name=stream_name(self.prefix, model)).kiq(job_id)

    async def cancel(self, job_id: int) -> None:
        # JobService has already set cancel_requested in the database, which the job's worker checks
        # on every heartbeat; the announcement makes the running worker stop at its next step.
        await self.redis.publish(control_channel(self.prefix), str(job_id))

    async def queue_moved(self) -> None:
        """Called by the job service when queued jobs were cancelled (positions behind them move up)."""
        if self.positions is not None:
            self.positions.request()

    async def wake(self) -> None:
        # /resume: workers waiting out a /pause (it lives in the database) look again at once.
        await self.redis.publish(control_channel(self.prefix), WAKE)

    async def forget_results(self, job_ids: list[int]) -> None:
        # /forgetface: each GPU worker deletes the images of these jobs from its own disk: the running
        # ones at once (pub/sub), the ones offline now when they next start (the sorted set).
        if job_ids:
            now = time.time()
            await self.redis.zadd(forgotten_key(self.prefix), {str(int(job_id)): now for job_id in job_ids})
            await self.redis.zremrangebyscore(forgotten_key(self.prefix), 0, now - FORGOTTEN_KEEP_SECONDS)
            await self.redis.publish(control_channel(self.prefix), forget_message(job_ids))

    async def start(self) -> None:
        await self.broker.startup()
        await self.resubmit_orphans()
        self._sweeper = asyncio.create_task(self._sweep(), name="orphan-sweep")

    async def stop(self) -> None:
        await wait_closed(self._sweeper)
        self._sweeper = None
        if self.positions is not None:
            await self.positions.close()
        await self.broker.shutdown()
        await self.redis.aclose()

    async def _sweep(self) -> None:
        """A send that failed (Redis was unreachable) is made up for without a restart."""
        while True:
            await asyncio.sleep(self.sweep_seconds)
            try:
                await self.resubmit_orphans()
            except Exception:
                if cancel_requested():
                    raise asyncio.CancelledError from None
                log.warning("could not look for queued jobs without a message", exc_info=True)

    async def stream_job_ids(self) -> set[int]:
        """Ids of the jobs that have a message in a stream (not yet acknowledged)."""
        ids: set[int] = set()
        for stream in all_streams(self.prefix):
            for _msg_id, fields in await self.redis.xrange(stream):
                job_id = self.broker.job_id(fields.get(b"data", b"")) if fields else None
                if job_id is not None:
                    ids.add(job_id)
        return ids

    async def resubmit_orphans(self) -> int:
        """Queued jobs without a message (the bot stopped between the commit and the send): send them.

        A duplicate message does no harm: the job row decides what is left to do.
        """
        async with self.db.session() as session:
            queued = (
                await session.execute(select(Job.id, Job.model).where(Job.status == JobStatus.QUEUED).order_by(Job.id))
            ).all()
        if not queued:
            return 0
        present = await self.stream_job_ids()
        orphans = [(job_id, model) for job_id, model in queued if job_id not in present]
        for job_id, model in orphans:
            await self.send(job_id, model)
        if orphans:
            log.info("sent %d queued job(s) that had no message", len(orphans))
        return len(orphans)

    async def queue_lengths(self) -> dict[str, int]:
        """Messages waiting or in progress, per model stream."""
        return {str(m): int(await self.redis.xlen(stream_name(self.prefix, str(m)))) for m in MODELS}


class RemoteBackend:
    """The bot process's backend in the distributed mode: the GPU workers generate, never the bot.

    The bot's JobRunner is kept for code that reads results; it must not run jobs, and says so.
    """

    def generate(self, request: GenerationRequest, progress: ProgressFn) -> list[Any]:
        raise GenerationError("internal", "the distributed mode generates in worker processes only")

    def render_video(self, request: GenerationRequest, progress: ProgressFn, path: Any) -> Any:
        raise GenerationError("internal", "the distributed mode renders videos in worker processes only")

    def model_status(self) -> list[dict[str, Any]]:
        return []

    def load(self, model: ModelId) -> None:
        raise GenerationError("internal", "models are loaded by the worker processes (--models)")

    def unload(self, model: ModelId) -> None:
        raise GenerationError("internal", "models are unloaded by the worker processes")


def cancel_requested() -> bool:
    """True in a task that was asked to stop. Client libraries sometimes turn the CancelledError
    into their own connection error; a loop that retries on errors must not retry then."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def wait_closed(task: asyncio.Task[Any] | None, timeout: float = 10.0) -> None:
    """Cancel a background task and wait (a bounded time) until it has finished."""
    if task is None:
        return
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        log.warning("background task %s did not stop within %ss", task.get_name(), timeout)
        return
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()
