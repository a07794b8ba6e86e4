"""/video: Kandinsky 5.0 Video Lite text-to-video through diffusers' ``Kandinsky5T2VPipeline``.

The hub has one checkpoint per length (``kandinskylab/Kandinsky-5.0-T2V-Lite-<variant>-{5s,10s}-Diffusers``);
the distilled 16-step variant is the default (no classifier-free guidance, so one transformer pass a
step). The model makes 24 frames a second; a clip of S seconds has 24 S + 1 frames (the video VAE
compresses time 4x, so the count is 4k + 1).

The pipeline's ``tokenizer`` component is a ``Qwen2VLProcessor``, whose video half needs torchvision.
Prompts are text only, so the tokenizer folder is loaded as the plain Qwen2 tokenizer it holds and
wrapped in :class:`QwenTextProcessor`, which takes the processor's call signature (``text``,
``images=None``, ``videos=None``); everything else is loaded by ``from_pretrained`` as on the hub.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from generation.backend import GenerationError, ModelId, ProgressFn

from generation.video_specs import (  # noqa: F401 - re-exported for the backend and tests
    DEFAULT_VARIANT,
    VARIANT_DEFAULTS,
    VIDEO_FPS,
    VIDEO_SECONDS,
    num_frames,
    video_size,
)

MAX_SEQUENCE_LENGTH = 256  # prompt tokens kept (users write up to 1000 characters)


def _processor_base() -> type:
    from transformers import ProcessorMixin

    return ProcessorMixin


class QwenTextProcessor(_processor_base()):  # type: ignore[misc]
    """The text half of ``Qwen2VLProcessor``: what ``Kandinsky5T2VPipeline`` calls on its tokenizer.

    A ``ProcessorMixin`` (diffusers checks a passed component's class against the model index), but
    with the tokenizer only: ``ProcessorMixin.__init__``, which wants every sub-processor, is not run.
    """

    attributes = ["tokenizer"]

    def __init__(self, tokenizer: Any) -> None:  # noqa: D107 - see the class docstring
        self.tokenizer = tokenizer
        self.chat_template = None

    @classmethod
    def from_pretrained(cls, source: str, subfolder: str = "tokenizer") -> QwenTextProcessor:
        from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(source, subfolder=subfolder))

    def __call__(self, text: Any = None, images: Any = None, videos: Any = None, **kwargs: Any) -> Any:
        if images is not None or videos is not None:
            raise ValueError("text-to-video prompts are text only")
        return self.tokenizer(text, **kwargs)

    def decode(self, *args: Any, **kwargs: Any) -> str:
        return self.tokenizer.decode(*args, **kwargs)


@dataclass
class VideoRequest:
    prompt: str
    negative_prompt: str | None
    seconds: int
    fps: int
    width: int
    height: int
    seed: int
    steps: int
    guidance_scale: float


def load_pipeline(source: str, dtype: torch.dtype) -> Any:
    from diffusers import Kandinsky5T2VPipeline

    tokenizer = QwenTextProcessor.from_pretrained(source, subfolder="tokenizer")
    pipe = Kandinsky5T2VPipeline.from_pretrained(source, tokenizer=tokenizer, dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


class K5VideoModel:
    """A loaded pipeline as one model-manager part: moved as a whole, counted as a whole."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe

    @classmethod
    def load(cls, source: str, dtype: torch.dtype) -> K5VideoModel:
        return cls(load_pipeline(source, dtype))

    def _modules(self) -> list[torch.nn.Module]:
        return [m for m in self.pipe.components.values() if isinstance(m, torch.nn.Module)]

    def to(self, device: str) -> None:
        for module in self._modules():
            module.to(device)

    def memory_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for m in self._modules() for t in [*m.parameters(), *m.buffers()])


@torch.no_grad()
def generate(pipe: Any, request: VideoRequest, progress: ProgressFn) -> np.ndarray:
    """The clip's frames as uint8 RGB, shape (frames, height, width, 3)."""
    if request.width % 16 or request.height % 16:
        raise GenerationError("bad_size", f"{request.width}x{request.height}: sides must be multiples of 16")
    total = request.steps

    def on_step(pipeline: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        progress(step + 1, total)  # may raise GenerationCancelled: the loop stops here
        return kwargs

    out = pipe(
        prompt=request.prompt,
        negative_prompt=request.negative_prompt or None,
        height=request.height,
        width=request.width,
        num_frames=num_frames(request.seconds, request.fps),
        num_inference_steps=request.steps,
        guidance_scale=request.guidance_scale,
        generator=torch.Generator("cpu").manual_seed(request.seed),
        output_type="np",
        callback_on_step_end=on_step,
        max_sequence_length=MAX_SEQUENCE_LENGTH,
    )
    frames = np.asarray(out.frames[0], dtype=np.float32)
    return (np.clip(frames, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


ProgressCallback = Callable[[int, int], None]
