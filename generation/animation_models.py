"""The models behind /animate's frames: the depth estimator and Kandinsky 3.1 / Flash image-to-image
on prompt embeddings (so two scenes' prompts can be blended during a transition)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from generation.backend import ModelId
from generation.k3 import (
    K3_DEFAULT_GUIDANCE,
    K3_DEFAULT_STEPS,
    K3Pipelines,
    _encode_image,
    flash_img2img_timesteps,
)


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


@dataclass
class PromptEmbedding:
    embeds: torch.Tensor  # (1, 128, d): Kandinsky 3's full text length, padded rows zero
    mask: torch.Tensor  # (1, 128)


class K3FrameModel:
    """Kandinsky 3.1 (``Kandinsky3Img2ImgPipeline``) or Flash image-to-image for animation frames."""

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
        self.pipe = pipes.ready(pipes.flash if self.flash else pipes.img2img)
        self.negative_prompt = negative_prompt
        self.steps = steps or K3_DEFAULT_STEPS
        self.guidance_scale = K3_DEFAULT_GUIDANCE if guidance_scale is None else guidance_scale

    @torch.no_grad()
    def encode(self, prompt: str) -> PromptEmbedding:
        # The full 128 tokens (no cut to the prompt's length), so that any two prompts blend.
        embeds, _, mask, _ = self.pipe.encode_prompt(
            prompt, do_classifier_free_guidance=False, device=self.pipe._execution_device, _cut_context=False
        )
        return PromptEmbedding(embeds, mask)

    def blend(self, a: PromptEmbedding, b: PromptEmbedding, weight: float) -> PromptEmbedding:
        return PromptEmbedding(torch.lerp(a.embeds, b.embeds, weight), torch.maximum(a.mask, b.mask))

    @torch.no_grad()
    def img2img(self, image: Image.Image, embedding: PromptEmbedding, strength: float, seed: int) -> Image.Image:
        generator = torch.Generator("cpu").manual_seed(seed)
        if self.flash:
            return self.pipe(
                prompt_embeds=embedding.embeds,
                attention_mask=embedding.mask,
                timesteps=flash_img2img_timesteps(strength),
                generator=generator,
                image_latents=_encode_image(self.pipe, image, 1),
                height=image.height,
                width=image.width,
            ).images[0]
        return self.pipe(
            prompt_embeds=embedding.embeds,
            attention_mask=embedding.mask,
            negative_prompt=self.negative_prompt or None,
            image=image,
            strength=min(1.0, max(strength, 1.0 / self.steps + 1e-6)),
            num_inference_steps=self.steps,
            guidance_scale=self.guidance_scale,
            generator=generator,
        ).images[0]
