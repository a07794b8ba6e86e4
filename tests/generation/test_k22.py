"""Kandinsky 2.2 through ``Kandinsky22.load`` on tiny random-weight checkpoints, on CPU: every mode,
sizes, image counts, progress, cancellation, seeds, loading errors and placement."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from generation.backend import GenerationCancelled, Mode, ModelUnavailable
from generation.k22 import MODES, Kandinsky22, img2img_steps
from generation.sources import FOLDERS, GenerationConfig
from tests.fixtures_k22 import (  # noqa: F401  (fixtures)
    StepRecorder,
    arrays,
    k22,
    k22_models_dir,
    k22_request,
    no_progress,
    photos,
    torch_one_thread,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")

INPUTS = {
    Mode.TEXT2IMG: [],
    Mode.IMG2IMG: ["astronaut"],
    Mode.RESTYLE_DEPTH: ["coffee"],
    Mode.STYLE: ["coffee", "chelsea"],
    Mode.FUSE: ["astronaut", "coffee", "rocket"],
    Mode.MIX: ["chelsea"],
    Mode.VARIATIONS: ["rocket"],
}


def _request(mode: Mode, photos, **overrides):
    return k22_request(mode, images=[photos[name] for name in INPUTS[mode]], **overrides)


class _ForwardCounter:
    """Counts forward calls of a module (one UNet call per denoising step: CFG is batched)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.count = 0
        self._handle = module.register_forward_hook(self._hook)

    def _hook(self, *args) -> None:
        self.count += 1

    def __enter__(self) -> _ForwardCounter:
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()


def test_modes_cover_every_k22_mode():
    assert set(MODES) == set(INPUTS)


@pytest.mark.parametrize("mode", MODES, ids=str)
@pytest.mark.parametrize("width,height,num_images", [(128, 64, 2), (64, 192, 1), (64, 64, 3)])
def test_each_mode_returns_the_requested_size_and_count(k22, photos, mode, width, height, num_images):
    request = _request(mode, photos, width=width, height=height, num_images=num_images)
    images = k22.generate(request, no_progress)
    assert len(images) == num_images
    assert all(im.size == (width, height) and im.mode == "RGB" for im in images)
    if num_images > 1:  # each image has its own seed
        a, b = arrays(images[:2])
        assert not np.array_equal(a, b)


def test_larger_sizes_keep_the_real_8x_movq(k22, photos):
    # 4-level MoVQ: latents are 1/8 of the image, so odd multiples of 64 come out exact.
    images = k22.generate(_request(Mode.TEXT2IMG, photos, width=320, height=192, steps=1), no_progress)
    assert images[0].size == (320, 192)
    assert k22.text2img.movq_scale_factor == 8


@pytest.mark.parametrize("count", [2, 4])
def test_fuse_takes_two_to_four_photos(k22, photos, count):
    request = k22_request(Mode.FUSE, images=list(photos.values())[:count], num_images=2)
    assert len(k22.generate(request, no_progress)) == 2


@pytest.mark.parametrize(
    "mode,count", [(Mode.FUSE, 1), (Mode.FUSE, 5), (Mode.STYLE, 1), (Mode.IMG2IMG, 0), (Mode.VARIATIONS, 2)]
)
def test_wrong_number_of_photos_is_rejected(k22, photos, mode, count):
    images = (list(photos.values()) * 2)[:count]
    with pytest.raises(ValueError, match="input images"):
        k22.generate(k22_request(mode, images=images), no_progress)


def test_bad_sizes_and_strengths_are_rejected(k22, photos):
    with pytest.raises(ValueError, match="multiples of 64"):
        k22.generate(k22_request(Mode.TEXT2IMG, width=100), no_progress)
    with pytest.raises(ValueError, match="strength"):
        k22.generate(_request(Mode.IMG2IMG, photos, strength=0.0), no_progress)


def test_faceswap_is_not_a_k22_mode(k22, photos):
    with pytest.raises(ValueError, match="does not run"):
        k22.generate(k22_request(Mode.FACESWAP, images=[photos["astronaut"]]), no_progress)


# -- progress and cancellation ---------------------------------------------------------------


