"""/animate and /video through the dispatcher (the fake backend renders real, small MP4s)."""

from __future__ import annotations

import av
from aiogram.methods import EditMessageText, SendChatAction, SendMessage, SendVideo

from generation.backend import Mode, ModelId
from tests.conftest import make_settings, start_harness, stop_harness
from tests.fakes import buttons, callback_update, message_update, sticker_update


def last_text(harness) -> str:
    return harness.session.of(SendMessage)[-1].text


def last_buttons(harness) -> list[tuple[str, str]]:
    return buttons(harness.session.of(SendMessage)[-1].reply_markup)


async def test_two_scenes_become_one_video_with_the_prompts_in_the_caption(harness):
    await harness.feed(message_update("/animate"))
    assert last_text(harness).startswith("🎬 <b>Animation</b> · scene 1 of up to 4, step 1 of 2")
    assert "/cancel" in last_text(harness)
    await harness.feed(message_update("a lighthouse at dawn"))
    assert "scene 1 of up to 4, step 2 of 2" in last_text(harness)
    moves = last_buttons(harness)
    assert [text for text, _ in moves] == [
        "🔍 Zoom in", "🔭 Zoom out", "⬅️ Pan left", "➡️ Pan right", "⬆️ Pan up", "⬇️ Pan down",
        "↻ Rotate clockwise", "↺ Rotate counter-clockwise", "🌊 Drift",
    ]
    await harness.feed(callback_update(dict(moves)["🔍 Zoom in"]))
    assert "1 of up to 4 scenes, 4 s" in last_text(harness)
    assert "1. 🔍 Zoom in: a lighthouse at dawn" in last_text(harness)
    assert [t for t, _ in last_buttons(harness)] == ["➕ Add a scene", "🎬 Make the video"]
    await harness.feed(callback_update(dict(last_buttons(harness))["➕ Add a scene"]))
    assert "scene 2 of up to 4, step 1 of 2" in last_text(harness)
    await harness.feed(message_update("the lighthouse at night, <storm>"))
    await harness.feed(callback_update("anim:move:pan_left"))
    assert "2. ⬅️ Pan left: the lighthouse at night, &lt;storm&gt;" in last_text(harness)
    await harness.feed(callback_update("anim:make:"))

    [job] = await harness.wait_jobs_settled()
    assert (job.status, job.kind, job.model) == ("done", Mode.ANIMATE, ModelId.K31)
    assert job.params["scenes"] == [
        {"prompt": "a lighthouse at dawn", "move": "zoom_in"},
        {"prompt": "the lighthouse at night, <storm>", "move": "pan_left"},
    ]
    [request] = harness.backend.calls
    assert (request.mode, request.width, request.height, request.num_images) == (Mode.ANIMATE, 768, 768, 1)
    [sent] = harness.session.of(SendVideo)
    assert sent.caption.startswith("🎬 1. 🔍 Zoom in: a lighthouse at dawn\n2. ⬅️ Pan left: the lighthouse at night")
    assert "Kandinsky 3.1 · 8 s · seed" in sent.caption
    assert sent.thumbnail is not None and sent.supports_streaming
    assert (sent.width, sent.height, sent.duration) == (768, 768, 8)
    assert buttons(sent.reply_markup) == [("🔁 Again", f"vid:again:{job.id}")]
    assert job.result_file_ids == [f"video-{job.result_file_ids[0].split('-')[1]}"]
    # The MP4 on disk: 2 scenes x 4 s at the fake's 4 fps.
    path = harness.app.settings.results_dir / str(job.id) / "video.mp4"
    with av.open(str(path)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 32
    # Progress: scene and frame; the video upload action.
    edits = [c.text for c in harness.session.of(EditMessageText)]
    assert any(t.startswith("🎬 Animation: scene 1 of 2, frame 16 of 32") for t in edits)
    assert any(t.startswith("🎬 Animation: scene 2 of 2, frame 32 of 32") for t in edits)
    assert any(c.action == "upload_video" for c in harness.session.of(SendChatAction))
    # The flow is over: the old buttons are stale.
    await harness.feed(callback_update("anim:make:"))
    assert harness.session.calls[-1].text == "This animation is no longer being set up. Start again with /animate."


async def test_each_step_refuses_what_does_not_belong_and_cancel_leaves(harness):
    await harness.feed(message_update("/animate a fox"))  # text after the command is scene 1
    assert "step 2 of 2" in last_text(harness)
    await harness.feed(message_update("another text"))
    assert last_text(harness) == "Choose the camera move with the buttons above, or /cancel."
    await harness.feed(callback_update("anim:move:spin_wildly"))  # forged: not a camera move
    await harness.feed(callback_update("anim:move:drift"))
    await harness.feed(sticker_update())
    await harness.feed(message_update("/cancel"))
    assert last_text(harness) == "Left the current step."
    await harness.feed(callback_update("anim:add:"))
    assert harness.session.calls[-1].text.startswith("This animation is no longer being set up")
    await harness.feed(message_update("a plain prompt after cancel"))
    [job] = await harness.wait_jobs_settled()
    assert job.kind == Mode.TEXT2IMG  # outside the flow a text is an ordinary prompt


async def test_at_most_four_scenes(harness):
    await harness.feed(message_update("/animate"))
    for i in range(4):
        await harness.feed(message_update(f"scene {i}"))
        await harness.feed(callback_update("anim:move:zoom_in"))
    assert [t for t, _ in last_buttons(harness)] == ["🎬 Make the video"]
    await harness.feed(message_update("a fifth scene"))
    assert last_text(harness) == "That is the most: 4 scenes. Make the video, or /cancel."
    await harness.feed(callback_update("anim:add:"))
    assert harness.session.calls[-1].text == "That is the most: 4 scenes. Make the video, or /cancel."


async def test_scenes_survive_a_restart(tmp_path):
    settings = make_settings(tmp_path)
    first = await start_harness(settings)
    await first.feed(message_update("/animate a castle"))
    await first.feed(callback_update("anim:move:rotate_cw"))
    await stop_harness(first)

    second = await start_harness(settings)
    try:
        await second.feed(message_update("a second scene"))  # the flow goes on where it was
        assert "scene 2 of up to 4, step 2 of 2" in last_text(second)
        await second.feed(callback_update("anim:move:drift"))
        await second.feed(callback_update("anim:make:"))
        [job] = await second.wait_jobs_settled()
        assert [s["move"] for s in job.params["scenes"]] == ["rotate_cw", "drift"]
    finally:
        await stop_harness(second)


async def test_video_command_makes_a_5_second_clip_and_offers_10(harness):
    await harness.feed(message_update("/video"))
    assert last_text(harness).startswith("Write the video after the command")
    await harness.feed(callback_update("set:ratio:16x9"))
    await harness.feed(message_update("/video a red fox running through the snow"))
    [job] = await harness.wait_jobs_settled()
    assert (job.kind, job.model, job.status) == (Mode.VIDEO, ModelId.K5_VIDEO_5S, "done")
    [request] = harness.backend.calls
    assert (request.width, request.height) == (768, 512)  # Kandinsky 5.0 Video Lite's 16:9-ish size
    [sent] = harness.session.of(SendVideo)
    assert sent.caption.startswith("🎞 a red fox running through the snow\n\nKandinsky 5.0 Video Lite, 5 s · 5 s")
    assert buttons(sent.reply_markup) == [("🔁 Again", f"vid:again:{job.id}"), ("🎞 10 seconds", f"vid:long:{job.id}")]
    edits = [c.text for c in harness.session.of(EditMessageText)]
    assert any(t.startswith("🎞 Video: step 21 of 21") for t in edits)

    await harness.feed(callback_update(f"vid:long:{job.id}"))
    jobs = await harness.wait_jobs_settled()
    assert jobs[-1].model == ModelId.K5_VIDEO_10S and jobs[-1].params["seed"] != job.params["seed"]
    assert harness.session.of(SendVideo)[-1].duration == 10
    assert buttons(harness.session.of(SendVideo)[-1].reply_markup) == [("🔁 Again", f"vid:again:{jobs[-1].id}")]


async def test_one_video_at_a_time_per_user(tmp_path):
    harness = await start_harness(make_settings(tmp_path, max_pending_per_user=5))
    try:
        harness.backend.step_seconds = 0.05
        await harness.feed(message_update("/video a slow sunrise"))
        await harness.feed(message_update("/video another one"))
        assert last_text(harness) == "You already have 1 video in progress. Wait for it or /cancel."
        await harness.feed(message_update("a picture meanwhile"))  # pictures have their own limit
        jobs = await harness.wait_jobs_settled(timeout=30)
        assert [j.kind for j in jobs] == [Mode.VIDEO, Mode.TEXT2IMG]
    finally:
        await stop_harness(harness)


async def test_buttons_of_someone_elses_video_do_nothing(harness):
    from tests.fakes import user

    await harness.feed(message_update("/video a boat"))
    [job] = await harness.wait_jobs_settled()
    await harness.feed(callback_update(f"vid:again:{job.id}", from_user=user(2002)))
    assert harness.session.calls[-1].text == "This button is no longer valid."
    assert len(await harness.jobs()) == 1


async def test_cancel_stops_an_animation_between_frames(harness):
    harness.backend.step_seconds = 0.05  # 32 frames: 1.6 s
    await harness.feed(message_update("/animate a windmill"))
    await harness.feed(callback_update("anim:move:pan_right"))
    await harness.feed(callback_update("anim:make:"))
    await harness.wait_for(lambda: harness.backend.steps_done >= 3)
    await harness.feed(callback_update("cancel:1"))
    [job] = await harness.wait_jobs_settled()
    assert job.status == "cancelled"
    assert 3 <= harness.backend.steps_done < 16
    assert harness.session.of(SendVideo) == []
    folder = harness.app.settings.results_dir / str(job.id)
    assert not list(folder.glob("*.mp4")) if folder.exists() else True
