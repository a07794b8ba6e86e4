"""ai-forever's Kandinsky 3.1 files -> diffusers modules: one strict, cached converter for every UNet.

``ai-forever/Kandinsky3.1`` publishes its weights in the authors' own format (read by their
``kandinsky3/__init__.py``):

- ``weights/kandinsky3.pt`` (the base model) and ``weights/kandinsky3_flash.pt`` (the distilled 4-step
  model): each a dict ``{"unet": state_dict, "null_embedding": tensor}`` of the same UNet architecture;
- ``weights/flan_ul2_encoder/``: the Flan-UL2 encoder and its tokenizer (a transformers folder) and one
  text projection per UNet (``projection.pt``, ``projection_flash.pt``: ``nn.Sequential(Linear,
  LayerNorm)`` state dicts);
- ``weights/movq.pt``: the MoVQ image autoencoder (encoder, quant_conv, post_quant_conv, decoder; no
  codebook: Kandinsky 3 decodes latents without quantising them).

A UNet converts into diffusers' ``Kandinsky3UNet`` (the architecture diffusers ported from the same
code; key names as in diffusers' ``scripts/convert_kandinsky3_unet.py``) with its projection as the
UNet's ``encoder_hid_proj``; ``null_embedding`` is kept next to it. The MoVQ converts into diffusers'
``VQModel`` with ``norm_type="spatial"``. Loading is strict: every source tensor must land in the
target and the target must miss none (the MoVQ's unused codebook is the only target tensor with no
source, and it is zero-filled). Converted folders are saved once, in the serving dtype, under
``cache_dir`` and read with ``from_pretrained`` afterwards.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

import torch

log = logging.getLogger(__name__)

# which UNet -> (its checkpoint, its projection next to the encoder)
UNET_FILES: dict[str, tuple[str, str]] = {
    "base": ("weights/kandinsky3.pt", "weights/flan_ul2_encoder/projection.pt"),
    "flash": ("weights/kandinsky3_flash.pt", "weights/flan_ul2_encoder/projection_flash.pt"),
}
ENCODER_FOLDER = "weights/flan_ul2_encoder"
MOVQ_FILE = "weights/movq.pt"
NULL_EMBEDDING_FILE = "null_embedding.safetensors"
# A local copy may carry the diffusers config of a differently sized UNet / MoVQ (the tiny test models do);
# without it the full-size configs in generation/configs/ apply.
UNET_CONFIG_FILE = "weights/unet_config.json"
MOVQ_CONFIG_FILE = "weights/movq_config.json"
CONFIGS = Path(__file__).with_name("configs")

# -- UNet keys -------------------------------------------------------------------------------------
# Whole dotted-name segments, authors -> diffusers.
_UNET_RENAMES: tuple[tuple[str, str], ...] = (
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
    """One authors' UNet key -> the diffusers ``Kandinsky3UNet`` key."""

    # resnet_attn_blocks.i.{0,1,2} -> resnets_in.i / attentions.(i+1) / resnets_out.i
    def block(m: re.Match[str]) -> str:
        i, j = int(m.group(1)), int(m.group(2))
        return ("resnets_in.%d", "attentions.%d", "resnets_out.%d")[j] % (i + (j == 1))

    key = re.sub(r"resnet_attn_blocks\.(\d+)\.([012])(?=\.)", block, key)
    for old, new in _UNET_RENAMES:
        key = _rename(key, old, new)
    return key


def unet_key_to_ai_forever(key: str) -> str:
    """The inverse of :func:`unet_key_to_diffusers` (the tiny test checkpoints are written with it)."""
    for old, new in reversed(_UNET_RENAMES):
        key = _rename(key, new, old)

    def block(m: re.Match[str]) -> str:
        kind, i = m.group(1), int(m.group(2))
        if kind == "resnets_in":
            return f"resnet_attn_blocks.{i}.0"
        if kind == "attentions":
            return f"resnet_attn_blocks.{i - 1}.1"
        return f"resnet_attn_blocks.{i}.2"

    return re.sub(r"\b(resnets_in|attentions|resnets_out)\.(\d+)(?=\.)", block, key)


