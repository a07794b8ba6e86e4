"""The job streams on real Redis: routing by model, one message at a time, redelivery after a death."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from taskiq import AckableMessage
from taskiq.kicker import AsyncKicker

from jobs.distributed import CONSUMER_GROUP, TASK_NAME, JobStreamBroker, idle_key, stream_name
from tests.scale.conftest import REDIS_URL

K31, FLASH, K22 = "kandinsky-3.1", "kandinsky-3.1-flash", "kandinsky-2.2"


@contextlib.asynccontextmanager
async def broker(
    prefix: str, models: list[str], name: str, kind: type[JobStreamBroker] = JobStreamBroker, **kwargs
) -> AsyncIterator[JobStreamBroker]:
    b = kind(REDIS_URL, [stream_name(prefix, m) for m in models], consumer_name=name, **kwargs)
    await b.startup()
    try:
        yield b
    finally:
        await b.shutdown()


async def send(b: JobStreamBroker, prefix: str, model: str, job_id: int) -> None:
    await AsyncKicker(TASK_NAME, b, {}).with_labels(queue_name=stream_name(prefix, model)).kiq(job_id)


def job_id_of(b: JobStreamBroker, message: AckableMessage) -> int:
    job_id = b.job_id(message.data)
    assert job_id is not None
    return job_id


# Each test runs under a hard time limit and names its steps, so a test that waits for ever fails
# instead, saying where it was.
TEST_SECONDS = 30.0
# How long a listener may take to end once cancelled (one Redis round: a poll of at most a second).
STOP_SECONDS = 5.0
_steps: contextvars.ContextVar[list[str]] = contextvars.ContextVar("steps")


def step(name: str) -> None:
    """Record what the running test does now (reported if it runs out of time)."""
    _steps.get().append(name)


def time_limited(test: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    @functools.wraps(test)
    async def run(*args, **kwargs) -> None:
        steps = ["setting up"]
        _steps.set(steps)
        limit = asyncio.timeout(TEST_SECONDS)
        try:
            async with limit:
                await test(*args, **kwargs)
        except TimeoutError:
            if not limit.expired():
                raise  # the test's own
            pytest.fail(f"{test.__name__} did not finish within {TEST_SECONDS} s; stuck at step: {steps[-1]}")

    return run


async def take(listener, timeout: float = 5.0) -> AckableMessage:
    """The listener's next message, or asyncio.TimeoutError after ``timeout``.

    Not ``asyncio.wait_for``: on a timeout it cancels the read and then waits without a limit for
    it to end, so a listener that goes on after being cancelled would hang the test.
    """
    read = asyncio.ensure_future(anext(listener))
    try:
        done, _ = await asyncio.wait({read}, timeout=timeout)
        if not done:
            read.cancel()
            done, _ = await asyncio.wait({read}, timeout=STOP_SECONDS)
            if not done:
                pytest.fail(f"the listener did not stop within {STOP_SECONDS} s of being cancelled")
            if read.cancelled():
                raise asyncio.TimeoutError(f"no message within {timeout} s")
        return read.result()
    finally:
        read.cancel()  # the test itself ran out of time (no effect on a finished read)


@time_limited
async def test_workers_get_only_their_models_jobs_one_at_a_time(redis_prefix, redis):
    p = redis_prefix
    step("starting the brokers")
    async with broker(p, [K31, FLASH, K22], "bot") as sender, broker(p, [FLASH], "flash-worker", poll_seconds=0.2) as flash:
        step("sending five jobs of three models")
        for job_id, model in [(1, K31), (2, FLASH), (3, K22), (4, FLASH), (5, K31)]:
            await send(sender, p, model, job_id)
        listener = flash.listen()
        step("taking the first Flash job")
        first = await take(listener)
        assert job_id_of(flash, first) == 2
        # Strictly one message taken: nothing else is pending for this worker while it works.
        pending = await redis.xpending(stream_name(p, FLASH), CONSUMER_GROUP)
        assert pending["pending"] == 1
        await first.ack()
        step("taking the second Flash job")
        second = await take(listener)
        assert job_id_of(flash, second) == 4
        await second.ack()
        # Nothing more for Flash, although other models' jobs wait.
        step("waiting in vain for a third Flash job")
        with pytest.raises(asyncio.TimeoutError):
            await take(listener, timeout=0.6)
        step("closing the Flash listener")
        await listener.aclose()
        assert await redis.xlen(stream_name(p, FLASH)) == 0  # acknowledged messages are deleted
        assert await redis.xlen(stream_name(p, K31)) == 2

        # A worker of two models takes turns between their streams.
        step("starting the worker of two models")
        async with broker(p, [K31, K22], "k-worker", poll_seconds=0.2) as both:
            listener = both.listen()
            got = []
            for n in range(3):
                step(f"taking job {n + 1} of 3 of the two-model worker")
                message = await take(listener)
                got.append(job_id_of(both, message))
                await message.ack()
            step("closing the two-model listener")
            await listener.aclose()
            step("shutting the brokers down")
        assert sorted(got) == [1, 3, 5] and got[:2] in ([1, 3], [3, 1])


@time_limited
async def test_a_message_whose_worker_died_is_redelivered_while_the_streams_are_quiet(redis_prefix, redis):
    p = redis_prefix
    step("starting the brokers")
    async with (
        broker(p, [K31], "bot") as sender,
        broker(p, [K31], "doomed", idle_timeout=0.5, poll_seconds=0.1) as doomed,
        broker(p, [K31], "survivor", idle_timeout=0.5, poll_seconds=0.1) as survivor,
    ):
        await send(sender, p, K31, 42)
        doomed_listener = doomed.listen()
        step("the doomed worker taking the job")
        taken = await take(doomed_listener)
        assert job_id_of(doomed, taken) == 42
        step("closing the doomed listener")
        await doomed_listener.aclose()  # the worker dies without acknowledging

        listener = survivor.listen()
        started = asyncio.get_running_loop().time()
        step("the survivor reclaiming the job")
        again = await take(listener)
        waited = asyncio.get_running_loop().time() - started
        assert job_id_of(survivor, again) == 42
        assert waited >= 0.3  # not before the idle timeout (minus the time already spent idle)
        await again.ack()
        step("closing the survivor's listener")
        await listener.aclose()
        assert await redis.xlen(stream_name(p, K31)) == 0
        assert (await redis.xpending(stream_name(p, K31), CONSUMER_GROUP))["pending"] == 0
        step("shutting the brokers down")


@time_limited
async def test_messages_sent_before_any_worker_started_are_not_lost(redis_prefix):
    p = redis_prefix
    # Only the bot's side exists when the job is sent (its groups start at the stream's beginning).
    step("sending a job before any worker exists")
    async with broker(p, [K22], "bot") as sender:
        await send(sender, p, K22, 9)
    step("starting the late worker")
    async with broker(p, [K22], "late-worker", poll_seconds=0.1) as late:
        listener = late.listen()
        step("the late worker taking the job")
        message = await take(listener)
        assert job_id_of(late, message) == 9
        await message.ack()
        step("closing the listener")
        await listener.aclose()
        step("shutting the broker down")


@time_limited
async def test_a_worker_survives_its_streams_being_wiped(redis_prefix, redis, caplog):
    """Redis restarted without persistence: the groups are declared again and work goes on."""
    p = redis_prefix
    step("starting the brokers")
    async with broker(p, [K31], "bot") as sender, broker(p, [K31], "worker", poll_seconds=0.1) as worker:
        listener = worker.listen()
        waiting = asyncio.ensure_future(take(listener))
        await asyncio.sleep(0.3)
        step("wiping the stream")
        await redis.delete(stream_name(p, K31))  # the stream and its consumer group are gone
        await asyncio.sleep(0.3)
        step("sending a job after the wipe")
        await send(sender, p, K31, 77)
        step("the worker taking the job")
        message = await waiting
        assert job_id_of(worker, message) == 77
        await message.ack()
        step("closing the listener")
        await listener.aclose()
        step("shutting the brokers down")
    assert "consumer groups are gone" in caplog.text


class CancellationLosingBroker(JobStreamBroker):
    """A broker whose Redis client loses a cancellation, as the real one does now and then.

    redis-py sends a command through ``asyncio.wait_for`` when a socket timeout is set, and before
    Python 3.12 ``wait_for`` drops a cancellation that comes in the loop iteration in which the
    awaited operation finishes: the command returns as if the task had not been cancelled.
    Here that happens on every cancellation, in the first Redis step of each round.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.in_redis_call = asyncio.Event()

    async def _reclaim_one(self, conn):
        self.in_redis_call.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(60)  # a Redis round trip, which the cancellation ends
        return await super()._reclaim_one(conn)


