"""Flow mechanics: where the user is, /cancel, the 10-minute reset, restarts."""

import time

from aiogram.methods import AnswerCallbackQuery, EditMessageText, SendPhoto

from generation.backend import Mode
from generation.fake import FakeBackend
from handlers.editing.flow import EDIT_STATES
from tests.conftest import make_settings, start_harness, stop_harness
from tests.editing.helpers import age_flow, fsm, last_buttons, last_text, photo_update
from tests.fakes import callback_update, message_update, user
from tests.photos import photo_bytes


async def test_cancel_leaves_a_flow(harness):
    await harness.feed(message_update("/fuse"))
    await harness.feed(message_update("/cancel"))
    assert last_text(harness) == "Left the current step."
    assert await fsm(harness).get_state() is None
    await harness.feed(message_update("a red fox"))  # a prompt again
    [job] = await harness.wait_jobs_settled()
    assert job.kind == "text2img"
    await harness.feed(callback_update("edit:fuse_done"))  # a button of the cancelled flow
    answer = harness.session.of(AnswerCallbackQuery)[-1]
    assert answer.show_alert and "This step is over" in answer.text


async def test_a_new_command_starts_over(harness):
    harness.session.files["p"] = photo_bytes("astronaut")
    await harness.feed(message_update("/mix"))
    await harness.feed(message_update("/style"))
    assert "step 1 of 3" in last_text(harness) and "content photo" in last_text(harness)
    await harness.feed(photo_update("p", 512, 512))
    assert "style photo" in last_text(harness)


async def test_flow_resets_after_ten_minutes_of_silence(harness):
    harness.session.files["p"] = photo_bytes("astronaut")
    await harness.feed(message_update("/restyle"))
    await harness.feed(photo_update("p", 512, 512))
    assert "step 2 of 2" in last_text(harness)
    await age_flow(harness, 9 * 60)  # nine minutes: still there
    await harness.feed(message_update("/help"))  # other routers' commands leave the flow alone
    await harness.feed(message_update("a watercolour"))
    assert "a watercolour" in last_text(harness) and await harness.jobs() == []

    await age_flow(harness, 10 * 60 + 1)
    await harness.feed(callback_update("edit:restyle:medium"))
    answer = harness.session.of(AnswerCallbackQuery)[-1]
    assert answer.show_alert and "10 minutes" in answer.text
    assert await fsm(harness).get_state() is None and await harness.jobs() == []


async def test_after_the_timeout_a_text_is_a_prompt_again(harness):
    await harness.feed(message_update("/mix"))
    await age_flow(harness, 11 * 60)
    await harness.feed(message_update("a castle on a hill"))
    texts = harness.session.texts()
    assert any("10 minutes" in t for t in texts)
    [job] = await harness.wait_jobs_settled()
    assert job.kind == "text2img" and job.params["prompt"] == "a castle on a hill"


async def test_activity_keeps_the_flow_alive(harness):
    harness.session.files["p"] = photo_bytes("astronaut")
    await harness.feed(message_update("/fuse"))
    await age_flow(harness, 9 * 60)
    await harness.feed(photo_update("p", 512, 512))  # refreshes the timestamp
    data = await fsm(harness).get_data()
    assert time.time() - data["touched"] < 5 and len(data["photos"]) == 1


async def test_again_on_an_edit_job_after_a_restart(settings):
    harness = await start_harness(settings)
    try:
        harness.session.files["p"] = photo_bytes("coffee")
        await harness.feed(callback_update("set:model:kandinsky-3.1"))
        await harness.feed(photo_update("p", 600, 400))
        await harness.feed(message_update("a mosaic"))
        await harness.feed(callback_update("edit:restyle:strong"))
        [job] = await harness.wait_jobs_settled()
        files = dict(harness.session.files)
    finally:
        await stop_harness(harness)

    # A new process: nothing in memory, the job row and Telegram's files remain.
    harness = await start_harness(settings)
    try:
        harness.session.files.update(files)
        await harness.feed(callback_update(f"res:again:{job.id}"))
        jobs = await harness.wait_jobs_settled()
        again = jobs[1]
        assert (again.status, again.kind, again.model) == ("done", "img2img", job.model)
        assert again.params["input_file_ids"] == ["p"] and again.params["seed"] != job.params["seed"]
        [request] = harness.backend.calls
        assert (request.mode, request.prompt, request.strength) == (Mode.IMG2IMG, "a mosaic", 0.75)
        assert request.images[0].size == (256, 192)
        assert harness.session.of(SendPhoto)
    finally:
        await stop_harness(harness)


