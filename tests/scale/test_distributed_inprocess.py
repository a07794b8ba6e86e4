"""The distributed mode in one process: the bot's Dispatcher and two workers on PostgreSQL and Redis.

Quick and close to the code: the bot and the workers talk to recording sessions instead of Telegram.
(tests/scale/test_processes.py runs them as real processes against the Telegram emulator.)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiogram import Bot
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods import EditMessageText, SendMediaGroup, SendPhoto
from PIL import Image, ImageChops
from sqlalchemy import select

from app.wiring import App, build_app
from app.worker import build_worker
from generation.fake import FakeBackend
from jobs.distributed import CONSUMER_GROUP, DistributedQueue, idle_key, stream_name
from jobs.metrics import add_routes, start_server
from jobs.runner import build_request
from jobs.worker import Worker
from storage.migrate import upgrade_async
from storage.models import Job, JobStatus
from prompting.guard import ContentGuard
from tests.bot.test_pipeline import GatedBackend, LoggingBeautifier, LoggingSafety, SlowToStartBackend
from tests.conftest import make_settings
from tests.fakes import TOKEN, RecordingSession, message_update, user
from tests.safety.test_bot_safety import NotingSafety, beautify_on
from tests.scale.conftest import REDIS_URL


class Cluster:
    def __init__(self, app: App, bot_session: RecordingSession, settings: Any, session_factory: Any, step: float) -> None:
        self.app = app
        self.bot_session = bot_session
        self.settings = settings
        self.session_factory = session_factory  # process name -> its Telegram session
        self.step = step
        self.workers: list[tuple[Worker, RecordingSession, FakeBackend, asyncio.Event, asyncio.Task[None], Any]] = []

    def add_worker(self, models: list[str], backend: FakeBackend | None = None) -> Worker:
        name = f"w{len(self.workers)}"
        session = self.session_factory("worker")
        backend = backend or FakeBackend(step_seconds=self.step)
        worker, close = build_worker(self.settings, models, name, backend=backend, bot=Bot(TOKEN, session=session))
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        self.workers.append((worker, session, backend, stop, task, close))
        return worker

    async def feed(self, update: Any) -> Any:
        return await self.app.dispatcher.feed_update(self.app.bot, update)

    async def jobs(self) -> list[Job]:
        async with self.app.db.session() as session:
            return list((await session.execute(select(Job).order_by(Job.id))).scalars().all())

    async def wait(self, predicate: Any, timeout: float = 20.0) -> list[Job]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            jobs = await self.jobs()
            if predicate(jobs):
                return jobs
            await asyncio.sleep(0.05)
        raise AssertionError(f"not reached in time: {[(j.id, j.status, j.claimed_by) for j in await self.jobs()]}")

    def sent(self, method_type: type) -> list[Any]:
        return [call for _w, session, *_ in self.workers for call in session.of(method_type)]


@contextlib.asynccontextmanager
async def cluster(
    tmp_path,
    pg_url: str,
    prefix: str,
    worker_models: list[list[str]],
    step: float,
    session_factory: Any = None,
    **overrides: Any,
) -> AsyncIterator[Cluster]:
    session_factory = session_factory or (lambda _process: RecordingSession())
    settings = make_settings(
        tmp_path,
        database_url=pg_url,
        redis_url=REDIS_URL,
        redis_prefix=prefix,
        max_pending_per_user=5,
        worker_heartbeat_seconds=0.1,
        job_lease_seconds=1.0,
        worker_idle_timeout=1.5,
        delivery_retry_seconds=0.3,
        **overrides,
    )
    await upgrade_async(settings.db_url)
    bot_session = session_factory("bot")
    app = build_app(settings, bot=Bot(TOKEN, session=bot_session))
    await app.dispatcher.emit_startup(bot=app.bot, dispatcher=app.dispatcher)
    c = Cluster(app, bot_session, settings, session_factory, step)
    try:
        for models in worker_models:
            c.add_worker(models)
        yield c
    finally:
        for _worker, _session, _backend, stop, _task, _close in c.workers:
            stop.set()
        for _worker, _session, _backend, _stop, task, close in c.workers:
            await asyncio.wait_for(task, 30)  # a busy machine is slow to wind down
            await close()
        await app.dispatcher.emit_shutdown(bot=app.bot, dispatcher=app.dispatcher)


ALL = ["kandinsky-3.1", "kandinsky-3.1-flash", "kandinsky-2.2", "kandinsky-3.1-refiner"]


async def test_prompts_from_several_users_are_each_delivered_once(tmp_path, pg_database, redis_prefix):
    async with cluster(tmp_path, pg_database.url, redis_prefix, [ALL, ALL], step=0.002) as c:
        users = [user(2000 + i, first_name=f"U{i}", username=f"u{i}") for i in range(4)]
        for n in range(3):
            for u in users:
                await c.feed(message_update(f"prompt {n} of {u.id}", from_user=u))
        jobs = await c.wait(lambda js: len(js) == 12 and all(j.status == JobStatus.DONE for j in js))
        photos = c.sent(SendPhoto) + [m for g in c.sent(SendMediaGroup) for m in g.media]
        assert len(photos) == 12
        captions = sorted(p.caption for p in photos)
        assert captions == sorted(set(captions))  # each prompt once
        assert {j.attempts for j in jobs} == {1}
        # The bot process sent no result itself: the workers did.
        assert not c.bot_session.of(SendPhoto)
        assert sum(len(backend.calls) for _w, _s, backend, *_rest in c.workers) == 12  # none twice
        # The streams are drained (acknowledged messages are deleted).
        queue = c.app.queue
        assert isinstance(queue, DistributedQueue)
        assert sum((await queue.queue_lengths()).values()) == 0


async def test_cancel_reaches_the_worker_running_the_job(tmp_path, pg_database, redis_prefix):
    async with cluster(tmp_path, pg_database.url, redis_prefix, [ALL], step=0.2) as c:
        u = user(3001)
        await c.feed(message_update("a very slow picture", from_user=u))
        await c.wait(lambda js: js and js[0].status == JobStatus.RUNNING)
        started = time.monotonic()
        await c.feed(message_update("/cancel", from_user=u))
        jobs = await c.wait(lambda js: js[0].status == JobStatus.CANCELLED, timeout=5)
        assert time.monotonic() - started < 2.0  # stopped at the next step, not after 25 steps
        assert not c.sent(SendPhoto)
        worker, session, backend, *_ = c.workers[0]
        assert any("ancel" in (e.text or "") for e in session.of(EditMessageText))  # the status message says so
        assert jobs[0].cancel_requested


async def test_worker_stopping_mid_job_hands_it_to_another(tmp_path, pg_database, redis_prefix):
    async with cluster(tmp_path, pg_database.url, redis_prefix, [ALL, ALL], step=0.05) as c:
        await c.feed(message_update("handed over", from_user=user(3002)))
        jobs = await c.wait(lambda js: js and js[0].status == JobStatus.RUNNING)
        first = next(w for w in c.workers if w[0].name == jobs[0].claimed_by)
        other = next(w for w in c.workers if w is not first)
        first[3].set()  # graceful stop: the job goes back to the queue with a fresh message
        jobs = await c.wait(lambda js: js[0].status == JobStatus.DONE, timeout=15)
        assert len(other[1].of(SendPhoto)) == 1 and not first[1].of(SendPhoto)
        assert jobs[0].attempts == 2


async def test_a_worker_serves_only_its_models(tmp_path, pg_database, redis_prefix):
    async with cluster(
        tmp_path, pg_database.url, redis_prefix, [["kandinsky-3.1-flash"], ["kandinsky-2.2"]], step=0.0
    ) as c:
        async def choose(u, model: str) -> None:
            # The model is a user setting; set it directly (the /settings flow has its own tests).
            async with c.app.db.session() as session:
                from storage.models import UserSettings

                settings = await session.get(UserSettings, u.id)
                settings.model = model
                await session.commit()

        flash_user, k22_user = user(3003), user(3004)
        for u, model in ((flash_user, "kandinsky-3.1-flash"), (k22_user, "kandinsky-2.2")):
            await c.feed(message_update("/start", from_user=u))
            await choose(u, model)
            for n in range(2):
                await c.feed(message_update(f"{model} {n}", from_user=u))
        await c.wait(lambda js: len(js) == 4 and all(j.status == JobStatus.DONE for j in js))
        flash_backend, k22_backend = c.workers[0][2], c.workers[1][2]
        assert [str(r.model) for r in flash_backend.calls] == ["kandinsky-3.1-flash"] * 2
        assert [str(r.model) for r in k22_backend.calls] == ["kandinsky-2.2"] * 2


async def test_worker_health_and_metrics(tmp_path, pg_database, redis_prefix):
    async with cluster(tmp_path, pg_database.url, redis_prefix, [ALL], step=0.0) as c:
        await c.feed(message_update("measured", from_user=user(3005)))
        await c.wait(lambda js: js and js[0].status == JobStatus.DONE)
        assert await drained(c)  # acknowledged, so counted by the worker
        worker = c.workers[0][0]
        from aiohttp import web

        web_app = web.Application()
        add_routes(web_app, worker.metrics, worker.health, worker.refresh_metrics)
        runner = await start_server(web_app, "127.0.0.1", 0)
        port = runner.addresses[0][1]
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    health = await resp.json()
                    assert resp.status == 200
                async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                    text = await resp.text()
        finally:
            await runner.cleanup()
        assert health["status"] == "ok" and health["worker"] == "w0" and health["jobs_done"] == 1
        assert 'kandinsky_jobs{model="kandinsky-3.1",status="done"} 1.0' in text
        assert 'kandinsky_queue_length{model="kandinsky-3.1"} 0.0' in text
        assert 'kandinsky_generation_seconds_count{model="kandinsky-3.1"} 1.0' in text
        assert 'kandinsky_telegram_requests_total{method="SendPhoto"} 1.0' in text
        assert 'kandinsky_gpu_memory_bytes{device="none"} 0.0' in text


async def test_queued_jobs_without_a_message_are_sent_again_on_start(tmp_path, pg_database, redis_prefix, redis):
    """The bot stopped between committing a job and sending its id: the next start sends it."""
    async with cluster(tmp_path, pg_database.url, redis_prefix, [], step=0.0) as c:
        u = user(3006)
        await c.feed(message_update("/start", from_user=u))
        await c.feed(message_update("sent normally", from_user=u))
        async with c.app.db.session() as session:
            session.add(
                Job(user_id=u.id, chat_id=u.id, kind="text2img", model="kandinsky-2.2", params={}, status=JobStatus.QUEUED)
            )
            await session.commit()
        queue = c.app.queue
        assert isinstance(queue, DistributedQueue)
        assert await queue.resubmit_orphans() == 1  # only the job that had no message
        assert await queue.resubmit_orphans() == 0
        assert await redis.xlen(stream_name(redis_prefix, "kandinsky-3.1")) == 1
        assert await redis.xlen(stream_name(redis_prefix, "kandinsky-2.2")) == 1
        # Nobody has taken them yet: both wait in the consumer group.
        groups = await redis.xinfo_groups(stream_name(redis_prefix, "kandinsky-2.2"))
        assert [g["name"] for g in groups] == [CONSUMER_GROUP.encode()]


async def test_workers_hold_jobs_while_the_queue_is_paused(tmp_path, pg_database, redis_prefix):
    from storage.admin_repositories import ControlRepository

    async with cluster(tmp_path, pg_database.url, redis_prefix, [ALL], step=0.0) as c:
        u = user(3007)
        await c.feed(message_update("/start", from_user=u))
        await c.feed(message_update("before the pause", from_user=u))
        await c.wait(lambda js: js and js[0].status == JobStatus.DONE)

        async def set_pause(paused: bool) -> None:
            async with c.app.db.session() as session:
                await ControlRepository(session).set_pause(paused, "maintenance" if paused else None, None)
                await session.commit()

        c.workers[0][0].pause_poll_seconds = 60.0  # so only the wake-up can resume it in time
        await set_pause(True)
        async with c.app.db.session() as session:  # /pause refuses new requests; jobs already queued wait
            session.add(Job(user_id=u.id, chat_id=u.id, kind="text2img", model="kandinsky-3.1",
                            params={"prompt": "after the pause", "width": 64, "height": 64, "seed": 3},
                            status=JobStatus.QUEUED))
            await session.commit()
        queue = c.app.queue
        assert isinstance(queue, DistributedQueue)
        await queue.resubmit_orphans()
        await asyncio.sleep(1.0)
        assert [j.status for j in await c.jobs()] == [JobStatus.DONE, JobStatus.QUEUED]

        await set_pause(False)
        await queue.wake()  # what /resume does
        await c.wait(lambda js: js[1].status == JobStatus.DONE, timeout=10)


class SlowUploads(RecordingSession):
    """A worker's link to Telegram on which a photo takes a while to upload."""

    async def make_request(self, bot: Any, method: Any, timeout: int | None = None) -> Any:
        if isinstance(method, SendPhoto):
            await asyncio.sleep(0.8)
        return await super().make_request(bot, method, timeout)


