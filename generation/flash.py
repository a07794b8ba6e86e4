"""Kandinsky 3.1 Flash: ai-forever's own checkpoint format <-> a diffusers ``Kandinsky3UNet``.

ai-forever publishes the distilled 4-step UNet as ``weights/kandinsky3_flash.pt`` in
``ai-forever/Kandinsky3.1`` (a dict ``{"unet": state_dict, "null_embedding": tensor}``) and its text
projection as ``projection_flash.pt`` (an ``nn.Sequential(Linear, LayerNorm)`` state dict, kept next to
the Flan-UL2 encoder in ``weights/flan_ul2_encoder/``). The UNet is the Kandinsky 3 architecture, so it
converts into a diffusers ``Kandinsky3UNet`` with the key mapping diffusers used for Kandinsky 3
(``scripts/convert_kandinsky3_unet.py``); the projection becomes the UNet's ``encoder_hid_proj``.
``null_embedding`` is the unconditional context of classifier-free guidance, which Flash does not use.

The converted UNet is saved once in diffusers format under ``cache_dir`` and loaded from there with
``Kandinsky3UNet.from_pretrained`` afterwards.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch

log = logging.getLogger(__name__)

FLASH_UNET_FILE = "weights/kandinsky3_flash.pt"
# The real repository keeps the projections next to the encoder (ai-forever's get_T5encoder joins the
# encoder folder and "projection_flash.pt"); a flat weights/ copy is accepted too.
FLASH_PROJECTION_FILES = ("weights/flan_ul2_encoder/projection_flash.pt", "weights/projection_flash.pt")

# Whole dotted-name segments, ai-forever -> diffusers (diffusers' MAPPING, applied segment-wise so that
# the inverse is exact).
_RENAMES: tuple[tuple[str, str], ...] = (
    ("to_time_embed.1", "time_embedding.linear_1"),
    ("to_time_embed.3", "time_embedding.linear_2"),
    ("in_layer", "conv_in"),
    ("out_layer.0", "conv_norm_out"),
    ("out_layer.2", "conv_out"),
    ("down_samples", "down_blocks"),
    ("up_samples", "up_blocks"),
    ("feature_pooling", "add_time_condition"),
    ("to_query", "to_q"),
    ("to_key", "to_k"),
    ("to_value", "to_v"),
    ("output_layer", "to_out.0"),
    ("self_attention_block", "attentions.0"),
)
# The projection file's own keys -> the UNet's encoder_hid_proj.
_PROJECTION_KEYS = {
    "0.weight": "encoder_hid_proj.projection_linear.weight",
    "1.weight": "encoder_hid_proj.projection_norm.weight",
    "1.bias": "encoder_hid_proj.projection_norm.bias",
}


def _rename(key: str, old: str, new: str) -> str:
    return re.sub(rf"(^|\.){re.escape(old)}(?=\.|$)", lambda m: m.group(1) + new, key)


def unet_key_to_diffusers(key: str) -> str:
    """One ai-forever UNet key -> the diffusers ``Kandinsky3UNet`` key."""
    # resnet_attn_blocks.i.{0,1,2} -> resnets_in.i / attentions.(i+1) / resnets_out.i
    def block(m: re.Match[str]) -> str:
        i, j = int(m.group(1)), int(m.group(2))
        return ("resnets_in.%d", "attentions.%d", "resnets_out.%d")[j] % (i + (j == 1))

    key = re.sub(r"resnet_attn_blocks\.(\d+)\.([012])(?=\.)", block, key)
    for old, new in _RENAMES:
        key = _rename(key, old, new)
    return key


def unet_key_to_ai_forever(key: str) -> str:
    """The inverse of :func:`unet_key_to_diffusers`."""
    for old, new in reversed(_RENAMES):
        key = _rename(key, new, old)

    def block(m: re.Match[str]) -> str:
        kind, i = m.group(1), int(m.group(2))
        if kind == "resnets_in":
            return f"resnet_attn_blocks.{i}.0"
        if kind == "attentions":
            return f"resnet_attn_blocks.{i - 1}.1"
        return f"resnet_attn_blocks.{i}.2"

    return re.sub(r"\b(resnets_in|attentions|resnets_out)\.(\d+)(?=\.)", block, key)


def to_diffusers(
    unet_state: Mapping[str, torch.Tensor], projection_state: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """ai-forever UNet + projection state dicts -> one diffusers ``Kandinsky3UNet`` state dict."""
    out: dict[str, torch.Tensor] = {}
    for key, value in unet_state.items():
        new = unet_key_to_diffusers(key)
        if new in out:
            raise ValueError(f"two source keys map to {new}")
        out[new] = value
    unknown = set(projection_state) - set(_PROJECTION_KEYS)
    if unknown:
        raise ValueError(f"unexpected projection keys: {sorted(unknown)}")
    for key, value in projection_state.items():
        out[_PROJECTION_KEYS[key]] = value
    return out


def to_ai_forever(
    state: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A diffusers ``Kandinsky3UNet`` state dict -> (ai-forever UNet state, projection state)."""
    inverse_projection = {v: k for k, v in _PROJECTION_KEYS.items()}
    unet: dict[str, torch.Tensor] = {}
    projection: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key in inverse_projection:
            projection[inverse_projection[key]] = value
        else:
            unet[unet_key_to_ai_forever(key)] = value
    return unet, projection