async def test_an_input_telegram_no_longer_serves_fails_the_job_with_a_message(harness):
    # The photo's metadata is fine, but the file cannot be downloaded when the worker runs.
    await harness.feed(photo_update("gone", 512, 512, caption="a statue"))  # restyled at once
    [job] = await harness.wait_jobs_settled()
    assert (job.status, job.error) == ("failed", "input_missing")
    assert harness.backend.calls == []
    edits = [c.text for c in harness.session.of(EditMessageText)]
    assert any("could not download the photo" in t for t in edits)


async def test_russian_user_sees_russian_steps(harness):
    ivan = user(3003, language_code="ru", first_name="Иван")
    await harness.feed(message_update("/style", from_user=ivan))
    assert "шаг 1 из 3" in last_text(harness) and "/cancel" in last_text(harness)
    harness.session.files["p"] = photo_bytes("astronaut")
    await harness.feed(photo_update("p", 512, 512, caption="мраморная статуя", from_user=ivan))
    await harness.feed(message_update("/restyle", from_user=ivan))
    await harness.feed(photo_update("p", 512, 512, from_user=ivan))
    await harness.feed(message_update("мраморная статуя", from_user=ivan))
    assert last_buttons(harness)[1] == ("✅ Средне", "edit:restyle:medium")
    await harness.feed(message_update("/cancel", from_user=ivan))
    await harness.feed(photo_update("p", 512, 512, caption="мраморная статуя", from_user=ivan))  # at once
    [job] = await harness.wait_jobs_settled()
    assert job.params["strength"] == 0.5 and job.params["prompt"] == "мраморная статуя"


async def test_edits_share_the_queue_limits(tmp_path):
    settings = make_settings(tmp_path, max_image_side=256, max_pending_per_user=2)
    harness = await start_harness(settings, FakeBackend(step_seconds=0.05))
    try:
        harness.session.files["p"] = photo_bytes("astronaut")
        for _ in range(3):
            await harness.feed(photo_update("p", 512, 512, caption="a statue"))
        assert last_text(harness) == "You already have 2 pictures in progress. Wait for them or /cancel."
        jobs = await harness.wait_jobs_settled()
        assert [j.status for j in jobs] == ["done", "done"]
    finally:
        await stop_harness(harness)


async def test_other_buttons_work_while_a_flow_expires(harness):
    await harness.feed(message_update("a lighthouse"))
    [job] = await harness.wait_jobs_settled()
    await harness.feed(message_update("/mix"))
    await age_flow(harness, 11 * 60)
    await harness.feed(callback_update(f"res:again:{job.id}"))  # "Again" under an earlier result
    jobs = await harness.wait_jobs_settled()
    assert [j.kind for j in jobs] == ["text2img", "text2img"]
    assert await fsm(harness).get_state() is None  # and the stale flow is gone


async def test_flows_and_the_face_feature_stay_apart(harness):
    harness.session.files["p"] = photo_bytes("astronaut")
    # "@me" typed at the restyle's text step is the restyle's text, not a face-swap prompt.
    await harness.feed(photo_update("p", 512, 512))
    await harness.feed(message_update("@me as a knight"))
    assert "@me as a knight" in last_text(harness) and await harness.jobs() == []
    # /face in the middle of a flow starts the face flow; a photo then is the face, not an edit.
    await harness.feed(message_update("/face"))
    assert "only your own face" in last_text(harness)
    assert await fsm(harness).get_state() not in EDIT_STATES
