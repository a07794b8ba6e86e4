"""The models behind /animate's frames: the depth estimator and Kandinsky 3.1 / Flash image-to-image
on prompt embeddings (so two scenes' prompts can be blended during a transition)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from generation.backend import ModelId
from generation.k3 import K3_DEFAULT_GUIDANCE, K3_DEFAULT_STEPS, K3Pipelines, flash_img2img_timesteps
from generation.k31 import TextConditions, encode_text_cached


class DepthEstimator:
    """A transformers depth model (DPT/MiDaS: relative inverse depth) as a :data:`DepthModel`."""

    def __init__(self, model: Any, processor: Any) -> None:
        self.model = model
        self.processor = processor

    @classmethod
    def load(cls, source: str, dtype: torch.dtype) -> DepthEstimator:
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        processor = AutoImageProcessor.from_pretrained(source)
        model = AutoModelForDepthEstimation.from_pretrained(source, dtype=dtype).eval()
        return cls(model, processor)

    def to(self, device: str) -> DepthEstimator:
        self.model.to(device)
        return self

    def parameters(self):  # for the model manager's memory accounting
        return self.model.parameters()

    def buffers(self):
        return self.model.buffers()

    @torch.no_grad()
    def __call__(self, image: Image.Image) -> torch.Tensor:
        first = next(self.model.parameters())
        pixels = self.processor(images=image.convert("RGB"), return_tensors="pt")["pixel_values"]
        predicted = self.model(pixel_values=pixels.to(device=first.device, dtype=first.dtype)).predicted_depth
        size = (image.height, image.width)
        return F.interpolate(predicted[:, None].float(), size=size, mode="bicubic", align_corners=False)[0, 0].cpu()


def _pad(t: torch.Tensor, length: int) -> torch.Tensor:
    """Rows of zeros (masked out) up to ``length`` tokens."""
    extra = length - t.shape[1]
    if extra <= 0:
        return t
    return torch.cat([t, t.new_zeros((t.shape[0], extra, *t.shape[2:]))], dim=1)


def blend_text(a: TextConditions, b: TextConditions, weight: float) -> TextConditions:
    """``a`` moved ``weight`` of the way toward ``b``: the Flan-UL2 states (padded rows are zero, so
    two prompts of different lengths line up token by token) and the union of their masks."""
    length = max(a.context.shape[1], b.context.shape[1], a.uncond_context.shape[1], b.uncond_context.shape[1])
    return TextConditions(
        torch.lerp(_pad(a.context, length), _pad(b.context, length), weight),
        torch.maximum(_pad(a.mask, length), _pad(b.mask, length)),
        torch.lerp(_pad(a.uncond_context, length), _pad(b.uncond_context, length), weight),
        torch.maximum(_pad(a.uncond_mask, length), _pad(b.uncond_mask, length)),
    )


class K3FrameModel:
    """Kandinsky 3.1 or Flash image-to-image for animation frames, on the authors' sampling
    (:mod:`generation.k31`); prompts are encoded once per scene and blended as text conditions."""

    def __init__(
        self,
        pipes: K3Pipelines,
        model: ModelId,
        negative_prompt: str | None = None,
        steps: int | None = None,
        guidance_scale: float | None = None,
    ) -> None:
        self.model = model
        self.flash = model == ModelId.K31_FLASH
        self.pipe = pipes.ready(pipes.flash if self.flash else pipes.base)
        self.text_cache = pipes.text_cache  # a scene's prompt: encoded once, and not again by the next animation
        self.negative_prompt = None if self.flash else negative_prompt  # Flash has no guidance
        self.steps = steps or K3_DEFAULT_STEPS
        self.guidance_scale = K3_DEFAULT_GUIDANCE if guidance_scale is None else guidance_scale

    @torch.no_grad()
    def encode(self, prompt: str) -> TextConditions:
        return encode_text_cached(self.text_cache, self.pipe, prompt, self.negative_prompt, self.pipe._execution_device)

    def blend(self, a: TextConditions, b: TextConditions, weight: float) -> TextConditions:
        return blend_text(a, b, weight)

    @torch.no_grad()
    def img2img(self, image: Image.Image, embedding: TextConditions, strength: float, seed: int) -> Image.Image:
        generator = torch.Generator("cpu").manual_seed(seed)
        size = dict(height=image.height, width=image.width)
        if self.flash:
            return self.pipe(
                text=embedding, timesteps=flash_img2img_timesteps(strength), generator=generator, image=image, **size
            ).images[0]
        return self.pipe(
            text=embedding,
            num_inference_steps=self.steps,
            guidance_scale=self.guidance_scale,
            generator=generator,
            image=image,
            strength=strength,
            **size,
        ).images[0]
