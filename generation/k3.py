"""The Kandinsky 3 family: Kandinsky 3.1, Kandinsky 3.1 Flash and "Kandinsky 3.1 + Flash refiner".

All three share one Flan-UL2 text encoder (8.6B parameters), its tokenizer and the MoVQ; they differ
in the UNet. Kandinsky 3.1 runs through diffusers' ``Kandinsky3Pipeline`` / ``Kandinsky3Img2ImgPipeline``.
Flash has no diffusers pipeline: :class:`Kandinsky3FlashPipeline` is one, a ``Kandinsky3Pipeline``
subclass (so prompt encoding, MoVQ decoding, CPU offload and ``callback_on_step_end`` work the
diffusers way) whose loop is ai-forever's distilled sampler:

    x0 <- noise
    for t in 979, 729, 479, 229:
        x_t <- sqrt(a_t) x0 + sqrt(1 - a_t) eps,  eps ~ N(0, I)      (noise the estimate to t)
        x0  <- (x_t - sqrt(1 - a_t) unet(x_t, t)) / sqrt(a_t)          (the model's clean latent)

with ``a_t`` the cumulative alphas of the cosine schedule and no classifier-free guidance. The
refiner generates with Kandinsky 3, then runs the two last Flash steps (479, 229) on its latent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import DDPMScheduler, Kandinsky3Img2ImgPipeline, Kandinsky3Pipeline
from diffusers.pipelines.kandinsky3.pipeline_kandinsky3 import downscale_height_and_width
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from generation.backend import GenerationError, GenerationRequest, Mode, ModelId, ProgressFn
from generation.registry import spec

FLASH_TIMESTEPS: tuple[int, ...] = (979, 729, 479, 229)
REFINER_TIMESTEPS: tuple[int, ...] = (479, 229)
K3_DEFAULT_STEPS = spec(ModelId.K31).default_steps  # the registry's defaults
K3_DEFAULT_GUIDANCE = spec(ModelId.K31).default_guidance or 3.0


def flash_scheduler() -> DDPMScheduler:
    """The schedule ai-forever trained with: 1000 steps, cosine betas (diffusers' squaredcos_cap_v2)."""
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")


def flash_img2img_timesteps(strength: float) -> tuple[int, ...]:
    """The Flash steps an image-to-image run makes: those below ``strength`` of the noise range."""
    steps = tuple(t for t in FLASH_TIMESTEPS if t < strength * 1000)
    return steps or FLASH_TIMESTEPS[-1:]


class Kandinsky3FlashPipeline(Kandinsky3Pipeline):
    """Kandinsky 3.1 Flash: 4 steps, each one noising the clean-latent estimate to the next timestep.

    ``image_latents`` starts from a given clean latent instead of noise (the refiner, image-to-image).
    """

    @torch.no_grad()
    def __call__(  # type: ignore[override]
        self,
        prompt: str | list[str] | None = None,
        timesteps: Sequence[int] = FLASH_TIMESTEPS,
        num_images_per_prompt: int = 1,
        height: int = 1024,
        width: int = 1024,
        generator: torch.Generator | list[torch.Generator] | None = None,
        image_latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable[..., dict[str, Any]] | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
    ) -> ImagePipelineOutput | tuple:
        device = self._execution_device
        prompt_embeds, _, attention_mask, _ = self.encode_prompt(
            prompt,
            do_classifier_free_guidance=False,
            num_images_per_prompt=num_images_per_prompt,
            device=device,
            prompt_embeds=prompt_embeds,
            attention_mask=attention_mask,
            _cut_context=True,
        )
        batch = prompt_embeds.shape[0]
        latent_h, latent_w = downscale_height_and_width(height, width, 8)
        shape = (batch, 4, latent_h, latent_w)
        # The sampler's arithmetic runs in float32, as ai-forever's does under autocast.
        if image_latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=torch.float32)
        else:
            if tuple(image_latents.shape) != shape:
                raise ValueError(f"image_latents has shape {tuple(image_latents.shape)}, expected {shape}")
            latents = image_latents.to(device=device, dtype=torch.float32)
        alphas_cumprod = self.scheduler.alphas_cumprod.to(device=device, dtype=torch.float32)
        self._num_timesteps = len(timesteps)
        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for i, t in enumerate(timesteps):
                noise = randn_tensor(shape, generator=generator, device=device, dtype=torch.float32)
                a = alphas_cumprod[t]
                noisy = a.sqrt() * latents + (1 - a).sqrt() * noise
                noise_pred = self.unet(
                    noisy.to(self.unet.dtype),
                    torch.tensor(t, device=device),
                    encoder_hidden_states=prompt_embeds,
                    encoder_attention_mask=attention_mask,
                    return_dict=False,
                )[0]
                latents = (noisy - (1 - a).sqrt() * noise_pred.float()) / a.sqrt()
                if callback_on_step_end is not None:
                    local = {"latents": latents, "prompt_embeds": prompt_embeds, "attention_mask": attention_mask}
                    outputs = callback_on_step_end(
                        self, i, t, {k: local[k] for k in callback_on_step_end_tensor_inputs}
                    )
                    latents = outputs.pop("latents", latents)
                progress_bar.update()

        if output_type == "latent":
            image = latents
        else:
            image = self.movq.decode(latents.to(self.movq.dtype), force_not_quantize=True)["sample"]
            if output_type in ("np", "pil"):
                image = (image * 0.5 + 0.5).clamp(0, 1).cpu().permute(0, 2, 3, 1).float().numpy()
            if output_type == "pil":
                image = self.numpy_to_pil(image)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (image,)
        return ImagePipelineOutput(images=image)


