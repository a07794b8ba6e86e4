"""Kandinsky 3.1 sampled the way its authors sample it, as diffusers components.

ai-forever's own pipeline (``kandinsky3/t2i_pipeline.py`` and ``kandinsky3/model/diffusion.py`` in
ai-forever/Kandinsky-3) differs from diffusers' ``Kandinsky3Pipeline`` in four places, all reproduced
here and checked against golden outputs of the authors' code (tests/reference/):

- **Text conditioning.** The Flan-UL2 states are projected (Linear + LayerNorm, one projection per UNet),
  *then* padded rows are zeroed, then the context is cut to the prompt's length + 1. The UNet's
  attention pooling averages over every row, zeros included, so the order matters: diffusers zeroes
  before projecting and padded rows become the LayerNorm's bias. :class:`Kandinsky3TextProjection`
  takes the place of the UNet's ``encoder_hid_proj`` (same weights, same names) and zeroes them after.
- **The unconditional branch** is not an empty prompt but the checkpoint's learned ``null_embedding``
  in the first context row, mask ``[1, 0, ...]``. An all-zero context (no token at all; every real
  prompt has at least its end-of-sequence token) is that branch: its first row becomes the
  ``null_embedding`` after the projection.
- **Negative prompts** are cut to the prompt's token count, end with the end-of-sequence token and
  reuse the *prompt's* attention mask (the authors' ``T5TextConditionProcessor.encode``); with a
  negative prompt the unconditional branch is that prompt instead of ``null_embedding``.
- **The sampler** (:class:`Kandinsky3AuthorsScheduler`) is DDIM with eta = 1 on the timesteps
  ``range(999, 0, -1000 // steps)``, the predicted clean latent dynamically thresholded at the 0.99
  quantile (values beyond it are clipped and everything is divided by it when it exceeds 1) and the
  noise re-derived from the thresholded latent; no noise is added on the last step. Defaults: 50 steps,
  guidance 3 (``(g + 1) * cond - g * uncond``), as in the authors' ``Kandinsky3T2IPipeline.__call__``.

Prompts of different users run as one batch (:func:`batch_conditions`): each row keeps its own context
length. The UNet's attention pooling averages over a context's rows, the authors' zero rows included, so
a shorter prompt padded to the batch's longest would change its image; the rows added for the batch are
marked ``BATCH_PADDING`` (-1) in the mask, which attention masks out like any padding and
:class:`Kandinsky3ContextPooling` leaves out of the average.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import ConfigMixin, Kandinsky3Pipeline, SchedulerMixin
from diffusers.configuration_utils import register_to_config
from diffusers.pipelines.kandinsky3.pipeline_kandinsky3 import downscale_height_and_width
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from diffusers.schedulers.scheduling_utils import SchedulerOutput
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

TOKENS = 128  # the authors' tokens_length
DEFAULT_STEPS = 50
DEFAULT_GUIDANCE = 3.0
FLASH_TIMESTEPS: tuple[int, ...] = (979, 729, 479, 229)  # range(979, 0, -250), the authors' gan loop
# The refiner as the authors run Flash on a finished latent (KandiSuperRes' diffusion_refine.refine):
# one step at t = 229, where 87% of the variance is still the image.
REFINER_TIMESTEPS: tuple[int, ...] = (229,)


def authors_timesteps(steps: int) -> list[int]:
    """``range(999, 0, -1000 // steps)``: 50 -> 999, 979, ..., 19 (a step count that does not divide
    1000 gives one step more, as in the authors' pipeline)."""
    if not 1 <= steps <= 1000:
        raise ValueError(f"steps must be within 1..1000, not {steps}")
    return list(range(999, 0, -(1000 // steps)))


def img2img_timesteps(timesteps: Sequence[int], strength: float) -> list[int]:
    """The steps an image-to-image run makes: those below ``strength`` of the noise range (at least one)."""
    kept = [t for t in timesteps if t < strength * 1000]
    return kept or [timesteps[-1]]


class Kandinsky3AuthorsScheduler(SchedulerMixin, ConfigMixin):
    """The authors' ``BaseDiffusion`` sampler (cosine schedule, DDIM eta=1, dynamic thresholding)."""

    order = 1

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, percentile: float = 0.99, eta: float = 1.0) -> None:
        def alpha_bar(t: float) -> float:
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

        betas = [
            min(1 - alpha_bar((i + 1) / num_train_timesteps) / alpha_bar(i / num_train_timesteps), 0.999)
            for i in range(num_train_timesteps)
        ]
        self.betas = torch.tensor(betas, dtype=torch.float32)
        self.alphas_cumprod = torch.cumprod(1.0 - self.betas, dim=0)
        self.init_noise_sigma = 1.0
        self.timesteps = torch.tensor(authors_timesteps(DEFAULT_STEPS))
        self._previous: dict[int, int] = {}
        self._set_previous(self.timesteps.tolist())

    def _set_previous(self, timesteps: list[int]) -> None:
        self._previous = dict(zip(timesteps, timesteps[1:] + [0]))

    def set_timesteps(self, num_inference_steps: int | None = None, device: Any = None, timesteps: Sequence[int] | None = None) -> None:
        chosen = list(timesteps) if timesteps is not None else authors_timesteps(num_inference_steps or DEFAULT_STEPS)
        self.timesteps = torch.tensor(chosen, device=device)
        self._set_previous(chosen)

    def scale_model_input(self, sample: torch.Tensor, timestep: Any = None) -> torch.Tensor:
        return sample

    def _alpha(self, t: int, like: torch.Tensor) -> torch.Tensor:
        return self.alphas_cumprod[t].to(device=like.device, dtype=like.dtype)

    def threshold(self, x0: torch.Tensor) -> torch.Tensor:
        """Dynamic thresholding: clip to the per-sample ``percentile`` of |x0| and divide by it, if above 1."""
        q = torch.quantile(x0.reshape(x0.shape[0], -1).abs(), self.config.percentile, dim=-1)
        q = q.clamp(min=1.0).reshape(-1, *([1] * (x0.dim() - 1)))
        return torch.clip(x0, -q, q) / q

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | list[torch.Generator] | None = None,
        return_dict: bool = True,
    ) -> SchedulerOutput | tuple:
        t = int(timestep)
        previous = self._previous[t]
        a_t, a_prev = self._alpha(t, sample), self._alpha(previous, sample)
        x0 = (sample - (1 - a_t).sqrt() * model_output) / a_t.sqrt()
        x0 = self.threshold(x0)
        eps = (sample - a_t.sqrt() * x0) / (1 - a_t).sqrt()
        sigma = (self.config.eta * (1 - a_t / a_prev) * (1 - a_prev) / (1 - a_t)).sqrt()
        # Zero in exact arithmetic at t=999 with few steps (5: 999 -> 799), where float32 rounding makes it
        # slightly negative and the authors' formula returns NaN; clamped, it is the same number elsewhere.
        mean = a_prev.sqrt() * x0 + (1 - a_prev - sigma**2).clamp(min=0).sqrt() * eps
        # Drawn on every step, the last included, so the random stream matches the authors' loop.
        noise = randn_tensor(sample.shape, generator=generator, device=sample.device, dtype=sample.dtype)
        prev_sample = mean + sigma * noise if previous != 0 else mean
        if not return_dict:
            return (prev_sample, x0)
        return SchedulerOutput(prev_sample=prev_sample)

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor | int) -> torch.Tensor:
        a = self._alpha(int(timesteps if not torch.is_tensor(timesteps) else timesteps.flatten()[0]), original_samples)
        return a.sqrt() * original_samples + (1 - a).sqrt() * noise

    def __len__(self) -> int:
        return self.config.num_train_timesteps


class Kandinsky3TextProjection(torch.nn.Module):
    """A UNet's text projection as the authors apply it (in place of diffusers' ``encoder_hid_proj``).

    Linear -> LayerNorm, then rows with no token (all-zero input: padding) are zeroed, and a context
    with no token at all (the unconditional branch) gets the learned ``null_embedding`` in its first row.
    """

    def __init__(self, projection: torch.nn.Module, null_embedding: torch.Tensor) -> None:
        super().__init__()
        self.projection_linear = projection.projection_linear
        self.projection_norm = projection.projection_norm
        self.register_buffer("null_embedding", null_embedding.detach().clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.projection_norm(self.projection_linear(x))
        is_token = x.ne(0).any(dim=-1, keepdim=True)
        out = out * is_token
        unconditional = ~is_token[:, :, 0].any(dim=1)
        if bool(unconditional.any()):
            out[unconditional, 0] = self.null_embedding.to(device=out.device, dtype=out.dtype)
        return out


BATCH_PADDING = -1  # mask value of a context row that only pads a batch (see the module doc)
# The UNet turns the mask into additive scores, (1 - mask) * -10000: 0 for tokens, -10000 for the
# authors' zero rows (averaged by the pooling), -20000 for the batch's padding (not averaged).
_BATCH_PADDING_SCORE = -15000.0


class Kandinsky3ContextPooling(torch.nn.Module):
    """The UNet's ``add_time_condition`` (diffusers' ``Kandinsky3AttentionPooling``, same weights), with
    the query averaged over each row's own context: rows masked ``BATCH_PADDING`` are left out, so a
    prompt gives the same numbers alone and in a batch with longer prompts."""

    def __init__(self, pooling: torch.nn.Module) -> None:
        super().__init__()
        self.attention = pooling.attention

    def forward(self, x: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor | None = None) -> torch.Tensor:
        if context_mask is None:
            query = context.mean(dim=1, keepdim=True)
        else:
            context_mask = context_mask.to(dtype=context.dtype)  # (batch, 1, length) additive scores
            own = (context_mask > _BATCH_PADDING_SCORE).to(context.dtype).transpose(1, 2)
            query = (context * own).sum(dim=1, keepdim=True) / own.sum(dim=1, keepdim=True)
        return x + self.attention(query, context, context_mask).squeeze(1)


def install_text_projection(unet: torch.nn.Module, null_embedding: torch.Tensor) -> torch.nn.Module:
    """Swap a converted UNet's ``encoder_hid_proj`` for the authors' behaviour (same weights), and its
    attention pooling for :class:`Kandinsky3ContextPooling` (same weights)."""
    if not isinstance(unet.encoder_hid_proj, Kandinsky3TextProjection):
        unet.encoder_hid_proj = Kandinsky3TextProjection(unet.encoder_hid_proj, null_embedding)
    if not isinstance(unet.add_time_condition, Kandinsky3ContextPooling):
        unet.add_time_condition = Kandinsky3ContextPooling(unet.add_time_condition)
    return unet


@dataclass
class TextConditions:
    """Flan-UL2 states of one prompt (padded rows zeroed, cut to its length + 1) and of the
    unconditional branch (the negative prompt, or all zeros: the null_embedding). Shared by the UNets
    of a request: each UNet's projection turns them into its own context."""

    context: torch.Tensor
    mask: torch.Tensor
    uncond_context: torch.Tensor
    uncond_mask: torch.Tensor

    def repeat(self, n: int) -> TextConditions:
        return TextConditions(*(t.repeat_interleave(n, dim=0) for t in self.tensors()))

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.context, self.mask, self.uncond_context, self.uncond_mask)

    @property
    def rows(self) -> int:
        return self.context.shape[0]


def _pad_rows(t: torch.Tensor, length: int, value: int) -> torch.Tensor:
    extra = length - t.shape[1]
    if extra <= 0:
        return t
    return torch.cat([t, t.new_full((t.shape[0], extra, *t.shape[2:]), value)], dim=1)


def batch_conditions(conditions: Sequence[TextConditions]) -> TextConditions:
    """The rows of several prompts' conditions as one batch: shorter contexts padded to the longest with
    zero states masked ``BATCH_PADDING``, which no UNet layer reads (see the module doc)."""
    if len(conditions) == 1:
        return conditions[0]
    length = max(t.shape[1] for c in conditions for t in (c.context, c.uncond_context))

    def stack(states: int, mask: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (
            torch.cat([_pad_rows(c.tensors()[states], length, 0) for c in conditions]),
            torch.cat([_pad_rows(c.tensors()[mask], length, BATCH_PADDING) for c in conditions]),
        )

    return TextConditions(*stack(0, 1), *stack(2, 3))


def _padded(ids: list[int], pad: int) -> tuple[list[int], list[int]]:
    return ids + [pad] * (TOKENS - len(ids)), [1] * len(ids) + [0] * (TOKENS - len(ids))


@torch.no_grad()
def encode_text(pipe: Kandinsky3Pipeline, prompt: str, negative_prompt: str | None, device: Any) -> TextConditions:
    """The authors' ``T5TextConditionProcessor.encode`` + ``T5TextConditionEncoder`` (minus the projection)."""
    tokenizer = pipe.tokenizer
    ids = tokenizer(prompt, max_length=TOKENS, truncation=True)["input_ids"]
    input_ids, mask = _padded(ids, tokenizer.pad_token_id)
    rows = [input_ids]
    if negative_prompt:
        negative = tokenizer(negative_prompt, max_length=TOKENS, truncation=True)["input_ids"][: len(ids)]
        negative[-1] = tokenizer.eos_token_id
        rows.append(_padded(negative, tokenizer.pad_token_id)[0])  # with the prompt's mask
    input_ids_t = torch.tensor(rows, device=device)
    mask_t = torch.tensor([mask] * len(rows), device=device)
    states = pipe.text_encoder(input_ids_t, attention_mask=mask_t).last_hidden_state
    states = states * mask_t.unsqueeze(-1).to(states.dtype)
    length = int(mask_t.sum(-1).max()) + 1
    states, mask_t = states[:, :length], mask_t[:, :length]
    if negative_prompt:
        return TextConditions(states[:1], mask_t[:1], states[1:], mask_t[1:])
    uncond_mask = torch.zeros_like(mask_t)
    uncond_mask[:, 0] = 1
    return TextConditions(states, mask_t, torch.zeros_like(states), uncond_mask)


ENCODER_KEY = "kandinsky3-flan-ul2"  # the text cache's name of the encoder the whole family shares


def encode_text_cached(
    cache: Any, pipe: Kandinsky3Pipeline, prompt: str, negative_prompt: str | None, device: Any
) -> TextConditions:
    """:func:`encode_text` through a :class:`generation.text_cache.TextEncodingCache` (None: no cache)."""
    negative_prompt = negative_prompt or None  # encode_text reads "" as no negative prompt
    if cache is None:
        return encode_text(pipe, prompt, negative_prompt, device)
    key = (ENCODER_KEY, prompt, negative_prompt, TOKENS)
    return cache.get(key, lambda: encode_text(pipe, prompt, negative_prompt, device))


def decode_latents(pipe: Kandinsky3Pipeline, latents: torch.Tensor, output_type: str) -> Any:
    if output_type == "latent":
        return latents
    image = pipe.movq.decode(latents.to(pipe.movq.dtype), force_not_quantize=True)["sample"]
    if output_type in ("np", "pil", "pt"):
        image = (image * 0.5 + 0.5).clamp(0, 1)
    if output_type == "pt":
        return image.float()
    image = image.cpu().permute(0, 2, 3, 1).float().numpy()
    return pipe.numpy_to_pil(image) if output_type == "pil" else image


def encode_image(pipe: Kandinsky3Pipeline, image: Image.Image, n: int) -> torch.Tensor:
    """The MoVQ latent of an RGB image in [-1, 1] (the authors' ``to_tensor(image) * 2 - 1``), n copies."""
    from diffusers.image_processor import VaeImageProcessor

    processor = VaeImageProcessor(vae_scale_factor=8, vae_latent_channels=4, do_resize=False)
    # The MoVQ's own device: with CPU offload, encode() (unlike forward) triggers no hook.
    pixels = processor.preprocess(image.convert("RGB")).to(device=pipe.movq.device, dtype=pipe.movq.dtype)
    latents = pipe.movq.encode(pixels)["latents"]
    return latents.float().repeat(n, 1, 1, 1)


class _StepCallback:
    def __init__(self, pipe: Any, callback: Callable[..., dict[str, Any]] | None, names: Sequence[str]) -> None:
        self.pipe, self.callback, self.names = pipe, callback, names

    def __call__(self, i: int, t: int, local: dict[str, Any]) -> torch.Tensor:
        if self.callback is None:
            return local["latents"]
        outputs = self.callback(self.pipe, i, t, {k: local[k] for k in self.names})
        return outputs.pop("latents", local["latents"])


class Kandinsky31Pipeline(Kandinsky3Pipeline):
    """Kandinsky 3.1 text-to-image and image-to-image, sampled as the authors do (see the module doc).

    Components are diffusers' Kandinsky 3 ones; the scheduler is :class:`Kandinsky3AuthorsScheduler` and
    the UNet carries :class:`Kandinsky3TextProjection` (:func:`install_text_projection`).
    ``text`` (:class:`TextConditions`) skips the text encoder when another stage already ran it.
    """

    @torch.no_grad()
    def __call__(  # type: ignore[override]
        self,
        prompt: str | None = None,
        negative_prompt: str | None = None,
        num_inference_steps: int = DEFAULT_STEPS,
        guidance_scale: float = DEFAULT_GUIDANCE,
        num_images_per_prompt: int = 1,
        height: int = 1024,
        width: int = 1024,
        generator: torch.Generator | list[torch.Generator] | None = None,
        image: Image.Image | None = None,
        strength: float = 1.0,
        text: TextConditions | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable[..., dict[str, Any]] | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
    ) -> ImagePipelineOutput | tuple:
        device = self._execution_device
        n = num_images_per_prompt
        if text is None:
            text = encode_text(self, prompt, negative_prompt, device)
        cond = text.repeat(n)  # ``text`` may already hold several prompts' rows (batch_conditions)
        n = cond.rows
        context = torch.cat([cond.context, cond.uncond_context]).to(device=device, dtype=self.unet.dtype)
        mask = torch.cat([cond.mask, cond.uncond_mask]).to(device)

        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = [int(t) for t in self.scheduler.timesteps]
        if image is None:
            latent_h, latent_w = downscale_height_and_width(height, width, 8)
            shape = (n, 4, latent_h, latent_w)
            # The sampler's arithmetic runs in float32, as the authors' does under autocast.
            latents = randn_tensor(shape, generator=generator, device=device, dtype=torch.float32)
        else:
            start = encode_image(self, image, n).to(device)
            timesteps = img2img_timesteps(timesteps, strength)
            self.scheduler.set_timesteps(timesteps=timesteps, device=device)
            noise = randn_tensor(start.shape, generator=generator, device=device, dtype=torch.float32)
            latents = self.scheduler.add_noise(start, noise, timesteps[0])
        self._num_timesteps = len(timesteps)
        self._guidance_scale = guidance_scale
        callback = _StepCallback(self, callback_on_step_end, callback_on_step_end_tensor_inputs)
        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for i, t in enumerate(timesteps):
                both = torch.cat([latents, latents]).to(self.unet.dtype)
                noise_pred = self.unet(
                    both,
                    torch.tensor([t] * both.shape[0], device=device),
                    encoder_hidden_states=context,
                    encoder_attention_mask=mask,
                    return_dict=False,
                )[0].float()
                cond_pred, uncond_pred = noise_pred.chunk(2)
                noise_pred = (guidance_scale + 1.0) * cond_pred - guidance_scale * uncond_pred
                latents = self.scheduler.step(noise_pred, t, latents, generator=generator).prev_sample
                latents = callback(i, t, {"latents": latents, "prompt_embeds": context, "attention_mask": mask})
                progress_bar.update()

        images = decode_latents(self, latents, output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return ImagePipelineOutput(images=images)


class Kandinsky3FlashPipeline(Kandinsky3Pipeline):
    """Kandinsky 3.1 Flash, the authors' distilled loop (``p_sample_loop(..., gan=True)``):

        x0 <- noise (or a given clean latent: image-to-image, the refiner)
        for t in 979, 729, 479, 229:
            x_t <- sqrt(a_t) x0 + sqrt(1 - a_t) eps,  eps ~ N(0, I)      (noise the estimate to t)
            x0  <- (x_t - sqrt(1 - a_t) unet(x_t, t)) / sqrt(a_t)          (the model's clean latent)

    with ``a_t`` the cumulative alphas of the cosine schedule, no guidance and no thresholding.
    """

    @torch.no_grad()
    def __call__(  # type: ignore[override]
        self,
        prompt: str | None = None,
        timesteps: Sequence[int] = FLASH_TIMESTEPS,
        num_images_per_prompt: int = 1,
        height: int = 1024,
        width: int = 1024,
        generator: torch.Generator | list[torch.Generator] | None = None,
        image_latents: torch.Tensor | None = None,
        image: Image.Image | None = None,
        text: TextConditions | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable[..., dict[str, Any]] | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
    ) -> ImagePipelineOutput | tuple:
        device = self._execution_device
        n = num_images_per_prompt
        if text is None:
            text = encode_text(self, prompt, None, device)
        cond = text.repeat(n)  # ``text`` may already hold several prompts' rows (batch_conditions)
        n = cond.rows
        context, mask = cond.context.to(device=device, dtype=self.unet.dtype), cond.mask.to(device)
        if image is not None:
            image_latents = encode_image(self, image, n)
        if image_latents is None:
            latent_h, latent_w = downscale_height_and_width(height, width, 8)
            latents = randn_tensor((n, 4, latent_h, latent_w), generator=generator, device=device, dtype=torch.float32)
        else:
            latents = image_latents.to(device=device, dtype=torch.float32)
        self._num_timesteps = len(timesteps)
        callback = _StepCallback(self, callback_on_step_end, callback_on_step_end_tensor_inputs)
        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for i, t in enumerate(timesteps):
                noise = randn_tensor(latents.shape, generator=generator, device=device, dtype=torch.float32)
                noisy = self.scheduler.add_noise(latents, noise, t)
                noise_pred = self.unet(
                    noisy.to(self.unet.dtype),
                    torch.tensor([t] * n, device=device),
                    encoder_hidden_states=context,
                    encoder_attention_mask=mask,
                    return_dict=False,
                )[0].float()
                a = self.scheduler.alphas_cumprod[t].to(device)
                latents = (noisy - (1 - a).sqrt() * noise_pred) / a.sqrt()
                latents = callback(i, t, {"latents": latents, "prompt_embeds": context, "attention_mask": mask})
                progress_bar.update()

        images = decode_latents(self, latents, output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return ImagePipelineOutput(images=images)
