"""Editing end to end on the real diffusers backend and tiny random-weight checkpoints (CPU).

The chat flow, the job queue and the worker are the real ones; the photos are real (scikit-image);
only the model weights are tiny. It checks that what the handlers store reaches the pipelines in a
form they take: the right number of images of the right size come back.
"""

from __future__ import annotations

import io

import pytest
from aiogram.methods import SendMediaGroup, SendPhoto
from PIL import Image

from tests.conftest import make_settings, start_harness, stop_harness
from tests.editing.helpers import feed_album, photo_update
from tests.fakes import callback_update, message_update
from tests.fixtures_models import tiny_models_dir  # noqa: F401 - a session fixture
from tests.photos import photo_bytes


@pytest.fixture
async def real_harness(tiny_models_dir, tmp_path):  # noqa: F811
    import torch

    from generation.diffusers_backend import DiffusersBackend

    torch.set_num_threads(1)  # tiny models on a shared machine: intra-op threads only slow them down
    settings = make_settings(
        tmp_path,
        generation_backend="diffusers",
        kandinsky_models_dir=tiny_models_dir,
        generation_device="cpu",
        max_image_side=128,
        album_wait_seconds=0.2,
    )
    harness = await start_harness(settings, backend=DiffusersBackend(settings.generation_config()))
    harness.session.files.update(
        astronaut=photo_bytes("astronaut"), coffee=photo_bytes("coffee", "PNG"), chelsea=photo_bytes("chelsea")
    )
    try:
        yield harness
    finally:
        await stop_harness(harness)


def stored_sizes(harness, job) -> list[tuple[int, int]]:
    paths = sorted((harness.app.settings.results_dir / str(job.id)).glob("*.png"))
    sizes = []
    for path in paths:
        with Image.open(io.BytesIO(path.read_bytes())) as image:
            sizes.append(image.size)
    return sizes


async def test_restyle_on_kandinsky_3_and_fusion_on_kandinsky_22(real_harness):
    harness = real_harness
    # Restyle by text: the default model, Kandinsky 3.1 image-to-image.
    await harness.feed(photo_update("coffee", 600, 400, caption="a watercolour"))  # at once, medium
    [restyle] = await harness.wait_jobs_settled(timeout=300)
    assert (restyle.status, restyle.model) == ("done", "kandinsky-3.1"), restyle.error
    assert stored_sizes(harness, restyle) == [(128, 64)]  # 600x400 fitted to 128: the photo's ratio, 64s
    assert harness.session.of(SendPhoto)

    # Fusion of an album of two, with two images per request, on Kandinsky 2.2's prior.
    await harness.feed(callback_update("set:count:2"))
    await feed_album(harness, [photo_update(n, 512, 512, media_group_id="g") for n in ("astronaut", "chelsea")])
    await harness.feed(callback_update("edit:fuse:75"))
    jobs = await harness.wait_jobs_settled(timeout=300)
    fusion = jobs[-1]
    assert (fusion.status, fusion.kind, fusion.model) == ("done", "fuse", "kandinsky-2.2"), fusion.error
    assert stored_sizes(harness, fusion) == [(128, 128), (128, 128)]
    assert harness.session.of(SendMediaGroup)


async def test_every_other_mode_on_kandinsky_22(real_harness):
    harness = real_harness
    await harness.feed(callback_update("set:model:kandinsky-2.2"))
    steps = [
        [photo_update("coffee", 600, 400, caption="a watercolour")],  # restyled at once
        [message_update("/restyle_shapes"), photo_update("astronaut", 512, 512, caption="a robot")],
        [
            message_update("/style"),
            photo_update("astronaut", 512, 512),
            photo_update("chelsea", 451, 300),
            callback_update("edit:style:50"),
        ],
        [message_update("/mix"), photo_update("chelsea", 451, 300, caption="a tiger"), callback_update("edit:mix:25")],
        [message_update("/variations"), photo_update("astronaut", 512, 512)],
    ]
    for updates in steps:
        for update in updates:
            await harness.feed(update)
        await harness.wait_jobs_settled(timeout=300)
    jobs = await harness.jobs()
    assert [(j.kind, j.model, j.status) for j in jobs] == [
        (kind, "kandinsky-2.2", "done") for kind in ("img2img", "restyle_depth", "style", "mix", "variations")
    ], [j.error for j in jobs]
    # Each output follows its (first) photo's ratio: coffee and chelsea are landscapes.
    sizes = [stored_sizes(harness, j) for j in jobs]
    assert sizes == [[(128, 64)], [(128, 128)], [(128, 128)], [(128, 64)], [(128, 128)]]
