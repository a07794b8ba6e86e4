"""KandiSuperRes: ai-forever's pixel-space super-resolution UNet, as a diffusers model and pipeline.

The published checkpoints (hub ``ai-forever/KandiSuperRes``) are plain state dicts of one network:

- ``KandiSuperRes.ckpt``: x4, sampled with DPM-Solver++ (5 steps, linear betas) on the *clean image*
  the network predicts (``prediction_type="sample"``);
- ``KandiSuperRes_flash_x2.pt``: the distilled x2 "Flash" model, 4 steps (979, 729, 479, 229): noise the
  current clean estimate to the step's level, let the network predict the clean image again.

The network is a UNet in RGB pixel space conditioned on the low-resolution picture (bilinearly
upsampled to the output size and concatenated to the noisy input: 6 input channels); it has no text
and no attention. Its blocks are named as in the authors' checkpoints, so ``load_state_dict(strict=True)``
takes the published weights as they are. The configuration is read off the weights' shapes.

Large outputs use MultiDiffusion (Bar-Tal et al. 2023): the canvas is covered by overlapping windows
(1024 px, stride 800, as the authors tile); at every step each window is denoised and each pixel takes
the mean of the windows' clean-image predictions. Both samplers are linear in those predictions, so
averaging the predictions and stepping once on the whole canvas equals stepping each window and
averaging the results, as the authors do. Memory is bounded by ``view_batch_size`` windows at a time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, DiffusionPipeline, DPMSolverMultistepScheduler
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image
from torch import nn

SR_X4_FILE = "KandiSuperRes.ckpt"
SR_FLASH_X2_FILE = "KandiSuperRes_flash_x2.pt"
FLASH_TIMESTEPS: tuple[int, ...] = (979, 729, 479, 229)
X4_STEPS = 5
WINDOW = 1024  # the authors' MultiDiffusion window and stride, in output pixels
STRIDE = 800


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding, sines then cosines, frequencies 10000^(-i/(dim/2-1))."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=t.device, dtype=t.dtype) * (-math.log(10000) / (half - 1)))
    angles = t[:, None] * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class _Resample(nn.Module):
    """x2 down (4x4 stride-2 conv) or up (4x4 stride-2 transposed conv); the key nests one level."""

    def __init__(self, channels: int, up: bool) -> None:
        super().__init__()
        layer = nn.ConvTranspose2d if up else nn.Conv2d
        self.change_resolution = layer(channels, channels, kernel_size=4, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.change_resolution(x)


class _ConvUnit(nn.Module):
    """GroupNorm, optional time scale/shift and SiLU, optional resampling, 3x3 conv."""

    def __init__(self, c_in: int, c_out: int, groups: int, act: bool, resample: bool | None) -> None:
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, c_in)
        self.activation = nn.SiLU() if act else nn.Identity()
        self.dropout = nn.Dropout(0.1) if act else nn.Identity()
        self.change_resolution = nn.Identity() if resample is None else _Resample(c_in, resample)
        self.projection = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor, scale_shift: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        x = self.group_norm(x)
        if scale_shift is not None:
            x = x * (scale_shift[0] + 1) + scale_shift[1]
        return self.projection(self.change_resolution(self.dropout(self.activation(x))))


class _ResBlock(nn.Module):
    # resample: None keeps the size, False halves it, True doubles it (the authors' convention).
    def __init__(self, c_in: int, c_out: int, time_dim: int, groups: int, resample: bool | None) -> None:
        super().__init__()
        self.time_mlp = nn.Sequential(nn.SiLU(), nn.Linear(time_dim, 2 * c_out))
        # The first unit has no activation in the published network; only the second is time-modulated.
        self.in_block = _ConvUnit(c_in, c_out, groups, act=False, resample=resample)
        self.out_block = _ConvUnit(c_out, c_out, groups, act=True, resample=None)
        self.change_resolution = nn.Identity() if resample is None else _Resample(c_in, resample)
        needs_projection = c_in != c_out or resample is not None
        self.res_block = nn.Conv2d(c_in, c_out, kernel_size=1) if needs_projection else nn.Identity()

    def forward(self, x: torch.Tensor, time_embed: torch.Tensor) -> torch.Tensor:
        scale, shift = self.time_mlp(time_embed)[:, :, None, None].chunk(2, dim=1)
        out = self.out_block(self.in_block(x), (scale, shift))
        return out + self.res_block(self.change_resolution(x))


class _Level(nn.Module):
    """One resolution level: ResNet blocks, each paired with an (absent) attention block."""

    def __init__(self, pairs: Sequence[tuple[int, int, bool | None]], time_dim: int, groups: int) -> None:
        super().__init__()
        self.resnet_attn_blocks = nn.ModuleList(
            nn.ModuleList([_ResBlock(c_in, c_out, time_dim, groups, resample), nn.Identity()])
            for c_in, c_out, resample in pairs
        )

    def forward(self, x: torch.Tensor, time_embed: torch.Tensor) -> torch.Tensor:
        for resnet, _attention in self.resnet_attn_blocks:
            x = resnet(x, time_embed)
        return x


class SuperResUNet(ModelMixin, ConfigMixin):
    """The KandiSuperRes network. Defaults are the published one (about 400M parameters)."""

    @register_to_config
    def __init__(
        self,
        num_channels: int = 3,
        init_channels: int = 128,
        model_channels: int = 128,
        time_embed_dim: int = 512,
        groups: int = 32,
        dim_mult: tuple[int, ...] = (1, 2, 4, 8),
        num_resnet_blocks: tuple[int, ...] = (2, 4, 8, 8),
    ) -> None:
        super().__init__()
        self.to_time_embed = nn.Sequential(
            nn.Identity(),  # the sinusoidal embedding (no weights) sits here in the published network
            nn.Linear(init_channels, time_embed_dim),
            nn.SiLU(),
            nn.Linear(time_embed_dim, time_embed_dim),
        )
        self.init_conv = nn.Conv2d(2 * num_channels, init_channels, kernel_size=3, padding=1)
        dims = [init_channels] + [model_channels * m for m in dim_mult]
        levels = len(dim_mult)
        self.down_samples = nn.ModuleList()
        for level in range(levels):
            c_in, c_out, n = dims[level], dims[level + 1], num_resnet_blocks[level]
            first = False if level != levels - 1 else None  # every level but the last halves the size
            pairs = [(c_in, c_out, first)] + [(c_out, c_out, None)] * (n - 1)
            self.down_samples.append(_Level(pairs, time_embed_dim, groups))
        self.up_samples = nn.ModuleList()
        for k in range(levels):
            level = levels - 1 - k
            c_out, c_in, n = dims[level], dims[level + 1], num_resnet_blocks[level]
            skip = dims[level + 1] if k != 0 else 0  # the skip joins from the matching down level
            last = True if k != 0 else None
            pairs = [(c_in + skip, c_in, None)] + [(c_in, c_in, None)] * (n - 2) + [(c_in, c_out, last)]
            self.up_samples.append(_Level(pairs, time_embed_dim, groups))
        self.norm = nn.GroupNorm(groups, init_channels)
        self.activation = nn.SiLU()
        self.out_conv = nn.Conv2d(init_channels, num_channels, kernel_size=3, padding=1)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, lowres: torch.Tensor) -> torch.Tensor:
        """The clean image predicted from ``sample`` at ``timestep``; ``lowres`` is resized to it."""
        if lowres.shape[-2:] != sample.shape[-2:]:
            lowres = F.interpolate(lowres, sample.shape[-2:], mode="bilinear")
        timestep = timestep.to(sample.dtype).expand(sample.shape[0])
        time_embed = self.to_time_embed(timestep_embedding(timestep, self.config.init_channels))
        x = self.init_conv(torch.cat([sample, lowres], dim=1))
        skips = []
        for level, down in enumerate(self.down_samples):
            x = down(x, time_embed)
            if level != len(self.down_samples) - 1:
                skips.append(x)
        for level, up in enumerate(self.up_samples):
            if level != 0:
                x = torch.cat([x, skips.pop()], dim=1)
            x = up(x, time_embed)
        return self.out_conv(self.activation(self.norm(x)))


def config_from_state_dict(state: Mapping[str, torch.Tensor], groups: int = 32) -> dict[str, Any]:
    """The :class:`SuperResUNet` configuration of a checkpoint, read off its weight shapes."""
    blocks: dict[int, int] = {}
    for key in state:
        m = re.match(r"down_samples\.(\d+)\.resnet_attn_blocks\.(\d+)\.", key)
        if m:
            level, i = int(m.group(1)), int(m.group(2))
            blocks[level] = max(blocks.get(level, 0), i + 1)
    levels = len(blocks)
    out_dims = [state[f"down_samples.{lv}.resnet_attn_blocks.0.0.in_block.projection.weight"].shape[0] for lv in range(levels)]
    model_channels = out_dims[0]
    return dict(
        num_channels=state["out_conv.weight"].shape[0],
        init_channels=state["init_conv.weight"].shape[0],
        model_channels=model_channels,
        time_embed_dim=state["to_time_embed.1.weight"].shape[0],
        groups=groups,  # not visible in the weights; the published network uses 32
        dim_mult=tuple(d // model_channels for d in out_dims),
        num_resnet_blocks=tuple(blocks[lv] for lv in range(levels)),
    )


def load_checkpoint(path: str, groups: int = 32) -> SuperResUNet:
    """A published KandiSuperRes file -> :class:`SuperResUNet`, every weight used, none missing."""
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
        raw = torch.load(path, map_location="cpu", weights_only=True)
    state = raw["unet"] if "unet" in raw else raw
    unet = SuperResUNet(**config_from_state_dict(state, groups))
    unet.load_state_dict(state, strict=True)
    return unet.eval()


def views(height: int, width: int, window: int = WINDOW, stride: int = STRIDE) -> list[tuple[int, int, int, int]]:
    """Overlapping windows (top, bottom, left, right) covering the canvas; the last ones end flush."""

    def starts(size: int) -> list[int]:
        if size <= window:
            return [0]
        n = math.ceil((size - window) / stride) + 1
        return [min(i * stride, size - window) for i in range(n)]

    return [
        (top, min(top + window, height), left, min(left + window, width))
        for top in starts(height)
        for left in starts(width)
    ]


class KandiSuperResPipeline(DiffusionPipeline):
    """Upscale a picture by ``scale`` with a KandiSuperRes network.

    ``flash=True`` runs the distilled 4-step sampler (the x2 Flash checkpoint); otherwise
    ``scheduler`` (DPM-Solver++ on clean-image predictions) runs ``num_inference_steps``.
    """

    model_cpu_offload_seq = "unet"

    def __init__(self, unet: SuperResUNet, scheduler: DPMSolverMultistepScheduler | DDPMScheduler) -> None:
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler)

    @staticmethod
    def x4_scheduler() -> DPMSolverMultistepScheduler:
        return DPMSolverMultistepScheduler(beta_schedule="linear", prediction_type="sample", thresholding=False)

    @staticmethod
    def flash_scheduler() -> DDPMScheduler:
        return DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")

    def _predict(
        self, x: torch.Tensor, t: int, lowres: torch.Tensor, window: int, stride: int, view_batch_size: int
    ) -> torch.Tensor:
        """The clean canvas: each window's prediction, averaged where windows overlap."""
        _, _, height, width = x.shape
        total = torch.zeros_like(x)
        count = torch.zeros((1, 1, height, width), dtype=x.dtype, device=x.device)
        boxes = views(height, width, window, stride)
        dtype = self.unet.dtype
        for i in range(0, len(boxes), view_batch_size):
            batch = boxes[i : i + view_batch_size]
            crops = torch.cat([x[:, :, t0:t1, l0:l1] for t0, t1, l0, l1 in batch])
            lows = torch.cat([lowres[:, :, t0:t1, l0:l1] for t0, t1, l0, l1 in batch])
            step = torch.tensor(float(t), device=x.device, dtype=dtype)
            out = self.unet(crops.to(dtype), step, lows.to(dtype)).float()
            for piece, (t0, t1, l0, l1) in zip(out.chunk(len(batch)), batch):
                total[:, :, t0:t1, l0:l1] += piece
                count[:, :, t0:t1, l0:l1] += 1
        return total / count

    @torch.no_grad()
    def __call__(
        self,
        image: Image.Image | torch.Tensor,
        scale: int,
        flash: bool = False,
        num_inference_steps: int = X4_STEPS,
        generator: torch.Generator | None = None,
        window: int = WINDOW,
        stride: int = STRIDE,
        view_batch_size: int = 4,
        output_type: str = "pil",
        callback_on_step_end: Callable[..., dict[str, Any]] | None = None,
    ) -> ImagePipelineOutput:
        """``image``: a picture, or a (1, 3, h, w) tensor in [-1, 1]."""
        device = self._execution_device
        if isinstance(image, torch.Tensor):
            pixels = image.to(device=device, dtype=torch.float32)
        else:
            rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
            pixels = torch.from_numpy(rgb / 127.5 - 1).permute(2, 0, 1)[None].to(device)
        height, width = pixels.shape[-2:]
        # The network halves the size three times: the output must divide by 8 (the authors crop
        # Flash inputs to multiples of 32 and round x4 inputs to even sizes); the exact size is
        # restored by a bilinear resize at the end.
        unit = 32 if flash else 2
        w_in, h_in = max(unit, width - width % unit), max(unit, height - height % unit)
        if (h_in, w_in) != (height, width):
            pixels = F.interpolate(pixels, (h_in, w_in), mode="bicubic", align_corners=False).clamp(-1, 1)
        shape = (1, 3, h_in * scale, w_in * scale)
        lowres = F.interpolate(pixels, shape[-2:], mode="bilinear")
        x = randn_tensor(shape, generator=generator, device=device, dtype=torch.float32)
        tile = dict(window=window, stride=stride, view_batch_size=view_batch_size)

        if flash:
            alphas = self.scheduler.alphas_cumprod.to(device=device, dtype=torch.float32)
            timesteps: Sequence[int] = FLASH_TIMESTEPS
            for i, t in enumerate(timesteps):
                noise = randn_tensor(shape, generator=generator, device=device, dtype=torch.float32)
                noisy = alphas[t].sqrt() * x + (1 - alphas[t]).sqrt() * noise
                x = self._predict(noisy, t, lowres, **tile)
                x = self._callback(callback_on_step_end, i, t, x)
        else:
            self.scheduler.set_timesteps(num_inference_steps, device=device)
            for i, t in enumerate(self.scheduler.timesteps):
                clean = self._predict(x, int(t), lowres, **tile)
                x = self.scheduler.step(clean, t, x).prev_sample
                x = self._callback(callback_on_step_end, i, int(t), x)

        x = ((x + 1) / 2).clamp(0, 1)
        if x.shape[-2:] != (height * scale, width * scale):
            x = F.interpolate(x, (height * scale, width * scale), mode="bilinear", align_corners=True)
        self.maybe_free_model_hooks()
        if output_type == "pt":
            return ImagePipelineOutput(images=x)
        array = x.cpu().permute(0, 2, 3, 1).numpy()
        return ImagePipelineOutput(images=self.numpy_to_pil(array) if output_type == "pil" else array)

    def _callback(self, callback: Callable[..., dict[str, Any]] | None, i: int, t: int, x: torch.Tensor) -> torch.Tensor:
        if callback is None:
            return x
        return callback(self, i, t, {"latents": x}).get("latents", x)
