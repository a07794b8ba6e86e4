"""The model manager: the one owner of the GPU in a worker.

- Models load lazily, on first use, through ``from_pretrained`` on a hub id or a local folder
  (:meth:`GenerationConfig.source`).
- CUDA runs fp16 (or bf16); CPU runs fp32. ``device="auto"`` picks CUDA when there is one.
- The Kandinsky 3 family is made of *parts*: the Flan-UL2 text encoder and the MoVQ are loaded once and
  shared by Kandinsky 3.1, Flash and the refiner; only the UNets differ.
- What each model loads is the registry's ``ModelSpec.parts`` (:mod:`generation.registry`).
- Parts stay on the GPU while they fit ``vram_budget_gb``; when a request needs room, the parts used
  least recently (and not needed now) move to the CPU. Models of other packages share the budget
  through :meth:`ModelManager.use_external` (the local beautifier LLM, ``prompting.beautify``).
- ``offload="model" | "sequential"`` hands placement to diffusers' CPU offload (small GPUs).
- UNets use PyTorch SDPA attention, channels_last on CUDA (except the Kandinsky 3 UNets, which it
  slows), ``torch.compile`` when enabled (once per known image size, :mod:`generation.compiled`) and
  FP8 when enabled on a GPU that has it (:mod:`generation.precision`).
- A missing or corrupt checkpoint raises :class:`ModelUnavailable` naming the model and the path.

The worker's settings come from ``app.config.Settings.generation_config()``.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from generation.backend import GenerationError, ModelId, ModelUnavailable
from generation.registry import (
    DEPTH,
    EDGE_DETECTOR,
    FLASH_UNET,
    HED_CONTROLNET,
    HED_UNET,
    IMAGE_ENCODER,
    INPAINT_UNET,
    IP_UNET,
    K3_UNET,
    K5_VIDEO_5S_PART,
    K5_VIDEO_10S_PART,
    K22_PARTS,
    MODELS,
    MOVQ,
    SR_FLASH,
    SR_X4,
    TEXT_ENCODER,
)
from generation.precision import enable_tf32, quantize_fp8
from generation.sources import GenerationConfig
from generation.text_cache import TextEncodingCache

log = logging.getLogger(__name__)

K22 = K22_PARTS
K5_VIDEO_5S = K5_VIDEO_5S_PART
K5_VIDEO_10S = K5_VIDEO_10S_PART

# What each model loads, from the registry (shared parts load once).
MODEL_PARTS: dict[ModelId, tuple[str, ...]] = {model: s.parts for model, s in MODELS.items()}

_DTYPES = {"fp16": torch.float16, "float16": torch.float16, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}
OFFLOAD_MODES = ("none", "model", "sequential")


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cuda", "cpu") and not device.startswith("cuda:"):
        raise ValueError(f"GENERATION_DEVICE must be auto, cuda or cpu, not {device!r}")
    return device


def resolve_dtype(device: str, dtype: str) -> torch.dtype:
    if not device.startswith("cuda"):
        return torch.float32  # half precision on CPU is slow and poorly supported
    try:
        return _DTYPES[dtype]
    except KeyError:
        raise ValueError(f"GENERATION_DTYPE must be fp16 or bf16, not {dtype!r}") from None


def module_bytes(module: Any) -> int:
    if hasattr(module, "memory_bytes"):
        return int(module.memory_bytes())
    tensors = list(module.parameters()) + list(module.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


@dataclass
class Part:
    name: str
    obj: Any  # an nn.Module, or a model object with to() / memory_bytes() (Kandinsky22)
    device: str
    nbytes: int
    last_used: float = field(default_factory=time.monotonic)


def channels_last_pays(module: torch.nn.Module) -> bool:
    """Whether ``module`` runs faster on CUDA in channels_last. Not the Kandinsky 3 UNets (3.1, Flash,
    and the inpainting, ControlNet and IP-Adapter variants of that architecture): on an H200 (torch
    2.11, fp16, 1024 px) its forward took 8% longer with 2 rows and 23% longer with 8 in channels_last
    (benchmarks/RESULTS.md, "The GPU check on an H200")."""
    from diffusers import Kandinsky3UNet

    return not isinstance(module, Kandinsky3UNet)


class ModelManager:
    def __init__(self, config: GenerationConfig) -> None:
        if config.offload not in OFFLOAD_MODES:
            raise ValueError(f"OFFLOAD must be one of {OFFLOAD_MODES}, not {config.offload!r}")
        self.config = config
        self.device = resolve_device(config.device)
        self.dtype = resolve_dtype(self.device, config.dtype)
        self.on_cuda = self.device.startswith("cuda")
        # Offload only means something with a GPU; on CPU everything simply lives on the CPU.
        self.offload = config.offload if self.on_cuda else "none"
        if self.on_cuda and config.tf32:
            # fp32 matmuls (Flan-UL2 keeps its wo layers in fp32; the MoVQ runs fp32) on TF32 cores: a
            # 10-bit mantissa, as fp16's, so no less precise than the fp16 layers around them.
            enable_tf32()
        self.lock = threading.RLock()
        self.parts: dict[str, Part] = {}
        self.active: set[ModelId] = set()  # the models asked for (load / a request) and not unloaded
        self.extras: dict[str, Any] = {}  # tokenizer, schedulers: no weights, never moved
        self._pipelines: dict[tuple[str, int], Any] = {}
        self._sequential_offloaded: set[int] = set()
        # Flan-UL2 outputs by prompt, for Again, the refiner's second stage, animation frames (see there).
        self.text_cache = TextEncodingCache(config.text_cache_mb * 1024**2)

    # -- budget -------------------------------------------------------------------------------
    def budget_bytes(self) -> int:
        if self.config.vram_budget_gb is not None:
            return int(self.config.vram_budget_gb * 1024**3)
        if self.on_cuda:
            return int(torch.cuda.get_device_properties(torch.device(self.device)).total_memory * 0.9)
        return 2**63

    def _move(self, part: Part, device: str) -> None:
        if part.device == device:
            return
        log.info("moving %s (%.2f GB) to %s", part.name, part.nbytes / 1024**3, device)
        part.obj.to(device)
        part.device = device

    def _place(self, names: tuple[str, ...]) -> None:
        """Bring ``names`` to the execution device, moving least-recently-used others to the CPU."""
        now = time.monotonic()
        for name in names:
            self.parts[name].last_used = now
        if self.device == "cpu" or self.offload != "none":
            return
        need = sum(self.parts[n].nbytes for n in names if self.parts[n].device != self.device)
        resident = sum(p.nbytes for p in self.parts.values() if p.device == self.device)
        budget = self.budget_bytes()
        others = sorted(
            (p for p in self.parts.values() if p.device == self.device and p.name not in names),
            key=lambda p: p.last_used,
        )
        for victim in others:
            if resident + need <= budget:
                break
            self._move(victim, "cpu")
            resident -= victim.nbytes
        if need:
            self.free_memory()
        for name in names:
            self._move(self.parts[name], self.device)

    # -- loading ------------------------------------------------------------------------------
    def _optimize(self, module: torch.nn.Module, unet: bool, fp8: bool = False) -> torch.nn.Module:
        """SDPA attention, channels_last on CUDA where it pays; for UNets ``fp8`` (when FP8_UNETS is on and
        the GPU has FP8) and ``torch.compile`` once per known image size (generation.compiled)."""
        if unet:
            from diffusers.models.attention_processor import AttnProcessor2_0

            module.set_attn_processor(AttnProcessor2_0())  # PyTorch SDPA
        if self.on_cuda and channels_last_pays(module):
            module.to(memory_format=torch.channels_last)
        if fp8 and self.config.fp8_unets:
            quantize_fp8(module, self.device, type(module).__name__)
        if unet and self.config.compile:
            from generation.compiled import compile_sizes, compile_unet

            compile_unet(module, compile_sizes(self.config.max_image_side), backend=self.config.compile_backend,
                         mode=self.config.compile_mode)
        return module

    def _guard(self, label: str, path: str, load: Callable[[], Any]) -> Any:
        try:
            return load()
        except torch.OutOfMemoryError:
            raise
        except GenerationError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure to read a checkpoint is reported the same way
            log.exception("cannot load %s from %s", label, path)
            raise ModelUnavailable(f"{label}: cannot load the checkpoint at {path}: {exc}") from exc

    def _add(self, name: str, obj: Any) -> None:
        device = "cpu"
        if isinstance(obj, torch.nn.Module):
            first = next(obj.parameters(), None)
            if first is not None and first.device.type == "cuda":
                device = self.device
        part = Part(name, obj, device, module_bytes(obj))
        self.parts[name] = part
        self._pipelines.clear()
        if name == TEXT_ENCODER:
            self.text_cache.clear()  # outputs of another encoder object

    def _load_part(self, name: str) -> None:
        if name in self.parts:
            return
        if name == K22:
            return self._load_k22()
        if name in (DEPTH, K5_VIDEO_5S, K5_VIDEO_10S):
            return self._load_video_part(name)
        if name in (IP_UNET, IMAGE_ENCODER, HED_UNET, HED_CONTROLNET, EDGE_DETECTOR):
            return self._load_image_prompt_part(name)
        from diffusers import Kandinsky3UNet, VQModel
        from transformers import AutoTokenizer, T5EncoderModel

        from generation import k31_weights
        from generation.k31 import Kandinsky3AuthorsScheduler, install_text_projection

        # Everything of the Kandinsky 3 family comes from ai-forever/Kandinsky3.1, in the authors' format.
        source = self.config.source("k31")
        cache_dir = Path(self.config.cache_dir)
        if name == TEXT_ENCODER:
            folder = k31_weights.ENCODER_FOLDER

            def load() -> Any:
                self.extras["tokenizer"] = AutoTokenizer.from_pretrained(source, subfolder=folder)
                self.extras["scheduler"] = Kandinsky3AuthorsScheduler()
                # As from_pretrained builds it: Flan-UL2 keeps its feed-forward output projections (wo)
                # in fp32 (T5's _keep_in_fp32_modules), which is why the encoder takes ~21.7 GB in fp16.
                return T5EncoderModel.from_pretrained(source, subfolder=folder, dtype=self.dtype).eval()

            self._add(name, self._guard("Kandinsky 3.1 text encoder", f"{source}/{folder}", load))
        elif name == MOVQ:

            def load() -> Any:
                # fp32 even on CUDA, as the authors run it (their dtype_map: movq float32): 0.27B
                # parameters, and a decoder in fp16 risks overflow in its large activations.
                movq = VQModel.from_pretrained(k31_weights.converted_movq_dir(source, cache_dir, torch.float32))
                return self._optimize(movq.eval(), unet=False)

            self._add(name, self._guard("Kandinsky 3.1 MoVQ", f"{source}/{k31_weights.MOVQ_FILE}", load))
        elif name in (K3_UNET, FLASH_UNET):
            which = "base" if name == K3_UNET else "flash"
            label = "Kandinsky 3.1 UNet" if which == "base" else "Kandinsky 3.1 Flash UNet"

            def load() -> Any:
                folder = k31_weights.converted_unet_dir(source, which, cache_dir, self.dtype)
                unet = Kandinsky3UNet.from_pretrained(folder)
                null_embedding = load_file(str(folder / k31_weights.NULL_EMBEDDING_FILE))["null_embedding"]
                install_text_projection(unet, null_embedding)
                return self._optimize(unet.eval(), unet=True, fp8=True)

            self._add(name, self._guard(label, f"{source}/{k31_weights.UNET_FILES[which][0]}", load))
        elif name == INPAINT_UNET:
            from generation.k3_inpaint import Kandinsky3InpaintUNet, converted_unet_dir as inpaint_dir

            def load() -> Any:
                folder = inpaint_dir(source, cache_dir)
                unet = Kandinsky3InpaintUNet.from_pretrained(folder, dtype=self.dtype)
                return self._optimize(unet.eval(), unet=True)

            self._add(name, self._guard("Kandinsky 3.1 inpainting UNet", source, load))
        elif name in (SR_FLASH, SR_X4):
            from generation import superres

            sr_source = self.config.source("superres")
            filename = superres.SR_FLASH_X2_FILE if name == SR_FLASH else superres.SR_X4_FILE

            def load() -> Any:
                unet = superres.load_checkpoint(k31_weights.fetch(sr_source, filename))
                return unet.to(self.dtype) if self.on_cuda else unet

            self._add(name, self._guard("KandiSuperRes", f"{sr_source}/{filename}", load))
        else:
            raise KeyError(name)

    def _load_k22(self) -> None:
        from generation.k22 import Kandinsky22

        paths = ", ".join(self.config.source(n) for n in ("k22-prior", "k22-decoder"))
        model = self._guard("Kandinsky 2.2", paths, lambda: Kandinsky22.load(self.config, "cpu", self.dtype))
        if self.offload != "none":
            model.enable_offload(self.offload)
        self._add(K22, model)

    def _load_video_part(self, name: str) -> None:
        source = self.config.source(name)
        if name == DEPTH:
            from generation.animation_models import DepthEstimator

            self._add(name, self._guard("depth estimator", source, lambda: DepthEstimator.load(source, self.dtype)))
            return
        from generation.k5video import K5VideoModel

        label = f"Kandinsky 5.0 Video Lite ({name.rsplit('-', 1)[1]})"
        model = self._guard(label, source, lambda: K5VideoModel.load(source, self.dtype))
        if self.offload != "none":
            model.pipe.enable_model_cpu_offload(device=self.device)
        self._add(name, model)

    def depth_estimator(self) -> Any:
        with self.lock:
            self._load_part(DEPTH)
            self._place((DEPTH,))
            return self.parts[DEPTH].obj

    def k5_video(self, model: ModelId) -> Any:
        """The ``Kandinsky5T2VPipeline`` of a clip length (loading it may move image models off the GPU)."""
        self.load(model)
        return self.parts[MODEL_PARTS[model][0]].obj.pipe

    def _load_image_prompt_part(self, name: str) -> None:
        """The parts of Kandinsky 3.1's IP-Adapter and HED ControlNet (generation.k3_image)."""
        from diffusers import DDPMScheduler

        from generation import k3_image

        if name in (IP_UNET, IMAGE_ENCODER):
            source, label = self.config.source("k31-ip-adapter"), "Kandinsky 3.1 IP-Adapter"
        else:
            source, label = self.config.source("k31-controlnet-hed"), "Kandinsky 3.1 HED ControlNet"

        def scheduler(key: str) -> None:
            # The class the folder names (the authors' ControlNet pipelines also accept DPM-Solver).
            import diffusers

            config = DDPMScheduler.load_config(source, subfolder="scheduler")
            cls = getattr(diffusers, str(config.get("_class_name", "DDPMScheduler")), DDPMScheduler)
            self.extras[key] = cls.from_config(config)

        if name == IP_UNET:

            def load() -> Any:
                scheduler("ip_scheduler")
                unet = k3_image.load_from_authors(k3_image.Kandinsky3IPAdapterUNet, source, "unet", self.dtype)
                # unet=False: its attention processors carry the image branch and already use SDPA.
                return self._optimize(unet, unet=False)

            self._add(name, self._guard(f"{label} UNet", f"{source}/unet", load))
        elif name == IMAGE_ENCODER:
            from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

            def load() -> Any:
                self.extras["clip_processor"] = CLIPImageProcessor.from_pretrained(source, subfolder="image_processor")
                return CLIPVisionModelWithProjection.from_pretrained(
                    source, subfolder="image_encoder", dtype=self.dtype
                ).eval()

            self._add(name, self._guard(f"{label} image encoder", f"{source}/image_encoder", load))
        elif name == HED_UNET:

            def load() -> Any:
                scheduler("hed_scheduler")
                unet = k3_image.load_from_authors(k3_image.Kandinsky3ControlledUNet, source, "unet", self.dtype)
                return self._optimize(unet, unet=True)

            self._add(name, self._guard(f"{label} UNet", f"{source}/unet", load))
        elif name == HED_CONTROLNET:

            def load() -> Any:
                controlnet = k3_image.load_from_authors(k3_image.Kandinsky3ControlNet, source, "unet_controlnet", self.dtype)
                return self._optimize(controlnet, unet=False)

            self._add(name, self._guard(f"{label}", f"{source}/unet_controlnet", load))
        else:
            from generation.edges import EdgeDetector

            hed = self.config.source("hed-annotator")
            # float32: a small network (15M parameters) that also runs on the CPU under offload.
            self._add(name, self._guard("HED edge detector", hed, lambda: EdgeDetector.load(hed, "cpu")))

    # -- public -------------------------------------------------------------------------------
    def add_part(self, name: str, obj: Any, **extras: Any) -> None:
        """Adopt an already built part (the benchmark builds full-size models from configs)."""
        with self.lock:
            self._add(name, obj)
            self.extras.update(extras)

    def use_external(self, name: str, obj: Any) -> None:
        """Bring a model that loads itself (the local beautifier LLM) to the execution device under
        the same VRAM budget: least-recently-used image models go to the CPU to make room, and the
        image models later push it out the same way."""
        with self.lock:
            part = self.parts.get(name)
            if part is None or part.obj is not obj:
                part = Part(name, obj, obj.device or "cpu", obj.memory_bytes())
                self.parts[name] = part
            part.nbytes = obj.memory_bytes()
            self._place((name,))

    def load(self, model: ModelId) -> None:
        with self.lock:
            for name in MODEL_PARTS[model]:
                self._load_part(name)
            self._place(MODEL_PARTS[model])
            self.active.add(model)

    def unload(self, model: ModelId) -> None:
        """Drop the parts of ``model`` that no other loaded model uses."""
        with self.lock:
            self.active.discard(model)
            keep = {n for m in self.active for n in MODEL_PARTS[m]}
            for name in MODEL_PARTS[model]:
                if name in self.parts and name not in keep:
                    del self.parts[name]
                    if name == TEXT_ENCODER:
                        self.text_cache.clear()  # its tensors would keep GPU memory held
            self._pipelines.clear()
            self.free_memory()

    def loaded(self, model: ModelId) -> bool:
        return all(n in self.parts for n in MODEL_PARTS[model])

    def status(self) -> list[dict[str, Any]]:
        rows = []
        for model, names in MODEL_PARTS.items():
            loaded = self.loaded(model)
            devices = sorted({self.parts[n].device for n in names if n in self.parts})
            rows.append(
                {
                    "model": model.value,
                    "loaded": loaded,
                    "device": ",".join(devices) if devices else None,
                    "memory_bytes": sum(self.parts[n].nbytes for n in names if n in self.parts),
                }
            )
        return rows

    def free_memory(self) -> None:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def k22(self) -> Any:
        self.load(ModelId.K22)
        return self.parts[K22].obj

    def k3_pipelines(self, model: ModelId) -> Any:
        """The pipelines a Kandinsky 3 family request needs, on the shared components."""
        from generation.k3 import K3Pipelines
        from generation.k31 import Kandinsky3FlashPipeline, Kandinsky31Pipeline

        self.load(model)
        common = dict(
            tokenizer=self.extras["tokenizer"],
            text_encoder=self.parts[TEXT_ENCODER].obj,
            movq=self.parts[MOVQ].obj,
            scheduler=self.extras["scheduler"],
        )
        pipes = K3Pipelines()
        if model in (ModelId.K31, ModelId.K31_REFINER):
            pipes.base = self._pipeline(Kandinsky31Pipeline, unet=self.parts[K3_UNET].obj, **common)
        if model in (ModelId.K31_FLASH, ModelId.K31_REFINER):
            pipes.flash = self._pipeline(Kandinsky3FlashPipeline, unet=self.parts[FLASH_UNET].obj, **common)
        pipes.prepare = self._prepare
        pipes.text_cache = self.text_cache
        return pipes

    def _use(self, names: tuple[str, ...]) -> None:
        for name in names:
            self._load_part(name)
        self._place(names)

    def inpaint_pipeline(self) -> Any:
        """Kandinsky 3.1 inpainting on the shared text encoder and MoVQ."""
        from diffusers import DDPMScheduler

        from generation.k3_inpaint import Kandinsky3InpaintPipeline

        self.load(ModelId.K31_INPAINT)
        pipe = self._pipeline(
            Kandinsky3InpaintPipeline,
            unet=self.parts[INPAINT_UNET].obj,
            tokenizer=self.extras["tokenizer"],
            text_encoder=self.parts[TEXT_ENCODER].obj,
            movq=self.parts[MOVQ].obj,
            # the cosine schedule every Kandinsky 3 UNet was trained with (the sampler reads its alphas)
            scheduler=DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2"),
        )
        self._prepare(pipe)
        return pipe

    def superres_pipeline(self, flash: bool) -> Any:
        """KandiSuperRes: the Flash x2 network with the authors' refinement (the Kandinsky 3.1 Flash UNet,
        the MoVQ and their fixed context), or the x4 one; only the parts asked for are loaded."""
        from generation import superres
        from generation.k31 import Kandinsky3AuthorsScheduler

        names = (SR_FLASH, FLASH_UNET, MOVQ) if flash else (SR_X4,)
        self._use(names)
        self.active.add(ModelId.SUPERRES)
        refiner: dict[str, Any] = {}
        if flash:
            if "superres_context" not in self.extras:
                source = self.config.source("superres")
                self.extras["superres_context"] = self._guard(
                    "KandiSuperRes refiner context", f"{source}/{superres.CONTEXT_FILES[0]}",
                    lambda: superres.load_context(superres.ensure_context(source, self.config.cache_dir)),
                )
            refiner = dict(
                refiner=self.parts[FLASH_UNET].obj, movq=self.parts[MOVQ].obj,
                refiner_scheduler=Kandinsky3AuthorsScheduler(), context=self.extras["superres_context"],
            )
        scheduler = superres.KandiSuperResPipeline.flash_scheduler() if flash else superres.KandiSuperResPipeline.x4_scheduler()
        pipe = superres.KandiSuperResPipeline(unet=self.parts[SR_FLASH if flash else SR_X4].obj, scheduler=scheduler, **refiner)
        pipe.set_progress_bar_config(disable=True)
        self._prepare(pipe)
        return pipe

    def k3_image_pipelines(self, model: ModelId) -> Any:
        """The IP-Adapter or HED ControlNet pipeline, on the shared Flan-UL2 encoder and MoVQ."""
        from generation.k3_image_pipelines import (
            K3ImagePipelines,
            Kandinsky3ControlNetImg2ImgPipeline,
            Kandinsky3IPAdapterPipeline,
        )

        self.load(model)
        common = dict(tokenizer=self.extras["tokenizer"], text_encoder=self.parts[TEXT_ENCODER].obj,
                      movq=self.parts[MOVQ].obj)
        pipes = K3ImagePipelines(prepare=self._prepare)
        if model == ModelId.K31_IP_ADAPTER:
            pipes.ip_adapter = self._pipeline(
                Kandinsky3IPAdapterPipeline, unet=self.parts[IP_UNET].obj, scheduler=self.extras["ip_scheduler"],
                image_encoder=self.parts[IMAGE_ENCODER].obj, image_processor=self.extras["clip_processor"], **common,
            )
        elif model == ModelId.K31_CONTROLNET_HED:
            pipes.controlnet = self._pipeline(
                Kandinsky3ControlNetImg2ImgPipeline, unet=self.parts[HED_UNET].obj,
                controlnet=self.parts[HED_CONTROLNET].obj, scheduler=self.extras["hed_scheduler"], **common,
            )
            pipes.edges = self.parts[EDGE_DETECTOR].obj
        else:
            raise GenerationError("unsupported_mode", f"{model} has no image-prompt pipeline")
        return pipes

    def edge_detector_kind(self) -> str | None:
        """"hed" or "canny" once the HED ControlNet's edge detector is loaded, else None."""
        part = self.parts.get(EDGE_DETECTOR)
        return part.obj.kind if part is not None else None

    def _pipeline(self, cls: type, unet: Any, **components: Any) -> Any:
        key = (cls.__name__, id(unet))
        if key not in self._pipelines:
            pipe = cls(unet=unet, **components)
            pipe.set_progress_bar_config(disable=True)
            self._pipelines[key] = pipe
        return self._pipelines[key]

    def _prepare(self, pipe: Any) -> None:
        """Install this pipeline's CPU offload hooks before it runs (pipelines share their modules)."""
        if self.offload == "model":
            pipe.enable_model_cpu_offload(device=self.device)
        elif self.offload == "sequential" and id(pipe) not in self._sequential_offloaded:
            pipe.enable_sequential_cpu_offload(device=self.device)
            self._sequential_offloaded.add(id(pipe))
