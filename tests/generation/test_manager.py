"""The model manager: devices and dtypes, the VRAM budget with LRU eviction, offload, Kandinsky 2.2 dispatch."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from PIL import Image

from generation.backend import GenerationRequest, Mode, ModelId
from generation.manager import (
    FLASH_UNET,
    K3_UNET,
    K22,
    MOVQ,
    TEXT_ENCODER,
    ModelManager,
    Part,
    resolve_dtype,
)
from generation.sources import GenerationConfig

GB = 1024**3


def test_dtypes_follow_the_device():
    assert resolve_dtype("cpu", "fp16") is torch.float32
    assert resolve_dtype("cuda", "fp16") is torch.float16
    assert resolve_dtype("cuda", "bf16") is torch.bfloat16
    with pytest.raises(ValueError):
        resolve_dtype("cuda", "int8")


def test_auto_device_on_a_machine_without_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    manager = ModelManager(GenerationConfig(device="auto", offload="model"))
    assert manager.device == "cpu" and manager.dtype is torch.float32
    assert manager.offload == "none"  # offload only applies to a GPU
    with pytest.raises(ValueError):
        ModelManager(GenerationConfig(device="tpu"))
    with pytest.raises(ValueError):
        ModelManager(GenerationConfig(offload="disk"))


class GpuManager(ModelManager):
    """A manager that believes it has a GPU; moves are recorded instead of made."""

    def __init__(self, budget_gb: float) -> None:
        super().__init__(GenerationConfig(device="cuda", vram_budget_gb=budget_gb))
        self.moves: list[tuple[str, str]] = []

    def _move(self, part: Part, device: str) -> None:
        if part.device != device:
            self.moves.append((part.name, device))
            part.device = device

    def free_memory(self) -> None:
        pass

    def add(self, name: str, gb: float) -> None:
        self.parts[name] = Part(name, object(), "cpu", int(gb * GB))


def test_lru_parts_move_to_cpu_when_over_budget():
    manager = GpuManager(budget_gb=10)
    for name, gb in ((TEXT_ENCODER, 5), (MOVQ, 0.5), (K3_UNET, 3), (FLASH_UNET, 3), (K22, 4)):
        manager.add(name, gb)

    manager.load(ModelId.K31)
    assert {n for n, p in manager.parts.items() if p.device == "cuda"} == {TEXT_ENCODER, MOVQ, K3_UNET}

    manager.load(ModelId.K31_FLASH)  # needs 3 GB more: the Kandinsky 3 UNet (not needed now) goes
    on_gpu = {n for n, p in manager.parts.items() if p.device == "cuda"}
    assert on_gpu == {TEXT_ENCODER, MOVQ, FLASH_UNET}
    assert (K3_UNET, "cpu") in manager.moves and (TEXT_ENCODER, "cpu") not in manager.moves

    manager.load(ModelId.K22)  # 4 GB: the least recently used go first, until it fits
    on_gpu = {n for n, p in manager.parts.items() if p.device == "cuda"}
    assert K22 in on_gpu and sum(manager.parts[n].nbytes for n in on_gpu) <= 10 * GB


def test_everything_stays_while_it_fits():
    manager = GpuManager(budget_gb=40)
    for name, gb in ((TEXT_ENCODER, 17), (MOVQ, 0.5), (K3_UNET, 6), (FLASH_UNET, 6), (K22, 5)):
        manager.add(name, gb)
    for model in (ModelId.K31, ModelId.K31_FLASH, ModelId.K31_REFINER, ModelId.K22):
        manager.load(model)
    assert all(p.device == "cuda" for p in manager.parts.values())
    assert not any(device == "cpu" for _, device in manager.moves)


def test_unload_keeps_parts_other_loaded_models_share():
    manager = GpuManager(budget_gb=100)
    for name in (TEXT_ENCODER, MOVQ, K3_UNET, FLASH_UNET):
        manager.add(name, 1)
    manager.load(ModelId.K31)
    manager.load(ModelId.K31_FLASH)
    manager.unload(ModelId.K31)  # Flash is loaded too and shares the encoder and the MoVQ
    assert set(manager.parts) == {TEXT_ENCODER, MOVQ, FLASH_UNET}
    manager.unload(ModelId.K31_FLASH)
    assert manager.parts == {}


def test_model_offload_reinstalls_hooks_before_each_pipeline():
    manager = ModelManager(GenerationConfig(device="cuda", offload="model"))
    calls = []

    class Pipe:
        def enable_model_cpu_offload(self, device=None):
            calls.append(("model", device))

        def enable_sequential_cpu_offload(self, device=None):
            calls.append(("sequential", device))

    pipe = Pipe()
    manager._prepare(pipe)
    manager._prepare(pipe)
    assert calls == [("model", "cuda"), ("model", "cuda")]
    manager.offload = "sequential"
    calls.clear()
    manager._prepare(pipe)
    manager._prepare(pipe)
    assert calls == [("sequential", "cuda")]


def test_kandinsky22_requests_go_to_the_k22_module(monkeypatch, tmp_path):
    """The agreed interface with generation.k22 (written separately): load, generate, to, memory_bytes."""
    from generation.diffusers_backend import DiffusersBackend

    calls = []

    class Kandinsky22:
        @classmethod
        def load(cls, config, device, dtype):
            calls.append(("load", device, dtype))
            return cls()

        def generate(self, request, progress):
            progress(1, 1)
            return [Image.new("RGB", (request.width, request.height))] * request.num_images

        def to(self, device):
            calls.append(("to", device))

        def memory_bytes(self):
            return 123

        def enable_offload(self, mode):
            calls.append(("offload", mode))

    module = types.ModuleType("generation.k22")
    module.Kandinsky22 = Kandinsky22
    monkeypatch.setitem(sys.modules, "generation.k22", module)
    backend = DiffusersBackend(GenerationConfig(models_dir=tmp_path, device="cpu"))
    request = GenerationRequest(
        mode=Mode.FUSE, model=ModelId.K22, prompt="", negative_prompt=None, width=128, height=64,
        num_images=2, seed=1, images=[Image.new("RGB", (8, 8))] * 2, weights=[0.5, 0.5],
    )
    seen = []
    images = backend.generate(request, lambda s, t: seen.append((s, t)))
    assert [im.size for im in images] == [(128, 64)] * 2 and seen == [(1, 1)]
    assert calls == [("load", "cpu", torch.float32)]
    status = {row["model"]: row for row in backend.model_status()}
    assert status["kandinsky-2.2"] == {"model": "kandinsky-2.2", "loaded": True, "device": "cpu", "memory_bytes": 123}


def test_registry_matches_the_samplers():
    from generation import k3, k22, registry

    assert not registry.uses_negative_prompt(ModelId.K31_FLASH)
    assert registry.uses_negative_prompt(ModelId.K31) and registry.uses_negative_prompt(ModelId.K22)
    k31 = registry.spec(ModelId.K31)
    assert (k31.default_steps, k31.default_guidance) == (k3.K3_DEFAULT_STEPS, k3.K3_DEFAULT_GUIDANCE) == (50, 3.0)  # the authors' defaults
    assert (k22.DECODER_STEPS, k22.DECODER_GUIDANCE) == (50, 4.0)  # diffusers' Kandinsky 2.2 defaults
    assert k3.FLASH_TIMESTEPS == (979, 729, 479, 229) and k3.REFINER_TIMESTEPS == (229,)
    flash, refiner = registry.spec(ModelId.K31_FLASH), registry.spec(ModelId.K31_REFINER)
    assert flash.total_steps == len(k3.FLASH_TIMESTEPS) and not flash.steps_configurable
    assert refiner.extra_steps == len(k3.REFINER_TIMESTEPS)
    assert Mode.IMG2IMG in flash.modes  # Flash restyles photos (tests/generation/test_k3_family.py)
    # Kandinsky 2.2 runs its own modes; face swap and /animate wrap it, generation.edit_ops serves the canvas kinds.
    canvas = {Mode.ZOOM_OUT, Mode.EXPAND, Mode.INPAINT, Mode.ZOOM_IN}
    assert set(k22.MODES) | set(registry.WRAPPED_MODES) | canvas == registry.spec(ModelId.K22).modes
    assert registry.model_for(Mode.ZOOM_OUT, ModelId.K31) == (ModelId.K31_INPAINT, True)
    assert registry.model_for(Mode.INPAINT, ModelId.K22) == (ModelId.K22, False)
    assert registry.model_for(Mode.UPSCALE, ModelId.K31_FLASH)[0] == ModelId.SUPERRES
    # /animate: every image model draws the first frame; the video models do text-to-video only.
    assert all(registry.spec(m).supports(Mode.ANIMATE) for m in registry.IMAGE_MODELS)
    video = registry.spec(ModelId.K5_VIDEO_5S)
    assert video.modes == {Mode.VIDEO} and ModelId.K5_VIDEO_5S not in registry.IMAGE_MODELS
    from generation.video_specs import VARIANT_DEFAULTS

    assert (video.default_steps, video.default_guidance or 1.0) == VARIANT_DEFAULTS["distilled16steps"]
    assert registry.model_for(Mode.FUSE, ModelId.K31) == (ModelId.K22, True)
    assert registry.model_for(Mode.IMG2IMG, ModelId.K31_FLASH) == (ModelId.K31_FLASH, False)


def test_kandinsky22_through_the_backend_on_tiny_checkpoints(backend):
    """The real generation.k22 module behind DiffusersBackend: lazy import, load, generate, status."""
    torch.set_num_threads(1)
    request = GenerationRequest(
        mode=Mode.TEXT2IMG, model=ModelId.K22, prompt="a red fox", negative_prompt=None,
        width=128, height=64, num_images=2, seed=3, steps=2,
    )
    seen = []
    images = backend.generate(request, lambda s, t: seen.append((s, t)))
    assert [im.size for im in images] == [(128, 64)] * 2
    assert seen and seen[-1][0] == seen[-1][1]
    status = {row["model"]: row for row in backend.model_status()}
    assert status["kandinsky-2.2"]["loaded"] and status["kandinsky-2.2"]["memory_bytes"] > 0


class FakeLLM:
    """What the manager sees of the local beautifier LLM: a device, a size, ``to``."""

    name = "beautifier-llm"

    def __init__(self, gb: float) -> None:
        self.device = "cpu"
        self.nbytes = int(gb * GB)

    def memory_bytes(self) -> int:
        return self.nbytes

    def to(self, device: str) -> None:
        self.device = device


def test_the_beautifier_llm_shares_the_budget_with_the_image_models():
    manager = GpuManager(budget_gb=10)
    for name, gb in ((TEXT_ENCODER, 5), (MOVQ, 0.5), (K3_UNET, 3), (FLASH_UNET, 3), (K22, 4)):
        manager.add(name, gb)
    manager.load(ModelId.K31)  # 8.5 GB on the GPU
    llm = FakeLLM(gb=4)
    manager.use_external(llm.name, llm)  # room is made: the least recently used image parts go
    on_gpu = {n for n, p in manager.parts.items() if p.device == "cuda"}
    assert "beautifier-llm" in on_gpu and sum(manager.parts[n].nbytes for n in on_gpu) <= 10 * GB
    assert (TEXT_ENCODER, "cpu") in manager.moves
    manager.load(ModelId.K31)  # and the image model pushes the LLM out again
    assert manager.parts["beautifier-llm"].device == "cpu"
    assert ("beautifier-llm", "cpu") in manager.moves


def test_share_gpu_budget_wires_only_a_local_llm(tmp_path):
    from prompting.beautify import LocalLLMBeautifier, NoBeautifier, share_gpu_budget
    from generation.diffusers_backend import DiffusersBackend

    backend = DiffusersBackend(GenerationConfig(device="cpu"))
    llm = LocalLLMBeautifier(str(tmp_path / "llm"), device="cpu")
    share_gpu_budget(llm, backend)
    used = []
    backend.manager.use_external = lambda name, obj: used.append((name, obj))
    llm.on_use(llm)
    assert used == [("beautifier-llm", llm)]
    off = NoBeautifier()
    share_gpu_budget(off, backend)  # nothing to wire, nothing breaks
    share_gpu_budget(LocalLLMBeautifier("x", device="cpu"), object())  # a backend without a manager


def test_tf32_for_fp32_matmuls_on_cuda():
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = matmul.allow_tf32, cudnn.allow_tf32
    matmul.allow_tf32 = cudnn.allow_tf32 = False
    try:
        ModelManager(GenerationConfig(device="cpu"))
        assert not matmul.allow_tf32  # CPU: nothing to change
        ModelManager(GenerationConfig(device="cuda", tf32=False))
        assert not matmul.allow_tf32
        ModelManager(GenerationConfig(device="cuda"))
        assert matmul.allow_tf32 and cudnn.allow_tf32
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = saved


def test_channels_last_on_cuda_except_for_the_kandinsky3_unets():
    # On an H200 the Kandinsky 3 UNet ran 8-23% slower in channels_last (benchmarks/RESULTS.md); the
    # MoVQ and the other models keep it. The layout is set on CPU tensors just as on CUDA ones.
    from diffusers import Kandinsky3UNet, VQModel

    from generation.k3_inpaint import Kandinsky3InpaintUNet
    from generation.tiny import TINY_K3_UNET, TINY_MOVQ

    def layout(module: torch.nn.Module) -> bool:
        weights = [p for p in module.parameters() if p.dim() == 4]
        return all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)

    manager = ModelManager(GenerationConfig(device="cpu"))
    manager.on_cuda = True  # what the manager decides on a GPU, without one
    unets = [Kandinsky3UNet(**TINY_K3_UNET), Kandinsky3InpaintUNet(**dict(TINY_K3_UNET, in_channels=9))]
    for unet in unets:
        assert not layout(manager._optimize(unet, unet=True))
    assert layout(manager._optimize(VQModel(**TINY_MOVQ), unet=False))
    manager.on_cuda = False
    assert not layout(manager._optimize(VQModel(**TINY_MOVQ), unet=False))  # CPU: left as it is
