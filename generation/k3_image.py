"""Kandinsky 3.1 image prompts: the IP-Adapter UNet and the HED ControlNet, on diffusers' Kandinsky 3 blocks.

ai-forever published both as diffusers-style folders whose UNets are their own classes:

* ``ai-forever/kandinsky3_ip_adapter``: ``unet`` is a ``UNetKandi3IpAdapter``, the Kandinsky 3 UNet with
  an image branch. A CLIP ViT-L/14 image embedding (768) becomes ``num_image_tokens`` tokens
  (``image_proj``: Linear to tokens x context, then ``image_norm``: LayerNorm); every text
  cross-attention gets its own key/value projections for those tokens (``to_key_ip``, ``to_v_ip``)
  and an output projection (``to_out_ip``). The image attention reuses the text attention's query,
  and its output is *added* to the text attention's output, scaled by ``img_weight``::

      out = text_attention(q, K_text, V_text) + img_weight * to_out_ip(softmax(q K_img^T / sqrt(d)) V_img)

  So image + text fusion is the sum of the two cross-attention outputs, an image alone is a zero
  (fully masked) text context, and fusing several images is a weighted sum of their CLIP embeddings.
* ``ai-forever/kandinsky3_controlnet_hed``: ``unet`` is a plain ``UNetKandi3`` and ``unet_controlnet``
  a ``UNetKandi3Controlnet``: a copy of the UNet's encoder (without the text projection) whose input
  also gets a hint image through a small strided conv stack (8x down to the latent size, last conv
  zero-initialised), and whose level outputs pass zero-initialised 1x1 convs (whose output also feeds
  the next level). Those are added to the UNet's skip connections (one per skip connection: three for
  the four-level UNet).

Their weights keep ai-forever's key names (the same names as the Kandinsky 3 checkpoints, which
:mod:`generation.k31_weights` maps onto diffusers' ``Kandinsky3UNet``), and their ``config.json`` files hold
their own constructor arguments. This module builds the models on diffusers' ``Kandinsky3UNet``
blocks, converts those configs and keys, and loads the weights strictly: every key of the checkpoint
lands in the model and no parameter of the model is left unset.

The text projection (``projection_lin`` / ``projection_ln``, the UNet's ``encoder_hid_proj`` here) is
applied by the pipelines, as the authors' pipelines do: their unconditional context is zeros *after*
the projection. So the models' ``forward`` takes the projected ``context``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import Kandinsky3UNet
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention_processor import AttnProcessor2_0
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.unets.unet_kandinsky3 import (
    Kandinsky3AttentionPooling,
    Kandinsky3DownSampleBlock,
    Kandinsky3UNetOutput,
)
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn

from generation.k31_weights import unet_key_to_diffusers

log = logging.getLogger(__name__)

# The authors' fixed choices (constructor defaults that diffusers' Kandinsky3UNet hard-codes).
_FIXED = dict(expansion_ratio=4, compression_ratio=2)
_CROSS_ATTENTION = (False, True, True, True)


# -- configs -----------------------------------------------------------------------------------


def unet_config_from_kandi3(config: Mapping[str, Any]) -> dict[str, Any]:
    """ai-forever's UNetKandi3* constructor arguments -> diffusers ``Kandinsky3UNet`` config.

    Raises ValueError when the checkpoint's architecture is not one ``Kandinsky3UNet`` can hold."""
    model_channels = int(config["model_channels"])
    dim_mult = [int(m) for m in config.get("dim_mult", (1, 2, 4, 8))]
    block_out = [model_channels * m for m in dim_mult]
    levels = len(block_out)
    init_channels = int(config.get("init_channels") or model_channels)
    num_blocks = [int(n) for n in config.get("num_blocks", (3,) * levels)][:levels]
    problems = []
    if init_channels != block_out[0] // 2:
        problems.append(f"init_channels {init_channels} != block_out_channels[0] // 2 ({block_out[0] // 2})")
    if len(set(num_blocks)) != 1:
        problems.append(f"num_blocks {num_blocks} differ between levels")
    for key, value in _FIXED.items():
        if int(config.get(key, value)) != value:
            problems.append(f"{key} {config[key]} != {value}")
    for key in ("add_cross_attention", "add_self_attention"):
        flags = tuple(bool(f) for f in config.get(key, _CROSS_ATTENTION))[:levels]
        if flags != _CROSS_ATTENTION[:levels]:
            problems.append(f"{key} {flags} != {_CROSS_ATTENTION[:levels]}")
    if config.get("time_cond_proj_dim") is not None:
        problems.append("time_cond_proj_dim is not supported")
    if problems:
        raise ValueError("unsupported Kandinsky 3 UNet config: " + "; ".join(problems))
    return dict(
        in_channels=int(config.get("num_channels", 4)),
        time_embedding_dim=int(config["time_embed_dim"]),
        groups=int(config.get("groups", 32)),
        attention_head_dim=int(config.get("head_dim", 64)),
        layers_per_block=num_blocks[0],
        block_out_channels=tuple(block_out),
        cross_attention_dim=int(config.get("context_dim", 4096)),
        encoder_hid_dim=int(config.get("model_dim", 4096)),
    )


