"""Kandinsky 3.1 inpainting: ai-forever's 9-channel UNet as a diffusers model and pipeline.

``weights/kandinsky3_inpainting.pt`` in ``ai-forever/Kandinsky3.1`` (``{"unet", "null_embedding"}``, its
text projection ``projection_inpainting.pt`` next to the Flan-UL2 encoder) is the Kandinsky 3 UNet with
an input convolution over 9 channels: the noisy latent (4), the mask (1: 1 keeps, 0 repaints) and the
MoVQ latent of the picture with the area to repaint blacked out (4). It still predicts 4 channels of
noise. It converts with the same key mapping as the other Kandinsky 3 UNets
(:func:`generation.k31_weights.unet_to_diffusers`) into :class:`Kandinsky3InpaintUNet`, a diffusers
``Kandinsky3UNet`` whose input convolution is wider; the checkpoint's learned ``null_embedding`` (the
unconditional context) travels with it as a buffer.

Sampling follows ai-forever's ``Kandinsky3InpaintingPipeline``: the T5 output is projected, padded rows
are zeroed and the context is cut to the longest prompt + 1; classifier-free guidance
``(w + 1) * cond - w * uncond`` (w = 4) against the null embedding (or the negative prompt); the DDIM
update with eta = 1 on timesteps 999, 979, ..., 19 (50 steps) of the cosine schedule, the clean
estimate dynamically thresholded at the 95th percentile.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, DiffusionPipeline, Kandinsky3UNet, VQModel
from diffusers.configuration_utils import register_to_config
from diffusers.image_processor import VaeImageProcessor
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image
from torch import nn

log = logging.getLogger(__name__)

INPAINT_UNET_FILE = "weights/kandinsky3_inpainting.pt"
INPAINT_PROJECTION_FILES = ("weights/flan_ul2_encoder/projection_inpainting.pt",)  # next to the encoder
INPAINT_STEPS = 50
INPAINT_GUIDANCE = 4.0
PERCENTILE = 0.95
TOKENS = 128


class Kandinsky3InpaintUNet(Kandinsky3UNet):
    """``Kandinsky3UNet`` reading ``in_channels`` (9) and writing ``out_channels`` (4)."""

    @register_to_config
    def __init__(
        self,
        in_channels: int = 9,
        out_channels: int = 4,
        time_embedding_dim: int = 1536,
        groups: int = 32,
        attention_head_dim: int = 64,
        layers_per_block: int | tuple[int] = 3,
        block_out_channels: tuple[int, ...] = (384, 768, 1536, 3072),
        cross_attention_dim: int | tuple[int] = 4096,
        encoder_hid_dim: int = 4096,
    ) -> None:
        super().__init__(
            in_channels=out_channels,
            time_embedding_dim=time_embedding_dim,
            groups=groups,
            attention_head_dim=attention_head_dim,
            layers_per_block=layers_per_block,
            block_out_channels=block_out_channels,
            cross_attention_dim=cross_attention_dim,
            encoder_hid_dim=encoder_hid_dim,
        )
        # The parent registered its own in_channels (the output width) after ours: put ours back.
        self.register_to_config(in_channels=in_channels, out_channels=out_channels)
        self.conv_in = nn.Conv2d(in_channels, self.conv_in.out_channels, kernel_size=3, padding=1)
        self.register_buffer("null_embedding", torch.zeros(self.encoder_hid_proj.projection_norm.normalized_shape[0]))


@contextlib.contextmanager
def projected_context(unet: Kandinsky3UNet) -> Iterator[None]:
    """Within: the UNet takes an already projected context (its ``encoder_hid_proj`` passes it through)."""
    projection = unet.encoder_hid_proj
    unet.encoder_hid_proj = nn.Identity()
    try:
        yield
    finally:
        unet.encoder_hid_proj = projection


def project_context(unet: Kandinsky3UNet, hidden: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """T5 output -> context: projected, padded rows zeroed, cut to the longest text + 1."""
    context = unet.encoder_hid_proj(hidden.to(unet.dtype))
    context = context * mask[..., None].to(context.dtype)
    length = int(mask.sum(-1).max()) + 1
    return context[:, :length], mask[:, :length]


def null_context(unet: Kandinsky3InpaintUNet, like: torch.Tensor, like_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The unconditional context: the learned null embedding in the first row, nothing else attended."""
    context = torch.zeros_like(like)
    context[:, 0] = unet.null_embedding.to(device=like.device, dtype=like.dtype)
    mask = torch.zeros_like(like_mask)
    mask[:, 0] = 1
    return context, mask


def dynamic_threshold(x0: torch.Tensor, percentile: float = PERCENTILE) -> torch.Tensor:
    s = torch.quantile(x0.flatten(1).abs().float(), percentile, dim=-1).clamp(min=1.0).to(x0.dtype)
    s = s.view(-1, *([1] * (x0.ndim - 1)))
    return x0.clamp(-s, s) / s


def flash_alphas() -> torch.Tensor:
    """The cumulative alphas of the cosine schedule every Kandinsky 3 UNet was trained with."""
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2").alphas_cumprod


