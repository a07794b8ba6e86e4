import asyncio

from aiogram.methods import AnswerCallbackQuery, EditMessageText, SendMessage, SendPhoto

from generation.fake import FakeBackend
from tests.conftest import make_settings, start_harness, stop_harness
from tests.fakes import callback_update, message_update, user


async def wait_running(harness, job_id=1):
    async def running():
        return (await harness.jobs())[job_id - 1].status == "running" and harness.backend.steps_done > 0

    await harness.wait_for(running)


async def slow_harness(tmp_path, **overrides):
    return await start_harness(make_settings(tmp_path, **overrides), FakeBackend(step_seconds=0.05))


async def test_cancel_command_cancels_queued_and_stops_running(tmp_path):
    h = await slow_harness(tmp_path)
    try:
        await h.feed(message_update("first"))
        await h.feed(message_update("second"))
        await wait_running(h)
        await h.feed(message_update("/cancel"))
        assert h.session.of(SendMessage)[-1].text == "Cancelled: 1 queued, 1 running."
        jobs = await h.wait_jobs_settled()
        assert [j.status for j in jobs] == ["cancelled", "cancelled"]
        assert h.backend.steps_done < 25  # stopped at the next step, not run to the end
        assert len(h.backend.calls) == 1  # the queued job never reached the model
        assert h.session.of(SendPhoto) == []
        edits = [c.text for c in h.session.of(EditMessageText)]
        assert edits.count("✖️ Cancelled.") == 2  # both status messages say so
    finally:
        await stop_harness(h)


async def test_cancel_button_on_the_status_message(tmp_path):
    h = await slow_harness(tmp_path)
    try:
        await h.feed(message_update("first"))
        await h.feed(message_update("second"))
        await h.feed(callback_update("cancel:2"))  # the queued one
        assert h.session.of(AnswerCallbackQuery)[-1].text == "✖️ Cancelled."
        await wait_running(h)
        await h.feed(callback_update("cancel:1"))  # the running one
        jobs = await h.wait_jobs_settled()
        assert [j.status for j in jobs] == ["cancelled", "cancelled"]
    finally:
        await stop_harness(h)


async def test_cancel_button_of_another_user_does_nothing(tmp_path):
    h = await slow_harness(tmp_path)
    try:
        await h.feed(message_update("first"))
        await h.feed(message_update("second"))
        await h.feed(callback_update("cancel:2", from_user=user(user_id=666)))
        assert h.session.of(AnswerCallbackQuery)[-1].text == "This button is no longer valid."
        jobs = await h.wait_jobs_settled()
        assert [j.status for j in jobs] == ["done", "done"]
    finally:
        await stop_harness(h)


async def test_cancel_with_nothing_to_cancel(harness):
    await harness.feed(message_update("/cancel"))
    assert harness.session.of(SendMessage)[-1].text == "You have nothing to cancel."
    await harness.feed(message_update("✖️ Cancel"))
    assert harness.session.of(SendMessage)[-1].text == "You have nothing to cancel."


async def test_per_user_pending_limit(tmp_path):
    h = await slow_harness(tmp_path)
    try:
        await h.feed(message_update("one"))
        await h.feed(message_update("two"))
        await h.feed(message_update("three"))
        assert h.session.of(SendMessage)[-1].text == "You already have 2 pictures in progress. Wait for them or /cancel."
        assert len(await h.jobs()) == 2
        # Another user is not affected.
        await h.feed(message_update("other", from_user=user(user_id=2)))
        assert len(await h.jobs()) == 3
    finally:
        await stop_harness(h)


async def test_simultaneous_messages_cannot_pass_the_user_limit(tmp_path):
    h = await slow_harness(tmp_path)
    try:
        await asyncio.gather(*(h.feed(message_update(f"p{i}")) for i in range(6)))
        assert len(await h.jobs()) == 2
    finally:
        await stop_harness(h)


async def test_global_queue_limit(tmp_path):
    h = await slow_harness(tmp_path, max_pending_total=2)
    try:
        await h.feed(message_update("one", from_user=user(user_id=1)))
        await h.feed(message_update("two", from_user=user(user_id=2)))
        await h.feed(message_update("three", from_user=user(user_id=3)))
        assert h.session.of(SendMessage)[-1].text == "The queue is full right now. Please try again in a few minutes."
        assert len(await h.jobs()) == 2
    finally:
        await stop_harness(h)
