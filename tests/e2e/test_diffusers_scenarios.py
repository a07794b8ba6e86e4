"""The real bot process on the real generation layer: diffusers pipelines on tiny random-weight
checkpoints (generation.tiny, in the hub layouts, loaded by the production loading code) on the CPU.

The fake-backend scenarios (test_scenarios.py) cover the bot's behaviour in depth; these check that
the same user journeys work end to end when the images come from the models: the chosen model and
aspect ratio reach the pipeline, four images come as one album, and a photo with a caption is
restyled; with the editing model set to Kandinsky 3.1, an album of two photos is fused by the
IP-Adapter. (Cancelling a running job is covered with the fake backend, whose step time the test
controls: a tiny pipeline may finish before a press arrives.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from generation.styles import image_size
from tests.e2e.scenario import WAIT, World, choose, is_photo, largest, open_settings, open_world
from playground.users import button_texts, has_text
from tests.photos import photo

pytestmark = pytest.mark.asyncio(loop_scope="module")

MAX_SIDE = 256  # tiny models on a CPU: small images keep the suite quick
LOAD_WAIT = 120.0  # the first image of a model includes loading it (and converting Flash)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> AsyncIterator[World]:
    async with open_world(
        tmp_path_factory.mktemp("e2e-diffusers"),
        "diffusers",
        request,
        MAX_IMAGE_SIDE=MAX_SIDE,
        ANIMATION_FPS="2",  # /animate: 8 frames a scene; /video: 21 frames, 48x32
        VIDEO_FPS="4",
        VIDEO_SHORT_SIDE="32",
        SAFETY_IMAGE_FILTER="false",  # random weights draw noise; the safety check has its own tests
    ) as opened:
        yield opened


async def test_the_chosen_model_and_aspect_ratio_reach_the_pipeline(world: World) -> None:
    user = world.user()
    menu = await open_settings(user)
    menu = await choose(user, menu, "Model", "Kandinsky 3.1 Flash")
    menu = await choose(user, menu, "Aspect ratio", "16:9")
    await user.send_text("a lighthouse on a cliff at dawn")
    photo = await user.wait_for(is_photo, LOAD_WAIT)
    width, height = image_size("16:9", MAX_SIDE)
    assert largest(photo) == (width, height) and user.image(photo).size == (width, height)
    assert "Kandinsky 3.1 Flash" in photo["caption"]


async def test_four_images_of_the_default_model_come_as_one_album(world: World) -> None:
    user = world.user()
    await choose(user, await open_settings(user), "Images per request", "4")
    await user.send_text("four owls on a branch")
    album = await user.wait_for_album(4, LOAD_WAIT)
    assert [largest(m) for m in album] == [(MAX_SIDE, MAX_SIDE)] * 4
    assert "Kandinsky 3.1 ·" in album[0]["caption"]
    # Different seeds give different pictures.
    assert len({user.image(m).tobytes() for m in album}) == 4
    assert "🔁 Again" in button_texts(await user.wait_for(has_text("4 images"), WAIT))


async def test_a_photo_with_a_caption_is_restyled_by_the_pipeline(world: World) -> None:
    user = world.user()
    await user.send_photo(photo("coffee"), caption="a pencil drawing")  # 600x400, restyled at once
    result = await user.wait_for(is_photo, LOAD_WAIT)
    assert result["caption"].startswith("a pencil drawing")
    width, height = largest(result)
    assert max(width, height) == MAX_SIDE and width > height  # the photo's landscape shape, scaled to fit
    assert user.image(result).size == (width, height)


def video_facts(world: World, message: dict) -> tuple[int, float, float]:
    """(frames, frame rate, duration in seconds) of the MP4 the bot uploaded, decoded with PyAV."""
    import io

    import av

    data = world.emulator.file_bytes(message["video"]["file_id"])
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video=0))
        return frames, float(stream.average_rate), float(stream.duration * stream.time_base)


async def test_animate_with_two_scenes_yields_a_video(world: World) -> None:
    user = world.user()
    await user.send_command("animate")
    await user.wait_for(has_text("scene 1 of up to 4, step 1 of 2"), WAIT)
    await user.send_text("a lighthouse on a cliff at dawn")
    camera = await user.wait_for(has_text("scene 1 of up to 4, step 2 of 2"), WAIT)
    await user.press(camera, "Zoom in")
    ready = await user.wait_for(has_text("1 of up to 4 scenes"), WAIT)
    await user.press(ready, "Add a scene")
    await user.wait_for(has_text("scene 2 of up to 4, step 1 of 2"), WAIT)
    await user.send_text("the lighthouse in a storm at night")
    camera = await user.wait_for(has_text("scene 2 of up to 4, step 2 of 2"), WAIT)
    await user.press(camera, "Pan left")
    ready = await user.wait_for(has_text("2 of up to 4 scenes"), WAIT)
    await user.press(ready, "Make the video")
    video = await user.wait_for(lambda m: "video" in m, LOAD_WAIT)
    assert video["caption"].startswith("🎬 1. 🔍 Zoom in: a lighthouse on a cliff at dawn\n2. ⬅️ Pan left: the lighthouse")
    assert (video["video"]["width"], video["video"]["height"]) == (MAX_SIDE, MAX_SIDE)
    frames, fps, duration = video_facts(world, video)
    assert (frames, fps) == (16, 2.0)  # 2 scenes x 4 s x 2 fps
    assert abs(duration - 8.0) <= 1 / fps


async def test_video_command_yields_a_five_second_clip(world: World) -> None:
    user = world.user()
    await user.send_command("video", "a red fox running through the snow")
    video = await user.wait_for(lambda m: "video" in m, LOAD_WAIT)
    assert video["caption"].startswith("🎞 a red fox running through the snow")
    assert "🎞 10 seconds" in button_texts(video)
    frames, fps, duration = video_facts(world, video)
    assert (frames, fps) == (21, 4.0) and abs(duration - 5.0) <= 1 / fps + 1e-6


async def test_fuse_an_album_of_two_photos_on_kandinsky_31(world: World) -> None:
    """Editing model = Kandinsky 3.1: /fuse with an album of two photos is drawn by the IP-Adapter."""
    user = world.user()
    await choose(user, await open_settings(user), "Editing model", "Kandinsky 3.1 (IP-Adapter, HED ControlNet)")
    await user.send_command("fuse")
    await user.wait_for(has_text("Fusion"), WAIT)
    await user.send_album([photo("astronaut"), photo("coffee")])
    step = await user.wait_for(has_text("step 2 of 2"), WAIT)
    await user.press(step, "1st 50% · 2nd 50%")
    result = await user.wait_for(is_photo, LOAD_WAIT)
    assert result["caption"].startswith("Fusion of 2 photos")
    assert "Kandinsky 3.1 IP-Adapter" in result["caption"]
    # the astronaut (square) decides the shape: the largest side fits MAX_IMAGE_SIDE
    assert largest(result) == (MAX_SIDE, MAX_SIDE) and user.image(result).size == (MAX_SIDE, MAX_SIDE)