@time_limited
async def test_a_cancelled_listener_ends_although_the_redis_client_lost_the_cancellation(redis_prefix):
    """The test above once hung for ever: ``take`` cancelled a read, the client swallowed the
    cancellation, and the listener kept polling in a task nobody would ever hear from again."""
    p = redis_prefix
    step("starting the broker")
    async with broker(p, [K31], "worker", kind=CancellationLosingBroker, poll_seconds=0.1) as worker:
        listener = worker.listen()
        read = asyncio.ensure_future(anext(listener))
        try:
            step("waiting until the listener is inside a Redis call")
            await worker.in_redis_call.wait()
            step("cancelling the read")
            read.cancel()
            done, _ = await asyncio.wait({read}, timeout=STOP_SECONDS)
            assert done, f"the listener went on for {STOP_SECONDS} s after being cancelled"
            assert read.cancelled()
        finally:
            # A listener that went on would outlive the test (and lose the event loop's
            # cancellation at its end too): its closing event stops it after this call.
            worker.closing.set()
            read.cancel()
            await asyncio.wait({read}, timeout=STOP_SECONDS)
            if read.done() and not read.cancelled():
                read.exception()  # StopAsyncIteration, retrieved
        step("closing the listener")
        await listener.aclose()
        step("shutting the broker down")