async def test_a_worker_generates_the_next_job_while_the_last_one_uploads(tmp_path, pg_database, redis_prefix):
    """The GPU does not wait for deliveries: the second job is generated before the first job's photo
    has gone out; both are delivered, in order, and their messages acknowledged."""
    factory = lambda process: SlowUploads() if process == "worker" else RecordingSession()  # noqa: E731
    async with cluster(
        tmp_path, pg_database.url, redis_prefix, [ALL], step=0.0, session_factory=factory, batch_max_jobs=1
    ) as c:
        _worker, session, backend, *_ = c.workers[0]
        await c.feed(message_update("a lighthouse at dawn", from_user=user(8101)))
        await c.feed(message_update("a lighthouse at dusk", from_user=user(8102)))
        deadline = time.monotonic() + 20
        while len(backend.calls) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert len(backend.calls) == 2
        assert not session.of(SendPhoto)  # the first upload was still under way
        jobs = await c.wait(lambda jobs: [j.status for j in jobs] == ["done", "done"])
        photos = session.of(SendPhoto)
        assert [p.chat_id for p in photos] == [j.chat_id for j in jobs]  # in the order they were made
        assert await drained(c)


async def test_a_finished_jobs_check_and_png_wait_until_the_next_job_is_on_the_workers_gpu(
    tmp_path, pg_database, redis_prefix, monkeypatch
):
    """As in the embedded queue (tests/bot/test_pipeline.py): the finished job's CPU work waits for
    the next job's start, and the last job's for the listener finding no message; only these signals
    can end the wait here (its time limit is 30 s)."""
    monkeypatch.setattr("jobs.finishing.HANDOVER_WAIT_SECONDS", 30.0)
    async with cluster(tmp_path, pg_database.url, redis_prefix, [], step=0.0, batch_max_jobs=1) as c:
        backend = SlowToStartBackend()
        gate = backend.gate()
        worker = c.add_worker(ALL, backend)
        worker.runner.guard = ContentGuard(image_safety=LoggingSafety(backend.log))
        try:
            await c.feed(message_update("first", from_user=user(8201)))
            await c.wait(lambda jobs: backend.held == 1)
            await c.feed(message_update("second", from_user=user(8202)))
            gate.set()
            await c.wait(lambda jobs: [j.status for j in jobs] == ["done", "done"], timeout=15)
        finally:
            gate.set()
        log = backend.log
        assert [e for e in log if e != "check"] == ["start first", "end first", "start second", "end second"]
        assert log.count("check") == 2 and log.index("check") > log.index("start second")
        assert await drained(c)


