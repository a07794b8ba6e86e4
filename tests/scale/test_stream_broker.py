"""The job streams on real Redis: routing by model, one message at a time, redelivery after a death."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from taskiq import AckableMessage
from taskiq.kicker import AsyncKicker

from jobs.distributed import CONSUMER_GROUP, TASK_NAME, JobStreamBroker, stream_name
from tests.scale.conftest import REDIS_URL

K31, FLASH, K22 = "kandinsky-3.1", "kandinsky-3.1-flash", "kandinsky-2.2"


@contextlib.asynccontextmanager
async def broker(prefix: str, models: list[str], name: str, **kwargs) -> AsyncIterator[JobStreamBroker]:
    b = JobStreamBroker(REDIS_URL, [stream_name(prefix, m) for m in models], consumer_name=name, **kwargs)
    await b.startup()
    try:
        yield b
    finally:
        await b.shutdown()


async def send(b: JobStreamBroker, prefix: str, model: str, job_id: int) -> None:
    await AsyncKicker(TASK_NAME, b, {}).with_labels(queue_name=stream_name(prefix, model)).kiq(job_id)


def job_id_of(b: JobStreamBroker, message: AckableMessage) -> int:
    return int(b.formatter.loads(message.data).args[0])


async def take(listener, timeout: float = 5.0) -> AckableMessage:
    return await asyncio.wait_for(anext(listener), timeout)


async def test_workers_get_only_their_models_jobs_one_at_a_time(redis_prefix, redis):
    p = redis_prefix
    async with broker(p, [K31, FLASH, K22], "bot") as sender, broker(p, [FLASH], "flash-worker", poll_seconds=0.2) as flash:
        for job_id, model in [(1, K31), (2, FLASH), (3, K22), (4, FLASH), (5, K31)]:
            await send(sender, p, model, job_id)
        listener = flash.listen()
        first = await take(listener)
        assert job_id_of(flash, first) == 2
        # Strictly one message taken: nothing else is pending for this worker while it works.
        pending = await redis.xpending(stream_name(p, FLASH), CONSUMER_GROUP)
        assert pending["pending"] == 1
        await first.ack()
        second = await take(listener)
        assert job_id_of(flash, second) == 4
        await second.ack()
        # Nothing more for Flash, although other models' jobs wait.
        with pytest.raises(asyncio.TimeoutError):
            await take(listener, timeout=0.6)
        await listener.aclose()
        assert await redis.xlen(stream_name(p, FLASH)) == 0  # acknowledged messages are deleted
        assert await redis.xlen(stream_name(p, K31)) == 2

        # A worker of two models takes turns between their streams.
        async with broker(p, [K31, K22], "k-worker", poll_seconds=0.2) as both:
            listener = both.listen()
            got = []
            for _ in range(3):
                message = await take(listener)
                got.append(job_id_of(both, message))
                await message.ack()
            await listener.aclose()
        assert sorted(got) == [1, 3, 5] and got[:2] in ([1, 3], [3, 1])


async def test_a_message_whose_worker_died_is_redelivered_while_the_streams_are_quiet(redis_prefix, redis):
    p = redis_prefix
    async with (
        broker(p, [K31], "bot") as sender,
        broker(p, [K31], "doomed", idle_timeout=0.5, poll_seconds=0.1) as doomed,
        broker(p, [K31], "survivor", idle_timeout=0.5, poll_seconds=0.1) as survivor,
    ):
        await send(sender, p, K31, 42)
        doomed_listener = doomed.listen()
        taken = await take(doomed_listener)
        assert job_id_of(doomed, taken) == 42
        await doomed_listener.aclose()  # the worker dies without acknowledging

        listener = survivor.listen()
        started = asyncio.get_running_loop().time()
        again = await take(listener)
        waited = asyncio.get_running_loop().time() - started
        assert job_id_of(survivor, again) == 42
        assert waited >= 0.3  # not before the idle timeout (minus the time already spent idle)
        await again.ack()
        await listener.aclose()
        assert await redis.xlen(stream_name(p, K31)) == 0
        assert (await redis.xpending(stream_name(p, K31), CONSUMER_GROUP))["pending"] == 0


async def test_messages_sent_before_any_worker_started_are_not_lost(redis_prefix):
    p = redis_prefix
    # Only the bot's side exists when the job is sent (its groups start at the stream's beginning).
    async with broker(p, [K22], "bot") as sender:
        await send(sender, p, K22, 9)
    async with broker(p, [K22], "late-worker", poll_seconds=0.1) as late:
        listener = late.listen()
        message = await take(listener)
        assert job_id_of(late, message) == 9
        await message.ack()
        await listener.aclose()


async def test_a_worker_survives_its_streams_being_wiped(redis_prefix, redis, caplog):
    """Redis restarted without persistence: the groups are declared again and work goes on."""
    p = redis_prefix
    async with broker(p, [K31], "bot") as sender, broker(p, [K31], "worker", poll_seconds=0.1) as worker:
        listener = worker.listen()
        waiting = asyncio.ensure_future(take(listener))
        await asyncio.sleep(0.3)
        await redis.delete(stream_name(p, K31))  # the stream and its consumer group are gone
        await asyncio.sleep(0.3)
        await send(sender, p, K31, 77)
        message = await waiting
        assert job_id_of(worker, message) == 77
        await message.ack()
        await listener.aclose()
    assert "consumer groups are gone" in caplog.text
