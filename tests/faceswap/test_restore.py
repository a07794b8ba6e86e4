"""GFPGAN path on a tiny random-weight GFPGANv1Clean, saved and loaded like GFPGANv1.4.pth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from faceswap.config import FaceSwapConfig
from faceswap.loading import FaceModelUnavailable
from faceswap.restore import GFPGAN_V14_ARCH, GfpganRestorer, make_restorer

from .conftest import TINY_GFPGAN_ARCH as TINY_ARCH
from .seeded_weights import seeded_state_dict

REFERENCE = Path(__file__).parents[1] / "reference"


@pytest.fixture(scope="module")
def tiny_checkpoint(tiny_gfpgan) -> Path:
    return tiny_gfpgan[0]


def test_restores_the_face_and_pastes_it_back(tiny_checkpoint, detector, astronaut):
    face = detector.detect(astronaut)[0]
    made = make_restorer(FaceSwapConfig(gfpgan_path=tiny_checkpoint, device="cpu"))
    assert isinstance(made, GfpganRestorer) and made.arch == GFPGAN_V14_ARCH
    # The settings build v1.4 (512 px); the stand-in is the same architecture, smaller.
    restorer = GfpganRestorer(tiny_checkpoint, device="cpu", arch=TINY_ARCH)
    torch.manual_seed(0)
    out = restorer.restore(astronaut, [face])
    assert out.shape == astronaut.shape and out.dtype == np.uint8
    changed = np.abs(out.astype(int) - astronaut.astype(int)).sum(axis=-1) > 0
    ys, xs = np.nonzero(changed)
    assert changed.sum() > 1000  # the random network did repaint the face
    left, top, right, bottom = face.box
    # ...and nothing far from it.
    size = right - left
    assert xs.min() > left - size and xs.max() < right + size
    assert ys.min() > top - size and ys.max() < bottom + size


def test_restorer_is_skipped_without_weights_or_when_off(tmp_path, caplog, tiny_checkpoint):
    with caplog.at_level("INFO"):
        assert make_restorer(FaceSwapConfig(gfpgan_path=tmp_path / "missing.pth")) is None
        assert make_restorer(FaceSwapConfig(gfpgan_path=tiny_checkpoint, restore_enabled=False)) is None
    assert "GFPGAN weights not found, skipped" in caplog.text
    assert "switched off" in caplog.text


def test_strict_loading_rejects_a_foreign_checkpoint(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"params": {"conv.weight": torch.zeros(1)}}, path)
    restorer = GfpganRestorer(path, device="cpu", arch=TINY_ARCH)
    with pytest.raises(FaceModelUnavailable, match="other.pth"):
        restorer.net
    reads = []
    real = torch.load
    torch.load = lambda *a, **k: reads.append(a) or real(*a, **k)
    try:
        with pytest.raises(FaceModelUnavailable):  # remembered: the file is not read again
            restorer.net
    finally:
        torch.load = real
    assert reads == []


def test_our_gfpgan_reproduces_the_gfpgan_package():
    """Against tests/reference/gfpgan.npz: the gfpgan package's GFPGANv1Clean (v1.4 settings, tiny
    widths) on seeded weights, called as GFPGANer calls it (stored noise)."""
    from faceswap.gfpgan_net import GFPGANClean

    with np.load(REFERENCE / "gfpgan.npz") as golden:
        arch = json.loads(str(golden["tiny_arch"]))
        net = GFPGANClean(
            out_size=arch["out_size"],
            num_style_feat=arch["num_style_feat"],
            channel_multiplier=arch["channel_multiplier"],
            num_mlp=arch["num_mlp"],
            narrow=arch["narrow"],
            sft_half=arch["sft_half"],
        ).eval()
        net.load_state_dict(seeded_state_dict({k: v.shape for k, v in net.state_dict().items()}, int(golden["seed"])), strict=True)
        x = torch.from_numpy(golden["input_rgb"].astype(np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
        with torch.no_grad():
            out = net(x)[0].numpy()
        np.testing.assert_allclose(out, golden["output"], atol=1e-5)
        assert golden["output"].std() > 0.05


def test_the_published_v14_checkpoint_layout_loads_strictly():
    """Every key and shape of GFPGANv1.4.pth's params_ema (the gfpgan package's v1.4 network)."""
    from faceswap.gfpgan_net import GFPGANClean

    with torch.device("meta"):
        ours = {k: list(v.shape) for k, v in GFPGANClean(**GFPGAN_V14_ARCH).state_dict().items()}
    assert ours == json.loads((REFERENCE / "gfpgan_v14_keys.json").read_text())