async def test_a_full_finishing_line_lets_the_waiting_unit_be_checked_while_the_oldest_uploads(
    tmp_path, pg_database, redis_prefix, monkeypatch
):
    """Finishing is the slow part here (each photo takes 0.8 s to upload): with two units on the
    line, the next job waits for room, so the newer unit is checked and stored meanwhile instead of
    waiting for a GPU start that waits for it."""
    monkeypatch.setattr("jobs.finishing.HANDOVER_WAIT_SECONDS", 30.0)
    factory = lambda process: SlowUploads() if process == "worker" else RecordingSession()  # noqa: E731
    async with cluster(
        tmp_path, pg_database.url, redis_prefix, [], step=0.0, session_factory=factory, batch_max_jobs=1
    ) as c:
        worker = c.add_worker(ALL, GatedBackend())
        session = c.workers[0][1]
        safety = NotingSafety(lambda: len(session.of(SendPhoto)))  # photos gone out at each check
        worker.runner.guard = ContentGuard(image_safety=safety)
        for uid in (8301, 8302, 8303):
            await c.feed(message_update(f"a lighthouse {uid}", from_user=user(uid)))
        await c.wait(lambda jobs: [j.status for j in jobs] == ["done"] * 3, timeout=20)
        assert safety.seen[:2] == [0, 0]  # the second job was checked while the first photo uploaded
        assert await drained(c)


