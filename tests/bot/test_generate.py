import asyncio

from aiogram.methods import (
    DeleteMessage,
    EditMessageText,
    SendChatAction,
    SendDocument,
    SendMediaGroup,
    SendMessage,
    SendPhoto,
)

from generation.backend import Mode, ModelId
from storage.models import User
from tests.conftest import make_settings, start_harness, stop_harness
from tests.fakes import buttons, callback_update, message_update


async def test_prompt_becomes_a_job_and_a_photo_with_caption_and_buttons(harness):
    harness.backend.step_seconds = 0.01  # long enough for the chat action to go out
    await harness.feed(message_update("a red fox in the snow 🦊"))
    status = harness.session.of(SendMessage)[-1]
    assert status.text.startswith("⏳ Queued, position 1")
    assert buttons(status.reply_markup) == [("✖️ Cancel", "cancel:1")]

    [job] = await harness.wait_jobs_settled()
    assert job.status == "done" and job.kind == "text2img" and job.model == "kandinsky-3.1"
    assert job.params["prompt"] == "a red fox in the snow 🦊"
    photo = harness.session.of(SendPhoto)[-1]
    seed = job.params["seed"]
    assert photo.caption == f"a red fox in the snow 🦊\n\nKandinsky 3.1 · No style · 1024×1024 · seed {seed}"
    assert buttons(photo.reply_markup) == [
        ("🔁 Again", "res:again:1"),
        ("✏️ Edit prompt", "res:remix:1"),  # handlers.results: a new text, the same settings and seed
        ("🎲 Variations", "res:variations:1"),  # image editing (handlers.editing.variations)
        ("📄 Original", "res:original:1"),
        ("📌 Reuse seed", "res:seed:1"),
        # zoom, expand and upscale (handlers.canvas_edit, tests/canvas)
        ("🔭 Zoom out 1.5x", "cnv:zo15:1"), ("🔭 Zoom out 2x", "cnv:zo2:1"),
        ("↔️ 16:9", "cnv:ex169:1"), ("↕️ 9:16", "cnv:ex916:1"), ("⬜ 1:1", "cnv:ex11:1"),
        ("🔍 Zoom in 2x", "cnv:zi:1"), ("⬆️ Upscale x2", "cnv:up2:1"), ("🖼 4K", "cnv:up4:1"),
    ]
    assert job.result_file_ids == ["photo-1"]
    [request] = harness.backend.calls
    assert (request.mode, request.model, request.width, request.height, request.seed) == (
        Mode.TEXT2IMG, ModelId.K31, 1024, 1024, seed
    )
    # Progress edits of the status message, the upload_photo action, and the status message removed.
    edits = [c.text for c in harness.session.of(EditMessageText)]
    assert "🎨 Generating…" in edits
    assert any(t.startswith("🎨 Generating: step 50/50") for t in edits)  # the registry's default steps
    assert any(c.action == "upload_photo" for c in harness.session.of(SendChatAction))


async def test_style_model_and_aspect_ratio_reach_the_backend(harness):
    await harness.feed(callback_update("set:style:OIL_PAINTING"))
    await harness.feed(callback_update("set:ratio:9x16"))
    await harness.feed(callback_update("set:model:kandinsky-2.2"))
    await harness.feed(message_update("a lighthouse"))
    [job] = await harness.wait_jobs_settled()
    [request] = harness.backend.calls
    assert request.prompt == "a lighthouse, oil painting, thick brush strokes, canvas texture"
    assert (request.width, request.height, request.model) == (576, 1024, ModelId.K22)
    caption = harness.session.of(SendPhoto)[-1].caption
    assert caption.startswith("a lighthouse\n\nKandinsky 2.2 · Oil painting · 576×1024 · seed")


async def test_four_images_arrive_as_one_album(harness):
    await harness.feed(callback_update("set:count:4"))
    await harness.feed(message_update("four cats"))
    [job] = await harness.wait_jobs_settled()
    [album] = harness.session.of(SendMediaGroup)
    assert len(album.media) == 4
    seed = job.params["seed"]
    assert album.media[0].caption.endswith(f"seed {seed}") and album.media[1].caption is None
    assert len(harness.backend.calls) == 1 and harness.backend.calls[0].num_images == 4
    follow_up = harness.session.of(SendMessage)[-1]
    assert follow_up.text.splitlines() == [
        f"⬆️ 4 images, seeds {seed}, {seed + 1}, {seed + 2}, {seed + 3}",
        "🎲 variations · 📄 original · 📌 reuse the seed — of image 1, 2, …",
        "🔭 zoom out 2x · ⬆️ upscale x2 — of image 1, 2, …",
    ]
    assert ("🔁 Again", f"res:again:{job.id}") in buttons(follow_up.reply_markup)
    assert len(job.result_file_ids) == 4


