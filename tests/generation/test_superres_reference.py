"""KandiSuperRes against ai-forever's own code (golden data, see tests/reference/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from generation import superres

GOLDEN = Path(__file__).parents[1] / "reference" / "superres_golden.safetensors"


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    data = load_file(GOLDEN)
    state = {k.removeprefix("unet."): v.float() for k, v in data.items() if k.startswith("unet.")}
    path = tmp_path_factory.mktemp("ksr") / superres.SR_X4_FILE
    torch.save(state, path)  # a published checkpoint is a bare state dict (or {"unet": ...})
    unet = superres.load_checkpoint(str(path), groups=16)  # strict
    return unet, data


def test_checkpoint_loads_strictly_with_its_shape_read_off_the_weights(golden, tmp_path):
    unet, data = golden
    assert unet.config.dim_mult == (1, 1, 1) and unet.config.num_resnet_blocks == (2, 2, 2)
    state = {k.removeprefix("unet."): v.float() for k, v in data.items() if k.startswith("unet.")}
    del state["out_conv.bias"]
    torch.save({"unet": state}, tmp_path / "broken.pt")
    with pytest.raises(RuntimeError, match="out_conv.bias"):
        superres.load_checkpoint(str(tmp_path / "broken.pt"), groups=16)


def test_forward_matches(golden):
    unet, data = golden
    with torch.no_grad():
        out = unet(data["forward_x"], data["forward_t"], data["forward_low"])
    torch.testing.assert_close(out, data["forward_out"], atol=1e-4, rtol=1e-4)


def test_x4_multidiffusion_matches_the_authors_panorama(golden):
    unet, data = golden
    pipe = superres.KandiSuperResPipeline(unet, superres.KandiSuperResPipeline.x4_scheduler())
    pipe.set_progress_bar_config(disable=True)
    out = pipe(
        data["low4"], scale=4, generator=torch.Generator().manual_seed(11), window=64, stride=48,
        view_batch_size=3, output_type="pt",
    ).images
    expected = ((data["x4"] + 1) / 2).clamp(0, 1)
    assert out.shape == expected.shape == (1, 3, 96, 128)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)


def test_flash_x2_matches_the_authors_turbo_loop(golden):
    unet, data = golden
    pipe = superres.KandiSuperResPipeline(unet, superres.KandiSuperResPipeline.flash_scheduler())
    out = pipe(
        data["low2"], scale=2, flash=True, refine=False, generator=torch.Generator().manual_seed(22), output_type="pt"
    ).images
    expected = ((data["x2"] + 1) / 2).clamp(0, 1)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)


def test_views_cover_the_canvas_like_the_authors():
    assert superres.views(96, 128, 64, 48) == [
        (0, 64, 0, 64), (0, 64, 48, 112), (0, 64, 64, 128), (32, 96, 0, 64), (32, 96, 48, 112), (32, 96, 64, 128),
    ]
    assert superres.views(4096, 4096)[-1] == (3072, 4096, 3072, 4096)
    assert len(superres.views(1000, 600)) == 1