async def drained(c: Cluster) -> bool:
    """Every message acknowledged (deleted from its stream), waiting a little for the last ones."""
    deadline = time.monotonic() + 10
    while await c.app.queue.stream_job_ids() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return not await c.app.queue.stream_job_ids()


async def worker_busy_with_x(
    c: Cluster, x_user: int, queued: list[tuple[int, str]], gates: int = 1
) -> tuple[Worker, GatedBackend, list[Any]]:
    """A worker whose GPU holds job "x" (of ``x_user``) at its first step while ``queued`` ((user
    id, prompt)) queue up behind it. Returns the worker, its backend and the backend's gates in call
    order (the first lets "x" go on)."""
    backend = GatedBackend()
    held = [backend.gate() for _ in range(gates)]
    worker = c.add_worker(ALL, backend)
    await c.feed(message_update("x", from_user=user(x_user)))
    await c.wait(lambda jobs: backend.held == 1)
    for uid, prompt in queued:
        await c.feed(message_update(prompt, from_user=user(uid)))
    return worker, backend, held


async def test_jobs_queued_behind_a_running_one_run_as_one_batch_on_a_worker(tmp_path, pg_database, redis_prefix):
    """Batching across users in the distributed mode: the jobs whose messages wait at the head of
    the model's stream with the same model, size and steps go to the GPU together; each image is the
    one its job makes alone, each photo is sent once and each message acknowledged."""
    async with cluster(tmp_path, pg_database.url, redis_prefix, [], step=0.0, batch_max_jobs=4) as c:
        worker, backend, [first] = await worker_busy_with_x(c, 8200, [(8201, "a"), (8202, "b"), (8203, "c")])
        first.set()
        jobs = await c.wait(lambda jobs: len(jobs) == 4 and all(j.status == JobStatus.DONE for j in jobs))
        assert backend.batches == [3]
        assert backend.log == ["start x", "end x", "start a+b+c", "end a+b+c"]
        assert [j.attempts for j in jobs] == [1] * 4
        assert sorted(int(p.chat_id) for p in c.sent(SendPhoto)) == [8200, 8201, 8202, 8203]
        for job in jobs:
            [path] = worker.runner.result_paths(job.id)
            alone = FakeBackend().generate(build_request(job), lambda step, total: None)[0]
            with Image.open(path) as stored:
                assert ImageChops.difference(stored.convert("RGB"), alone).getbbox() is None
        assert await drained(c)