# -- keys --------------------------------------------------------------------------------------

_EXTRA_RENAMES = (
    ("projection_lin", "encoder_hid_proj.projection_linear"),
    ("projection_ln", "encoder_hid_proj.projection_norm"),
    ("to_key_ip", "to_k_ip"),
    ("convs", "zero_convs"),
)


def key_to_ours(key: str) -> str:
    """One key of ai-forever's UNetKandi3 / UNetKandi3IpAdapter / UNetKandi3Controlnet -> ours."""
    for old, new in _EXTRA_RENAMES:
        key = re.sub(rf"(^|\.){old}(?=\.)", lambda m: m.group(1) + new, key)
    return unet_key_to_diffusers(key)


def convert_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = key_to_ours(key)
        if new in out:
            raise ValueError(f"two checkpoint keys map to {new}")
        out[new] = value
    return out


# -- models ------------------------------------------------------------------------------------


class _ImageTokens:
    """The image tokens of the current forward pass, shared by the UNet's IP-Adapter processors.

    diffusers' Kandinsky 3 attention blocks pass only (hidden states, context, mask) to the attention
    processor, so the UNet sets the image tokens here for the length of one forward call."""

    def __init__(self) -> None:
        self.tokens: torch.Tensor | None = None
        self.weight: float = 1.0


class IPAdapterAttnProcessor(nn.Module):
    """Text cross-attention (PyTorch SDPA) plus the IP-Adapter's image attention on the same query."""

    def __init__(self, channels: int, context_dim: int, image_tokens: _ImageTokens) -> None:
        super().__init__()
        self.to_k_ip = nn.Linear(context_dim, channels)
        self.to_v_ip = nn.Linear(context_dim, channels)
        self.to_out_ip = nn.Linear(channels, channels)
        self._text = AttnProcessor2_0()
        self._image_tokens = image_tokens

    def __call__(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None) -> torch.Tensor:
        out = self._text(attn, hidden_states, encoder_hidden_states, attention_mask)
        tokens = self._image_tokens.tokens
        if tokens is None:
            return out
        batch, heads = hidden_states.shape[0], attn.heads
        query = attn.to_q(hidden_states)
        head_dim = query.shape[-1] // heads

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, -1, heads, head_dim).transpose(1, 2)

        image = F.scaled_dot_product_attention(split(query), split(self.to_k_ip(tokens)), split(self.to_v_ip(tokens)))
        image = image.transpose(1, 2).reshape(batch, -1, heads * head_dim)
        return out + self._image_tokens.weight * self.to_out_ip(image)


def _timesteps(timestep: Any, sample: torch.Tensor) -> torch.Tensor:
    if not torch.is_tensor(timestep):
        dtype = torch.float32 if isinstance(timestep, float) else torch.int32
        timestep = torch.tensor([timestep], dtype=dtype, device=sample.device)
    elif timestep.ndim == 0:
        timestep = timestep[None].to(sample.device)
    return timestep.expand(sample.shape[0])


