"""Zoom out, expand, zoom in, upscale and /inpaint through the dispatcher (generation mocked)."""

from __future__ import annotations

import io
from urllib.parse import parse_qs, urlsplit

from aiogram.methods import AnswerCallbackQuery, SendDocument, SendMessage, SendPhoto
from aiogram.types import PhotoSize
from PIL import Image

from generation.backend import Mode, ModelId
from tests.conftest import make_settings, start_harness, stop_harness
from tests.fakes import buttons, callback_update, message_update, user
from tests.photos import photo


def _png(size=(1024, 1024)) -> bytes:
    buffer = io.BytesIO()
    photo("astronaut").resize(size).save(buffer, format="PNG")
    return buffer.getvalue()


async def _result(harness, prompt="a red fox in the snow"):
    await harness.feed(message_update(prompt))
    [job] = await harness.wait_jobs_settled()
    harness.session.files[job.result_file_ids[0]] = _png()
    return job


CANVAS_BUTTONS = [
    ("🔭 Zoom out 1.5x", "cnv:zo15:1"), ("🔭 Zoom out 2x", "cnv:zo2:1"),
    ("↔️ 16:9", "cnv:ex169:1"), ("↕️ 9:16", "cnv:ex916:1"), ("⬜ 1:1", "cnv:ex11:1"),
    ("🔍 Zoom in 2x", "cnv:zi:1"), ("⬆️ Upscale x2", "cnv:up2:1"), ("🖼 4K", "cnv:up4:1"),
]


async def test_result_has_canvas_buttons_and_zoom_out_queues_a_job(harness):
    job = await _result(harness)
    markup = harness.session.of(SendPhoto)[-1].reply_markup
    assert buttons(markup)[-len(CANVAS_BUTTONS):] == CANVAS_BUTTONS
    assert not any(b.web_app for row in markup.inline_keyboard for b in row)  # no WEBAPP_URL: no Inpaint

    await harness.feed(callback_update(f"cnv:zo2:{job.id}"))
    jobs = await harness.wait_jobs_settled()
    zoom = jobs[-1]
    assert (zoom.kind, zoom.model) == (Mode.ZOOM_OUT, ModelId.K31_INPAINT)
    assert zoom.params["input_file_ids"] == job.result_file_ids
    assert zoom.params["extra"] == {"factor": 2.0} and zoom.params["prompt"] == "a red fox in the snow"
    request = harness.backend.calls[-1]
    assert (request.mode, request.width, request.height, request.images[0].size) == (Mode.ZOOM_OUT, 1024, 1024, (1024, 1024))
    assert request.extra == {"factor": 2.0}
    caption = harness.session.of(SendPhoto)[-1].caption
    assert caption.startswith("Zoom out 2x: a red fox in the snow\n\nKandinsky 3.1 Inpainting")
    # The zoomed-out picture has the same buttons: zoom out again, and so on.
    assert ("🔭 Zoom out 2x", f"cnv:zo2:{zoom.id}") in buttons(harness.session.of(SendPhoto)[-1].reply_markup)


async def test_expand_and_zoom_in(harness):
    job = await _result(harness)
    await harness.feed(callback_update(f"cnv:ex169:{job.id}"))
    await harness.feed(callback_update(f"cnv:zi:{job.id}"))
    *_, expand, zoom_in = await harness.wait_jobs_settled()
    assert (expand.kind, expand.params["width"], expand.params["height"]) == (Mode.EXPAND, 1024, 576)
    assert expand.params["extra"] == {"ratio": "16:9"}
    assert (zoom_in.kind, zoom_in.model) == (Mode.ZOOM_IN, ModelId.K31)  # redrawn by the model that drew it
    assert [c.mode for c in harness.backend.calls[-2:]] == [Mode.EXPAND, Mode.ZOOM_IN]


async def test_upscale_4k_is_sent_as_a_document_with_its_size(harness):
    job = await _result(harness)
    await harness.feed(callback_update(f"cnv:up4:{job.id}"))
    *_, upscale = await harness.wait_jobs_settled()
    assert (upscale.kind, upscale.model, upscale.status) == (Mode.UPSCALE, ModelId.SUPERRES, "done")
    assert (upscale.params["width"], upscale.params["height"]) == (4096, 4096)
    document = harness.session.of(SendDocument)[-1]
    assert document.caption == "Upscaled x4 · 4096×4096 px · KandiSuperRes"
    assert len(harness.session.of(SendPhoto)) == 1  # only the first result went as a photo
    assert upscale.result_file_ids[0].startswith("doc-")
    # Upscaling the 4K picture again would pass 4096 px: refused, nothing queued.
    await harness.feed(callback_update(f"cnv:up2:{upscale.id}"))
    assert "4096×4096" in harness.session.of(AnswerCallbackQuery)[-1].text
    await harness.feed(callback_update(f"cnv:zo2:{upscale.id}"))  # no such button under a document
    assert harness.session.of(AnswerCallbackQuery)[-1].text == "This button is no longer valid."
    assert len(await harness.jobs()) == 2


async def test_someone_elses_result_is_refused(harness):
    job = await _result(harness)
    await harness.feed(callback_update(f"cnv:zo15:{job.id}", from_user=user(2002)))
    assert harness.session.of(AnswerCallbackQuery)[-1].text == "This button is no longer valid."
    assert len(await harness.jobs()) == 1