async def test_a_job_that_cannot_join_ends_the_batch_and_keeps_its_turn(tmp_path, pg_database, redis_prefix):
    """The stream's order is kept: "b" (another size) cannot join "a"'s batch, so "a" runs alone,
    then "b", then "c" with "d" (they share a key)."""
    async with cluster(tmp_path, pg_database.url, redis_prefix, [], step=0.0, batch_max_jobs=4) as c:
        queued = [(8301, "a"), (8302, "b --ar 16:9"), (8303, "c"), (8304, "d")]
        _worker, backend, [first] = await worker_busy_with_x(c, 8300, queued)
        first.set()
        await c.wait(lambda jobs: len(jobs) == 5 and all(j.status == JobStatus.DONE for j in jobs))
        assert backend.log == ["start x", "end x", "start a", "end a", "start b", "end b", "start c+d", "end c+d"]
        assert await drained(c)


async def test_a_worker_stopping_mid_batch_hands_every_member_to_another(tmp_path, pg_database, redis_prefix):
    async with cluster(tmp_path, pg_database.url, redis_prefix, [], step=0.0, batch_max_jobs=4) as c:
        queued = [(8401, "a"), (8402, "b")]
        _worker, backend, [first_gate, _held_batch] = await worker_busy_with_x(c, 8400, queued, gates=2)
        first_gate.set()
        await c.wait(lambda jobs: backend.held == 2)  # a+b on the first worker's GPU
        c.workers[0][3].set()  # graceful stop: both go back to the queue with fresh messages
        other = c.add_worker(ALL)
        jobs = await c.wait(lambda jobs: len(jobs) == 3 and all(j.status == JobStatus.DONE for j in jobs))
        assert backend.log[-1] == "end a+b" and backend.batches == [2]
        assert [j.attempts for j in jobs] == [1, 2, 2]
        assert c.workers[1][2].batches == [2]  # the other worker ran them as one batch again
        assert sorted(int(p.chat_id) for p in c.sent(SendPhoto)) == [8400, 8401, 8402]
        assert await drained(c)  # acknowledged: each after its job was counted
        assert other.jobs_done == 2


