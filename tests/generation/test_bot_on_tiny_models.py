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


async def test_out_of_memory_fails_only_that_job(tiny_models_dir, tmp_path):
    import torch
    from aiogram.methods import EditMessageText

    from generation.backend import ModelId
    from generation.diffusers_backend import DiffusersBackend
    from generation.manager import K3_UNET

    settings = make_settings(
        tmp_path,
        generation_backend="diffusers",
        kandinsky_models_dir=tiny_models_dir,
        generation_device="cpu",
        max_image_side=128,
    )
    backend = DiffusersBackend(settings.generation_config())
    backend.load(ModelId.K31)
    raised = []

    def oom_once(module, args):
        if not raised:
            raised.append(True)
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB")

    handle = backend.manager.parts[K3_UNET].obj.register_forward_pre_hook(oom_once)
    harness = await start_harness(settings, backend=backend)  # type: ignore[arg-type]
    try:
        await harness.feed(message_update("a red fox in the snow"))
        await harness.feed(message_update("a blue whale in the sky"))
        jobs = await harness.wait_jobs_settled(timeout=120)
        assert [(j.status, j.error) for j in jobs] == [("failed", "oom"), ("done", None)]
        texts = [m.text for m in harness.session.of(EditMessageText)]
        assert any("Not enough GPU memory" in t for t in texts)
        assert len(harness.session.of(SendPhoto)) == 1
    finally:
        handle.remove()
        await stop_harness(harness)
