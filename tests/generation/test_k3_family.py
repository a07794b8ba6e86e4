"""Kandinsky 3.1, Flash and the refiner on tiny checkpoints, through the real loading code on CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from generation.backend import GenerationCancelled, GenerationRequest, Mode, ModelId, OutOfMemory
from generation.k3 import FLASH_TIMESTEPS, REFINER_TIMESTEPS, flash_img2img_timesteps
from generation.manager import FLASH_UNET, K3_UNET, MOVQ, TEXT_ENCODER
from generation.styles import ASPECT_RATIOS, image_size

PROMPT = "a lighthouse on a cliff at sunset"


def request(model: ModelId, mode: Mode = Mode.TEXT2IMG, **kw) -> GenerationRequest:
    values = dict(
        mode=mode,
        model=model,
        prompt=PROMPT,
        negative_prompt=None,
        width=128,
        height=64,
        num_images=2,
        seed=1234,
        steps=3,
    )
    values.update(kw)
    return GenerationRequest(**values)


def photo(size=(96, 80)) -> Image.Image:
    x = np.linspace(0, 255, size[0], dtype=np.uint8)
    y = np.linspace(0, 255, size[1], dtype=np.uint8)
    rgb = np.stack([np.add.outer(y, x) // 2, np.tile(x, (size[1], 1)), np.tile(y[:, None], (1, size[0]))], -1)
    return Image.fromarray(rgb.astype(np.uint8))


def pixels(images) -> np.ndarray:
    return np.stack([np.asarray(im) for im in images])


def gens(seed: int, n: int) -> list[torch.Generator]:
    return [torch.Generator("cpu").manual_seed(seed + i) for i in range(n)]


def events(backend, req) -> tuple[list, list[tuple[int, int]]]:
    seen: list[tuple[int, int]] = []
    return backend.generate(req, lambda step, total: seen.append((step, total))), seen


# -- what each model runs (the numbers themselves are checked against the authors in test_k31_reference)
def test_kandinsky31_runs_the_authors_schedule_with_guidance(backend):
    req = request(ModelId.K31, negative_prompt="blurry", guidance_scale=3.0, steps=4)
    backend.load(ModelId.K31)
    calls = []
    handle = backend.manager.parts[K3_UNET].obj.register_forward_pre_hook(
        lambda module, args, kwargs: calls.append((int(args[1][0]), args[0].shape[0])), with_kwargs=True
    )
    try:
        ours, seen = events(backend, req)
    finally:
        handle.remove()
    assert calls == [(999, 4), (749, 4), (499, 4), (249, 4)]  # range(999, 0, -250), cond + uncond batched
    assert seen == [(i, 4) for i in range(1, 5)]
    assert [im.size for im in ours] == [(128, 64)] * 2
    assert not np.array_equal(pixels(ours)[0], pixels(ours)[1])  # one generator per image


def test_kandinsky31_img2img_starts_below_the_strength(backend):
    req = request(ModelId.K31, Mode.IMG2IMG, images=[photo()], strength=0.7, steps=4)
    ours, seen = events(backend, req)
    assert seen == [(1, 2), (2, 2)]  # 499 and 249: the steps of range(999, 0, -250) below 700
    assert [im.size for im in ours] == [(128, 64)] * 2


def test_flash_makes_four_steps(backend):
    ours, seen = events(backend, request(ModelId.K31_FLASH, steps=None))
    assert seen == [(i, 4) for i in range(1, 5)]
    assert FLASH_TIMESTEPS == (979, 729, 479, 229)


def test_refiner_is_kandinsky31_then_one_flash_step(backend):
    backend.load(ModelId.K31_REFINER)
    backend.manager.text_cache.clear()  # an earlier test may have encoded the prompt (test_text_cache)
    encoder_calls = CountCalls(backend.manager.parts[TEXT_ENCODER].obj)
    flash_calls = []
    handle = backend.manager.parts[FLASH_UNET].obj.register_forward_pre_hook(
        lambda module, args: flash_calls.append(int(args[1][0]))
    )
    try:
        ours, seen = events(backend, request(ModelId.K31_REFINER, steps=3))
    finally:
        handle.remove()
        encoder_calls.handle.remove()
    assert seen == [(i, 4) for i in range(1, 5)]
    assert flash_calls == list(REFINER_TIMESTEPS) == [229]
    assert encoder_calls.calls == 1  # the prompt is encoded once for both stages
    assert [im.size for im in ours] == [(128, 64)] * 2


def test_flash_img2img_runs_the_last_steps_from_the_photo(backend):
    req = request(ModelId.K31_FLASH, Mode.IMG2IMG, images=[photo()], strength=0.6)
    ours, seen = events(backend, req)
    assert flash_img2img_timesteps(0.6) == (479, 229)
    assert seen == [(1, 2), (2, 2)]
    assert [im.size for im in ours] == [(128, 64)] * 2


def test_refiner_img2img(backend):
    req = request(ModelId.K31_REFINER, Mode.IMG2IMG, images=[photo()], strength=0.5, steps=4)
    ours, seen = events(backend, req)
    assert [s for s, _ in seen] == [1, 2, 3] and {t for _, t in seen} == {3}
    assert [im.size for im in ours] == [(128, 64)] * 2


def test_faceswap_drawing_step_is_text2img(backend):
    a = backend.generate(request(ModelId.K31_FLASH, Mode.FACESWAP), lambda s, t: None)
    b = backend.generate(request(ModelId.K31_FLASH), lambda s, t: None)
    assert np.array_equal(pixels(a), pixels(b))


# -- reproducibility, sizes, progress, cancel, out of memory --------------------------------------
@pytest.mark.parametrize("model", [ModelId.K31_FLASH, ModelId.K31_REFINER])
def test_same_seed_same_images(backend, model):
    first = backend.generate(request(model, seed=5), lambda s, t: None)
    again = backend.generate(request(model, seed=5), lambda s, t: None)
    other = backend.generate(request(model, seed=6), lambda s, t: None)
    assert np.array_equal(pixels(first), pixels(again))
    assert not np.array_equal(pixels(first), pixels(other))


@pytest.mark.parametrize("model", [ModelId.K31, ModelId.K31_FLASH])
def test_each_image_reproducible_alone(backend, model):
    batch = backend.generate(request(model, num_images=3, seed=77), lambda s, t: None)
    alone = backend.generate(request(model, num_images=1, seed=79), lambda s, t: None)
    # Equal up to float rounding: a batch of 3 and a batch of 1 block their matrix products differently.
    diff = np.abs(pixels(batch)[2].astype(int) - pixels(alone)[0].astype(int))
    assert diff.max() <= 4 and (diff > 1).mean() < 0.01


@pytest.mark.parametrize("aspect", ASPECT_RATIOS)
def test_every_aspect_ratio_gives_the_exact_size(backend, aspect):
    width, height = image_size(aspect, max_side=256)
    images = backend.generate(
        request(ModelId.K31_FLASH, width=width, height=height, num_images=1), lambda s, t: None
    )
    assert images[0].size == (width, height)


def test_full_size_1024x576(backend):
    images = backend.generate(
        request(ModelId.K31, width=1024, height=576, num_images=1, steps=1),
        lambda s, t: None,
    )
    assert images[0].size == (1024, 576)


class CountCalls:
    def __init__(self, module: torch.nn.Module) -> None:
        self.calls = 0
        self.handle = module.register_forward_hook(self.hook)

    def hook(self, *args) -> None:
        self.calls += 1


@pytest.mark.parametrize("model,part", [(ModelId.K31, K3_UNET), (ModelId.K31_FLASH, FLASH_UNET)])
def test_cancel_stops_at_the_next_step(backend, model, part):
    backend.load(model)
    counter = CountCalls(backend.manager.parts[part].obj)

    def progress(step: int, total: int) -> None:
        if step == 2:
            raise GenerationCancelled()

    try:
        with pytest.raises(GenerationCancelled):
            backend.generate(request(model, steps=10), progress)
    finally:
        counter.handle.remove()
    assert counter.calls == 2  # the UNet ran for steps 1 and 2 and never again


def test_out_of_memory_fails_only_that_job(backend, monkeypatch):
    backend.load(ModelId.K31_FLASH)
    unet = backend.manager.parts[FLASH_UNET].obj
    freed = []
    monkeypatch.setattr(backend.manager, "free_memory", lambda: freed.append(True))

    def oom(module, args):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    handle = unet.register_forward_pre_hook(oom)
    try:
        with pytest.raises(OutOfMemory) as info:
            backend.generate(request(ModelId.K31_FLASH), lambda s, t: None)
    finally:
        handle.remove()
    assert info.value.code == "oom" and freed
    # The next job runs normally.
    assert len(backend.generate(request(ModelId.K31_FLASH), lambda s, t: None)) == 2


def test_model_status_reports_shared_encoder(backend):
    backend.load(ModelId.K31)
    backend.load(ModelId.K31_FLASH)
    rows = {row["model"]: row for row in backend.model_status()}
    assert rows["kandinsky-3.1"]["loaded"] and rows["kandinsky-3.1-flash"]["loaded"]
    assert rows["kandinsky-3.1"]["device"] == "cpu"
    # One text encoder object serves both pipelines.
    a = backend.manager.k3_pipelines(ModelId.K31).base
    b = backend.manager.k3_pipelines(ModelId.K31_FLASH).flash
    assert a.text_encoder is b.text_encoder and a.movq is b.movq


@pytest.mark.parametrize(
    "model,part,calls,batch",
    [(ModelId.K31, K3_UNET, 3, 6), (ModelId.K31_FLASH, FLASH_UNET, 4, 3)],  # K3: guidance doubles the batch
)
def test_images_of_a_request_are_one_batch(backend, model, part, calls, batch):
    backend.load(model)
    batches = []
    handle = backend.manager.parts[part].obj.register_forward_pre_hook(
        lambda module, args: batches.append(args[0].shape[0])
    )
    try:
        backend.generate(request(model, num_images=3, steps=3), lambda s, t: None)
    finally:
        handle.remove()
    assert batches == [batch] * calls


def test_every_served_unet_projects_text_as_the_authors(backend):
    from generation.k31 import Kandinsky3TextProjection

    backend.load(ModelId.K31_REFINER)
    for part in (K3_UNET, FLASH_UNET):
        projection = backend.manager.parts[part].obj.encoder_hid_proj
        assert isinstance(projection, Kandinsky3TextProjection)
        x = torch.zeros(2, 3, projection.projection_linear.in_features)
        x[0, :2] = 1.0  # a two-token context and an empty (unconditional) one
        out = projection(x)
        assert not out[0, 2].any() and out[0, :2].abs().sum() > 0  # padding zero after the projection
        assert torch.equal(out[1, 0], projection.null_embedding) and not out[1, 1:].any()
