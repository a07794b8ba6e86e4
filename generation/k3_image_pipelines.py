"""Kandinsky 3.1 image prompts as diffusers pipelines, and the editing modes they run.

Two pipelines, both on the Flan-UL2 encoder, tokenizer and MoVQ the Kandinsky 3 family already loads:

* :class:`Kandinsky3IPAdapterPipeline`: the IP-Adapter UNet with a CLIP image encoder. Text to image,
  or image to image from ``init_image`` (its MoVQ latent noised to the first of the last
  ``strength`` of the steps, as diffusers' image-to-image pipelines do).
* :class:`Kandinsky3ControlNetImg2ImgPipeline`: the UNet and the HED ControlNet, image to image with
  an edge map as the hint.

Both follow the authors' pipelines (ai-forever/kandinsky3-diffusers): prompts padded to 128 tokens,
the T5 output multiplied by the mask and then projected; classifier-free guidance
``(g + 1) * cond - g * uncond``; DDPM steps with the caller's generators. The two differ in the
unconditional branch, as the authors' do. IP-Adapter: no prompt means a zero context with a zero
mask (after the projection); the unconditional context is zeros with a zero mask, or the projected
negative prompt cut to the prompt's length and then masked; the unconditional branch sees the CLIP
embedding of an all-zero image, the conditional one the weighted sum of the images' embeddings.
ControlNet: the unconditional context is the encoded negative prompt, or the encoded empty text,
masked and then projected like the prompt.

The modes (see :func:`generate`):

============== ============================================================================
FUSE           IP-Adapter, the weighted sum of 2-4 photos' embeddings (and the album's caption, if any)
MIX            IP-Adapter, the prompt and one photo, image attention scaled by the weights
VARIATIONS     IP-Adapter, no text, the photo's embedding alone
STYLE          IP-Adapter image to image: the content photo, re-drawn towards the weighted sum
               of the content and style photos' embeddings
RESTYLE_DEPTH  ("keep the shapes") HED ControlNet image to image: the prompt, the photo, its edges
============== ============================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers.pipelines.kandinsky3.pipeline_kandinsky3 import downscale_height_and_width
from diffusers.pipelines.pipeline_utils import DiffusionPipeline, ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from generation.backend import GenerationError, GenerationRequest, Mode, ProgressFn
from generation.k3 import generators, ready_pipeline

TEXT_TOKENS = 128
DEFAULT_STEPS = 25
DEFAULT_GUIDANCE = 3.0
# MIX: [image weight, text weight] -> the image attention's scale. Equal weights give the authors'
# default scale 1; the scale grows with the image's share (0.25 -> 0.33, 0.75 -> 3).
MAX_IMAGE_SCALE = 4.0
DEFAULT_WEIGHTS: dict[Mode, tuple[float, ...]] = {Mode.STYLE: (0.3, 0.7), Mode.MIX: (0.5, 0.5)}
IP_MODES = frozenset({Mode.FUSE, Mode.MIX, Mode.VARIATIONS, Mode.STYLE})
CONTROLNET_MODES = frozenset({Mode.RESTYLE_DEPTH})


def mix_image_scale(weights: Sequence[float]) -> float:
    image, text = (float(w) for w in weights)
    if text <= 0:
        return MAX_IMAGE_SCALE
    return min(MAX_IMAGE_SCALE, image / text)


def pixels(image: Image.Image, width: int, height: int) -> torch.Tensor:
    """An RGB photo as the MoVQ's input: resized (bicubic) to width x height, values in [-1, 1]."""
    image = image.convert("RGB").resize((width, height), resample=Image.BICUBIC, reducing_gap=1)
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1
    return torch.from_numpy(array).permute(2, 0, 1)[None]


