"""Nothing is lost on restart: running jobs are redone, undelivered results delivered once."""

from aiogram.exceptions import TelegramNetworkError
from aiogram.methods import SendPhoto, SendMessage
from PIL import Image
from sqlalchemy import update

from generation.fake import FakeBackend
from storage.models import Job
from tests.conftest import make_settings, start_harness, stop_harness
from tests.fakes import message_update


async def set_status(harness, job_id, **values):
    async with harness.app.db.session() as session:
        await session.execute(update(Job).where(Job.id == job_id).values(**values))
        await session.commit()


async def test_job_left_running_is_redone_after_restart(tmp_path):
    settings = make_settings(tmp_path)
    first = await start_harness(settings, FakeBackend(step_seconds=0.05))
    await first.feed(message_update("a fox"))
    await stop_harness(first)
    # A crash: the process died with the job running.
    await set_status(first, 1, status="running")

    second = await start_harness(settings, FakeBackend())
    try:
        [job] = await second.wait_jobs_settled()
        assert job.status == "done"
        assert len(second.backend.calls) == 1
        assert len(second.session.of(SendPhoto)) == 1
    finally:
        await stop_harness(second)


async def test_shutdown_returns_the_running_job_to_the_queue(tmp_path):
    settings = make_settings(tmp_path)
    first = await start_harness(settings, FakeBackend(step_seconds=0.05))
    await first.feed(message_update("a fox"))
    await first.wait_for(lambda: first.backend.steps_done > 0)
    await stop_harness(first)  # SIGTERM: the dispatcher's shutdown stops the queue
    [job] = await first.jobs()
    assert job.status == "queued"
    assert first.session.of(SendPhoto) == []

    second = await start_harness(settings, FakeBackend())
    try:
        [job] = await second.wait_jobs_settled()
        assert job.status == "done" and len(second.session.of(SendPhoto)) == 1
    finally:
        await stop_harness(second)


async def test_generated_but_undelivered_job_is_delivered_once_without_regenerating(tmp_path):
    settings = make_settings(tmp_path)
    first = await start_harness(settings, FakeBackend())
    # Telegram is down when the result is ready: the job stays "generated".
    first.session.failures[SendPhoto] = lambda m: TelegramNetworkError(method=m, message="down")
    await first.feed(message_update("a fox"))
    await first.wait_for(lambda: len(first.session.of(SendPhoto)) >= 1)
    await stop_harness(first)
    [job] = await first.jobs()
    assert job.status == "generated"

    second = await start_harness(settings, FakeBackend())
    try:
        [job] = await second.wait_jobs_settled()
        assert job.status == "done"
        assert second.backend.calls == []  # not generated again
        assert len(second.session.of(SendPhoto)) == 1
        # The delivery loop keeps running: the result is still sent once.
        await second.app.queue.redeliver()
        assert len(second.session.of(SendPhoto)) == 1
    finally:
        await stop_harness(second)


async def test_failed_delivery_is_retried_later_in_the_same_process(tmp_path):
    settings = make_settings(tmp_path, delivery_retry_seconds=0.1)
    h = await start_harness(settings, FakeBackend())
    try:
        attempts = []

        def flaky(method):
            attempts.append(method)
            return TelegramNetworkError(method=method, message="down") if len(attempts) <= 2 else None

        h.session.failures[SendPhoto] = flaky
        await h.feed(message_update("a fox"))
        [job] = await h.wait_jobs_settled()
        assert job.status == "done" and len(attempts) == 3 and len(h.backend.calls) == 1
    finally:
        await stop_harness(h)


async def test_queued_jobs_survive_a_restart(tmp_path):
    settings = make_settings(tmp_path, max_pending_per_user=5)
    first = await start_harness(settings, FakeBackend(step_seconds=0.2))
    for i in range(3):
        await first.feed(message_update(f"prompt {i}"))
    await stop_harness(first)
    second = await start_harness(settings, FakeBackend())
    try:
        jobs = await second.wait_jobs_settled()
        assert [j.status for j in jobs] == ["done"] * 3
        photos = first.session.of(SendPhoto) + second.session.of(SendPhoto)
        assert sorted(p.caption.split("\n")[0] for p in photos) == ["prompt 0", "prompt 1", "prompt 2"]
    finally:
        await stop_harness(second)


async def test_photo_rejected_by_telegram_is_sent_as_a_document(harness):
    from aiogram.exceptions import TelegramBadRequest
    from aiogram.methods import SendDocument

    harness.session.failures[SendPhoto] = lambda m: TelegramBadRequest(
        method=m, message="Bad Request: PHOTO_INVALID_DIMENSIONS"
    )
    await harness.feed(message_update("a very wide panorama"))
    [job] = await harness.wait_jobs_settled()
    assert job.status == "done"
    [document] = harness.session.of(SendDocument)
    assert document.caption.startswith("a very wide panorama")
    assert job.result_file_ids == ["doc-1"]


async def test_model_error_fails_only_that_job(harness):
    from generation.backend import OutOfMemory

    original = harness.backend.generate
    calls = []

    def flaky(request, progress):
        calls.append(request)
        if len(calls) == 1:
            raise OutOfMemory("CUDA out of memory")
        return original(request, progress)

    harness.backend.generate = flaky
    await harness.feed(message_update("first"))
    await harness.wait_jobs_settled()
    await harness.feed(message_update("second"))
    jobs = await harness.wait_jobs_settled()
    assert [(j.status, j.error) for j in jobs] == [("failed", "oom"), ("done", None)]
    from aiogram.methods import EditMessageText

    assert any("Not enough GPU memory" in c.text for c in harness.session.of(EditMessageText))


async def test_unexpected_error_in_the_backend_is_logged_and_reported(harness, caplog):
    def broken(request, progress):
        raise RuntimeError("kaboom")

    harness.backend.generate = broken
    await harness.feed(message_update("first"))
    [job] = await harness.wait_jobs_settled()
    assert (job.status, job.error) == ("failed", "internal")
    assert "job 1 (text2img, kandinsky-3.1) failed" in caplog.text
    from aiogram.methods import EditMessageText

    assert harness.session.of(EditMessageText)[-1].text == "❌ The job failed. Please try again later."
