"""KandiSuperRes: ai-forever's pixel-space super-resolution UNet, as a diffusers model and pipeline.

The published checkpoints (hub ``ai-forever/KandiSuperRes``) are plain state dicts of one network:

- ``KandiSuperRes.ckpt``: x4, sampled with DPM-Solver++ (5 steps, linear betas) on the *clean image*
  the network predicts (``prediction_type="sample"``);
- ``KandiSuperRes_flash_x2.pt``: the distilled x2 "Flash" model, 4 steps (979, 729, 479, 229): noise the
  current clean estimate to the step's level, let the network predict the clean image again.
  Its result is then *refined* as the authors' ``KandiSuperResPipeline`` does (``sr_pipeline.py`` and
  ``model/diffusion_refine.py`` in ai-forever/KandiSuperRes): the picture is encoded by the Kandinsky 3
  MoVQ (not clipped first; tiles of 1024 px, no overlap), the latent is noised to t = 229 (cosine
  schedule) and the Kandinsky 3.1 *Flash* UNet predicts the noise once, with a fixed text context
  the authors ship as ``weights/context.pt`` / ``context_mask.pt`` (already in the UNet's 4096-d space:
  no text encoder, no projection), in latent tiles of 352 blended over a quarter of a tile; the clean
  latent is decoded by the MoVQ (tiles of 128 latent px, a quarter overlapping, blended) and clipped.

The network is a UNet in RGB pixel space conditioned on the low-resolution picture (bilinearly
upsampled to the output size and concatenated to the noisy input: 6 input channels); it has no text
and no attention. Its blocks are named as in the authors' checkpoints, so ``load_state_dict(strict=True)``
takes the published weights as they are. The configuration is read off the weights' shapes.

Large outputs use MultiDiffusion (Bar-Tal et al. 2023): the canvas is covered by overlapping windows
(1024 px, stride 800, as the authors tile); at every step each window is denoised and each pixel takes
the mean of the windows' clean-image predictions. Both samplers are linear in those predictions, so
averaging the predictions and stepping once on the whole canvas equals stepping each window and
averaging the results, as the authors do. The SR network's memory is bounded by ``view_batch_size``
windows at a time; with the refinement the peak is the MoVQ's fp32 decode of one 1024 px tile
(``benchmarks/superres_memory.py`` counts both).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
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

from generation.k3_inpaint import projected_context

log = logging.getLogger(__name__)

SR_X4_FILE = "KandiSuperRes.ckpt"
SR_FLASH_X2_FILE = "KandiSuperRes_flash_x2.pt"
FLASH_TIMESTEPS: tuple[int, ...] = (979, 729, 479, 229)
X4_STEPS = 5
WINDOW = 1024  # the authors' MultiDiffusion window and stride, in output pixels
STRIDE = 800
# The Flash refinement (the authors' sr_pipeline.py / diffusion_refine.py):
REFINER_TIMESTEP = 229  # one Flash step on the MoVQ latent
REFINE_TILE = 352  # latent px (2816 px of picture); tiles start every 3/4 tile and blend over 1/4
MOVQ_TILE = 1024  # px: the MoVQ encodes larger pictures in tiles of 1024 (no overlap) and decodes
MOVQ_DECODE_OVERLAP = 0.25  # latents in tiles of 1024 / 8 that overlap by a quarter
MOVQ_FACTOR = 8
# The refiner's fixed text context is not on the hub: the authors keep it in their GitHub repository.
CONTEXT_FILES = ("weights/context.pt", "weights/context_mask.pt")
CONTEXT_COMMIT = "299b2eeaddacaecb116ab54a74de7d4264a2e97b"
CONTEXT_URL = "https://raw.githubusercontent.com/ai-forever/KandiSuperRes/{commit}/{path}"
CONTEXT_SHA256 = {
    "weights/context.pt": "92cc62ca3e341bd4ea03df187c06aceb43505e79107b6a2fef717a86051a6296",
    "weights/context_mask.pt": "6ff4ea52d9deb41f4732dd422fef48b1382247d9dbe0493d0a274e0d2e13591f",
}


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


def tiled(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int, step: int, blend: int, keep: int
) -> torch.Tensor:
    """``fn`` applied to square tiles of ``x`` and the results put together, as the authors tile the
    MoVQ and the refiner (the scheme of diffusers' tiled VAE): a tile starts every ``step`` input pixels;
    each result fades in from the results above and to the left of it (a linear ramp over its first
    ``blend`` output rows / columns, against the neighbour's last ones) and keeps its first ``keep``
    rows and columns. ``fn`` may change the scale (the MoVQ's 8x). Tiles are blended in row-major
    order, each into neighbours already blended, as the authors' loop does."""
    grid = [
        [fn(x[..., top : top + tile, left : left + tile]) for left in range(0, x.shape[-1], step)]
        for top in range(0, x.shape[-2], step)
    ]
    rows = []
    for i, row in enumerate(grid):
        for j, out in enumerate(row):
            if i > 0:
                _ramp(grid[i - 1][j], out, blend, dim=-2)
            if j > 0:
                _ramp(row[j - 1], out, blend, dim=-1)
        rows.append(torch.cat([out[..., :keep, :keep] for out in row], dim=-1))
    return torch.cat(rows, dim=-2)


def _ramp(before: torch.Tensor, out: torch.Tensor, blend: int, dim: int) -> None:
    """In place: the first rows (dim=-2) or columns (dim=-1) of ``out`` fade in from ``before``'s last."""
    n = min(before.shape[dim], out.shape[dim], blend)
    if n <= 0:
        return
    shape = [1] * out.dim()
    shape[dim] = n
    w = (torch.arange(n, dtype=torch.float64) / n).to(out.dtype).to(out.device).reshape(shape)
    head = out.narrow(dim, 0, n)
    head.copy_(before.narrow(dim, before.shape[dim] - n, n) * (1 - w) + head * w)


def movq_encode(movq: Any, pixels: torch.Tensor, tile: int = MOVQ_TILE, device: Any = None) -> torch.Tensor:
    """The MoVQ latent (unquantised) of pixels in [-1, 1]; above ``tile`` px, in tiles of ``tile``.
    ``device``: where the MoVQ runs (under CPU offload its hook moves it there, not the inputs)."""

    def encode(x: torch.Tensor) -> torch.Tensor:
        return movq.encode(x.to(device=device or movq.device, dtype=movq.dtype)).latents.float()

    if max(pixels.shape[-2:]) <= tile:
        return encode(pixels)
    return tiled(encode, pixels, tile, tile, 0, tile // MOVQ_FACTOR)


def movq_decode(
    movq: Any, latents: torch.Tensor, tile: int = MOVQ_TILE, overlap: float = MOVQ_DECODE_OVERLAP, device: Any = None
) -> torch.Tensor:
    """Pixels of an (unquantised) MoVQ latent; above ``tile`` px, in overlapping, blended tiles."""

    def decode(z: torch.Tensor) -> torch.Tensor:
        z = z.to(device=device or movq.device, dtype=movq.dtype)
        return movq.decode(z, force_not_quantize=True).sample.float()

    latent_tile = tile // MOVQ_FACTOR
    if max(latents.shape[-2:]) <= latent_tile:
        return decode(latents)
    blend = int(tile * overlap)
    return tiled(decode, latents, latent_tile, int(latent_tile * (1 - overlap)), blend, tile - blend)


def refine_latents(
    predict_noise: Callable[[torch.Tensor, int], torch.Tensor],
    latents: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    generator: torch.Generator | None,
    timestep: int = REFINER_TIMESTEP,
    tile: int = REFINE_TILE,
) -> torch.Tensor:
    """One denoising step at ``timestep`` on each tile of a clean latent: noise it, predict the noise,
    take the clean latent back out (no clipping, no thresholding); tiles blended over a quarter."""
    a = alphas_cumprod[timestep].to(device=latents.device, dtype=torch.float32)

    def refine(z: torch.Tensor) -> torch.Tensor:
        noise = randn_tensor(z.shape, generator=generator, device=z.device, dtype=torch.float32)
        noisy = a.sqrt() * z + (1 - a).sqrt() * noise
        return (noisy - (1 - a).sqrt() * predict_noise(noisy, timestep)) / a.sqrt()

    blend = int(tile * 0.25)
    return tiled(refine, latents, tile, int(tile * 0.75), blend, tile - blend)


def context_dir(source: str, cache_dir: str | os.PathLike) -> Path:
    """Where the refiner's context files are: a local KandiSuperRes folder, or the bot's cache."""
    if os.path.isdir(source):
        return Path(source)
    return Path(cache_dir) / f"KandiSuperRes-{CONTEXT_COMMIT[:12]}"


def ensure_context(
    source: str, cache_dir: str | os.PathLike, url: str = CONTEXT_URL, sha256: Mapping[str, str] = CONTEXT_SHA256
) -> Path:
    """The folder holding ``CONTEXT_FILES``, downloading those missing from the authors' repository
    (``url``: a template of ``commit`` and ``path``; the files are checked against ``sha256``)."""
    folder = context_dir(source, cache_dir)
    for path in CONTEXT_FILES:
        target = folder / path
        if target.is_file():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        address = url.format(commit=CONTEXT_COMMIT, path=path)
        log.info("Downloading the KandiSuperRes refiner context %s", address)
        with urllib.request.urlopen(address, timeout=60) as response:  # noqa: S310 - an https URL of ours
            data = response.read()
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256[path]:
            raise ValueError(f"{address}: SHA-256 {digest}, expected {sha256[path]}")
        partial = target.with_name(target.name + ".partial")
        partial.write_bytes(data)
        partial.replace(target)
    return folder


def load_context(folder: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """(context (1, tokens, dim), mask (1, tokens) as bool) from the authors' two files."""
    context, mask = (torch.load(Path(folder) / p, map_location="cpu", weights_only=True) for p in CONTEXT_FILES)
    return context.float(), mask.bool()


class KandiSuperResPipeline(DiffusionPipeline):
    """Upscale a picture by ``scale`` with a KandiSuperRes network.

    ``flash=True`` runs the distilled 4-step sampler (the x2 Flash checkpoint) and, with ``refine``, the
    authors' refinement (see the module doc): it needs ``refiner`` (the Kandinsky 3.1 Flash
    ``Kandinsky3UNet``), ``movq`` (the Kandinsky 3 ``VQModel``), ``refiner_scheduler`` (whose
    ``alphas_cumprod`` are the cosine schedule's) and ``context`` (:func:`load_context`). Otherwise
    ``scheduler`` (DPM-Solver++ on clean-image predictions) runs ``num_inference_steps``.
    """

    model_cpu_offload_seq = "unet->movq->refiner"  # the MoVQ decodes last, after the refiner
    _optional_components = ["refiner", "movq", "refiner_scheduler"]

    def __init__(
        self,
        unet: SuperResUNet,
        scheduler: DPMSolverMultistepScheduler | DDPMScheduler,
        refiner: nn.Module | None = None,
        movq: nn.Module | None = None,
        refiner_scheduler: Any = None,
        context: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler, refiner=refiner, movq=movq, refiner_scheduler=refiner_scheduler)
        self.context = context

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
        refine: bool = True,
        refine_tile: int = REFINE_TILE,
        movq_tile: int = MOVQ_TILE,
        output_type: str = "pil",
        callback_on_step_end: Callable[..., dict[str, Any]] | None = None,
    ) -> ImagePipelineOutput:
        """``image``: a picture, or a (1, 3, h, w) tensor in [-1, 1]. ``refine`` applies to Flash only.

        Steps reported to ``callback_on_step_end``: Flash's 4 (+ 1 for the refinement), or x4's
        ``num_inference_steps``."""
        device = self._execution_device
        refine = flash and refine
        if refine and (self.refiner is None or self.movq is None or self.refiner_scheduler is None or self.context is None):
            raise ValueError("the Flash refinement needs the refiner UNet, the MoVQ, its scheduler and the context")
        # The network halves the size three times: the output must divide by 8. The authors resize
        # Flash inputs down to multiples of 32 (PIL's default, bicubic) and round x4 inputs to even
        # sizes; the exact size is restored by a bilinear resize at the end.
        unit = 32 if flash else 2
        width, height = (image.shape[-1], image.shape[-2]) if isinstance(image, torch.Tensor) else image.size
        w_in, h_in = max(unit, width - width % unit), max(unit, height - height % unit)
        if isinstance(image, torch.Tensor):
            pixels = image.to(device=device, dtype=torch.float32)
            if (h_in, w_in) != (height, width):
                pixels = F.interpolate(pixels, (h_in, w_in), mode="bicubic", align_corners=False).clamp(-1, 1)
        else:
            rgb = image.convert("RGB")
            if (w_in, h_in) != rgb.size:
                rgb = rgb.resize((w_in, h_in), Image.BICUBIC)
            array = np.asarray(rgb, dtype=np.float32) / 255
            pixels = torch.from_numpy(array * 2 - 1).permute(2, 0, 1)[None].to(device)
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
            if refine:
                x = self._refine(x, generator, refine_tile, movq_tile)
                x = self._callback(callback_on_step_end, len(timesteps), REFINER_TIMESTEP, x)
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

    def _refine(self, x: torch.Tensor, generator: torch.Generator | None, refine_tile: int, movq_tile: int) -> torch.Tensor:
        """The Flash result through the MoVQ and one Flash-UNet step (see the module doc): pixels in [-1, 1]."""
        device = self._execution_device
        latents = movq_encode(self.movq, x, movq_tile, device)
        context, mask = (t.to(device) for t in self.context)
        context = context.to(self.refiner.dtype)

        def predict_noise(noisy: torch.Tensor, t: int) -> torch.Tensor:
            n = noisy.shape[0]
            step = torch.full((n,), t, device=device)
            return self.refiner(
                noisy.to(device=device, dtype=self.refiner.dtype), step,
                encoder_hidden_states=context.expand(n, -1, -1), encoder_attention_mask=mask.expand(n, -1),
                return_dict=False,
            )[0].float().to(noisy.device)

        # The context is already in the UNet's space: no text projection.
        with projected_context(self.refiner):
            latents = refine_latents(
                predict_noise, latents, self.refiner_scheduler.alphas_cumprod, generator, REFINER_TIMESTEP, refine_tile
            )
        return movq_decode(self.movq, latents, movq_tile, device=device).to(x.device)

    def _callback(self, callback: Callable[..., dict[str, Any]] | None, i: int, t: int, x: torch.Tensor) -> torch.Tensor:
        if callback is None:
            return x
        return callback(self, i, t, {"latents": x}).get("latents", x)
