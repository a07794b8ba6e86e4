"""Text-to-image requests of several users as one batched pipeline call (issue #16), on the tiny models.

Each image of a batched run must equal the same request run alone through ``generate``. In float32 the
two differ by float rounding only: a larger batch makes BLAS block its matrix products differently
(~1e-6 in a UNet output), which the samplers amplify (Flash divides by sqrt(alpha) = 0.03 at t = 979)
up to a pixel level after the decoder. So the equality is checked exactly with the tiny weights cast to
float64, where that rounding is far below float32's resolution and the samplers' float32 arithmetic
then gives identical bits; anything a batch mixes between its rows (a shorter prompt padded to the
longest, another request's negative prompt or generator) shows there as differences of whole levels.
A float32 check on the served precision bounds the rounding.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from generation.backend import (
    GenerationCancelled,
    GenerationRequest,
    Mode,
    ModelId,
    OutOfMemory,
    batch_key,
)
from generation.manager import FLASH_UNET, K3_UNET
from generation.styles import STYLES

STYLE = STYLES["ANIME"]
LONG = " ".join(["a quiet harbour at dawn with fishing boats"] * 6)[:250]  # beyond both text contexts


def request(model: ModelId, prompt: str, seed: int, num_images: int, **kw) -> GenerationRequest:
    values = dict(
        mode=Mode.TEXT2IMG, model=model, prompt=prompt, negative_prompt=None,
        width=64, height=64, num_images=num_images, seed=seed, steps=3,
    )
    values.update(kw)
    return GenerationRequest(**values)


def users(model: ModelId, negative: str | None = "blurry, low quality", all_negative: bool = False) -> list:
    """Three users: different prompts (one too long for the context, with a style), seeds and counts;
    the second with a negative prompt (all of them with ``all_negative``)."""
    other = negative if all_negative else None
    return [
        request(model, "a lighthouse on a cliff at sunset", 10, 2, negative_prompt=other),
        request(model, "a cat", 500, 1, negative_prompt=negative),
        request(model, STYLE.apply(LONG), 77, 3, style_suffix=STYLE.suffix, negative_prompt=other),
    ]


def pixels(images) -> np.ndarray:
    return np.stack([np.asarray(im) for im in images]).astype(int)


def no_progress(step: int, total: int) -> None:
    pass


@pytest.fixture(scope="module")
def double_backend(tiny_config):
    """A backend of its own whose tiny weights are float64 (see the module doc)."""
    from generation.diffusers_backend import DiffusersBackend

    backend = DiffusersBackend(tiny_config)
    backend.load(ModelId.K31_REFINER)
    for part in backend.manager.parts.values():
        part.obj.to(torch.float64)
    k22 = backend.manager.k22()
    for pipe in (k22.prior, k22.text2img):
        for component in pipe.components.values():
            if isinstance(component, torch.nn.Module):
                component.to(torch.float64)
    return backend


def unet_of(backend, model: ModelId) -> torch.nn.Module:
    if model == ModelId.K22:
        return backend.manager.k22().text2img.unet
    return backend.manager.parts[FLASH_UNET if model == ModelId.K31_FLASH else K3_UNET].obj


class UNetCalls:
    """The batch size of every forward call of a UNet."""

    def __init__(self, unet: torch.nn.Module) -> None:
        self.batches: list[int] = []
        self.handle = unet.register_forward_pre_hook(self.hook, with_kwargs=True)

    def hook(self, module, args, kwargs) -> None:
        sample = args[0] if args else kwargs["sample"]
        self.batches.append(sample.shape[0])


@pytest.mark.parametrize(
    "model,guided",
    [(ModelId.K31, True), (ModelId.K31_FLASH, False), (ModelId.K31_REFINER, True), (ModelId.K22, True)],
)
def test_each_image_of_a_batch_equals_its_request_alone(double_backend, model, guided):
    requests = users(model, negative=None if model == ModelId.K22 else "blurry, low quality")
    assert len({batch_key(r) for r in requests}) == 1
    calls = UNetCalls(unet_of(double_backend, model))
    try:
        batched = double_backend.generate_batch(requests, no_progress)
    finally:
        calls.handle.remove()
    # One pipeline call: every UNet call carried all six images (twice with classifier-free guidance).
    assert calls.batches and set(calls.batches) == {6 * (2 if guided else 1)}
    for req, images in zip(requests, batched):
        alone = double_backend.generate(req, no_progress)
        assert [im.size for im in images] == [(64, 64)] * req.num_images
        assert np.array_equal(pixels(images), pixels(alone)), req.prompt[:20]
    # Image j of a request is its seed + j: the second image of the first user is that seed alone.
    second = double_backend.generate(dataclasses.replace(requests[0], seed=11, num_images=1), no_progress)
    assert np.array_equal(pixels(batched[0][1:]), pixels(second))


def test_kandinsky22_batches_negative_prompts_together(double_backend):
    requests = users(ModelId.K22, all_negative=True)
    batched = double_backend.generate_batch(requests, no_progress)
    for req, images in zip(requests, batched):
        assert np.array_equal(pixels(images), pixels(double_backend.generate(req, no_progress)))


def test_mixed_keys_run_one_at_a_time_and_still_equal(double_backend):
    # Kandinsky 2.2 with and without a negative prompt: two keys, so no shared call.
    requests = [request(ModelId.K22, "a cat", 3, 1), request(ModelId.K22, "a dog", 4, 1, negative_prompt="blurry")]
    assert batch_key(requests[0]) != batch_key(requests[1])
    calls = UNetCalls(unet_of(double_backend, ModelId.K22))
    try:
        batched = double_backend.generate_batch(requests, no_progress)
    finally:
        calls.handle.remove()
    assert set(calls.batches) == {2}  # one image with guidance per call: each request alone
    for req, images in zip(requests, batched):
        assert np.array_equal(pixels(images), pixels(double_backend.generate(req, no_progress)))
    with pytest.raises(ValueError):  # called directly, the pipeline refuses what batch_key keeps apart
        double_backend.manager.k22().generate_batch(requests, no_progress)


def test_float32_batch_differs_by_rounding_only(backend):
    requests = users(ModelId.K31_FLASH)  # the sampler that amplifies rounding most
    batched = backend.generate_batch(requests, no_progress)
    for req, images in zip(requests, batched):
        diff = np.abs(pixels(images) - pixels(backend.generate(req, no_progress)))
        assert diff.max() <= 4 and (diff > 1).mean() < 0.01  # as test_k3_family's batch of 3 vs 1


# -- progress, cancellation, out of memory ---------------------------------------------------------
@pytest.mark.parametrize("model,total", [(ModelId.K31_REFINER, 4), (ModelId.K22, 3)])
def test_a_batch_reports_its_steps_once(backend, model, total):
    seen: list[tuple[int, int]] = []
    backend.generate_batch(users(model, negative=None), lambda step, steps: seen.append((step, steps)))
    assert seen == [(i, total) for i in range(1, total + 1)]


@pytest.mark.parametrize("model", [ModelId.K31, ModelId.K22])
def test_cancel_stops_a_batch_at_the_next_step(backend, model):
    backend.load(model)
    calls = UNetCalls(unet_of(backend, model))

    def progress(step: int, total: int) -> None:
        if step == 2:
            raise GenerationCancelled()

    try:
        with pytest.raises(GenerationCancelled):
            backend.generate_batch(users(model, negative=None), progress)
    finally:
        calls.handle.remove()
    assert len(calls.batches) == 2


def test_out_of_memory_fails_the_batch_and_frees_memory(backend, monkeypatch):
    backend.load(ModelId.K31_FLASH)
    freed = []
    monkeypatch.setattr(backend.manager, "free_memory", lambda: freed.append(True))

    def oom(module, args):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    handle = backend.manager.parts[FLASH_UNET].obj.register_forward_pre_hook(oom)
    try:
        with pytest.raises(OutOfMemory) as info:
            backend.generate_batch(users(ModelId.K31_FLASH), no_progress)
    finally:
        handle.remove()
    assert info.value.code == "oom" and freed and "x6" in info.value.detail
    assert [len(images) for images in backend.generate_batch(users(ModelId.K31_FLASH), no_progress)] == [2, 1, 3]


# -- what batch_key keeps apart ------------------------------------------------------------------
def test_batch_key_keeps_apart_what_cannot_share_a_call():
    base = request(ModelId.K31, "a cat", 1, 1)
    key = batch_key(base)
    same = [
        dataclasses.replace(base, prompt="a dog", seed=9, num_images=4, style_suffix=", anime"),
        dataclasses.replace(base, negative_prompt="blurry"),  # K3.1: each row has its own negative
    ]
    assert all(batch_key(r) == key for r in same)
    apart = [
        dataclasses.replace(base, model=ModelId.K31_REFINER),
        dataclasses.replace(base, width=128),
        dataclasses.replace(base, height=128),
        dataclasses.replace(base, steps=4),
        dataclasses.replace(base, guidance_scale=5.0),
    ]
    assert len({key, *(batch_key(r) for r in apart)}) == 1 + len(apart)
    # Defaults count as the model runs them.
    assert batch_key(dataclasses.replace(base, steps=None)) == batch_key(dataclasses.replace(base, steps=50))
    assert batch_key(dataclasses.replace(base, guidance_scale=None)) == batch_key(
        dataclasses.replace(base, guidance_scale=3.0)
    )
    # Flash runs its fixed four steps without guidance, whatever a request names.
    flash = dataclasses.replace(base, model=ModelId.K31_FLASH)
    assert batch_key(flash) == batch_key(dataclasses.replace(flash, steps=10, guidance_scale=7.0))
    # Kandinsky 2.2: with and without a negative prompt never mix (a blank one is none); prior settings.
    k22 = dataclasses.replace(base, model=ModelId.K22)
    assert batch_key(k22) != batch_key(dataclasses.replace(k22, negative_prompt="blurry"))
    assert batch_key(k22) == batch_key(dataclasses.replace(k22, negative_prompt="  "))
    assert batch_key(k22) != batch_key(dataclasses.replace(k22, extra={"prior_steps": 2}))
    # Editing modes and models without a batched text-to-image always run alone.
    for mode in (Mode.IMG2IMG, Mode.VARIATIONS, Mode.FUSE, Mode.FACESWAP, Mode.INPAINT, Mode.ANIMATE):
        assert batch_key(dataclasses.replace(base, mode=mode)) is None
    for model in (ModelId.K31_INPAINT, ModelId.K31_IP_ADAPTER, ModelId.SUPERRES, ModelId.K5_VIDEO_5S):
        assert batch_key(dataclasses.replace(base, model=model)) is None
