"""The text-encoder output cache (generation.text_cache): Again, the refiner's second stage, a batch of
users with one prompt and animation frames run the Flan-UL2 encoder once per prompt."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from generation.backend import GenerationRequest, Mode, ModelId
from generation.manager import TEXT_ENCODER
from generation.text_cache import TextEncodingCache, nbytes


def request(model: ModelId, prompt: str, seed: int = 1, **kw) -> GenerationRequest:
    values = dict(
        mode=Mode.TEXT2IMG, model=model, prompt=prompt, negative_prompt=None,
        width=64, height=64, num_images=1, seed=seed, steps=2,
    )
    values.update(kw)
    return GenerationRequest(**values)


def no_progress(step: int, total: int) -> None:
    pass


class EncoderCalls:
    def __init__(self, backend) -> None:
        self.calls = 0
        self.handle = backend.manager.parts[TEXT_ENCODER].obj.register_forward_hook(self.hook)

    def hook(self, *args) -> None:
        self.calls += 1

    def __enter__(self) -> EncoderCalls:
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove()


# -- the cache itself ------------------------------------------------------------------------------
def entry(value: float) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.full((10,), float(value)), torch.zeros(15, dtype=torch.int64)  # 40 + 120 bytes


def test_the_bound_evicts_the_least_recently_used():
    size = nbytes(entry(0))
    assert size == 160
    cache = TextEncodingCache(max_bytes=3 * size)
    encoded = []

    def encode(key: str):
        return lambda: encoded.append(key) or entry(len(encoded))

    for key in ("a", "b", "c"):
        cache.get(key, encode(key))
    assert cache.get("a", encode("a"))[0][0] == 1  # a hit: "a" becomes the most recent
    cache.get("d", encode("d"))  # over the bound: the oldest unused entry ("b") goes
    assert "b" not in cache and {"a", "c", "d"} <= {k for k in ("a", "b", "c", "d") if k in cache}
    assert cache.bytes == 3 * size and len(cache) == 3
    cache.get("b", encode("b"))
    assert encoded == ["a", "b", "c", "d", "b"] and "c" not in cache  # "c" was now the oldest
    assert (cache.hits, cache.misses) == (1, 5)


def test_a_zero_bound_keeps_nothing_and_too_large_values_pass_through():
    off = TextEncodingCache(max_bytes=0)
    calls = []
    for _ in range(2):
        off.get("a", lambda: calls.append(1) or entry(0))
    assert len(calls) == 2 and len(off) == 0 and off.bytes == 0
    small = TextEncodingCache(max_bytes=100)
    assert small.get("big", lambda: entry(0))[0].shape == (10,) and "big" not in small
    with pytest.raises(ValueError):
        TextEncodingCache(max_bytes=-1)


# -- on the tiny models ------------------------------------------------------------------------------
def test_again_does_not_run_the_encoder(backend):
    backend.load(ModelId.K31)
    backend.manager.text_cache.clear()
    with EncoderCalls(backend) as encoder:
        backend.generate(request(ModelId.K31, "a red fox in the snow", seed=1, negative_prompt="blurry"), no_progress)
        assert encoder.calls == 1
        backend.generate(request(ModelId.K31, "a red fox in the snow", seed=2, negative_prompt="blurry"), no_progress)
        assert encoder.calls == 1  # "Again": a new seed, the same prompt
        backend.generate(request(ModelId.K31, "a red fox in the snow", seed=2), no_progress)
        assert encoder.calls == 2  # another negative prompt is another encoding


def test_the_refiner_runs_no_encoder_on_a_repeated_prompt(backend):
    backend.load(ModelId.K31_REFINER)
    backend.manager.text_cache.clear()
    with EncoderCalls(backend) as encoder:
        backend.generate(request(ModelId.K31_REFINER, "a windmill by a canal", seed=3), no_progress)
        assert encoder.calls == 1  # both stages share one encoding
        backend.generate(request(ModelId.K31_REFINER, "a windmill by a canal", seed=4), no_progress)
        assert encoder.calls == 1  # and the next job on that prompt needs none


def test_a_batch_of_users_with_one_prompt_encodes_it_once(backend):
    backend.load(ModelId.K31_FLASH)
    backend.manager.text_cache.clear()
    requests = [request(ModelId.K31_FLASH, "a paper boat", seed=s) for s in (1, 2, 3)]
    with EncoderCalls(backend) as encoder:
        backend.generate_batch(requests + [request(ModelId.K31_FLASH, "a paper plane")], no_progress)
    assert encoder.calls == 2


def test_animation_frames_reuse_the_scene_encoding(backend):
    from generation.animation_models import K3FrameModel

    backend.load(ModelId.K31_FLASH)
    backend.manager.text_cache.clear()
    with EncoderCalls(backend) as encoder:
        backend.generate(request(ModelId.K31_FLASH, "a foggy forest path"), no_progress)  # the first frame
        frames = K3FrameModel(backend.manager.k3_pipelines(ModelId.K31_FLASH), ModelId.K31_FLASH)
        first = frames.encode("a foggy forest path")
        assert encoder.calls == 1
        again = frames.encode("a foggy forest path")  # the same scene in the next animation
        frames.encode("a sunny meadow")  # the next scene
    assert encoder.calls == 2 and again is first


def test_results_with_the_cache_equal_results_without(backend, tiny_config):
    from generation.diffusers_backend import DiffusersBackend

    uncached = DiffusersBackend(dataclasses.replace(tiny_config, text_cache_mb=0))
    for model in (ModelId.K31, ModelId.K31_REFINER):
        req = request(model, "a glass teapot", seed=7, num_images=2, negative_prompt="dark")
        backend.generate(req, no_progress)  # cached from here on
        hit = backend.generate(req, no_progress)
        uncached.load(model)
        with EncoderCalls(uncached) as encoder:
            plain = uncached.generate(req, no_progress)
            uncached.generate(req, no_progress)
        assert encoder.calls == 2 and len(uncached.manager.text_cache) == 0  # off: every request encodes
        assert np.array_equal(np.stack([np.asarray(i) for i in hit]), np.stack([np.asarray(i) for i in plain]))