async def test_again_reuses_settings_with_a_new_seed(harness):
    await harness.feed(message_update("a tiny house"))
    [first] = await harness.wait_jobs_settled()
    await harness.feed(callback_update("set:style:ANIME"))  # later changes do not affect "Again"
    await harness.feed(callback_update(f"res:again:{first.id}"))
    jobs = await harness.wait_jobs_settled()
    assert len(jobs) == 2 and jobs[1].status == "done"
    assert jobs[1].params["prompt"] == "a tiny house" and jobs[1].params["style"] == "DEFAULT"
    assert jobs[1].params["seed"] != first.params["seed"]


async def test_original_sends_the_lossless_png_as_a_document(harness):
    await harness.feed(message_update("a mountain"))
    [job] = await harness.wait_jobs_settled()
    await harness.feed(callback_update(f"res:original:{job.id}"))
    [document] = harness.session.of(SendDocument)
    assert document.document.filename == f"kandinsky-{job.id}-{job.params['seed']}.png"
    with open(document.document.path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


async def test_reuse_seed_fixes_the_seed_of_the_next_pictures(harness):
    await harness.feed(message_update("a mountain"))
    [job] = await harness.wait_jobs_settled()
    await harness.feed(callback_update(f"res:seed:{job.id}"))
    async with harness.app.db.session() as session:
        assert (await session.get(User, 1001)).settings.fixed_seed == job.params["seed"]
    await harness.feed(message_update("a mountain at night"))
    jobs = await harness.wait_jobs_settled()
    assert jobs[1].params["seed"] == job.params["seed"]
    await harness.feed(callback_update("set:seed:clear"))
    async with harness.app.db.session() as session:
        assert (await session.get(User, 1001)).settings.fixed_seed is None


async def test_buttons_of_another_users_result_do_nothing(harness):
    await harness.feed(message_update("a mountain"))
    [job] = await harness.wait_jobs_settled()
    from tests.fakes import user

    stranger = user(user_id=5005)
    for action in ("again", "original", "seed"):
        await harness.feed(callback_update(f"res:{action}:{job.id}", from_user=stranger))
    assert len(await harness.jobs()) == 1
    assert harness.session.of(SendDocument) == []


async def test_long_prompt_caption_is_shortened_to_telegram_limit(harness):
    prompt = "word " * 199 + "end"  # 998 characters
    await harness.feed(callback_update("set:style:KHOKHLOMA"))
    await harness.feed(message_update(prompt))
    [job] = await harness.wait_jobs_settled()
    caption = harness.session.of(SendPhoto)[-1].caption
    assert len(caption) <= 1024 and caption.endswith(f"seed {job.params['seed']}")


async def test_prompt_with_html_is_escaped_in_caption(harness):
    await harness.feed(message_update("<b>bold</b> & cat"))
    await harness.wait_jobs_settled()
    assert harness.session.of(SendPhoto)[-1].caption.startswith("&lt;b&gt;bold&lt;/b&gt; &amp; cat")


async def test_progress_edits_are_throttled_per_chat(tmp_path):
    from generation.fake import FakeBackend

    settings = make_settings(tmp_path, progress_edit_interval=60.0)
    h = await start_harness(settings, FakeBackend())
    try:
        await h.feed(message_update("a cat"))
        await h.wait_jobs_settled()
        progress = [c for c in h.session.of(EditMessageText) if "step" in c.text]
        assert len(progress) == 0  # the "Generating…" edit used up the chat's slot
    finally:
        await stop_harness(h)


async def test_queue_is_round_robin_across_users(tmp_path):
    from generation.fake import FakeBackend

    settings = make_settings(tmp_path, max_pending_per_user=5)
    backend = FakeBackend(step_seconds=0.2)
    h = await start_harness(settings, backend)
    try:
        from tests.fakes import user

        heavy, light = user(user_id=1), user(user_id=2)
        # Hold the worker on a first job while the queue fills up (then draw fast). The rest is sent
        # once that job is on the GPU: a worker that read the queue after "heavy 1" arrived would
        # batch the two (both queued, same model and size), and the order would be the batch's.
        await h.feed(message_update("heavy 0", from_user=heavy))
        await h.wait_for(lambda: backend.calls)
        await h.feed(message_update("heavy 1", from_user=heavy))
        await h.feed(message_update("heavy 2", from_user=heavy))
        await h.feed(message_update("light 0", from_user=light))
        backend.step_seconds = 0.01
        await h.wait_jobs_settled()
        order = [r.prompt for r in backend.calls]
        assert order == ["heavy 0", "light 0", "heavy 1", "heavy 2"]
    finally:
        await stop_harness(h)


async def test_status_message_is_removed_after_delivery(harness):
    await harness.feed(message_update("a cat"))
    status = harness.session.of(SendMessage)[-1]
    await harness.wait_jobs_settled()
    assert len(harness.session.of(DeleteMessage)) == 1