def inpaint_timesteps(steps: int) -> list[int]:
    return list(range(999, 0, -(1000 // steps)))


def sample(
    unet: Kandinsky3InpaintUNet,
    alphas_cumprod: torch.Tensor,
    noise: torch.Tensor,
    timesteps: Sequence[int],
    context: torch.Tensor,
    context_mask: torch.Tensor,
    uncond: torch.Tensor,
    uncond_mask: torch.Tensor,
    keep_mask: torch.Tensor,
    masked_latent: torch.Tensor,
    guidance: float,
    generator: torch.Generator | list[torch.Generator] | None = None,
    on_step: Callable[[int, int, torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """The authors' guided DDIM (eta = 1) loop on latents; returns the clean latent."""
    x = noise.float()
    a = alphas_cumprod.to(x.device, torch.float32)
    pairs = list(zip(timesteps, list(timesteps[1:]) + [0]))
    ctx = torch.cat([context, uncond])
    ctx_mask = torch.cat([context_mask, uncond_mask])
    cond = torch.cat([keep_mask, masked_latent], dim=1).float()
    with projected_context(unet):
        for i, (t, prev) in enumerate(pairs):
            model_in = torch.cat([x, cond], dim=1).repeat(2, 1, 1, 1).to(unet.dtype)
            step = torch.full((model_in.shape[0],), t, device=x.device, dtype=torch.int64)
            out = unet(model_in, step, encoder_hidden_states=ctx, encoder_attention_mask=ctx_mask, return_dict=False)[0]
            eps_c, eps_u = out.float().chunk(2)
            eps = (guidance + 1) * eps_c - guidance * eps_u
            x0 = dynamic_threshold((x - (1 - a[t]).sqrt() * eps) / a[t].sqrt())
            eps = (x - a[t].sqrt() * x0) / (1 - a[t]).sqrt()
            sigma = ((1 - a[t] / a[prev]) * (1 - a[prev]) / (1 - a[t])).sqrt()
            # clamp: at large jumps from t = 999 the difference rounds below zero in float32
            x = a[prev].sqrt() * x0 + (1 - a[prev] - sigma**2).clamp(min=0).sqrt() * eps
            z = randn_tensor(x.shape, generator=generator, device=x.device, dtype=torch.float32)
            if prev != 0:
                x = x + sigma * z
            if on_step is not None:
                x = on_step(i, t, x)
    return x


def _module_device(module: nn.Module, fallback: torch.device) -> torch.device:
    """Where a module's weights are now: with model CPU offload, a part called outside the UNet's own
    forward (its projection, the MoVQ's encoder) stays wherever the offload hook left it."""
    param = next(module.parameters())
    return fallback if param.device.type == "meta" else param.device


class Kandinsky3InpaintPipeline(DiffusionPipeline):
    """Repaint the white area of ``mask_image`` (L mode; white = change) following ``prompt``."""

    model_cpu_offload_seq = "text_encoder->unet->movq"

    def __init__(self, tokenizer: Any, text_encoder: Any, unet: Kandinsky3InpaintUNet, scheduler: DDPMScheduler, movq: VQModel) -> None:
        super().__init__()
        self.register_modules(tokenizer=tokenizer, text_encoder=text_encoder, unet=unet, scheduler=scheduler, movq=movq)
        self.image_processor = VaeImageProcessor(vae_scale_factor=8, vae_latent_channels=4, resample="bicubic", reducing_gap=1)

    def _project(self, hidden: torch.Tensor, mask: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        where = _module_device(self.unet.encoder_hid_proj, device)
        context, context_mask = project_context(self.unet, hidden.to(where), mask.to(where))
        return context.to(device), context_mask.to(device)

    def _encode_text(self, prompt: str, negative: str | None, device: torch.device) -> tuple[torch.Tensor, ...]:
        tokens = self.tokenizer(prompt, max_length=TOKENS, truncation=True, padding="max_length", return_tensors="pt")
        ids, mask = tokens.input_ids.to(device), tokens.attention_mask.to(device)
        hidden = self.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        context, context_mask = self._project(hidden, mask, device)
        if not negative:
            uncond, uncond_mask = null_context(self.unet, context, context_mask)
            return context, context_mask, uncond, uncond_mask
        # As the authors: the negative text is cut to the prompt's length (ending in </s>) and read
        # under the prompt's attention mask.
        neg = self.tokenizer(negative, max_length=TOKENS, truncation=True).input_ids[: int(mask.sum())]
        neg[-1] = self.tokenizer.eos_token_id
        neg_ids = torch.full_like(ids, self.tokenizer.pad_token_id)
        neg_ids[0, : len(neg)] = torch.tensor(neg)
        hidden = self.text_encoder(input_ids=neg_ids, attention_mask=mask).last_hidden_state
        uncond, uncond_mask = self._project(hidden, mask, device)
        return context, context_mask, uncond, uncond_mask

    @torch.no_grad()
    def __call__(
        self,
        prompt: str,
        image: Image.Image,
        mask_image: Image.Image,
        negative_prompt: str | None = None,
        num_inference_steps: int = INPAINT_STEPS,
        guidance_scale: float = INPAINT_GUIDANCE,
        num_images_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "pil",
        callback_on_step_end: Callable[..., dict[str, Any]] | None = None,
    ) -> ImagePipelineOutput:
        device = self._execution_device
        width, height = image.size
        if width % 64 or height % 64:
            raise ValueError(f"{width}x{height}: the sides must be multiples of 64")
        n = num_images_per_prompt
        context, context_mask, uncond, uncond_mask = self._encode_text(prompt, negative_prompt, device)
        context, context_mask = context.repeat(n, 1, 1), context_mask.repeat(n, 1)
        uncond, uncond_mask = uncond.repeat(n, 1, 1), uncond_mask.repeat(n, 1)

        pixels = self.image_processor.preprocess(image.convert("RGB")).to(device=device, dtype=torch.float32)
        repaint = torch.from_numpy(np.asarray(mask_image.convert("L").resize((width, height)), dtype=np.float32) / 255.0)
        keep = (1.0 - (repaint > 0.5).float())[None, None].to(device)
        masked = (pixels * keep).to(device=_module_device(self.movq, device), dtype=self.movq.dtype)
        masked_latent = self.movq.encode(masked)["latents"].to(device=device, dtype=torch.float32)
        keep_latent = F.interpolate(keep, size=masked_latent.shape[-2:])  # nearest, as the authors
        masked_latent, keep_latent = masked_latent.repeat(n, 1, 1, 1), keep_latent.repeat(n, 1, 1, 1)

        shape = (n, 4, height // 8, width // 8)
        noise = randn_tensor(shape, generator=generator, device=device, dtype=torch.float32)
        timesteps = inpaint_timesteps(num_inference_steps)
        self._num_timesteps = len(timesteps)

        def on_step(i: int, t: int, x: torch.Tensor) -> torch.Tensor:
            if callback_on_step_end is None:
                return x
            return callback_on_step_end(self, i, t, {"latents": x}).get("latents", x)

        latents = sample(
            self.unet, self.scheduler.alphas_cumprod, noise, timesteps, context, context_mask, uncond, uncond_mask,
            keep_latent, masked_latent, guidance_scale, generator, on_step,
        )
        if output_type == "latent":
            return ImagePipelineOutput(images=latents)
        decoded = self.movq.decode(latents.to(self.movq.dtype), force_not_quantize=True)["sample"]
        images = (decoded.float() * 0.5 + 0.5).clamp(0, 1).cpu().permute(0, 2, 3, 1).numpy()
        self.maybe_free_model_hooks()
        return ImagePipelineOutput(images=self.numpy_to_pil(images) if output_type == "pil" else images)


# -- conversion ---------------------------------------------------------------------------------------


def convert(unet_file: str, projection_file: str, unet_config: dict, target: Path, dtype: torch.dtype) -> Path:
    """ai-forever's inpainting files -> a diffusers folder ``target`` (every weight used, none missing).

    The key mapping is the one of every Kandinsky 3.1 UNet (:func:`generation.k31_weights.unet_to_diffusers`);
    only the input convolution is wider, so the class is :class:`Kandinsky3InpaintUNet`."""
    from accelerate import init_empty_weights

    from generation import k31_weights

    checkpoint = k31_weights.load_pt(unet_file)
    if "unet" not in checkpoint or "null_embedding" not in checkpoint:
        raise ValueError(f"{unet_file}: expected a dict with 'unet' and 'null_embedding'")
    state = k31_weights.unet_to_diffusers(checkpoint["unet"], k31_weights.load_pt(projection_file))
    state["null_embedding"] = checkpoint["null_embedding"]
    config = {k: v for k, v in unet_config.items() if not k.startswith("_") and k != "in_channels"}
    config.update(
        in_channels=checkpoint["unet"]["in_layer.weight"].shape[1],
        out_channels=checkpoint["unet"]["out_layer.2.weight"].shape[0],
    )
    with init_empty_weights():
        unet = Kandinsky3InpaintUNet(**config)
    unet.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=True, assign=True)
    k31_weights._save_atomically(unet, target)
    return target


def converted_unet_dir(source: str, cache_dir: Path, dtype: torch.dtype = torch.float32) -> Path:
    """The diffusers folder of the inpainting UNet of ``source``, converting it on first use."""
    from generation import k31_weights

    unet_file = k31_weights.fetch(source, INPAINT_UNET_FILE)
    projection_file = k31_weights.fetch(source, INPAINT_PROJECTION_FILES[0])
    config = k31_weights.local_config(source, k31_weights.UNET_CONFIG_FILE, "kandinsky3_unet.json")
    key = k31_weights._cache_key(source, [unet_file, projection_file], config, dtype)
    target = Path(cache_dir) / f"kandinsky3.1-inpainting-{key}" / "unet"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("Converting Kandinsky 3.1 inpainting from %s into %s", source, target)
    convert(unet_file, projection_file, config, target, dtype)
    (target.parent / "source.json").write_text(json.dumps({"source": source, "unet": unet_file}))
    return target