@time_limited
async def test_peek_shows_the_untaken_head_of_a_stream_and_take_takes_it_in_order(redis_prefix, redis):
    p = redis_prefix
    flash_stream = stream_name(p, FLASH)
    async with broker(p, [K31, FLASH], "bot") as sender, broker(p, [FLASH], "w1") as one, broker(p, [FLASH], "w2") as two:
        for job_id in (11, 12, 13, 14):
            await send(sender, p, FLASH, job_id)
        await send(sender, p, K31, 99)
        step("looking at the head")
        assert await one.peek(flash_stream, 3) == [11, 12, 13]
        assert await one.peek(flash_stream, 10) == [11, 12, 13, 14]  # its own model's stream only
        assert (await redis.xpending(flash_stream, CONSUMER_GROUP))["pending"] == 0  # looked at, not taken
        step("taking two")
        taken = await one.take(flash_stream, 2)
        assert [job_id for job_id, _ in taken] == [11, 12]
        assert (await redis.xpending(flash_stream, CONSUMER_GROUP))["pending"] == 2
        assert await two.peek(flash_stream, 10) == [13, 14]  # what the others can still take
        step("another worker takes the rest")
        assert [job_id for job_id, _ in await two.take(flash_stream, 5)] == [13, 14]
        assert await one.peek(flash_stream, 10) == [] and await one.take(flash_stream, 5) == []
        step("acknowledging")
        for _, message in taken:
            await message.ack()
        assert (await redis.xpending(flash_stream, CONSUMER_GROUP))["pending"] == 2  # two's, not yet acknowledged


@time_limited
async def test_a_listener_waiting_for_work_is_listed_idle_until_it_takes_a_message(redis_prefix, redis):
    p = redis_prefix
    flash_stream = stream_name(p, FLASH)
    async with broker(p, [K31, FLASH], "bot") as sender, broker(p, [FLASH], "w1", poll_seconds=0.1) as one, broker(
        p, [FLASH], "w2", poll_seconds=0.1
    ) as two:
        step("w1 waits for work")
        listener = one.listen()
        read = asyncio.ensure_future(anext(listener))
        for _ in range(50):
            if await two.idle_workers(flash_stream) == 1:
                break
            await asyncio.sleep(0.05)
        assert await two.idle_workers(flash_stream) == 1  # w1, seen by w2
        assert await one.idle_workers(flash_stream) == 0  # not itself
        step("w1 takes a message")
        await send(sender, p, FLASH, 21)
        message = await asyncio.wait_for(read, 5)
        assert job_id_of(one, message) == 21
        assert await two.idle_workers(flash_stream) == 0
        await message.ack()
        await listener.aclose()
        step("a stale mark does not count")
        await redis.zadd(idle_key(flash_stream), {"gone": time.time() - 60})
        assert await two.idle_workers(flash_stream) == 0