async def test_a_worker_builds_the_next_request_while_the_gpu_works(tmp_path, pg_database, redis_prefix):
    """The next prompt goes to the LLM while the GPU works on the one before (its message is looked
    at, not taken: the job stays queued until this worker's GPU is free)."""
    log: list[str] = []
    async with cluster(tmp_path, pg_database.url, redis_prefix, [], step=0.0, batch_max_jobs=1) as c:
        backend = GatedBackend(log)
        first = backend.gate()
        worker = c.add_worker(ALL, backend)
        worker.runner.guard = ContentGuard(beautifier=LoggingBeautifier(log))
        one, two = user(8501), user(8502)
        await beautify_on(c, one)
        await beautify_on(c, two)
        await c.feed(message_update("first", from_user=one))
        await c.wait(lambda jobs: backend.held == 1)
        await c.feed(message_update("second", from_user=two))
        jobs = await c.wait(lambda jobs: "beautify second" in log)
        assert log == ["beautify first", "start first beautified", "beautify second"]
        assert jobs[1].status == JobStatus.QUEUED
        first.set()
        await c.wait(lambda jobs: [j.status for j in jobs] == [JobStatus.DONE] * 2)
        assert log == [
            "beautify first", "start first beautified", "beautify second", "end first beautified",
            "start second beautified", "end second beautified",
        ]
        assert await drained(c)


class UploadLog(RecordingSession):
    """A worker's link to Telegram that logs when each photo's upload begins and ends (0.3 s each)."""

    def __init__(self) -> None:
        super().__init__()
        self.uploads: list[str] = []

    async def make_request(self, bot: Any, method: Any, timeout: int | None = None) -> Any:
        if not isinstance(method, SendPhoto):
            return await super().make_request(bot, method, timeout)
        prompt = method.caption.split("\n")[0].strip()
        self.uploads.append(f"begin {prompt}")
        await asyncio.sleep(0.3)
        result = await super().make_request(bot, method, timeout)
        self.uploads.append(f"end {prompt}")
        return result