def unet_to_diffusers(
    unet_state: Mapping[str, torch.Tensor], projection_state: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Authors' UNet + projection state dicts -> one diffusers ``Kandinsky3UNet`` state dict."""
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


def unet_to_ai_forever(
    state: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A diffusers ``Kandinsky3UNet`` state dict -> (authors' UNet state, projection state)."""
    inverse_projection = {v: k for k, v in _PROJECTION_KEYS.items()}
    unet: dict[str, torch.Tensor] = {}
    projection: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key in inverse_projection:
            projection[inverse_projection[key]] = value
        else:
            unet[unet_key_to_ai_forever(key)] = value
    return unet, projection


# -- MoVQ keys -------------------------------------------------------------------------------------
# The authors' attention blocks use 1x1 convolutions where diffusers' Attention uses Linear layers.
_ATTENTION_PROJECTIONS = {"q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}
_ATTENTION_LINEAR = re.compile(r"\.attentions\.\d+\.(to_q|to_k|to_v|to_out\.0)\.weight$")


def movq_key_to_diffusers(key: str, num_levels: int) -> str:
    """One authors' MoVQ key -> the diffusers ``VQModel`` key (``num_levels``: len(block_out_channels))."""
    side, _, rest = key.partition(".")
    if side not in ("encoder", "decoder"):
        return key  # quant_conv, post_quant_conv
    spatial = side == "decoder"  # the decoder's norms are SpatialNorm(norm_layer, conv_y, conv_b)
    rest = re.sub(r"^mid\.block_([12])\.", lambda m: f"mid_block.resnets.{int(m.group(1)) - 1}.", rest)
    rest = re.sub(r"^mid\.attn_1\.", "mid_block.attentions.0.", rest)
    rest = re.sub(r"^down\.(\d+)\.block\.", r"down_blocks.\1.resnets.", rest)
    rest = re.sub(r"^down\.(\d+)\.attn\.", r"down_blocks.\1.attentions.", rest)
    rest = re.sub(r"^down\.(\d+)\.downsample\.", r"down_blocks.\1.downsamplers.0.", rest)
    # The authors index up levels from the full resolution, diffusers from the lowest one.
    up = re.match(r"^up\.(\d+)\.(block|attn|upsample)\.", rest)
    if up:
        kind = {"block": "resnets.", "attn": "attentions.", "upsample": "upsamplers.0."}[up.group(2)]
        rest = f"up_blocks.{num_levels - 1 - int(up.group(1))}.{kind}" + rest[up.end():]
    rest = re.sub(r"^norm_out\.", "conv_norm_out.", rest)
    rest = rest.replace(".nin_shortcut.", ".conv_shortcut.")
    if ".attentions." in rest:
        head, _, tail = rest.partition(".attentions.")
        index, _, name = tail.partition(".")
        if name.startswith("norm."):
            name = ("spatial_norm." if spatial else "group_norm.") + name[len("norm."):]
            if not spatial:
                name = name.replace("group_norm.norm_layer.", "group_norm.")
        else:
            layer, _, param = name.partition(".")
            name = f"{_ATTENTION_PROJECTIONS[layer]}.{param}"
        rest = f"{head}.attentions.{index}.{name}"
    if not spatial:  # the encoder's norms are plain GroupNorms
        rest = rest.replace(".norm_layer.", ".")
    return f"{side}.{rest}"


def movq_to_diffusers(state: Mapping[str, torch.Tensor], num_levels: int) -> dict[str, torch.Tensor]:
    """Authors' MoVQ state dict -> diffusers ``VQModel`` state dict (attention 1x1 convs become Linear)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = movq_key_to_diffusers(key, num_levels)
        if new in out:
            raise ValueError(f"two source keys map to {new}")
        out[new] = value[:, :, 0, 0] if _ATTENTION_LINEAR.search(new) else value
    return out


def movq_to_ai_forever(state: Mapping[str, torch.Tensor], num_levels: int) -> dict[str, torch.Tensor]:
    """A diffusers ``VQModel`` state dict -> the authors' MoVQ layout (for the tiny test checkpoints).

    Built by searching the forward mapping over the candidate authors' names of each key, so the two
    directions cannot drift apart.
    """
    targets: dict[str, str] = {}
    for key in _movq_candidate_keys(state, num_levels):
        targets.setdefault(movq_key_to_diffusers(key, num_levels), key)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("quantize."):
            continue  # the authors' MoVQ has no codebook
        source = targets[key]
        out[source] = value[:, :, None, None] if _ATTENTION_LINEAR.search(key) else value
    return out


def _movq_candidate_keys(state: Mapping[str, torch.Tensor], num_levels: int) -> list[str]:
    names = []
    levels = range(num_levels)
    for side in ("encoder", "decoder"):
        spatial = ("norm_layer", "conv_y", "conv_b") if side == "decoder" else ("norm_layer",)
        resnet = [f"{n}.{p}" for n in ("conv1", "conv2", "nin_shortcut") for p in ("weight", "bias")]
        resnet += [f"{n}.{s}.{p}" for n in ("norm1", "norm2") for s in spatial for p in ("weight", "bias")]
        attention = [f"{n}.{p}" for n in _ATTENTION_PROJECTIONS for p in ("weight", "bias")]
        attention += [f"norm.{s}.{p}" for s in spatial for p in ("weight", "bias")]
        blocks = [f"mid.block_{i}" for i in (1, 2)]
        attentions = ["mid.attn_1"]
        for level in levels:
            group = "down" if side == "encoder" else "up"
            for j in range(4):
                blocks.append(f"{group}.{level}.block.{j}")
                attentions.append(f"{group}.{level}.attn.{j}")
            names += [f"{side}.{group}.{level}.{'downsample' if group == 'down' else 'upsample'}.conv.{p}" for p in ("weight", "bias")]
        names += [f"{side}.{b}.{r}" for b in blocks for r in resnet]
        names += [f"{side}.{a}.{r}" for a in attentions for r in attention]
        names += [f"{side}.{c}.{p}" for c in ("conv_in", "conv_out") for p in ("weight", "bias")]
        names += [f"{side}.norm_out.{s}.{p}" for s in spatial for p in ("weight", "bias")]
    names += [f"{c}.{p}" for c in ("quant_conv", "post_quant_conv") for p in ("weight", "bias")]
    return names


# -- files and the cache ---------------------------------------------------------------------------
def fetch(source: str, filename: str) -> str:
    """A file of a checkpoint: inside a local folder, or downloaded from the hub (cached by huggingface_hub)."""
    if os.path.isdir(source):
        path = os.path.join(source, filename)
        if not os.path.isfile(path):
            raise FileNotFoundError(path)
        return path
    from huggingface_hub import hf_hub_download

    return hf_hub_download(repo_id=source, filename=filename)


def load_pt(path: str) -> dict:
    # weights_only: the files are plain dicts of tensors; mmap keeps a 12 GB UNet out of RAM twice.
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
        # Files in torch's legacy (pre-zip) format cannot be memory-mapped.
        return torch.load(path, map_location="cpu", weights_only=True)


def local_config(source: str, filename: str, default: str) -> dict:
    """The diffusers config of a module: ``filename`` in a local copy if it has one, else ours."""
    if os.path.isdir(source) and os.path.isfile(os.path.join(source, filename)):
        return json.loads(Path(source, filename).read_text())
    return json.loads((CONFIGS / default).read_text())


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _cache_key(source: str, files: list[str], config: dict, dtype: torch.dtype) -> str:
    stats = [source, _dtype_name(dtype), json.dumps(config, sort_keys=True)]
    stats += [f"{os.path.getsize(p)}:{int(os.path.getmtime(p))}" for p in files]
    return hashlib.sha256("|".join(stats).encode()).hexdigest()[:16]


def _save_atomically(module: torch.nn.Module, target: Path) -> None:
    tmp = target.with_name(target.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    module.save_pretrained(tmp, safe_serialization=True)
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)


def convert_unet(unet_file: str, projection_file: str, config: dict, target: Path, dtype: torch.dtype) -> Path:
    """Authors' UNet + projection -> a diffusers ``Kandinsky3UNet`` folder (with null_embedding)."""
    from accelerate import init_empty_weights
    from diffusers import Kandinsky3UNet
    from safetensors.torch import save_file

    checkpoint = load_pt(unet_file)
    if "unet" not in checkpoint or "null_embedding" not in checkpoint:
        raise ValueError(f"{unet_file}: expected a dict with 'unet' and 'null_embedding', got {sorted(checkpoint)[:5]}")
    state = unet_to_diffusers(checkpoint["unet"], load_pt(projection_file))
    with init_empty_weights():
        unet = Kandinsky3UNet.from_config(config)
    # strict: every weight of the source lands in the UNet and the UNet misses none.
    unet.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=True, assign=True)
    _save_atomically(unet, target)
    null = checkpoint["null_embedding"].detach().to(dtype).contiguous()
    save_file({"null_embedding": null}, str(target / NULL_EMBEDDING_FILE))
    return target


def convert_movq(movq_file: str, config: dict, target: Path, dtype: torch.dtype) -> Path:
    """Authors' MoVQ -> a diffusers ``VQModel`` folder."""
    from accelerate import init_empty_weights
    from diffusers import VQModel

    with init_empty_weights():
        movq = VQModel.from_config(config)
    state = movq_to_diffusers(load_pt(movq_file), len(config["block_out_channels"]))
    codebook = "quantize.embedding.weight"
    if codebook in state:
        raise ValueError(f"{movq_file}: unexpected codebook")
    # Never read: the pipelines decode with force_not_quantize=True, as the authors' MoVQ has no codebook.
    state[codebook] = torch.zeros(movq.quantize.embedding.weight.shape)
    movq.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=True, assign=True)
    _save_atomically(movq, target)
    return target


def converted_unet_dir(source: str, which: str, cache_dir: Path, dtype: torch.dtype) -> Path:
    """The diffusers folder of the ``which`` ("base" / "flash") UNet of ``source``, converted on first use."""
    unet_name, projection_name = UNET_FILES[which]
    unet_file, projection_file = fetch(source, unet_name), fetch(source, projection_name)
    config = local_config(source, UNET_CONFIG_FILE, "kandinsky3_unet.json")
    key = _cache_key(source, [unet_file, projection_file], config, dtype)
    target = Path(cache_dir) / f"kandinsky3.1-{which}-{key}" / "unet"
    if (target / "config.json").is_file() and (target / NULL_EMBEDDING_FILE).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("Converting the Kandinsky 3.1 %s UNet from %s into %s (%s)", which, source, target, _dtype_name(dtype))
    convert_unet(unet_file, projection_file, config, target, dtype)
    (target.parent / "source.json").write_text(json.dumps({"source": source, "unet": unet_file}))
    return target


def converted_movq_dir(source: str, cache_dir: Path, dtype: torch.dtype) -> Path:
    """The diffusers folder of the MoVQ of ``source``, converted on first use."""
    movq_file = fetch(source, MOVQ_FILE)
    config = local_config(source, MOVQ_CONFIG_FILE, "kandinsky3_movq.json")
    key = _cache_key(source, [movq_file], config, dtype)
    target = Path(cache_dir) / f"kandinsky3.1-movq-{key}" / "movq"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("Converting the Kandinsky 3.1 MoVQ from %s into %s (%s)", source, target, _dtype_name(dtype))
    convert_movq(movq_file, config, target, dtype)
    return target
