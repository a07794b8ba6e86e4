"""KandiSuperRes Flash x2 with the authors' refinement, against their own code (golden data made by
``KandiSuperResPipeline.__call__(refine=True)`` of ai-forever/KandiSuperRes; tests/reference/README.md).

The weights are the reference ones in the authors' layouts, loaded strictly by our converters: the tiny
SR network of ``superres_golden``, the tiny Flash UNet and projection of ``kandinsky3/``, and a tiny MoVQ
with the real 8x downsampling (``movq.*``, their keys). The MoVQ tiles are 64 px here (the authors'
``tile_sample_min_size`` setting; 1024 in their pipeline) so that the tiled encode and decode run.

Tolerance: fp32 on both sides, different kernels (see test_k31_reference.py): one UNet call and the
MoVQ agree to ~1e-6; the refinement divides the predicted noise by sqrt(a_229) (about 1.1), the SR loop
by nothing (it predicts the image). 1e-4 absolute on values of order 1; a wrong tile, blend, timestep,
context or projection moves them by far more (the tests that break one on purpose check it).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from generation import superres
from generation.k31 import Kandinsky3AuthorsScheduler, install_text_projection
from generation.k31_weights import movq_to_diffusers, unet_to_diffusers

REFERENCE = Path(__file__).resolve().parents[1] / "reference"
ATOL = 1e-4


def _float(d: dict, prefix: str) -> dict:
    return {k.removeprefix(prefix): v.float() for k, v in d.items() if k.startswith(prefix)}


@pytest.fixture(scope="module")
def golden():
    return load_file(REFERENCE / "superres_refine_golden.safetensors")


@pytest.fixture(scope="module")
def pipe(golden, tmp_path_factory):
    from diffusers import Kandinsky3UNet, VQModel

    from generation.tiny import TINY_MOVQ

    folder = tmp_path_factory.mktemp("ksr")
    torch.save(_float(load_file(REFERENCE / "superres_golden.safetensors"), "unet."), folder / superres.SR_FLASH_X2_FILE)
    sr = superres.load_checkpoint(str(folder / superres.SR_FLASH_X2_FILE), groups=16)

    configs = json.loads((REFERENCE / "kandinsky3" / "authors_configs.json").read_text())
    u = configs["unet"]
    refiner = Kandinsky3UNet(
        in_channels=u["num_channels"], time_embedding_dim=u["time_embed_dim"], groups=u["groups"],
        attention_head_dim=u["head_dim"], layers_per_block=u["num_blocks"][0],
        block_out_channels=[u["model_channels"] * m for m in u["dim_mult"]],
        cross_attention_dim=u["context_dim"], encoder_hid_dim=configs["t5"]["d_model"],
    )
    flash = load_file(REFERENCE / "kandinsky3" / "kandinsky3_flash_tiny.safetensors")
    projection = _float(load_file(REFERENCE / "kandinsky3" / "projection_flash_tiny.safetensors"), "")
    refiner.load_state_dict(unet_to_diffusers(_float(flash, "unet."), projection), strict=True)
    install_text_projection(refiner.eval(), flash["null_embedding"].float())

    movq = VQModel(**TINY_MOVQ)  # the authors' MoVQ(ch=32, ch_mult=[1, 1, 1, 1], num_res_blocks=1)
    state = movq_to_diffusers(_float(golden, "movq."), len(TINY_MOVQ["block_out_channels"]))
    state["quantize.embedding.weight"] = movq.quantize.embedding.weight.detach()  # never read
    movq.load_state_dict(state, strict=True)

    context = (golden["pipeline.context"].float(), golden["pipeline.context_mask"].bool())
    pipe = superres.KandiSuperResPipeline(
        sr.eval(), superres.KandiSuperResPipeline.flash_scheduler(), refiner=refiner, movq=movq.eval(),
        refiner_scheduler=Kandinsky3AuthorsScheduler(), context=context,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _run(pipe, golden, **kwargs):
    photo = Image.fromarray(golden["pipeline.input"].numpy())
    return pipe(photo, scale=2, flash=True, generator=torch.Generator().manual_seed(64), movq_tile=64, output_type="pt", **kwargs).images


def test_flash_x2_with_refinement_matches_the_authors_pipeline(pipe, golden):
    stages: dict[str, torch.Tensor] = {}
    encode, refine = superres.movq_encode, superres.refine_latents

    def spy_encode(*args, **kwargs):
        stages["sr"] = args[1].clone()
        stages["latent"] = encode(*args, **kwargs)
        return stages["latent"]

    def spy_refine(*args, **kwargs):
        stages["refined"] = refine(*args, **kwargs)
        return stages["refined"]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(superres, "movq_encode", spy_encode)
        mp.setattr(superres, "refine_latents", spy_refine)
        events: list[int] = []
        out = _run(pipe, golden, callback_on_step_end=lambda p, i, t, kw: events.append(t) or kw)
    # The photo (100x70) went in at 96x64, out at 192x128, back to 200x140.
    for name in ("sr", "latent", "refined"):
        torch.testing.assert_close(stages[name], golden[f"pipeline.{name}"], atol=ATOL, rtol=0)
    assert out.shape == (1, 3, 140, 200)
    torch.testing.assert_close(out[0], golden["pipeline.image"], atol=ATOL, rtol=0)
    assert events == [979, 729, 479, 229, superres.REFINER_TIMESTEP]


def test_the_refinement_changes_the_picture_and_its_context_counts(pipe, golden):
    """The checks above can disagree: without the refinement, or with the context projected again
    (as a prompt's would be), the result is another picture."""
    plain = _run(pipe, golden, refine=False)
    assert (plain[0] - golden["pipeline.image"]).abs().max() > 100 * ATOL
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(superres, "projected_context", lambda unet: __import__("contextlib").nullcontext())
        # the tiny projection maps 16-d states; project the 4-d context's zero-padded copy instead
        context, mask = pipe.context
        pipe.context = (torch.nn.functional.pad(context, (0, 12)), mask)
        try:
            projected = _run(pipe, golden)
        finally:
            pipe.context = (context, mask)
    assert (projected[0] - golden["pipeline.image"]).abs().max() > 100 * ATOL


def test_refine_tiles_and_blends_like_the_authors(golden):
    """``refine_tiled``'s 352-px tiles, their quarter overlaps and a last column narrower than the
    blend (360x324 latent: two rows, two columns), with a 3x3 convolution as the noise predictor."""
    conv = torch.nn.Conv2d(1, 1, 3, padding=1)
    conv.load_state_dict({"weight": golden["tiled.conv_weight"], "bias": golden["tiled.conv_bias"]})
    latent = torch.randn(1, 1, 360, 324, generator=torch.Generator().manual_seed(60)).half().float()
    alphas = Kandinsky3AuthorsScheduler().alphas_cumprod
    with torch.no_grad():
        out = superres.refine_latents(lambda x, t: conv(x), latent, alphas, torch.Generator().manual_seed(61))
    expected = golden["tiled.out"].float()
    torch.testing.assert_close(out, expected, atol=2e-3 * float(expected.abs().max()), rtol=1e-3)  # stored in fp16
    with torch.no_grad():  # one big tile instead: the seams differ
        whole = superres.refine_latents(lambda x, t: conv(x), latent, alphas, torch.Generator().manual_seed(61), tile=400)
    assert (whole - expected).abs().max() > 0.1


def test_context_files_are_pinned_and_found_in_a_local_folder(tmp_path):
    folder = tmp_path / "KandiSuperRes"
    (folder / "weights").mkdir(parents=True)
    torch.save(torch.ones(1, 3, 4).half(), folder / superres.CONTEXT_FILES[0])
    torch.save(torch.tensor([[1, 0, 0]]), folder / superres.CONTEXT_FILES[1])
    assert superres.ensure_context(str(folder), tmp_path / "cache") == folder  # nothing to download
    context, mask = superres.load_context(folder)
    assert context.dtype == torch.float32 and mask.tolist() == [[True, False, False]]
    assert superres.context_dir("ai-forever/KandiSuperRes", tmp_path).parent == tmp_path
    assert set(superres.CONTEXT_SHA256) == set(superres.CONTEXT_FILES)
