"""The Kandinsky 3 family on a request: Kandinsky 3.1, Kandinsky 3.1 Flash and "Kandinsky 3.1 + Flash refiner".

All three share one Flan-UL2 text encoder (8.6B parameters), its tokenizer and the MoVQ, and run the
authors' sampling (:mod:`generation.k31`); they differ in the UNet:

- Kandinsky 3.1: the base UNet, 50 guided steps by default (the authors' default), image-to-image
  from the step below ``strength``;
- Flash: the distilled UNet, 4 steps, no guidance; image-to-image runs the Flash steps below
  ``strength`` from the photo's latent (0.6: 479, 229), so a restyle costs two UNet calls;
- the refiner: Kandinsky 3.1, then one Flash step at t = 229 on its latent (the authors' use of Flash
  as a refiner in KandiSuperRes), on the same prompt encoding: the text encoder runs once.

Text-to-image requests of several users that share a :func:`generation.backend.batch_key` run as one
call per stage (:func:`generate_batch`): one row per image, each with its own prompt, negative prompt
and generator (``seed + j``). Prompt encodings come from the manager's text cache when it has them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from generation.backend import (
    GenerationError,
    GenerationRequest,
    Mode,
    ModelId,
    ProgressFn,
    batch_key,
    per_request,
)
from generation.k31 import (
    FLASH_TIMESTEPS,
    REFINER_TIMESTEPS,
    TOKENS,
    Kandinsky3FlashPipeline,
    Kandinsky31Pipeline,
    TextConditions,
    authors_timesteps,
    batch_conditions,
    encode_text_cached,
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
    # The manager's generation.text_cache.TextEncodingCache (None: every request runs the encoder).
    text_cache: Any = None

    def text(self, prompt: str, negative_prompt: str | None) -> TextConditions:
        """The Flan-UL2 conditions of a prompt (run on the encoder, or from the text cache). Call it
        after :meth:`ready`: under CPU offload the encoder runs on the GPU through the pipeline's hooks."""
        pipe = self.base or self.flash
        return encode_text_cached(self.text_cache, pipe, prompt, negative_prompt, pipe._execution_device)

    def ready(self, pipe: Any) -> Any:
        return ready_pipeline(pipe, self.prepare)


def ready_pipeline(pipe: Any, prepare: Callable[[Any], None] | None) -> Any:
    """``pipe`` made ready to run by ``prepare`` (the manager's offload hooks), or the request's
    mode is unsupported when the model has no such pipeline (``pipe`` is None)."""
    if pipe is None:
        raise GenerationError("unsupported_mode", "this model has no pipeline for the request")
    if prepare is not None:
        prepare(pipe)
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


def _fitted_prompt(pipes: K3Pipelines, request: GenerationRequest) -> str:
    return fit_to_context((pipes.flash or pipes.base).tokenizer, request.prompt, request.style_suffix, TOKENS)


def generate(pipes: K3Pipelines, request: GenerationRequest, progress: ProgressFn) -> list[Image.Image]:
    """Run one request of a Kandinsky 3 family model as one batched call per stage."""
    mode = Mode.TEXT2IMG if request.mode == Mode.FACESWAP else request.mode
    if mode == Mode.TEXT2IMG:
        return generate_batch(pipes, [request], progress)[0]
    if mode != Mode.IMG2IMG:
        raise GenerationError("unsupported_mode", f"{request.model} does not do {request.mode}")
    _check_steps(request)
    n = request.num_images
    gens = generators(request.seed, n)
    callback = _Progress(progress, total_steps(request))
    size = dict(height=request.height, width=request.width)
    image = _input_image(request)
    prompt = _fitted_prompt(pipes, request)

    if request.model == ModelId.K31_FLASH:
        flash = pipes.ready(pipes.flash)
        return flash(
            text=pipes.text(prompt, None),
            timesteps=flash_img2img_timesteps(request.strength),
            num_images_per_prompt=n,
            generator=gens,
            image=image,
            callback_on_step_end=callback,
            **size,
        ).images
    base = pipes.ready(pipes.base)
    return _k3(pipes, base, request, pipes.text(prompt, request.negative_prompt), n, gens, callback, "pil", image)


def generate_batch(
    pipes: K3Pipelines, requests: list[GenerationRequest], progress: ProgressFn, output_type: str = "pil"
) -> list[Any]:
    """Text-to-image requests that share one model, size, step count and guidance as one call per stage.

    Row ``j`` of request ``r`` is request ``r``'s prompt (fitted to the context with its style) and
    negative prompt, with the generator ``seed_r + j``: result ``r`` equals ``generate(requests[r])``
    (up to the float rounding a larger batch brings). ``progress`` counts the batch's UNet calls."""
    first = requests[0]
    if len(requests) > 1 and (None in (keys := {batch_key(r) for r in requests}) or len(keys) > 1):
        raise ValueError("the requests of one batch must share one batch_key")
    _check_steps(first)
    gens = [g for request in requests for g in generators(request.seed, request.num_images)]
    callback = _Progress(progress, total_steps(first))
    size = dict(height=first.height, width=first.width)
    flash_only = first.model == ModelId.K31_FLASH  # no guidance: the negative prompt is not read
    pipe = pipes.ready(pipes.flash if flash_only else pipes.base)
    text = batch_conditions([
        pipes.text(_fitted_prompt(pipes, r), None if flash_only else r.negative_prompt).repeat(r.num_images)
        for r in requests
    ])
    if flash_only:
        out = pipe(
            text=text,
            timesteps=FLASH_TIMESTEPS,
            generator=gens,
            callback_on_step_end=callback,
            output_type=output_type,
            **size,
        ).images
    else:
        out = _k3(pipes, pipe, first, text, 1, gens, callback, output_type, None)
    return per_request(out, requests)


def _check_steps(request: GenerationRequest) -> None:
    try:
        authors_timesteps(_k3_steps(request))
    except ValueError as exc:
        raise GenerationError("bad_steps", str(exc)) from None


def _guidance(request: GenerationRequest) -> float:
    return request.guidance_scale if request.guidance_scale is not None else K3_DEFAULT_GUIDANCE


def _k3(
    pipes: K3Pipelines,
    base: Kandinsky31Pipeline,
    request: GenerationRequest,
    text: TextConditions,
    n: int,
    gens: list[torch.Generator],
    callback: _Progress,
    output_type: str,
    image: Image.Image | None,
) -> Any:
    """Kandinsky 3.1 (``base``, ready) and the refiner's Flash step after it, on ``text`` x ``n`` rows."""
    refine = request.model == ModelId.K31_REFINER
    size = dict(height=request.height, width=request.width)
    out = base(
        text=text,
        num_inference_steps=_k3_steps(request),
        guidance_scale=_guidance(request),
        num_images_per_prompt=n,
        generator=gens,
        image=image,
        strength=request.strength,
        callback_on_step_end=callback,
        output_type="latent" if refine else output_type,
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
        output_type=output_type,
        **size,
    ).images
