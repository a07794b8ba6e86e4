"""GFPGAN path on a tiny random-weight GFPGANv1Clean, saved and loaded like GFPGANv1.4.pth."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from faceswap import gfpgan_arch
from faceswap.config import FaceSwapConfig
from faceswap.loading import FaceModelUnavailable
from faceswap.restore import GFPGAN_V14_ARCH, GfpganRestorer, make_restorer

from .conftest import TINY_GFPGAN_ARCH as TINY_ARCH


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


def _upstream_gfpgan_archs(monkeypatch):
    """The installed gfpgan package's two architecture files, imported without running
    gfpgan/__init__ or basicsr/__init__ (which need torchvision): basicsr's registry and init
    helper are stood in for, inside this test only."""
    spec = importlib.util.find_spec("gfpgan")
    assert spec is not None, "gfpgan (installed with --no-deps) is needed for this conformance check"
    archs = Path(next(iter(spec.submodule_search_locations))) / "archs"
    registry = types.ModuleType("basicsr.utils.registry")
    registry.ARCH_REGISTRY = types.SimpleNamespace(register=lambda: (lambda cls: cls))
    arch_util = types.ModuleType("basicsr.archs.arch_util")
    arch_util.default_init_weights = gfpgan_arch.default_init_weights
    package = types.ModuleType("upstream_gfpgan_archs")
    package.__path__ = [str(archs)]
    modules = {
        "basicsr": types.ModuleType("basicsr"),
        "basicsr.utils": types.ModuleType("basicsr.utils"),
        "basicsr.utils.registry": registry,
        "basicsr.archs": types.ModuleType("basicsr.archs"),
        "basicsr.archs.arch_util": arch_util,
        "upstream_gfpgan_archs": package,
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    module = importlib.import_module("upstream_gfpgan_archs.gfpganv1_clean_arch")
    for name in ("upstream_gfpgan_archs.gfpganv1_clean_arch", "upstream_gfpgan_archs.stylegan2_clean_arch"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return module


def test_vendored_architecture_matches_the_gfpgan_package(monkeypatch):
    upstream = _upstream_gfpgan_archs(monkeypatch)
    ours = gfpgan_arch.GFPGANv1Clean(**TINY_ARCH)
    theirs = upstream.GFPGANv1Clean(**TINY_ARCH)
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert list(ours_sd) == list(theirs_sd)
    assert all(ours_sd[k].shape == theirs_sd[k].shape for k in ours_sd)
    theirs.load_state_dict(ours_sd, strict=True)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    torch.manual_seed(1)
    a = ours(x, return_rgb=False)[0]
    torch.manual_seed(1)
    b = theirs(x, return_rgb=False)[0]
    assert torch.allclose(a, b)