def _additive_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    # As Kandinsky3UNet does: 1 keeps a context row, 0 masks it out.
    if mask is None:
        return None
    return ((1 - mask.to(dtype)) * -10000.0).unsqueeze(1)


def _time_embedding(unet: Any, sample: torch.Tensor, timestep: Any, context: torch.Tensor | None,
                    mask: torch.Tensor | None) -> torch.Tensor:
    time_embed = unet.time_embedding(unet.time_proj(_timesteps(timestep, sample)).to(sample.dtype))
    if context is not None:
        time_embed = unet.add_time_condition(time_embed, context, mask)
    return time_embed


def _unet_forward(unet: Kandinsky3UNet, sample: torch.Tensor, timestep: Any, context: torch.Tensor,
                  context_mask: torch.Tensor | None, control: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """``Kandinsky3UNet.forward`` on an already projected context, with optional ControlNet residuals
    (one per skip connection, shallowest first) added to the skip connections."""
    mask = _additive_mask(context_mask, sample.dtype)
    time_embed = _time_embedding(unet, sample, timestep, context, mask)
    skips = []
    x = unet.conv_in(sample)
    for level, block in enumerate(unet.down_blocks):
        x = block(x, time_embed, context, mask)
        if level != unet.num_levels - 1:
            skips.append(x)
    if control is not None:
        if len(control) != len(skips):
            raise ValueError(f"{len(control)} ControlNet residuals for {len(skips)} skip connections")
        skips = [s + c for s, c in zip(skips, control, strict=True)]
    for level, block in enumerate(unet.up_blocks):
        if level != 0:
            x = torch.cat([x, skips.pop()], dim=1)
        x = block(x, time_embed, context, mask)
    return unet.conv_out(unet.conv_act_out(unet.conv_norm_out(x)))


class Kandinsky3ControlledUNet(Kandinsky3UNet):
    """Kandinsky 3's UNet taking a projected context and ControlNet residuals (no weights of its own)."""

    def forward(  # type: ignore[override]
        self,
        sample: torch.Tensor,
        timestep: Any,
        context: torch.Tensor,
        context_mask: torch.Tensor | None = None,
        control: Sequence[torch.Tensor] | None = None,
        return_dict: bool = True,
    ) -> Kandinsky3UNetOutput | tuple[torch.Tensor]:
        out = _unet_forward(self, sample, timestep, context, context_mask, control)
        return Kandinsky3UNetOutput(sample=out) if return_dict else (out,)


class Kandinsky3IPAdapterUNet(Kandinsky3UNet):
    """Kandinsky 3's UNet with the IP-Adapter image branch (see the module doc)."""

    @register_to_config
    def __init__(
        self,
        in_channels: int = 4,
        time_embedding_dim: int = 1536,
        groups: int = 32,
        attention_head_dim: int = 64,
        layers_per_block: int = 3,
        block_out_channels: tuple[int, ...] = (384, 768, 1536, 3072),
        cross_attention_dim: int = 4096,
        encoder_hid_dim: int = 4096,
        num_image_tokens: int = 4,
        image_embedding_dim: int = 768,
    ) -> None:
        super().__init__(
            in_channels=in_channels,
            time_embedding_dim=time_embedding_dim,
            groups=groups,
            attention_head_dim=attention_head_dim,
            layers_per_block=layers_per_block,
            block_out_channels=block_out_channels,
            cross_attention_dim=cross_attention_dim,
            encoder_hid_dim=encoder_hid_dim,
        )
        self.image_proj = nn.Linear(image_embedding_dim, cross_attention_dim * num_image_tokens)
        self.image_norm = nn.LayerNorm(cross_attention_dim)
        self._image_tokens = _ImageTokens()
        # Every text cross-attention (attentions[1:] of the blocks that have a context) gets the image branch.
        for block in [*self.down_blocks, *self.up_blocks]:
            if block.context_dim is None:
                continue
            for attention_block in block.attentions[1:]:
                attention = attention_block.attention
                channels = attention.to_q.out_features
                attention.set_processor(IPAdapterAttnProcessor(channels, cross_attention_dim, self._image_tokens))

    def image_tokens(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """CLIP image embeddings (batch, image_embedding_dim) -> (batch, num_image_tokens, context)."""
        tokens = self.image_proj(image_embeds.reshape(image_embeds.shape[0], -1))
        tokens = tokens.reshape(image_embeds.shape[0], self.config.num_image_tokens, self.config.cross_attention_dim)
        return self.image_norm(tokens)

    def forward(  # type: ignore[override]
        self,
        sample: torch.Tensor,
        timestep: Any,
        context: torch.Tensor,
        context_mask: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
        image_weight: float = 1.0,
        return_dict: bool = True,
    ) -> Kandinsky3UNetOutput | tuple[torch.Tensor]:
        """``context``: the projected text context (zeros with a zero mask for none);
        ``image_embeds``: CLIP image embeddings, one per sample; ``image_weight`` scales the image
        attention's output before it is added to the text attention's."""
        state = self._image_tokens
        state.tokens = None if image_embeds is None else self.image_tokens(image_embeds.to(sample.dtype))
        state.weight = float(image_weight)
        try:
            out = _unet_forward(self, sample, timestep, context, context_mask)
        finally:
            state.tokens = None
        return Kandinsky3UNetOutput(sample=out) if return_dict else (out,)


class HintEncoder(nn.Module):
    """The ControlNet's hint stem: eight 3x3 convs with SiLU, three of them strided (8x down)."""

    def __init__(self, hint_channels: int, out_channels: int) -> None:
        super().__init__()
        widths = [(hint_channels, 16, 1), (16, 16, 1), (16, 32, 2), (32, 32, 1), (32, 96, 2), (96, 96, 1), (96, 256, 2)]
        for i, (cin, cout, stride) in enumerate(widths, start=1):
            self.add_module(f"conv{i}", nn.Conv2d(cin, cout, 3, padding=1, stride=stride))
        self.out = nn.Conv2d(256, out_channels, 3, padding=1)
        self._count = len(widths)

    def forward(self, hint: torch.Tensor) -> torch.Tensor:
        x = hint
        for i in range(1, self._count + 1):
            x = F.silu(getattr(self, f"conv{i}")(x))
        return self.out(x)


class Kandinsky3ControlNet(ModelMixin, ConfigMixin):
    """The HED ControlNet: the Kandinsky 3 encoder plus a hint stem; one residual per skip connection."""

    @register_to_config
    def __init__(
        self,
        in_channels: int = 4,
        time_embedding_dim: int = 1536,
        groups: int = 32,
        attention_head_dim: int = 64,
        layers_per_block: int = 3,
        block_out_channels: tuple[int, ...] = (384, 768, 1536, 3072),
        cross_attention_dim: int = 4096,
        encoder_hid_dim: int = 4096,  # unused (the context comes projected); kept so UNet configs fit
        hint_channels: int = 3,
    ) -> None:
        super().__init__()
        init_channels = block_out_channels[0] // 2
        self.time_proj = Timesteps(init_channels, flip_sin_to_cos=False, downscale_freq_shift=1)
        self.time_embedding = TimestepEmbedding(init_channels, time_embedding_dim)
        self.add_time_condition = Kandinsky3AttentionPooling(time_embedding_dim, cross_attention_dim, attention_head_dim)
        self.conv_in = nn.Conv2d(in_channels, init_channels, kernel_size=3, padding=1)
        self.input_hint_block = HintEncoder(hint_channels, init_channels)
        dims = [init_channels, *block_out_channels]
        self.down_blocks = nn.ModuleList()
        self.zero_convs = nn.ModuleList()
        # One level per skip connection of the UNet: all levels but the deepest.
        for level in range(len(block_out_channels) - 1):
            self.down_blocks.append(
                Kandinsky3DownSampleBlock(
                    dims[level], dims[level + 1], time_embedding_dim,
                    cross_attention_dim if _CROSS_ATTENTION[level] else None,
                    layers_per_block, groups, attention_head_dim, _FIXED["expansion_ratio"],
                    _FIXED["compression_ratio"], True, _CROSS_ATTENTION[level],
                )
            )
            self.zero_convs.append(nn.Conv2d(dims[level + 1], dims[level + 1], 1))

    def forward(self, sample: torch.Tensor, timestep: Any, context: torch.Tensor,
                context_mask: torch.Tensor | None, hint: torch.Tensor) -> list[torch.Tensor]:
        mask = _additive_mask(context_mask, sample.dtype)
        time_embed = _time_embedding(self, sample, timestep, context, mask)
        x = self.conv_in(sample) + self.input_hint_block(hint.to(sample.dtype))
        residuals = []
        for block, zero_conv in zip(self.down_blocks, self.zero_convs, strict=True):
            # The 1x1 conv's output is both the residual and the next level's input (the authors'
            # forward does so and the weights were trained that way).
            x = zero_conv(block(x, time_embed, context, mask))
            residuals.append(x)
        return residuals


# -- loading -----------------------------------------------------------------------------------


def _read_state(folder: Path) -> dict[str, torch.Tensor]:
    """All weights of one component folder: a single file, or the shards an index names."""
    from diffusers.models.model_loading_utils import load_state_dict

    for index_name in ("diffusion_pytorch_model.safetensors.index.json", "diffusion_pytorch_model.bin.index.json"):
        index = folder / index_name
        if index.is_file():
            state: dict[str, torch.Tensor] = {}
            for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
                state.update(load_state_dict(str(folder / shard)))
            return state
    for name in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
                 "diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin"):
        if (folder / name).is_file():
            return load_state_dict(str(folder / name))
    raise FileNotFoundError(f"no weights in {folder}")


def component_folder(source: str, subfolder: str) -> Path:
    """A component folder of a local checkpoint, or of the hub repository (downloaded and cached)."""
    if os.path.isdir(source):
        folder = Path(source) / subfolder
    else:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(source, allow_patterns=[f"{subfolder}/*"])) / subfolder
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder}/config.json")
    return folder