def fetch(source: str, filename: str) -> str:
    """A file of a checkpoint: inside a local folder, or downloaded from the hub (cached by huggingface_hub)."""
    if os.path.isdir(source):
        path = os.path.join(source, filename)
        if not os.path.isfile(path):
            raise FileNotFoundError(path)
        return path
    from huggingface_hub import hf_hub_download

    return hf_hub_download(repo_id=source, filename=filename)


def _fetch_first(source: str, filenames: tuple[str, ...]) -> str:
    errors = []
    for name in filenames:
        try:
            return fetch(source, name)
        except Exception as exc:  # noqa: BLE001 - the next candidate may exist
            errors.append(f"{name}: {exc}")
    raise FileNotFoundError(f"none of {filenames} in {source} ({'; '.join(errors)})")


def _load_pt(path: str) -> dict:
    # weights_only: the files are plain dicts of tensors; mmap keeps the 12 GB UNet out of RAM twice.
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
        # Files in torch's legacy (pre-zip) format cannot be memory-mapped.
        return torch.load(path, map_location="cpu", weights_only=True)


def convert(unet_file: str, projection_file: str, unet_config: dict, out_dir: Path) -> Path:
    """Convert ai-forever's Flash files into a diffusers folder (``out_dir``/unet) and return it."""
    from accelerate import init_empty_weights
    from diffusers import Kandinsky3UNet

    checkpoint = _load_pt(unet_file)
    unet_state = checkpoint["unet"] if "unet" in checkpoint else checkpoint
    state = to_diffusers(unet_state, _load_pt(projection_file))
    with init_empty_weights():
        unet = Kandinsky3UNet.from_config(unet_config)
    # strict: every weight of the source lands in the UNet and the UNet misses none.
    unet.load_state_dict(state, strict=True, assign=True)
    target = out_dir / "unet"
    tmp = out_dir / "unet.partial"
    unet.save_pretrained(tmp, safe_serialization=True)
    if target.exists():
        import shutil

        shutil.rmtree(target)
    tmp.rename(target)
    return target


def _cache_key(source: str, unet_file: str, projection_file: str) -> str:
    stats = [source] + [f"{os.path.getsize(p)}:{int(os.path.getmtime(p))}" for p in (unet_file, projection_file)]
    return hashlib.sha256("|".join(stats).encode()).hexdigest()[:16]


def converted_unet_dir(source: str, unet_config: dict, cache_dir: Path) -> Path:
    """The diffusers folder of the Flash UNet of ``source``, converting it on first use."""
    unet_file = fetch(source, FLASH_UNET_FILE)
    projection_file = _fetch_first(source, FLASH_PROJECTION_FILES)
    key = _cache_key(source, unet_file, projection_file)
    out_dir = Path(cache_dir) / f"kandinsky3.1-flash-{key}"
    target = out_dir / "unet"
    if (target / "config.json").is_file():
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    log.info("Converting Kandinsky 3.1 Flash from %s into %s", source, out_dir)
    convert(unet_file, projection_file, unet_config, out_dir)
    (out_dir / "source.json").write_text(json.dumps({"source": source, "unet": unet_file}))
    return target