async def test_a_batch_is_sent_to_its_chats_side_by_side_and_to_one_chat_in_order(tmp_path, pg_database, redis_prefix):
    sessions: list[UploadLog] = []

    def factory(process: str) -> RecordingSession:
        if process != "worker":
            return RecordingSession()
        sessions.append(UploadLog())
        return sessions[-1]

    async with cluster(tmp_path, pg_database.url, redis_prefix, [], step=0.0, session_factory=factory, batch_max_jobs=4) as c:
        _worker, backend, [first] = await worker_busy_with_x(c, 8600, [(8601, "a1"), (8602, "b"), (8601, "a2")])
        first.set()
        await c.wait(lambda jobs: len(jobs) == 4 and all(j.status == JobStatus.DONE for j in jobs))
        assert backend.batches == [3]
        uploads = sessions[0].uploads
        batch = uploads[2:]  # after x's

        assert uploads[:2] == ["begin x", "end x"]
        # b's upload overlaps a1's (two chats), a2's begins after a1's ended (one chat, in order).
        assert batch.index("begin b") < batch.index("end a1") and batch.index("begin a1") < batch.index("end b")
        assert batch.index("end a1") < batch.index("begin a2")
        assert await drained(c)


class DownThenSlow(RecordingSession):
    """A worker's link to Telegram: the first photo fails (Telegram is down), the next is taken at
    once and its answer comes back 0.5 s later (``taken`` is set then)."""

    def __init__(self) -> None:
        super().__init__()
        self.tries = 0
        self.taken = asyncio.Event()

    async def make_request(self, bot: Any, method: Any, timeout: int | None = None) -> Any:
        if not isinstance(method, SendPhoto):
            return await super().make_request(bot, method, timeout)
        self.tries += 1
        if self.tries == 1:
            raise TelegramNetworkError(method=method, message="down")
        result = await super().make_request(bot, method, timeout)
        self.taken.set()
        await asyncio.sleep(0.5)
        return result


async def test_a_worker_stopping_during_a_retried_delivery_lets_it_end_and_it_is_not_sent_again(
    tmp_path, pg_database, redis_prefix
):
    sessions: list[RecordingSession] = []

    def factory(process: str) -> RecordingSession:
        first_worker = process == "worker" and not any(isinstance(s, DownThenSlow) for s in sessions)
        sessions.append(DownThenSlow() if first_worker else RecordingSession())
        return sessions[-1]

    async with cluster(tmp_path, pg_database.url, redis_prefix, [], step=0.0, session_factory=factory) as c:
        c.add_worker(ALL)
        first = sessions[1]
        assert isinstance(first, DownThenSlow)
        await c.feed(message_update("sent on the second try", from_user=user(8700)))
        await asyncio.wait_for(first.taken.wait(), 20)
        worker, _session, _backend, stop, task, _close = c.workers[0]
        stop.set()
        await asyncio.wait_for(task, 30)
        [job] = await c.jobs()
        assert first.tries == 2 and job.status == JobStatus.DONE
        c.add_worker(ALL)
        await asyncio.sleep(4 * c.settings.delivery_retry_seconds)  # its retry loop finds nothing to send
        assert not sessions[-1].of(SendPhoto)


async def test_a_worker_leaves_idle_workers_their_share_of_the_queue(tmp_path, pg_database, redis_prefix, redis):
    """With another worker waiting for work, four matching jobs are split two and two: "a" takes one
    partner and leaves "c" and "d" (here to a worker that only says it is idle, so they come next)."""
    async with cluster(tmp_path, pg_database.url, redis_prefix, [], step=0.0, batch_max_jobs=4) as c:
        queued = [(8801, "a"), (8802, "b"), (8803, "c"), (8804, "d")]
        _worker, backend, [first] = await worker_busy_with_x(c, 8800, queued)
        stream = stream_name(redis_prefix, "kandinsky-3.1")
        await redis.zadd(idle_key(stream), {"another-worker": time.time() + 30})  # waiting (for the whole test)
        first.set()
        await c.wait(lambda jobs: len(jobs) == 5 and all(j.status == JobStatus.DONE for j in jobs))
        # a+b: their share; then c and d each with one idle worker beside: one job is the share.
        assert backend.log == ["start x", "end x", "start a+b", "end a+b", "start c", "end c", "start d", "end d"]
        assert await drained(c)
