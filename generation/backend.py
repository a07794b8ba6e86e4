"""The boundary between the job queue and the image models.

A worker turns a job row into a :class:`GenerationRequest` and calls :meth:`Backend.generate` in a
worker thread. Nothing here imports torch: handlers and the bot process import this module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from PIL import Image


class Mode(StrEnum):
    TEXT2IMG = "text2img"
    IMG2IMG = "img2img"  # restyle a photo by text
    RESTYLE_DEPTH = "restyle_depth"  # restyle keeping the shapes (K2.2: depth ControlNet; K3.1: HED ControlNet)
    STYLE = "style"  # content photo + style photo (K2.2 prior mix + img2img)
    FUSE = "fuse"  # 2-4 photos (K2.2 prior interpolate)
    MIX = "mix"  # a photo and a text (K2.2 prior interpolate over [image, text])
    VARIATIONS = "variations"  # N images from one photo's image embedding
    FACESWAP = "faceswap"  # the user's face in a generated scene
    # Editing a picture (generation.edit_ops): the input is images[0], the options in ``extra``.
    ZOOM_OUT = "zoom_out"  # extra["factor"]: the picture shrinks into the middle, the border is painted
    EXPAND = "expand"  # outpaint to another ratio: width x height is the new canvas
    ZOOM_IN = "zoom_in"  # the middle redrawn at full size (upscale, then image-to-image)
    INPAINT = "inpaint"  # extra["mask"]: a base64 PNG, white = repaint
    UPSCALE = "upscale"  # extra["scale"]: 2 (KandiSuperRes Flash) or 4; width x height is the output
    ANIMATE = "animate"  # Deforum-style scenes with camera moves (first frame by the user's model)
    VIDEO = "video"  # text-to-video (Kandinsky 5.0 Video Lite)


class ModelId(StrEnum):
    K22 = "kandinsky-2.2"
    K31 = "kandinsky-3.1"
    K31_FLASH = "kandinsky-3.1-flash"
    K31_REFINER = "kandinsky-3.1-refiner"  # Kandinsky 3.1, finished by one Flash step at t=229
    K31_INPAINT = "kandinsky-3.1-inpainting"  # zoom out, expand, inpaint (not a model users pick)
    SUPERRES = "kandisuperres"  # upscale x2 (Flash) and x4
    K5_VIDEO_5S = "kandinsky-5.0-video-lite-5s"  # text-to-video, one checkpoint per clip length
    K5_VIDEO_10S = "kandinsky-5.0-video-lite-10s"
    # Kandinsky 3.1's image-prompt models (the "Kandinsky 3.1" editing model): fuse, mix, variations
    # and style on the IP-Adapter; "keep the shapes" on the HED ControlNet.
    K31_IP_ADAPTER = "kandinsky-3.1-ip-adapter"
    K31_CONTROLNET_HED = "kandinsky-3.1-controlnet-hed"


StageFn = Callable[[str], None]


@dataclass
class GenerationRequest:
    mode: Mode
    model: ModelId
    prompt: str  # the final prompt: style template and beautification already applied
    negative_prompt: str | None
    width: int  # multiple of 64, within MAX_IMAGE_SIDE
    height: int
    num_images: int  # 1..4, one batched pipeline call
    seed: int  # image i uses seed + i, so any image can be reproduced on its own
    steps: int | None = None  # None: the model's own default
    guidance_scale: float | None = None  # None: the model's own default
    # Inputs of the editing modes: RGB images, already oriented and scaled to fit MAX_IMAGE_SIDE.
    images: list[Image.Image] = field(default_factory=list)
    # Fusion / mix / style weights, one per entry of ``images`` (MIX: [image weight, text weight]).
    weights: list[float] = field(default_factory=list)
    strength: float = 0.6  # image-to-image strength: 0 keeps the photo, 1 ignores it
    # The style's text at the end of ``prompt``: the models shorten the prompt before it, never it,
    # when the whole is longer than their text context (generation.prompts.fit_to_context).
    style_suffix: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # Called (from the worker thread) when a multi-stage job enters a stage ("describing",
    # "swapping", ...); the runner forwards it to the chat. Pipelines without stages ignore it.
    on_stage: StageFn | None = None


ProgressFn = Callable[[int, int], None]
"""Called after every denoising step with (step, total_steps). It may raise GenerationCancelled."""


class GenerationCancelled(Exception):
    """Raised from a progress callback to stop a running job at the next step."""


class GenerationError(Exception):
    """A failure the user is told about. ``code`` names the message (an i18n key suffix)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


