"""GFPGAN's "clean" generator (v1.3 / v1.4 checkpoints) in PyTorch, written for this project.

The network: a U-Net encoder reads the degraded 512 px face; its bottleneck becomes the style codes
of a StyleGAN2 decoder (one code per layer, used as latents directly), and each U-Net level on the
way up yields a per-pixel scale and shift that modulate half of the decoder's channels at the same
resolution (spatial feature transform). The decoder's noise inputs use the noise maps stored in
the checkpoint, so a restoration is reproducible.

Parameter names follow the published ``GFPGANv1.4.pth`` (facts of the file format), so it loads with
``strict=True``; the outputs are checked against the gfpgan package's own network
(tests/reference/gfpgan.npz). Where spandrel would normally provide this architecture: spandrel
imports torchvision at import time, and no torchvision build matches this project's CPU torch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SLOPE = 0.2


def _channels(narrow: float, channel_multiplier: float) -> dict[int, int]:
    """Feature channels per resolution (before the U-Net's halving)."""
    return {
        4: int(512 * narrow),
        8: int(512 * narrow),
        16: int(512 * narrow),
        32: int(512 * narrow),
        64: int(256 * channel_multiplier * narrow),
        128: int(128 * channel_multiplier * narrow),
        256: int(64 * channel_multiplier * narrow),
        512: int(32 * channel_multiplier * narrow),
        1024: int(16 * channel_multiplier * narrow),
    }


def _resize(x: torch.Tensor, factor: float) -> torch.Tensor:
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


class _PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class ModulatedConv2d(nn.Module):
    """A convolution whose input channels are scaled per sample by the style (and the result
    renormalised per output channel when ``demodulate``); ``upsample`` doubles the input first."""

    def __init__(self, cin: int, cout: int, kernel: int, style_dim: int, demodulate: bool = True, upsample: bool = False) -> None:
        super().__init__()
        self.modulation = nn.Linear(style_dim, cin)
        self.weight = nn.Parameter(torch.zeros(1, cout, cin, kernel, kernel))
        self.demodulate = demodulate
        self.upsample = upsample

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        batch, cin = x.shape[:2]
        weight = self.weight * self.modulation(style)[:, None, :, None, None]  # (b, out, in, k, k)
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
        if self.upsample:
            x = _resize(x, 2)
        cout, kernel = weight.shape[1], weight.shape[-1]
        out = F.conv2d(x.reshape(1, batch * cin, *x.shape[2:]), weight.reshape(batch * cout, cin, kernel, kernel), padding=kernel // 2, groups=batch)
        return out.reshape(batch, cout, *out.shape[2:])


class StyleConv(nn.Module):
    def __init__(self, cin: int, cout: int, style_dim: int, upsample: bool = False) -> None:
        super().__init__()
        self.modulated_conv = ModulatedConv2d(cin, cout, 3, style_dim, demodulate=True, upsample=upsample)
        self.weight = nn.Parameter(torch.zeros(1))  # noise strength
        self.bias = nn.Parameter(torch.zeros(1, cout, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        out = self.modulated_conv(x, style) * math.sqrt(2) + self.weight * noise + self.bias
        return F.leaky_relu(out, SLOPE)


class ToRGB(nn.Module):
    def __init__(self, cin: int, style_dim: int) -> None:
        super().__init__()
        self.modulated_conv = ModulatedConv2d(cin, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        out = self.modulated_conv(x, style) + self.bias
        return out if previous is None else out + _resize(previous, 2)


class _ConstantInput(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, channels, 4, 4))


class StyleDecoder(nn.Module):
    """StyleGAN2's synthesis network with spatial feature transforms from the encoder."""

    def __init__(self, out_size: int, style_dim: int, num_mlp: int, channel_multiplier: float, narrow: float, sft_half: bool) -> None:
        super().__init__()
        channels = _channels(narrow, channel_multiplier)
        self.log_size = int(math.log2(out_size))
        self.sft_half = sft_half
        # The mapping network is in the checkpoint; GFPGAN feeds latents directly and skips it.
        layers: list[nn.Module] = [_PixelNorm()]
        for _ in range(num_mlp):
            layers += [nn.Linear(style_dim, style_dim), nn.LeakyReLU(SLOPE)]
        self.style_mlp = nn.Sequential(*layers)
        self.constant_input = _ConstantInput(channels[4])
        self.style_conv1 = StyleConv(channels[4], channels[4], style_dim)
        self.to_rgb1 = ToRGB(channels[4], style_dim)
        self.style_convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for index in range((self.log_size - 2) * 2 + 1):
            side = 2 ** ((index + 5) // 2)
            self.noises.register_buffer(f"noise{index}", torch.zeros(1, 1, side, side))
        cin = channels[4]
        for level in range(3, self.log_size + 1):
            cout = channels[2**level]
            self.style_convs.append(StyleConv(cin, cout, style_dim, upsample=True))
            self.style_convs.append(StyleConv(cout, cout, style_dim))
            self.to_rgbs.append(ToRGB(cout, style_dim))
            cin = cout

    def forward(self, latents: torch.Tensor, conditions: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """``latents``: (b, layers, style_dim); ``conditions``: (scale, shift) per level from 8 px up."""
        noise = [getattr(self.noises, f"noise{i}") for i in range((self.log_size - 2) * 2 + 1)]
        x = self.constant_input.weight.repeat(latents.shape[0], 1, 1, 1)
        x = self.style_conv1(x, latents[:, 0], noise[0])
        rgb = self.to_rgb1(x, latents[:, 1])
        for level, (scale, shift) in enumerate(conditions):
            i = 2 * level + 1  # the latent and noise index of this level's first convolution
            x = self.style_convs[2 * level](x, latents[:, i], noise[i])
            if self.sft_half:
                kept, modulated = x.split(x.shape[1] // 2, dim=1)
                x = torch.cat([kept, modulated * scale + shift], dim=1)
            else:
                x = x * scale + shift
            x = self.style_convs[2 * level + 1](x, latents[:, i + 1], noise[i + 1])
            rgb = self.to_rgbs[level](x, latents[:, i + 2], rgb)
        return rgb


class _ResBlock(nn.Module):
    """conv -> resample -> conv, plus a resampled 1x1 shortcut; bilinear, halving or doubling."""

    def __init__(self, cin: int, cout: int, factor: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cin, 3, 1, 1)
        self.conv2 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1, bias=False)
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.conv2(_resize(F.leaky_relu(self.conv1(x), SLOPE), self.factor)), SLOPE)
        return out + self.skip(_resize(x, self.factor))


def _condition(channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1), nn.LeakyReLU(SLOPE), nn.Conv2d(channels, out_channels, 3, 1, 1))


class GFPGANClean(nn.Module):
    """RGB (b, 3, out_size, out_size) in [-1, 1] -> the restored face, same range.

    The defaults are v1.3 / v1.4's (``GFPGANer(arch="clean", channel_multiplier=2)``).
    """

    def __init__(
        self,
        out_size: int = 512,
        num_style_feat: int = 512,
        channel_multiplier: float = 2,
        num_mlp: int = 8,
        narrow: float = 1,
        sft_half: bool = True,
    ) -> None:
        super().__init__()
        self.log_size = int(math.log2(out_size))
        self.num_style_feat = num_style_feat
        channels = _channels(narrow * 0.5, channel_multiplier)  # the encoder is half as wide
        self.conv_body_first = nn.Conv2d(3, channels[out_size], 1)
        self.conv_body_down = nn.ModuleList(
            _ResBlock(channels[2**level], channels[2 ** (level - 1)], 0.5) for level in range(self.log_size, 2, -1)
        )
        self.final_conv = nn.Conv2d(channels[4], channels[4], 3, 1, 1)
        self.conv_body_up = nn.ModuleList(
            _ResBlock(channels[2 ** (level - 1)], channels[2**level], 2) for level in range(3, self.log_size + 1)
        )
        # Intermediate RGB outputs (a training aid): in the checkpoint, unused here.
        self.toRGB = nn.ModuleList(nn.Conv2d(channels[2**level], 3, 1) for level in range(3, self.log_size + 1))
        self.final_linear = nn.Linear(channels[4] * 16, (self.log_size * 2 - 2) * num_style_feat)
        self.stylegan_decoder = StyleDecoder(out_size, num_style_feat, num_mlp, channel_multiplier, narrow, sft_half)
        sft = [channels[2**level] * (1 if sft_half else 2) for level in range(3, self.log_size + 1)]
        self.condition_scale = nn.ModuleList(_condition(channels[2**level], s) for level, s in zip(range(3, self.log_size + 1), sft))
        self.condition_shift = nn.ModuleList(_condition(channels[2**level], s) for level, s in zip(range(3, self.log_size + 1), sft))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = F.leaky_relu(self.conv_body_first(x), SLOPE)
        skips = []
        for block in self.conv_body_down:
            feat = block(feat)
            skips.append(feat)
        feat = F.leaky_relu(self.final_conv(feat), SLOPE)
        latents = self.final_linear(feat.flatten(1)).reshape(feat.shape[0], -1, self.num_style_feat)
        conditions = []
        for block, scale, shift, skip in zip(self.conv_body_up, self.condition_scale, self.condition_shift, reversed(skips)):
            feat = block(feat + skip)
            conditions.append((scale(feat), shift(feat)))
        return self.stylegan_decoder(latents, conditions)
