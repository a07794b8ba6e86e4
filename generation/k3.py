"""The Kandinsky 3 family on a request: Kandinsky 3.1, Kandinsky 3.1 Flash and "Kandinsky 3.1 + Flash refiner".

All three share one Flan-UL2 text encoder (8.6B parameters), its tokenizer and the MoVQ, and run the
authors' sampling (:mod:`generation.k31`); they differ in the UNet:

- Kandinsky 3.1: the base UNet, 50 guided steps by default (the authors' default), image-to-image
  from the step below ``strength``;
- Flash: the distilled UNet, 4 steps, no guidance; image-to-image runs the Flash steps below
  ``strength`` from the photo's latent (0.6: 479, 229), so a restyle costs two UNet calls;
- the refiner: Kandinsky 3.1, then one Flash step at t = 229 on its latent (the authors' use of Flash
  as a refiner in KandiSuperRes), on the same prompt encoding: the text encoder runs once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from generation.backend import GenerationError, GenerationRequest, Mode, ModelId, ProgressFn
from generation.k31 import (
    FLASH_TIMESTEPS,
    REFINER_TIMESTEPS,
    TOKENS,
    Kandinsky3FlashPipeline,
    Kandinsky31Pipeline,
    authors_timesteps,
    encode_text,
    img2img_timesteps,
)
from generation.prompts import fit_to_context
from generation.registry import spec

K3_DEFAULT_STEPS = spec(ModelId.K31).default_steps  # the registry's defaults (the authors' 50, 3.0)
K3_DEFAULT_GUIDANCE = spec(ModelId.K31).default_guidance or 3.0


def flash_img2img_timesteps(strength: float) -> tuple[int, ...]:
    """The Flash steps an image-to-image run makes: those below ``strength`` of the noise range."""
    return tuple(img2img_timesteps(FLASH_TIMESTEPS, strength))


@dataclass
class K3Pipelines:
    """The pipelines of one request, built on the shared components (either may be None if not needed)."""

    base: Kandinsky31Pipeline | None = None
    flash: Kandinsky3FlashPipeline | None = None
    # Called with each pipeline right before it runs (the manager installs CPU offload hooks there).
    prepare: Callable[[Any], None] | None = None

    def ready(self, pipe: Any) -> Any:
        if pipe is None:
            raise GenerationError("unsupported_mode", "this model has no pipeline for the request")
        if self.prepare is not None:
            self.prepare(pipe)
        return pipe


def generators(seed: int, n: int) -> list[torch.Generator]:
    """One generator per image (seed + i): every image of a batch can be reproduced on its own."""
    return [torch.Generator("cpu").manual_seed(seed + i) for i in range(n)]


class _Progress:
    """A ``callback_on_step_end`` that reports (step, total) across the stages of one request."""

    def __init__(self, progress: ProgressFn, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0

    def __call__(self, pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        self.done += 1
        self.progress(self.done, self.total)  # may raise GenerationCancelled: the loop stops here
        return kwargs


def _k3_steps(request: GenerationRequest) -> int:
    return request.steps or K3_DEFAULT_STEPS


def total_steps(request: GenerationRequest) -> int:
    """How many progress events (UNet calls) a request makes."""
    img2img = request.mode == Mode.IMG2IMG
    if request.model == ModelId.K31_FLASH:
        return len(flash_img2img_timesteps(request.strength) if img2img else FLASH_TIMESTEPS)
    timesteps = authors_timesteps(_k3_steps(request))
    k3 = len(img2img_timesteps(timesteps, request.strength)) if img2img else len(timesteps)
    return k3 + (len(REFINER_TIMESTEPS) if request.model == ModelId.K31_REFINER else 0)


def _input_image(request: GenerationRequest) -> Image.Image:
    if not request.images:
        raise GenerationError("no_image", "image-to-image needs an input image")
    image = request.images[0].convert("RGB")
    if image.size != (request.width, request.height):
        image = image.resize((request.width, request.height), Image.LANCZOS)
    return image


def generate(pipes: K3Pipelines, request: GenerationRequest, progress: ProgressFn) -> list[Image.Image]:
    """Run one request of a Kandinsky 3 family model as one batched call per stage."""
    mode = Mode.TEXT2IMG if request.mode == Mode.FACESWAP else request.mode
    if mode not in (Mode.TEXT2IMG, Mode.IMG2IMG):
        raise GenerationError("unsupported_mode", f"{request.model} does not do {request.mode}")
    try:
        authors_timesteps(_k3_steps(request))
    except ValueError as exc:
        raise GenerationError("bad_steps", str(exc)) from None
    n = request.num_images
    gens = generators(request.seed, n)
    callback = _Progress(progress, total_steps(request))
    size = dict(height=request.height, width=request.width)
    image = _input_image(request) if mode == Mode.IMG2IMG else None
    tokenizer = (pipes.flash or pipes.base).tokenizer
    prompt = fit_to_context(tokenizer, request.prompt, request.style_suffix, TOKENS)

    if request.model == ModelId.K31_FLASH:
        flash = pipes.ready(pipes.flash)
        timesteps = flash_img2img_timesteps(request.strength) if image is not None else FLASH_TIMESTEPS
        return flash(
            prompt,
            timesteps=timesteps,
            num_images_per_prompt=n,
            generator=gens,
            image=image,
            callback_on_step_end=callback,
            **size,
        ).images

    base = pipes.ready(pipes.base)
    refine = request.model == ModelId.K31_REFINER
    text = encode_text(base, prompt, request.negative_prompt or None, base._execution_device)
    out = base(
        text=text,
        num_inference_steps=_k3_steps(request),
        guidance_scale=request.guidance_scale if request.guidance_scale is not None else K3_DEFAULT_GUIDANCE,
        num_images_per_prompt=n,
        generator=gens,
        image=image,
        strength=request.strength,
        callback_on_step_end=callback,
        output_type="latent" if refine else "pil",
        **size,
    )
    if not refine:
        return out.images
    # The refiner: one Flash step on Kandinsky 3.1's latent, with the same (unprojected) prompt states.
    return pipes.ready(pipes.flash)(
        text=text,
        timesteps=REFINER_TIMESTEPS,
        num_images_per_prompt=n,
        generator=gens,
        image_latents=out.images,
        callback_on_step_end=callback,
        **size,
    ).images