def test_text2img_reports_every_decoder_step(k22):
    progress = StepRecorder()
    with _ForwardCounter(k22.text2img.unet) as unet:
        k22.generate(k22_request(Mode.TEXT2IMG, steps=5, num_images=2), progress)
    assert progress.calls == [(i, 5) for i in range(1, 6)]
    assert unet.count == 5


@pytest.mark.parametrize("mode", [Mode.IMG2IMG, Mode.STYLE])
def test_img2img_reports_the_steps_that_run(k22, photos, mode):
    # strength 0.5 of 6 steps: diffusers runs the last 3.
    progress = StepRecorder()
    with _ForwardCounter(k22.img2img.unet) as unet:
        k22.generate(_request(mode, photos, steps=6, strength=0.5), progress)
    assert progress.calls == [(1, 3), (2, 3), (3, 3)]
    assert unet.count == 3 == k22.img2img.num_timesteps


def test_restyle_depth_reports_every_controlnet_step(k22, photos):
    k22.controlnet()
    progress = StepRecorder()
    with _ForwardCounter(k22.controlnet().unet) as unet:
        k22.generate(_request(Mode.RESTYLE_DEPTH, photos, steps=4, strength=0.75), progress)
    assert progress.calls == [(1, 3), (2, 3), (3, 3)]
    assert unet.count == 3


def test_img2img_steps_never_rounds_to_zero():
    assert img2img_steps(50, 0.6) == (50, 30)
    assert img2img_steps(3, 0.1) == (10, 1)
    assert img2img_steps(4, 1.0) == (4, 4)


@pytest.mark.parametrize("mode", [Mode.TEXT2IMG, Mode.IMG2IMG, Mode.RESTYLE_DEPTH, Mode.MIX])
def test_cancel_stops_at_the_step_it_was_raised(k22, photos, mode):
    k22.controlnet()
    unet = k22.controlnet().unet if mode is Mode.RESTYLE_DEPTH else k22.text2img.unet
    progress = StepRecorder(cancel_at=2, exc=GenerationCancelled)
    with _ForwardCounter(unet) as unet_calls, _ForwardCounter(k22.text2img.movq.decoder) as decodes:
        with pytest.raises(GenerationCancelled):
            k22.generate(_request(mode, photos, steps=8, strength=1.0, num_images=2), progress)
    assert [step for step, _ in progress.calls] == [1, 2]
    assert unet_calls.count == 2  # no step after the one that cancelled
    assert decodes.count == 0  # nor the MoVQ decode
    # The model is still usable afterwards.
    assert len(k22.generate(_request(mode, photos), no_progress)) == 1


# -- seeds ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [Mode.TEXT2IMG, Mode.RESTYLE_DEPTH, Mode.MIX])
def test_same_seed_same_images_other_seed_other_images(k22, photos, mode):
    first = arrays(k22.generate(_request(mode, photos, num_images=2), no_progress))
    again = arrays(k22.generate(_request(mode, photos, num_images=2), no_progress))
    other = arrays(k22.generate(_request(mode, photos, num_images=2, seed=8), no_progress))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], other[0])


@pytest.mark.parametrize("mode", [Mode.TEXT2IMG, Mode.IMG2IMG, Mode.FUSE])
def test_each_image_of_a_batch_can_be_redone_alone(k22, photos, mode):
    """Image i uses seed + i: a batch's third image is the single image of seed + 2 (up to the
    rounding of batched CPU kernels)."""
    batch = arrays(k22.generate(_request(mode, photos, num_images=3, seed=40), no_progress))
    alone = arrays(k22.generate(_request(mode, photos, num_images=1, seed=42), no_progress))
    assert np.abs(batch[2] - alone[0]).max() <= 2
    assert np.abs(batch[0] - alone[0]).max() > 2  # and it is not just any image of the batch


def test_negative_prompt_goes_to_the_prior(k22):
    plain = k22.text_embeddings("a red cat", None, [1])
    negative = k22.text_embeddings("a red cat", "blurry, dark", [1])
    assert torch.equal(plain[0], negative[0]) is False
    # The negative embedding is the prior's embedding of the negative prompt, not the empty picture's.
    assert torch.allclose(plain[1], k22.prior.get_zero_embed(1))
    assert not torch.allclose(negative[1], plain[1])


# -- loading, sharing, placement -----------------------------------------------------------------