async def test_cancel_an_upscale_like_any_job(tmp_path):
    from generation.fake import FakeBackend

    h = await start_harness(make_settings(tmp_path), FakeBackend(step_seconds=0.05))
    try:
        job = await _result(h)
        h.backend.step_seconds = 1.0  # the upscale's 4 steps outlast the cancel, however busy the machine
        h.backend.steps_done = 0  # wait for the upscale's own first step, not the first job's last
        await h.feed(callback_update(f"cnv:up2:{job.id}"))
        await h.wait_for(lambda: h.backend.steps_done >= 1)
        upscale = (await h.jobs())[-1]
        await h.feed(callback_update(f"cancel:{upscale.id}"))
        *_, upscale = await h.wait_jobs_settled()
        assert upscale.status == "cancelled"
        assert not h.session.of(SendDocument)
    finally:
        await stop_harness(h)


async def test_inpaint_command(tmp_path):
    h = await start_harness(make_settings(tmp_path, webapp_url="https://bot.example.com"))
    try:
        await h.feed(message_update("/inpaint"))
        assert "caption /inpaint" in h.session.of(SendMessage)[-1].text
        sent = PhotoSize(file_id="user-photo", file_unique_id="up", width=800, height=600, file_size=50_000)
        await h.feed(message_update(None, caption="/inpaint", photo=[sent]))
        answer = h.session.of(SendMessage)[-1]
        [[button]] = answer.reply_markup.inline_keyboard
        url = urlsplit(button.web_app.url)
        assert (url.scheme, url.netloc, url.path) == ("https", "bot.example.com", "/webapp/inpaint")
        query = parse_qs(url.query)
        assert query["lang"] == ["en"] and query["src"][0].startswith("user-photo.800.600.")
        # Results get the Inpaint button too, opening the page for that job.
        job = await _result(h)
        markup = h.session.of(SendPhoto)[-1].reply_markup
        [inpaint] = [b for row in markup.inline_keyboard for b in row if b.web_app]
        assert inpaint.web_app.url == f"https://bot.example.com/webapp/inpaint?lang=en&job={job.id}"
    finally:
        await stop_harness(h)


async def test_inpaint_without_a_web_page_set_up(harness):
    sent = PhotoSize(file_id="user-photo", file_unique_id="up", width=800, height=600, file_size=50_000)
    await harness.feed(message_update(None, caption="/inpaint", photo=[sent]))
    assert "WEBAPP_URL" in harness.session.of(SendMessage)[-1].text


async def test_kandinsky_22_users_zoom_out_with_kandinsky_22(harness):
    await harness.feed(callback_update("set:model:kandinsky-2.2"))
    job = await _result(harness)
    await harness.feed(callback_update(f"cnv:ex11:{job.id}"))
    *_, expand = await harness.wait_jobs_settled()
    assert (expand.kind, expand.model, expand.status) == (Mode.EXPAND, ModelId.K22, "done")


async def test_a_zoom_out_interrupted_by_a_restart_is_done_after_it(tmp_path):
    from generation.fake import FakeBackend

    settings = make_settings(tmp_path)
    first = await start_harness(settings, FakeBackend(step_seconds=0.02))
    job = await _result(first)
    await first.feed(callback_update(f"cnv:zo15:{job.id}"))
    await first.wait_for(lambda: first.backend.calls[-1].mode == Mode.ZOOM_OUT and first.backend.steps_done > 0)
    await stop_harness(first)  # SIGTERM while it runs: back to the queue
    assert (await first.jobs())[-1].status == "queued"

    second = await start_harness(settings, FakeBackend())
    second.session.files.update(first.session.files)  # Telegram still serves the picture
    try:
        *_, zoom = await second.wait_jobs_settled()
        assert (zoom.kind, zoom.status) == (Mode.ZOOM_OUT, "done")
        [request] = second.backend.calls
        assert request.mode == Mode.ZOOM_OUT and request.extra == {"factor": 1.5}
        assert second.session.of(SendPhoto)[-1].caption.startswith("Zoom out 1.5x: a red fox in the snow")
    finally:
        await stop_harness(second)


async def test_an_upscale_over_telegrams_document_limit_goes_as_jpeg(harness, monkeypatch):
    import bot.notifier

    monkeypatch.setattr(bot.notifier, "DOCUMENT_LIMIT", 1000)
    job = await _result(harness)
    await harness.feed(callback_update(f"cnv:up2:{job.id}"))
    *_, upscale = await harness.wait_jobs_settled()
    document = harness.session.of(SendDocument)[-1]
    assert upscale.status == "done" and document.document.path.name == "0.jpg"
    assert document.caption == "Upscaled x2 · 2048×2048 px · KandiSuperRes"


async def test_canvas_jobs_count_against_the_users_limit(tmp_path):
    from generation.fake import FakeBackend

    h = await start_harness(make_settings(tmp_path, max_pending_per_user=1), FakeBackend(step_seconds=0.04))
    try:
        job = await _result(h)
        await h.feed(callback_update(f"cnv:zo2:{job.id}"))
        await h.feed(callback_update(f"cnv:up4:{job.id}"))  # while the zoom-out is still in progress
        assert h.session.of(SendMessage)[-1].text == "You already have 1 picture in progress. Wait for it or /cancel."
        jobs = await h.wait_jobs_settled()
        assert [j.kind for j in jobs] == [Mode.TEXT2IMG, Mode.ZOOM_OUT]
    finally:
        await stop_harness(h)
