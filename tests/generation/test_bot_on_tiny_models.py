"""The bot end to end on the tiny checkpoints: KANDINSKY_MODELS_DIR=DIR GENERATION_DEVICE=cpu."""

from __future__ import annotations

import io

from aiogram.methods import SendPhoto
from PIL import Image

from tests.conftest import make_settings, start_harness, stop_harness
from tests.fakes import message_update


async def test_a_prompt_becomes_a_photo_on_the_real_backend(tiny_models_dir, tmp_path):
    from generation.diffusers_backend import DiffusersBackend

    settings = make_settings(
        tmp_path,
        generation_backend="diffusers",
        kandinsky_models_dir=tiny_models_dir,
        generation_device="cpu",
        max_image_side=128,
    )
    backend = DiffusersBackend(settings.generation_config())
    harness = await start_harness(settings, backend=backend)  # type: ignore[arg-type]
    try:
        await harness.feed(message_update("a red fox in the snow"))
        jobs = await harness.wait_jobs_settled(timeout=120)
        assert [j.status for j in jobs] == ["done"]
        assert harness.session.of(SendPhoto)
        stored = sorted((settings.results_dir / str(jobs[0].id)).glob("*.png"))
        assert stored
        with Image.open(io.BytesIO(stored[0].read_bytes())) as image:
            assert image.size == (int(jobs[0].params["width"]), int(jobs[0].params["height"]))
            assert max(image.size) <= 128
    finally:
        await stop_harness(harness)