def test_pipelines_share_the_loaded_components(k22):
    assert k22.img2img.unet is k22.text2img.unet
    assert k22.img2img.movq is k22.text2img.movq
    assert k22.prior_emb2emb.prior is k22.prior.prior
    assert k22.prior_emb2emb.image_encoder is k22.prior.image_encoder
    assert k22.controlnet().movq is k22.text2img.movq
    assert k22.controlnet().unet is not k22.text2img.unet


@pytest.mark.parametrize("name", ["k22-prior", "k22-decoder"])
def test_missing_checkpoint_raises_model_unavailable(tmp_path, k22_models_dir, name):
    shutil.copytree(k22_models_dir, tmp_path, dirs_exist_ok=True)
    shutil.rmtree(tmp_path / FOLDERS[name])
    with pytest.raises(ModelUnavailable) as err:
        Kandinsky22.load(GenerationConfig(models_dir=tmp_path), "cpu", torch.float32)
    assert name in err.value.detail and str(tmp_path / FOLDERS[name]) in err.value.detail
    assert err.value.code == "model_unavailable"


def test_corrupt_weights_raise_model_unavailable(tmp_path, k22_models_dir):
    shutil.copytree(k22_models_dir, tmp_path, dirs_exist_ok=True)
    weights = tmp_path / FOLDERS["k22-decoder"] / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelUnavailable, match="k22-decoder"):
        Kandinsky22.load(GenerationConfig(models_dir=tmp_path), "cpu", torch.float32)


@pytest.mark.parametrize("name", ["k22-controlnet-depth", "depth-estimator"])
def test_missing_controlnet_or_depth_model_fails_only_restyle_depth(tmp_path, k22_models_dir, photos, name):
    shutil.copytree(k22_models_dir, tmp_path, dirs_exist_ok=True)
    shutil.rmtree(tmp_path / FOLDERS[name])
    model = Kandinsky22.load(GenerationConfig(models_dir=tmp_path), "cpu", torch.float32)
    assert len(model.generate(_request(Mode.IMG2IMG, photos), no_progress)) == 1
    with pytest.raises(ModelUnavailable, match=name):
        model.generate(_request(Mode.RESTYLE_DEPTH, photos), no_progress)


def test_hub_ids_are_the_default_sources():
    config = GenerationConfig()
    assert config.source("k22-prior") == "kandinsky-community/kandinsky-2-2-prior"
    assert config.source("k22-controlnet-depth") == "kandinsky-community/kandinsky-2-2-controlnet-depth"
    assert config.source("depth-estimator") == "Intel/dpt-hybrid-midas"


def test_memory_offload_and_move(k22, k22_models_dir, photos):
    """A separate instance: memory grows with the lazy models; model offload (with the CPU standing
    in for the accelerator) gives the same images; ``to`` removes the hooks again."""
    model = Kandinsky22.load(GenerationConfig(models_dir=k22_models_dir), "cpu", "fp32")
    base = model.memory_bytes()
    assert base > 0
    model.controlnet()
    model.depth_estimator()
    assert model.memory_bytes() > base

    requests = [_request(Mode.TEXT2IMG, photos, num_images=2), _request(Mode.RESTYLE_DEPTH, photos)]
    expected = [arrays(k22.generate(r, no_progress)) for r in requests]

    model.enable_offload("model", device="cpu")
    assert hasattr(model.text2img.unet, "_hf_hook") and hasattr(model.controlnet().unet, "_hf_hook")
    for request, want in zip(requests, expected, strict=True):
        got = arrays(model.generate(request, no_progress))
        assert all(np.abs(a - b).max() <= 1 for a, b in zip(got, want, strict=True))

    model.to("cpu")
    assert not hasattr(model.text2img.unet, "_hf_hook")
    got = arrays(model.generate(requests[0], no_progress))
    assert all(np.abs(a - b).max() <= 1 for a, b in zip(got, expected[0], strict=True))
    with pytest.raises(ValueError):
        model.enable_offload("everything")


def test_offload_setting_is_ignored_on_the_cpu(k22_models_dir):
    config = GenerationConfig(models_dir=k22_models_dir, offload="model")
    model = Kandinsky22.load(config, "cpu", torch.float32)
    assert not hasattr(model.text2img.unet, "_hf_hook")
    assert model.text2img.device.type == "cpu"
