"""The model registry: one table says what each model is and does (plain data, no torch).

Handlers ask it which model serves a job kind (:func:`model_for`) and whether a negative prompt is
used; ``/settings``, ``/models`` and ``/help`` list :data:`MODELS`; the fake backend and the real
backends read the default steps and guidance; the model manager reads the parts each model loads.
Like diffusers' ``auto_pipeline`` mappings, a new model or a new mode is one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from generation.backend import Mode, ModelId


class Family(StrEnum):
    K22 = "kandinsky-2.2"  # unCLIP: image prior (CLIP embeddings) + MoVQ decoder
    K3 = "kandinsky-3"  # Flan-UL2 text encoder + UNet + MoVQ; 3.1, Flash and the refiner share parts
    SUPERRES = "kandisuperres"  # pixel-space super-resolution UNets (generation.superres)
    K5_VIDEO = "kandinsky-5-video"  # Qwen2.5-VL + CLIP text encoders, CrossDiT, HunyuanVideo VAE
    # Kandinsky 3.1's image prompts (generation.k3_image): the IP-Adapter and the HED ControlNet, on
    # the same text encoder and MoVQ
    K3_IMAGE = "kandinsky-3-image-prompts"


class MemoryClass(StrEnum):
    """How much GPU memory a model needs in fp16 (the manager moves parts to fit VRAM_BUDGET_GB)."""

    MEDIUM = "medium"  # fits a 16 GB GPU
    LARGE = "large"  # about 28 GB: the Flan-UL2 encoder alone is about 21.7 GB; 24 GB GPUs need OFFLOAD


# Parts the model manager loads (shared parts load once for every model that names them).
TEXT_ENCODER = "k3-text-encoder"
MOVQ = "k3-movq"
K3_UNET = "k3-unet"
FLASH_UNET = "k31-flash-unet"
K22_PARTS = "k22"
INPAINT_UNET = "k31-inpaint-unet"
SR_FLASH = "superres-flash-x2"
SR_X4 = "superres-x4"
DEPTH = "depth-estimator"  # /animate's monocular depth (the model of the K2.2 depth ControlNet's hints)
K5_VIDEO_5S_PART = "k5-video-5s"  # one whole Kandinsky5T2VPipeline per clip length
K5_VIDEO_10S_PART = "k5-video-10s"
IP_UNET = "k31-ip-adapter-unet"
IMAGE_ENCODER = "k31-image-encoder"
HED_UNET = "k31-hed-unet"
HED_CONTROLNET = "k31-hed-controlnet"
EDGE_DETECTOR = "hed-detector"

# Modes a wrapper backend serves on top of a model's own mode (face swap draws the scene as text2img).
# /animate draws its first frame as text2img (the frames after it are image-to-image on Flash).
WRAPPED_MODES: dict[Mode, Mode] = {Mode.FACESWAP: Mode.TEXT2IMG, Mode.ANIMATE: Mode.TEXT2IMG}

# Zoom out, expand and inpaint paint with an inpainting model: Kandinsky 2.2's own decoder, or the
# Kandinsky 3.1 inpainting UNet for everyone else; zoom in redraws with the picture's own model.
OUTPAINT_MODES = frozenset({Mode.ZOOM_OUT, Mode.EXPAND, Mode.INPAINT})
# Served by generation.edit_ops on a model's pipelines (not by the model's own generate()).
CANVAS_MODES = OUTPAINT_MODES | {Mode.ZOOM_IN, Mode.UPSCALE}
# ANIMATE: the model draws the first frame (the frames after it are Flash's, GenerationConfig).
K22_MODES = frozenset(
    {
        Mode.TEXT2IMG, Mode.IMG2IMG, Mode.RESTYLE_DEPTH, Mode.STYLE, Mode.FUSE, Mode.MIX, Mode.VARIATIONS,
        Mode.FACESWAP, Mode.ANIMATE,
    }
) | OUTPAINT_MODES | {Mode.ZOOM_IN}
K3_MODES = frozenset({Mode.TEXT2IMG, Mode.IMG2IMG, Mode.FACESWAP, Mode.ANIMATE, Mode.ZOOM_IN})
VIDEO_MODES = frozenset({Mode.VIDEO})


@dataclass(frozen=True)
class ModelSpec:
    id: ModelId
    family: Family
    modes: frozenset[Mode]  # the job kinds this model serves (wrapped modes included)
    default_steps: int  # denoising steps of a request that names none
    default_guidance: float | None  # None: no classifier-free guidance (distilled)
    negative_prompt: bool  # False: the negative prompt is ignored (the user is told)
    parts: tuple[str, ...]  # what the model manager loads for it
    memory_class: MemoryClass
    steps_configurable: bool = True  # False: a fixed distilled schedule (Flash's 4 steps)
    extra_steps: int = 0  # steps after the main ones (the refiner's Flash step)
    selectable: bool = True  # False: not a "Model" choice of /settings (the editing models' parts)

    @property
    def total_steps(self) -> int:
        """Progress events of a text-to-image request at the defaults."""
        return self.default_steps + self.extra_steps

    def supports(self, mode: Mode) -> bool:
        return mode in self.modes


# In the order /settings, /models and /help list them.
MODELS: dict[ModelId, ModelSpec] = {
    spec.id: spec
    for spec in (
        ModelSpec(
            ModelId.K22, Family.K22, K22_MODES, default_steps=50, default_guidance=4.0,  # decoder; the prior runs 25
            negative_prompt=True, parts=(K22_PARTS,), memory_class=MemoryClass.MEDIUM,
        ),
        ModelSpec(
            # The authors' defaults (ai-forever/Kandinsky-3, Kandinsky3T2IPipeline.__call__).
            ModelId.K31, Family.K3, K3_MODES, default_steps=50, default_guidance=3.0,
            negative_prompt=True, parts=(TEXT_ENCODER, MOVQ, K3_UNET), memory_class=MemoryClass.LARGE,
        ),
        ModelSpec(
            # Distilled without classifier-free guidance: 4 fixed steps, no negative prompt.
            ModelId.K31_FLASH, Family.K3, K3_MODES, default_steps=4, default_guidance=None,
            negative_prompt=False, parts=(TEXT_ENCODER, MOVQ, FLASH_UNET), memory_class=MemoryClass.LARGE,
            steps_configurable=False,
        ),
        ModelSpec(
            # Kandinsky 3.1's steps, then one Flash step at t=229 on its latent (as KandiSuperRes refines).
            ModelId.K31_REFINER, Family.K3, K3_MODES, default_steps=50, default_guidance=3.0,
            negative_prompt=True, parts=(TEXT_ENCODER, MOVQ, K3_UNET, FLASH_UNET), memory_class=MemoryClass.LARGE,
            extra_steps=1,
        ),
        ModelSpec(
            # ai-forever's 9-channel inpainting UNet on the shared encoder and MoVQ; the authors' 50 steps.
            ModelId.K31_INPAINT, Family.K3, OUTPAINT_MODES, default_steps=50, default_guidance=4.0,
            negative_prompt=True, parts=(TEXT_ENCODER, MOVQ, INPAINT_UNET), memory_class=MemoryClass.LARGE,
            selectable=False,
        ),
        ModelSpec(
            # Flash x2 (4 steps, then the authors' refinement: one step of the Kandinsky 3.1 Flash UNet on
            # the MoVQ latent) and x4 (5 DPM-Solver++ steps); each loads only when asked for.
            ModelId.SUPERRES, Family.SUPERRES, frozenset({Mode.UPSCALE}), default_steps=4, default_guidance=None,
            negative_prompt=False, parts=(SR_FLASH, SR_X4, FLASH_UNET, MOVQ), memory_class=MemoryClass.MEDIUM,
            steps_configurable=False, selectable=False, extra_steps=1,
        ),
        # Text-to-video, one checkpoint per clip length; the distilled variant (the default) runs 16
        # steps without guidance, so the negative prompt is not used (VIDEO_VARIANT=sft: 50 steps, 5.0).
        ModelSpec(
            ModelId.K5_VIDEO_5S, Family.K5_VIDEO, VIDEO_MODES, default_steps=16, default_guidance=None,
            negative_prompt=False, parts=(K5_VIDEO_5S_PART,), memory_class=MemoryClass.LARGE, selectable=False,
        ),
        ModelSpec(
            ModelId.K5_VIDEO_10S, Family.K5_VIDEO, VIDEO_MODES, default_steps=16, default_guidance=None,
            negative_prompt=False, parts=(K5_VIDEO_10S_PART,), memory_class=MemoryClass.LARGE, selectable=False,
        ),
        ModelSpec(
            # The "Kandinsky 3.1" editing model's image prompts (see EDITING_MODELS).
            ModelId.K31_IP_ADAPTER, Family.K3_IMAGE, frozenset({Mode.FUSE, Mode.MIX, Mode.VARIATIONS, Mode.STYLE}),
            default_steps=25, default_guidance=3.0, negative_prompt=True,
            parts=(TEXT_ENCODER, MOVQ, IP_UNET, IMAGE_ENCODER), memory_class=MemoryClass.LARGE, selectable=False,
        ),
        ModelSpec(
            ModelId.K31_CONTROLNET_HED, Family.K3_IMAGE, frozenset({Mode.RESTYLE_DEPTH}),
            default_steps=25, default_guidance=3.0, negative_prompt=True,
            parts=(TEXT_ENCODER, MOVQ, HED_UNET, HED_CONTROLNET, EDGE_DETECTOR), memory_class=MemoryClass.LARGE,
            selectable=False,
        ),
    )
}
# The models a user picks in /settings: those that draw pictures.
IMAGE_MODELS: tuple[ModelId, ...] = tuple(
    m for m, s in MODELS.items() if s.selectable and s.supports(Mode.TEXT2IMG)
)
DEFAULT_MODEL = ModelId.K31

# The model a job kind falls back to when the user's model does not serve it, best first.
FALLBACKS: dict[Mode, tuple[ModelId, ...]] = {
    Mode.IMG2IMG: (ModelId.K31, ModelId.K22),
    **{mode: (ModelId.K31_INPAINT,) for mode in OUTPAINT_MODES},
    Mode.ZOOM_IN: (ModelId.K31,),
    Mode.UPSCALE: (ModelId.SUPERRES,),
}


def spec(model: ModelId | str) -> ModelSpec:
    return MODELS[ModelId(model)]


def family_models(family: Family) -> tuple[ModelId, ...]:
    return tuple(m for m, s in MODELS.items() if s.family is family)


def uses_negative_prompt(model: ModelId | str) -> bool:
    return spec(model).negative_prompt


def model_for(mode: Mode, preferred: ModelId | str | None = None) -> tuple[ModelId, bool]:
    """The model that runs ``mode``: ``preferred`` (the user's setting) when it serves it, else the
    first fallback that does. The bool says the model differs from ``preferred`` (tell the user)."""
    if preferred is not None and spec(preferred).supports(mode):
        return ModelId(preferred), False
    candidates = FALLBACKS.get(mode, ()) + tuple(MODELS)
    model = next(m for m in candidates if MODELS[m].supports(mode))
    return model, preferred is not None


def models_for(mode: Mode) -> tuple[ModelId, ...]:
    return tuple(m for m, s in MODELS.items() if s.supports(mode))


# The "Editing model" setting: Kandinsky 2.2 (its image prior and depth ControlNet) or Kandinsky 3.1
# (the IP-Adapter and the HED ControlNet) runs fuse, mix, variations, style and "keep the shapes".
EDITING_MODELS: tuple[ModelId, ...] = (ModelId.K22, ModelId.K31)
DEFAULT_EDITING_MODEL = ModelId.K22
K31_EDITING: dict[Mode, ModelId] = {
    mode: model for model in (ModelId.K31_IP_ADAPTER, ModelId.K31_CONTROLNET_HED) for mode in MODELS[model].modes
}


def editing_model_for(mode: Mode, editing_model: ModelId | str | None) -> ModelId:
    """The model that runs an image-editing mode for a user whose editing model is ``editing_model``."""
    if editing_model == ModelId.K31 and mode in K31_EDITING:
        return K31_EDITING[mode]
    return ModelId.K22