@dataclass
class K3Pipelines:
    """The pipelines of one request, built on the shared components (any may be None if not needed)."""

    text2img: Kandinsky3Pipeline | None = None
    img2img: Kandinsky3Img2ImgPipeline | None = None
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


def _img2img_strength(request: GenerationRequest) -> float:
    """The request's strength, raised so that at least one Kandinsky 3 step runs."""
    steps = _k3_steps(request)
    return min(1.0, max(request.strength, 1.0 / steps + 1e-6))


def _img2img_steps(steps: int, strength: float) -> int:
    # Kandinsky3Img2ImgPipeline.get_timesteps
    return min(int(steps * strength), steps)


def total_steps(request: GenerationRequest) -> int:
    """How many progress events a request makes."""
    img2img = request.mode == Mode.IMG2IMG
    if request.model == ModelId.K31_FLASH:
        return len(flash_img2img_timesteps(request.strength) if img2img else FLASH_TIMESTEPS)
    steps = _k3_steps(request)
    k3 = _img2img_steps(steps, _img2img_strength(request)) if img2img else steps
    return k3 + (len(REFINER_TIMESTEPS) if request.model == ModelId.K31_REFINER else 0)


def _input_image(request: GenerationRequest) -> Image.Image:
    if not request.images:
        raise GenerationError("no_image", "image-to-image needs an input image")
    image = request.images[0].convert("RGB")
    if image.size != (request.width, request.height):
        image = image.resize((request.width, request.height), Image.LANCZOS)
    return image


def _encode_image(pipe: Kandinsky3Pipeline, image: Image.Image, n: int) -> torch.Tensor:
    """The MoVQ latent of an image, repeated for n images (as Kandinsky3Img2ImgPipeline encodes it)."""
    from diffusers.image_processor import VaeImageProcessor

    processor = VaeImageProcessor(vae_scale_factor=8, vae_latent_channels=4, resample="bicubic", reducing_gap=1)
    # The MoVQ's own device: with CPU offload, encode() (unlike forward) triggers no hook.
    pixels = processor.preprocess(image).to(device=pipe.movq.device, dtype=pipe.movq.dtype)
    latents = pipe.movq.encode(pixels)["latents"]
    return latents.repeat(n, 1, 1, 1)


def generate(
    pipes: K3Pipelines, request: GenerationRequest, progress: ProgressFn
) -> list[Image.Image]:
    """Run one request of a Kandinsky 3 family model as one batched call per stage."""
    mode = Mode.TEXT2IMG if request.mode == Mode.FACESWAP else request.mode
    if mode not in (Mode.TEXT2IMG, Mode.IMG2IMG):
        raise GenerationError("unsupported_mode", f"{request.model} does not do {request.mode}")
    n = request.num_images
    gens = generators(request.seed, n)
    callback = _Progress(progress, total_steps(request))
    size = dict(height=request.height, width=request.width)

    if request.model == ModelId.K31_FLASH:
        flash = pipes.ready(pipes.flash)
        latents, timesteps = None, FLASH_TIMESTEPS
        if mode == Mode.IMG2IMG:
            latents = _encode_image(flash, _input_image(request), n)
            timesteps = flash_img2img_timesteps(request.strength)
        return flash(
            request.prompt,
            timesteps=timesteps,
            num_images_per_prompt=n,
            generator=gens,
            image_latents=latents,
            callback_on_step_end=callback,
            **size,
        ).images

    k3_args: dict[str, Any] = dict(
        negative_prompt=request.negative_prompt or None,
        num_inference_steps=_k3_steps(request),
        guidance_scale=request.guidance_scale if request.guidance_scale is not None else K3_DEFAULT_GUIDANCE,
        num_images_per_prompt=n,
        generator=gens,
        callback_on_step_end=callback,
        output_type="latent" if request.model == ModelId.K31_REFINER else "pil",
    )
    if mode == Mode.IMG2IMG:
        # The pipeline repeats the image's latent n times and noises each copy with its own generator.
        image = _input_image(request)
        out = pipes.ready(pipes.img2img)(request.prompt, image=image, strength=_img2img_strength(request), **k3_args)
    else:
        out = pipes.ready(pipes.text2img)(request.prompt, **size, **k3_args)
    if request.model == ModelId.K31:
        return out.images

    # The refiner: the two last Flash steps on Kandinsky 3's latent.
    return pipes.ready(pipes.flash)(
        request.prompt,
        timesteps=REFINER_TIMESTEPS,
        num_images_per_prompt=n,
        generator=gens,
        image_latents=out.images,
        callback_on_step_end=callback,
        **size,
    ).images
