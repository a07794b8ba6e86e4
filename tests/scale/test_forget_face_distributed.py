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


async def test_forgetface_deletes_face_pictures_on_the_workers_disks(tmp_path, pg_database, redis_prefix):
    settings = make_settings(
        tmp_path / "bot", database_url=pg_database.url, redis_url=REDIS_URL, redis_prefix=redis_prefix,
        worker_heartbeat_seconds=0.1, job_lease_seconds=1.0, delivery_retry_seconds=0.3,
    )
    await upgrade_async(settings.db_url)
    app = build_app(settings, bot=Bot(TOKEN, session=RecordingSession()))
    await app.dispatcher.emit_startup(bot=app.bot, dispatcher=app.dispatcher)
    # The worker runs on another machine: its own data folder.
    worker_settings = settings.model_copy(update={"data_dir": tmp_path / "gpu-box"})
    worker, close = build_worker(
        worker_settings, ["kandinsky-3.1"], "w0", backend=FakeBackend(), bot=Bot(TOKEN, session=RecordingSession())
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        u = user(4001)
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
        for job in (face_job, other):  # what the worker stored when it drew them
            worker.runner.results.save(job.id, {0: Image.new("RGB", (8, 8))})
        assert worker.runner.results.paths(face_job.id) and not app.runner.results.paths(face_job.id)
        await asyncio.sleep(0.5)  # the worker is listening to the control channel

        await app.dispatcher.feed_update(app.bot, message_update("/forgetface", from_user=u))
        deadline = time.monotonic() + 10
        while worker.runner.results.paths(face_job.id) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert worker.runner.results.paths(face_job.id) == []  # gone from the worker's disk
        assert worker.runner.results.paths(other.id)  # the user's other pictures stay
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await close()
        await app.dispatcher.emit_shutdown(bot=app.bot, dispatcher=app.dispatcher)
