"""/forgetface in distributed mode: the GPU workers delete the face pictures from their own disks."""

from __future__ import annotations

import asyncio
import time

from aiogram import Bot
from PIL import Image

from app.wiring import build_app
from app.worker import build_worker
from generation.fake import FakeBackend
from storage.migrate import upgrade_async
from storage.models import Job, JobStatus
from storage.repositories import Repositories
from tests.conftest import make_settings
from tests.fakes import TOKEN, RecordingSession, message_update, user
from tests.scale.conftest import REDIS_URL


async def bot_and_worker(tmp_path, pg_database, redis_prefix):
    """The bot, and a GPU worker on "another machine" (its own data folder), not started yet."""
    settings = make_settings(
        tmp_path / "bot", database_url=pg_database.url, redis_url=REDIS_URL, redis_prefix=redis_prefix,
        worker_heartbeat_seconds=0.1, job_lease_seconds=1.0, delivery_retry_seconds=0.3,
    )
    await upgrade_async(settings.db_url)
    app = build_app(settings, bot=Bot(TOKEN, session=RecordingSession()))
    await app.dispatcher.emit_startup(bot=app.bot, dispatcher=app.dispatcher)
    worker_settings = settings.model_copy(update={"data_dir": tmp_path / "gpu-box"})
    worker, close = build_worker(
        worker_settings, ["kandinsky-3.1"], "w0", backend=FakeBackend(), bot=Bot(TOKEN, session=RecordingSession())
    )
    return app, worker, close


async def face_and_other_pictures(app, worker, user_id: int) -> tuple[Job, Job]:
    """A user with a face, a face-swap job and a plain one, both drawn by the worker (on its disk)."""
    u = user(user_id)
    await app.dispatcher.feed_update(app.bot, message_update("/start", from_user=u))
    async with app.db.session() as session:
        repos = Repositories(session)
        await repos.faces.set(u.id, "face-photo", "u", {"box": [1, 2, 3, 4]})
        face_job = await repos.jobs.add(
            Job(user_id=u.id, chat_id=u.id, kind="faceswap", model="kandinsky-3.1", params={"prompt": "@me"},
                status=JobStatus.DONE, result_file_ids=["sent-1"])
        )
        other = await repos.jobs.add(
            Job(user_id=u.id, chat_id=u.id, kind="text2img", model="kandinsky-3.1", params={"prompt": "a cat"},
                status=JobStatus.DONE, result_file_ids=["sent-2"])
        )
        await repos.commit()
    for job in (face_job, other):
        worker.runner.results.save(job.id, {0: Image.new("RGB", (8, 8))})
    return face_job, other


async def wait_deleted(worker, job_id: int) -> None:
    deadline = time.monotonic() + 10
    while worker.runner.results.paths(job_id) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)


async def test_forgetface_deletes_face_pictures_on_the_workers_disks(tmp_path, pg_database, redis_prefix):
    app, worker, close = await bot_and_worker(tmp_path, pg_database, redis_prefix)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        face_job, other = await face_and_other_pictures(app, worker, 4001)
        assert worker.runner.results.paths(face_job.id) and not app.runner.results.paths(face_job.id)
        await asyncio.sleep(0.5)  # the worker is listening to the control channel

        await app.dispatcher.feed_update(app.bot, message_update("/forgetface", from_user=user(4001)))
        await wait_deleted(worker, face_job.id)
        assert worker.runner.results.paths(face_job.id) == []  # gone from the worker's disk
        assert worker.runner.results.paths(other.id)  # the user's other pictures stay
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await close()
        await app.dispatcher.emit_shutdown(bot=app.bot, dispatcher=app.dispatcher)


async def test_a_worker_offline_during_forgetface_deletes_the_pictures_when_it_starts(tmp_path, pg_database, redis_prefix):
    app, worker, close = await bot_and_worker(tmp_path, pg_database, redis_prefix)
    stop = asyncio.Event()
    task = None
    try:
        face_job, other = await face_and_other_pictures(app, worker, 4002)
        # The worker is not running: nobody hears the control channel's message.
        await app.dispatcher.feed_update(app.bot, message_update("/forgetface", from_user=user(4002)))
        assert worker.runner.results.paths(face_job.id)

        task = asyncio.create_task(worker.run(stop))  # it comes back
        await wait_deleted(worker, face_job.id)
        assert worker.runner.results.paths(face_job.id) == []
        assert worker.runner.results.paths(other.id)
    finally:
        stop.set()
        if task is not None:
            await asyncio.wait_for(task, 30)
        await close()
        await app.dispatcher.emit_shutdown(bot=app.bot, dispatcher=app.dispatcher)