class OutOfMemory(GenerationError):
    def __init__(self, detail: str = "") -> None:
        super().__init__("oom", detail)


class ModelUnavailable(GenerationError):
    """A missing or corrupt checkpoint; the detail names the model and the path."""

    def __init__(self, detail: str) -> None:
        super().__init__("model_unavailable", detail)


# The models whose text-to-image runs a batch of requests as one pipeline call.
BATCHED_MODELS = frozenset({ModelId.K22, ModelId.K31, ModelId.K31_FLASH, ModelId.K31_REFINER})


def batch_key(request: GenerationRequest) -> tuple[Any, ...] | None:
    """Requests with equal keys may run as one batched pipeline call (jobs of different users that
    share the model, size, step count and guidance); None: this request always runs alone.

    Steps and guidance count as the model would run them (none named = the model's default; Flash runs
    its fixed four steps without guidance whatever the request says). Negative prompts: Kandinsky 3.1
    conditions each row on its own prompt and negative prompt (generation.k31), so requests with and
    without one share a batch and give the same images as alone; Kandinsky 2.2's prior takes a whole
    batch's negative prompts at once (generation.k22), so there the two never mix."""
    if request.mode is not Mode.TEXT2IMG or request.model not in BATCHED_MODELS:
        return None
    from generation.registry import spec  # it imports this module

    model = spec(request.model)
    if model.default_guidance is None:  # distilled: a fixed schedule, no guidance
        steps, guidance = None, None
    else:
        steps = request.steps or model.default_steps
        guidance = model.default_guidance if request.guidance_scale is None else request.guidance_scale
    negative = bool((request.negative_prompt or "").strip()) if request.model is ModelId.K22 else None
    extra = tuple(sorted((name, repr(value)) for name, value in request.extra.items()))  # prior settings
    return (request.model, request.width, request.height, steps, guidance, negative, extra)


def per_request(images: Sequence[Any], requests: list[GenerationRequest]) -> list[list[Any]]:
    """A batched call's images (request after request) split back into each request's own."""
    out, start = [], 0
    for request in requests:
        out.append(list(images[start : start + request.num_images]))
        start += request.num_images
    return out


def generate_each(backend: Backend, requests: list[GenerationRequest], progress: ProgressFn) -> list[list[Image.Image]]:
    """:meth:`Backend.generate_batch` for a backend that cannot batch: one request after another."""
    return [backend.generate(request, progress) for request in requests]


class Backend(Protocol):
    def generate(self, request: GenerationRequest, progress: ProgressFn) -> list[Image.Image]:
        """Run one request; return ``request.num_images`` images of exactly width x height."""
        ...

    def generate_batch(self, requests: list[GenerationRequest], progress: ProgressFn) -> list[list[Image.Image]]:
        """Requests that share one :func:`batch_key`, as one pipeline call where the model allows.
        Result ``i`` holds request ``i``'s images, each equal to what ``generate(requests[i])`` gives
        (image ``j`` of a request still uses its own ``seed + j``). ``progress`` gets the batch's steps."""
        ...

    def render_video(self, request: GenerationRequest, progress: ProgressFn, path: Path) -> Any:
        """An ANIMATE or VIDEO request as an H.264 MP4 at ``path``: a
        :class:`generation.video_io.VideoFile`. ``progress`` gets (frame, frames) for animations,
        (step, steps) for videos; step 0 means the first frame or the model is being prepared."""
        ...

    def model_status(self) -> list[dict[str, Any]]:
        """One dict per model: {"model", "loaded", "device", "memory_bytes"} (for admins)."""
        ...

    def load(self, model: ModelId) -> None: ...

    def unload(self, model: ModelId) -> None: ...
