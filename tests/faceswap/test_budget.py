"""Face models under the model manager's VRAM budget, and their failures as job errors."""

from __future__ import annotations

import pytest
import torch

from faceswap.backend import FaceSwapBackend, run_face_models
from faceswap.config import FaceSwapConfig
from faceswap.ghost import GhostWeightsError
from faceswap.loading import FaceModelUnavailable, LoadOnce
from faceswap.restore import GfpganRestorer
from generation.backend import GenerationError, OutOfMemory
from generation.manager import ModelManager
from generation.sources import GenerationConfig

from .conftest import TINY_GFPGAN_ARCH


class _ImageModel:
    """Stands for an image model's part: only its size and where it is matter here."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes
        self.moves: list[str] = []

    def memory_bytes(self) -> int:
        return self.nbytes

    def to(self, device: str):
        self.moves.append(device)
        return self


def _manager(budget_bytes: int) -> ModelManager:
    """A manager whose "GPU" is torch's meta device (tensors without storage), so that placement and
    eviction under the budget can be watched on a CPU-only machine."""
    manager = ModelManager(GenerationConfig(device="cpu", vram_budget_gb=budget_bytes / 1024**3))
    manager.device = "meta"
    return manager


def test_gfpgan_is_placed_under_the_budget_and_evicts_the_least_recent_image_model(tiny_gfpgan):
    checkpoint, _ = tiny_gfpgan
    restorer = GfpganRestorer(checkpoint, arch=TINY_GFPGAN_ARCH, on_use=None)
    size = restorer._model._load().memory_bytes()
    manager = _manager(budget_bytes=size + 1000)
    unet = _ImageModel(4000)  # an image model already on the "GPU"
    manager.add_part("k3-unet", unet)
    manager.parts["k3-unet"].device = "meta"

    restorer = GfpganRestorer(checkpoint, arch=TINY_GFPGAN_ARCH, on_use=lambda m: manager.use_external(m.name, m))
    restorer._model.get()
    assert manager.parts["gfpgan"].device == "meta"  # on the execution device...
    assert manager.parts["k3-unet"].device == "cpu" and unet.moves == ["cpu"]  # ...after the image model made room


class _WithManager:
    def __init__(self, manager) -> None:
        self.manager = manager

    def generate(self, request, progress):
        raise AssertionError("not drawn here")


def test_the_worker_backend_hands_its_manager_to_the_face_models(tiny_gfpgan):
    checkpoint, _ = tiny_gfpgan
    placed = []

    class Recorder:
        def use_external(self, name, model):
            placed.append((name, model))

    backend = FaceSwapBackend(_WithManager(Recorder()), FaceSwapConfig(describer_enabled=False, gfpgan_path=checkpoint))
    restorer = backend.pipeline.restorer
    restorer.arch = dict(TINY_GFPGAN_ARCH)
    restorer.net  # loads once and asks the manager to place it
    assert [name for name, _ in placed] == ["gfpgan"]


def test_face_model_failures_fail_the_job_with_a_clear_code():
    with pytest.raises(GenerationError) as bad_file:
        run_face_models(lambda: (_ for _ in ()).throw(GhostWeightsError("GHOST generator: G.pth does not match")))
    assert bad_file.value.code == "face_model_unavailable" and "G.pth" in bad_file.value.detail

    def oom():
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(OutOfMemory):
        run_face_models(oom)


def test_an_out_of_memory_while_placing_keeps_the_model_loaded():
    loads, placements = [], []

    def place(model):
        placements.append(model)
        if len(placements) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory")

    once = LoadOnce("test model", lambda: loads.append(1) or "model", place)
    with pytest.raises(torch.OutOfMemoryError):
        once.get()
    assert once.get() == "model"  # the next job only places it again
    assert loads == [1] and len(placements) == 2


def test_a_broken_file_is_remembered():
    loads = []

    def load():
        loads.append(1)
        raise EOFError("truncated")

    once = LoadOnce("GFPGAN (x.pth)", load)
    for _ in range(3):
        with pytest.raises(FaceModelUnavailable, match="x.pth"):
            once.get()
    assert loads == [1]