class _Kandinsky3Conditioning:
    """Prompt encoding and the sampling loop shared by both pipelines (the authors' conventions)."""

    tokenizer: Any
    text_encoder: Any
    unet: Any
    scheduler: Any
    movq: Any

    def _encode(self, text: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.tokenizer(text, padding="max_length", max_length=TEXT_TOKENS, truncation=True, return_tensors="pt")
        ids, mask = tokens.input_ids.to(device), tokens.attention_mask.to(device)
        return self.text_encoder(ids, attention_mask=mask)[0], mask

    @torch.no_grad()
    def encode_context(
        self, prompt: str, negative_prompt: str | None, device: torch.device, guidance: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(context, mask, negative context, negative mask), batch 1, projected by the UNet's
        ``encoder_hid_proj``; the negatives are None without guidance."""
        unet_projection = self.unet.encoder_hid_proj
        dtype = self.unet.dtype
        weight_device = unet_projection.projection_linear.weight.device

        def project(hidden: torch.Tensor) -> torch.Tensor:
            # Called outside the UNet's forward: with CPU offload its weights may still be on the CPU.
            return unet_projection(hidden.to(weight_device)).to(device)

        context = mask = None
        if prompt.strip():
            hidden, mask = self._encode(prompt, device)
            context = project((hidden * mask[..., None]).to(dtype))
        if not guidance:
            negative = negative_mask = None
        elif negative_prompt and negative_prompt.strip():
            length = context.shape[1] if context is not None else TEXT_TOKENS
            hidden, negative_mask = self._encode(negative_prompt, device)
            hidden, negative_mask = hidden[:, :length], negative_mask[:, :length]
            negative = project(hidden.to(dtype)) * negative_mask[..., None].to(dtype)
        else:
            negative = negative_mask = None
        if context is None:
            shape = (1, TEXT_TOKENS, self.unet.config.cross_attention_dim)
            context = torch.zeros(shape, device=device, dtype=dtype)
            mask = torch.zeros(shape[:2], device=device, dtype=torch.long)
        if guidance and negative is None:
            negative, negative_mask = torch.zeros_like(context), torch.zeros_like(mask)
        return context, mask, negative, negative_mask

    @torch.no_grad()
    def encode_texts(
        self, prompt: str, negative_prompt: str | None, device: torch.device, guidance: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The ControlNet pipelines' encoding: prompt and negative (or empty) text alike, T5 output
        masked, then projected. (context, mask, negative context, negative mask), batch 1."""
        unet_projection = self.unet.encoder_hid_proj
        weight_device = unet_projection.projection_linear.weight.device

        def encoded(text: str) -> tuple[torch.Tensor, torch.Tensor]:
            hidden, mask = self._encode(text, device)
            projected = unet_projection((hidden * mask[..., None]).to(device=weight_device, dtype=self.unet.dtype))
            return projected.to(device), mask

        context, mask = encoded(prompt)
        if not guidance:
            return context, mask, None, None
        negative, negative_mask = encoded(negative_prompt or "")
        return context, mask, negative, negative_mask

    def _batch(self, cond: torch.Tensor, uncond: torch.Tensor | None, n: int) -> torch.Tensor:
        cond = cond.repeat_interleave(n, dim=0)
        return cond if uncond is None else torch.cat([uncond.repeat_interleave(n, dim=0), cond])

    def _timesteps(self, steps: int, strength: float | None, device: torch.device) -> torch.Tensor:
        self.scheduler.set_timesteps(steps, device=device)
        timesteps = self.scheduler.timesteps
        if strength is not None:
            keep = min(int(steps * strength), steps)
            start = (steps - keep) * self.scheduler.order
            timesteps = timesteps[start:]
            if len(timesteps) == 0:
                raise ValueError(f"strength {strength} leaves no step of {steps}")
            if hasattr(self.scheduler, "set_begin_index"):  # multistep schedulers count their steps
                self.scheduler.set_begin_index(start)
        return timesteps

    def _initial_latents(self, shape: tuple[int, ...], generator: Any, device: torch.device, dtype: torch.dtype,
                         init: torch.Tensor | None, first_timestep: torch.Tensor) -> torch.Tensor:
        noise = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        if init is None:
            return noise * self.scheduler.init_noise_sigma
        # encode() (unlike forward) triggers no offload hook: run it where the MoVQ's weights are.
        latents = self.movq.encode(init.to(device=self.movq.device, dtype=self.movq.dtype))["latents"]
        latents = latents.to(device=device, dtype=dtype).repeat_interleave(shape[0] // latents.shape[0], dim=0)
        return self.scheduler.add_noise(latents, noise, first_timestep.repeat(shape[0]))

    def _decode(self, latents: torch.Tensor, output_type: str) -> Any:
        if output_type == "latent":
            return latents
        image = self.movq.decode(latents.to(self.movq.dtype), force_not_quantize=True)["sample"]
        image = (image * 0.5 + 0.5).clamp(0, 1).cpu().permute(0, 2, 3, 1).float().numpy()
        return DiffusionPipeline.numpy_to_pil(image) if output_type == "pil" else image


def _guide(noise: torch.Tensor, guidance_scale: float, guided: bool) -> torch.Tensor:
    if not guided:
        return noise
    uncond, cond = noise.chunk(2)
    return (guidance_scale + 1.0) * cond - guidance_scale * uncond


class Kandinsky3IPAdapterPipeline(DiffusionPipeline, _Kandinsky3Conditioning):
    """Kandinsky 3.1 with image prompts (see the module doc)."""

    model_cpu_offload_seq = "text_encoder->image_encoder->unet->movq"

    def __init__(self, tokenizer: Any, text_encoder: Any, unet: Any, scheduler: Any, movq: Any,
                 image_encoder: Any, image_processor: Any) -> None:
        super().__init__()
        self.register_modules(tokenizer=tokenizer, text_encoder=text_encoder, unet=unet, scheduler=scheduler,
                              movq=movq, image_encoder=image_encoder, image_processor=image_processor)

    @torch.no_grad()
    def image_embedding(self, images: Sequence[Image.Image], weights: Sequence[float]) -> torch.Tensor:
        """The weighted sum of the images' CLIP image embeddings, shape (1, dim)."""
        if not images or len(images) != len(weights):
            raise ValueError(f"{len(images)} images with {len(weights)} weights")
        device, dtype = self.image_encoder.device, self.image_encoder.dtype
        total = None
        for image, weight in zip(images, weights, strict=True):
            values = self.image_processor(image.convert("RGB"), return_tensors="pt").pixel_values
            embeds = self.image_encoder(values.to(device=device, dtype=dtype)).image_embeds * float(weight)
            total = embeds if total is None else total + embeds
        return total

    @torch.no_grad()
    def zero_image_embedding(self) -> torch.Tensor:
        size = self.image_encoder.config.image_size
        device, dtype = self.image_encoder.device, self.image_encoder.dtype
        return self.image_encoder(torch.zeros(1, 3, size, size, device=device, dtype=dtype)).image_embeds

    @torch.no_grad()
    def __call__(
        self,
        prompt: str = "",
        images: Sequence[Image.Image] = (),
        image_weights: Sequence[float] | None = None,
        image_scale: float = 1.0,
        negative_prompt: str | None = None,
        num_inference_steps: int = DEFAULT_STEPS,
        guidance_scale: float = DEFAULT_GUIDANCE,
        height: int = 1024,
        width: int = 1024,
        num_images_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        init_image: Image.Image | None = None,
        strength: float = 1.0,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable[..., dict[str, Any]] | None = None,
    ) -> ImagePipelineOutput | tuple:
        device = self._execution_device
        n = num_images_per_prompt
        guided = guidance_scale > 1.0
        weights = list(image_weights) if image_weights is not None else [1.0 / len(images)] * len(images)
        embeds = self.image_embedding(images, weights)
        image_embeds = self._batch(embeds, self.zero_image_embedding() if guided else None, n).to(device)
        context, mask, negative, negative_mask = self.encode_context(prompt, negative_prompt, device, guided)
        context, mask = self._batch(context, negative, n), self._batch(mask, negative_mask, n)

        latent_h, latent_w = downscale_height_and_width(height, width, 8)
        init = None if init_image is None else pixels(init_image, width, height)
        timesteps = self._timesteps(num_inference_steps, strength if init is not None else None, device)
        latents = self._initial_latents((n, 4, latent_h, latent_w), generator, device, context.dtype, init,
                                        timesteps[:1])
        self._num_timesteps = len(timesteps)
        for i, t in enumerate(self.progress_bar(timesteps)):
            model_input = torch.cat([latents] * 2) if guided else latents
            model_input = self.scheduler.scale_model_input(model_input, t)
            noise = self.unet(model_input, t, context, mask, image_embeds=image_embeds, image_weight=image_scale,
                              return_dict=False)[0]
            noise = _guide(noise, guidance_scale, guided)
            latents = self.scheduler.step(noise, t, latents, generator=generator).prev_sample
            if callback_on_step_end is not None:
                latents = callback_on_step_end(self, i, t, {"latents": latents}).pop("latents", latents)
        image = self._decode(latents, output_type)
        self.maybe_free_model_hooks()
        return ImagePipelineOutput(images=image) if return_dict else (image,)


class Kandinsky3ControlNetImg2ImgPipeline(DiffusionPipeline, _Kandinsky3Conditioning):
    """Kandinsky 3.1 image to image guided by the HED ControlNet (see the module doc)."""

    model_cpu_offload_seq = "text_encoder->controlnet->unet->movq"

    def __init__(self, tokenizer: Any, text_encoder: Any, unet: Any, controlnet: Any, scheduler: Any,
                 movq: Any) -> None:
        super().__init__()
        self.register_modules(tokenizer=tokenizer, text_encoder=text_encoder, unet=unet, controlnet=controlnet,
                              scheduler=scheduler, movq=movq)

    @torch.no_grad()
    def __call__(
        self,
        prompt: str,
        image: Image.Image,
        hint: torch.Tensor,
        strength: float = 0.6,
        control_scale: float = 1.0,
        negative_prompt: str | None = None,
        num_inference_steps: int = DEFAULT_STEPS,
        guidance_scale: float = DEFAULT_GUIDANCE,
        height: int = 1024,
        width: int = 1024,
        num_images_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable[..., dict[str, Any]] | None = None,
    ) -> ImagePipelineOutput | tuple:
        """``hint``: (1, 3, height, width) edges in [0, 1]."""
        device = self._execution_device
        n = num_images_per_prompt
        guided = guidance_scale > 1.0
        context, mask, negative, negative_mask = self.encode_texts(prompt, negative_prompt, device, guided)
        context, mask = self._batch(context, negative, n), self._batch(mask, negative_mask, n)
        hint = hint.to(device=device, dtype=context.dtype).repeat(context.shape[0], 1, 1, 1)

        latent_h, latent_w = downscale_height_and_width(height, width, 8)
        timesteps = self._timesteps(num_inference_steps, strength, device)
        latents = self._initial_latents((n, 4, latent_h, latent_w), generator, device, context.dtype,
                                        pixels(image, width, height), timesteps[:1])
        self._num_timesteps = len(timesteps)
        for i, t in enumerate(self.progress_bar(timesteps)):
            model_input = torch.cat([latents] * 2) if guided else latents
            model_input = self.scheduler.scale_model_input(model_input, t)
            residuals = self.controlnet(model_input, t, context, mask, hint)
            residuals = [r * control_scale for r in residuals]
            noise = self.unet(model_input, t, context, mask, control=residuals, return_dict=False)[0]
            noise = _guide(noise, guidance_scale, guided)
            latents = self.scheduler.step(noise, t, latents, generator=generator).prev_sample
            if callback_on_step_end is not None:
                latents = callback_on_step_end(self, i, t, {"latents": latents}).pop("latents", latents)
        image = self._decode(latents, output_type)
        self.maybe_free_model_hooks()
        return ImagePipelineOutput(images=image) if return_dict else (image,)


# -- the editing modes -------------------------------------------------------------------------


@dataclass
class K3ImagePipelines:
    """What one request needs (built by the model manager on the shared components)."""

    ip_adapter: Kandinsky3IPAdapterPipeline | None = None
    controlnet: Kandinsky3ControlNetImg2ImgPipeline | None = None
    edges: Callable[[Image.Image, int, int], tuple[torch.Tensor, str]] | None = None  # (hint, "hed" | "canny")
    prepare: Callable[[Any], None] | None = None

    def ready(self, pipe: Any) -> Any:
        return ready_pipeline(pipe, self.prepare)


def img2img_steps(request: GenerationRequest) -> tuple[int, float]:
    """(steps, strength) of an image-to-image run, strength raised so that at least one step runs."""
    steps = request.steps or DEFAULT_STEPS
    return steps, min(1.0, max(request.strength, 1.0 / steps + 1e-6))


def total_steps(request: GenerationRequest) -> int:
    if request.mode in (Mode.STYLE, Mode.RESTYLE_DEPTH):
        steps, strength = img2img_steps(request)
        return min(int(steps * strength), steps)
    return request.steps or DEFAULT_STEPS


def _check_inputs(mode: Mode, photos: list[Image.Image]) -> None:
    low, high = {Mode.STYLE: (2, 2), Mode.FUSE: (2, 4)}.get(mode, (1, 1))
    if not low <= len(photos) <= high:
        raise GenerationError("bad_inputs", f"{mode} takes {low}-{high} photos, got {len(photos)}")


def _normalized(weights: Sequence[float], count: int) -> list[float]:
    if not weights:
        return [1.0 / count] * count
    if len(weights) != count or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise GenerationError("bad_inputs", f"{count} inputs, weights {list(weights)}")
    total = float(sum(weights))
    return [float(w) / total for w in weights]


class _Progress:
    def __init__(self, progress: ProgressFn, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0

    def __call__(self, pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        self.done += 1
        self.progress(self.done, self.total)  # may raise GenerationCancelled: the loop stops here
        return kwargs


def generate(pipes: K3ImagePipelines, request: GenerationRequest, progress: ProgressFn) -> list[Image.Image]:
    """Run one editing request on Kandinsky 3.1 (one batched call). Images of the ``"canny"`` fallback
    carry ``info["edges"] = "canny"`` so that the delivery can say the edges were not HED's."""
    mode = Mode(request.mode)
    photos = [im.convert("RGB") for im in request.images]
    _check_inputs(mode, photos)
    n = request.num_images
    common: dict[str, Any] = dict(
        negative_prompt=(request.negative_prompt or "").strip() or None,
        guidance_scale=DEFAULT_GUIDANCE if request.guidance_scale is None else request.guidance_scale,
        height=request.height,
        width=request.width,
        num_images_per_prompt=n,
        generator=generators(request.seed, n),
        callback_on_step_end=_Progress(progress, total_steps(request)),
    )
    if mode in CONTROLNET_MODES:
        if pipes.edges is None:
            raise GenerationError("unsupported_mode", "no edge detector")
        hint, detector = pipes.edges(photos[0], request.width, request.height)
        steps, strength = img2img_steps(request)
        images = pipes.ready(pipes.controlnet)(
            request.prompt, photos[0], hint, strength=strength, num_inference_steps=steps, **common
        ).images
        for image in images:
            image.info["edges"] = detector
            if detector == "canny":
                image.info["note"] = "edges-canny"  # the caption says the edges are not HED's
        return images
    if mode not in IP_MODES:
        raise GenerationError("unsupported_mode", f"Kandinsky 3.1 image prompts do not do {mode}")
    pipe = pipes.ready(pipes.ip_adapter)
    steps = request.steps or DEFAULT_STEPS
    if mode is Mode.FUSE:
        # An album's caption, when there is one, joins the photos (summed cross-attention, as in MIX).
        return pipe(request.prompt, photos, _normalized(request.weights, len(photos)), num_inference_steps=steps,
                    **common).images
    if mode is Mode.VARIATIONS:
        return pipe("", photos[:1], [1.0], num_inference_steps=steps, **common).images
    if mode is Mode.MIX:
        scale = mix_image_scale(request.weights or DEFAULT_WEIGHTS[Mode.MIX])
        return pipe(request.prompt, photos[:1], [1.0], image_scale=scale, num_inference_steps=steps, **common).images
    # STYLE: the content photo redrawn towards the mix of the content's and the style's embeddings.
    weights = _normalized(request.weights or DEFAULT_WEIGHTS[Mode.STYLE], 2)
    steps, strength = img2img_steps(request)
    return pipe("", photos, weights, init_image=photos[0], strength=strength, num_inference_steps=steps,
                **common).images