def build(cls: type, config: Mapping[str, Any], state: Mapping[str, torch.Tensor],
          dtype: torch.dtype = torch.float32) -> Any:
    """``cls`` from a config, with the converted authors' weights loaded strictly."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = cls.from_config(dict(config))
    model.load_state_dict(convert_state_dict(state), strict=True, assign=True)
    return (model if dtype == torch.float32 else model.to(dtype)).eval()


def load_from_authors(cls: type, source: str, subfolder: str, dtype: torch.dtype = torch.float32,
                      **extra_config: Any) -> Any:
    """One of this module's models from ai-forever's component folder (``config.json`` + weights)."""
    folder = component_folder(source, subfolder)
    authors = json.loads((folder / "config.json").read_text())
    config = unet_config_from_kandi3(authors)
    if cls is Kandinsky3IPAdapterUNet:
        config.update(num_image_tokens=int(authors.get("num_image_tokens", 4)),
                      image_embedding_dim=int(authors.get("image_embedding_dim", 768)))
    elif cls is Kandinsky3ControlNet:
        config.update(hint_channels=int(authors.get("hint_channels", 3)))
    config.update(extra_config)
    log.info("loading %s from %s", cls.__name__, folder)
    return build(cls, config, _read_state(folder), dtype)


__all__ = [
    "HintEncoder",
    "IPAdapterAttnProcessor",
    "Kandinsky3ControlNet",
    "Kandinsky3ControlledUNet",
    "Kandinsky3IPAdapterUNet",
    "build",
    "convert_state_dict",
    "key_to_ours",
    "load_from_authors",
    "unet_config_from_kandi3",
]
