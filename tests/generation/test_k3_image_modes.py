"""Kandinsky 3.1 image prompts on the tiny checkpoints (``python -m generation.tiny``), through the real
loading code, the model manager and the backend, on CPU: every editing mode, both edge detectors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from generation.backend import GenerationCancelled, GenerationError, GenerationRequest, Mode, ModelId
from generation.manager import EDGE_DETECTOR, HED_CONTROLNET, HED_UNET, IMAGE_ENCODER, IP_UNET, MOVQ, TEXT_ENCODER
from tests.photos import photo

IP = ModelId.K31_IP_ADAPTER
HED = ModelId.K31_CONTROLNET_HED


def request(model: ModelId, mode: Mode, images, **kw) -> GenerationRequest:
    values = dict(mode=mode, model=model, prompt="", negative_prompt=None, width=64, height=64, num_images=2,
                  seed=7, steps=3, images=list(images))
    values.update(kw)
    return GenerationRequest(**values)


def pixels(images) -> np.ndarray:
    return np.stack([np.asarray(im, dtype=np.int16) for im in images])


def run(backend, req, events=None):
    return backend.generate(req, (lambda s, t: events.append((s, t))) if events is not None else (lambda s, t: None))


@pytest.fixture(scope="module")
def photos():
    return [photo("astronaut").resize((96, 96)), photo("coffee").resize((96, 64)), photo("chelsea").resize((90, 60))]


def test_fuse_two_photos_shares_the_text_encoder_and_movq(backend, photos):
    events = []
    images = run(backend, request(IP, Mode.FUSE, photos[:2], weights=[0.5, 0.5]), events)
    assert [im.size for im in images] == [(64, 64)] * 2
    assert events == [(1, 3), (2, 3), (3, 3)]
    parts = backend.manager.parts
    assert {TEXT_ENCODER, MOVQ, IP_UNET, IMAGE_ENCODER} <= set(parts)
    # one Flan-UL2 and one MoVQ for every Kandinsky 3 model: the IP-Adapter pipeline uses those objects
    pipes = backend.manager.k3_image_pipelines(IP)
    assert pipes.ip_adapter.text_encoder is parts[TEXT_ENCODER].obj
    assert pipes.ip_adapter.movq is parts[MOVQ].obj
    encoder = parts[TEXT_ENCODER].obj
    backend.load(ModelId.K31)  # Kandinsky 3.1's own UNet joins; the encoder is not loaded twice
    assert backend.manager.parts[TEXT_ENCODER].obj is encoder
    assert backend.manager.k3_pipelines(ModelId.K31).base.text_encoder is encoder
    # the images differ from one another (seed + i) and the same request gives the same pixels
    assert np.abs(pixels(images)[0] - pixels(images)[1]).max() > 0
    again = run(backend, request(IP, Mode.FUSE, photos[:2], weights=[0.5, 0.5]))
    assert np.array_equal(pixels(images), pixels(again))


def test_fusion_weights_and_photos_count(backend, photos):
    a = pixels(run(backend, request(IP, Mode.FUSE, photos[:2], weights=[0.9, 0.1], num_images=1)))
    b = pixels(run(backend, request(IP, Mode.FUSE, photos[:2], weights=[0.1, 0.9], num_images=1)))
    assert np.abs(a - b).max() > 0
    three = run(backend, request(IP, Mode.FUSE, photos, weights=[1, 1, 1], num_images=1))
    assert three[0].size == (64, 64)
    with pytest.raises(GenerationError):
        run(backend, request(IP, Mode.FUSE, photos[:1], num_images=1))


def test_mix_photo_and_text(backend, photos):
    mix = lambda w: pixels(run(backend, request(IP, Mode.MIX, photos[:1], prompt="a red car", weights=w,  # noqa: E731
                                                width=128, num_images=1)))
    balanced, image_heavy = mix([0.5, 0.5]), mix([0.75, 0.25])
    assert balanced.shape == (1, 64, 128, 3)
    assert np.abs(balanced - image_heavy).max() > 0
    other_text = pixels(run(backend, request(IP, Mode.MIX, photos[:1], prompt="a blue sea", weights=[0.5, 0.5],
                                             width=128, num_images=1)))
    assert np.abs(balanced - other_text).max() > 0


def test_variations_follow_the_photo(backend, photos):
    a = pixels(run(backend, request(IP, Mode.VARIATIONS, photos[:1])))
    b = pixels(run(backend, request(IP, Mode.VARIATIONS, photos[1:2])))
    assert a.shape == (2, 64, 64, 3)
    assert np.abs(a - b).max() > 0


def test_style_is_image_to_image_from_the_content_photo(backend, photos):
    events = []
    images = run(backend, request(IP, Mode.STYLE, photos[:2], weights=[0.3, 0.7], strength=0.7, steps=4), events)
    assert [im.size for im in images] == [(64, 64)] * 2
    assert events[-1] == (2, 2)  # int(4 * 0.7) steps of image to image


def test_keep_the_shapes_on_hed(backend, photos):
    events = []
    images = run(backend, request(HED, Mode.RESTYLE_DEPTH, photos[:1], prompt="a watercolor", strength=0.8,
                                  steps=4), events)
    assert [im.size for im in images] == [(64, 64)] * 2
    assert events == [(1, 3), (2, 3), (3, 3)]
    assert {HED_UNET, HED_CONTROLNET, EDGE_DETECTOR} <= set(backend.manager.parts)
    assert all(im.info["edges"] == "hed" for im in images)
    edges = backend.manager.parts[EDGE_DETECTOR].obj.edges(photos[0], 64, 64)
    assert edges.shape == (64, 64) and 0.0 <= edges.min() <= edges.max() <= 1.0 and edges.std() > 0


def test_cancelled_between_steps(backend, photos):
    def progress(step, total):
        if step == 2:
            raise GenerationCancelled()

    with pytest.raises(GenerationCancelled):
        backend.generate(request(IP, Mode.VARIATIONS, photos[:1]), progress)


def test_models_view_and_unload(backend, photos):
    run(backend, request(IP, Mode.VARIATIONS, photos[:1], num_images=1))
    rows = {row["model"]: row for row in backend.model_status()}
    assert rows[IP.value]["loaded"] and rows[IP.value]["memory_bytes"] > 0
    backend.unload(IP)
    assert IP_UNET not in backend.manager.parts and IMAGE_ENCODER not in backend.manager.parts


def test_canny_when_the_hed_weights_are_absent(tiny_models_dir, tmp_path, photos):
    from generation.diffusers_backend import DiffusersBackend
    from generation.sources import FOLDERS, GenerationConfig

    models = tmp_path / "models"
    for name in ("k31", "k31-controlnet-hed"):
        shutil.copytree(tiny_models_dir / FOLDERS[name], models / FOLDERS[name])
    backend = DiffusersBackend(GenerationConfig(models_dir=models, device="cpu", cache_dir=tmp_path / "cache"))
    images = run(backend, request(HED, Mode.RESTYLE_DEPTH, photos[:1], prompt="ink", num_images=1, strength=0.8))
    assert images[0].size == (64, 64) and images[0].info["edges"] == "canny"
    assert backend.manager.edge_detector_kind() == "canny"


def test_image_prompt_parts_share_the_vram_budget():
    """The IP-Adapter's UNet and image encoder, and the HED parts, take turns on the GPU with Kandinsky
    3.1's UNet under the budget (least recently used to the CPU); the encoder and MoVQ stay shared."""
    from tests.generation.test_manager import GB, GpuManager

    manager = GpuManager(budget_gb=10)
    sizes = ((TEXT_ENCODER, 5), (MOVQ, 0.5), ("k3-unet", 3), (IP_UNET, 3), (IMAGE_ENCODER, 0.5),
             (HED_UNET, 3), (HED_CONTROLNET, 1), (EDGE_DETECTOR, 0.1))
    for name, gb in sizes:
        manager.add(name, gb)
    manager.load(ModelId.K31)
    manager.load(IP)
    on_gpu = {n for n, p in manager.parts.items() if p.device == "cuda"}
    assert on_gpu == {TEXT_ENCODER, MOVQ, IP_UNET, IMAGE_ENCODER}  # Kandinsky 3.1's UNet made room
    manager.load(HED)
    on_gpu = {n for n, p in manager.parts.items() if p.device == "cuda"}
    assert {TEXT_ENCODER, MOVQ, HED_UNET, HED_CONTROLNET, EDGE_DETECTOR} <= on_gpu
    assert sum(manager.parts[n].nbytes for n in on_gpu) <= 10 * GB
    assert (TEXT_ENCODER, "cpu") not in manager.moves
