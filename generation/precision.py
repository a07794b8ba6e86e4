"""Numeric precision on the GPU: TF32 for fp32 matrix products, FP8 for the Kandinsky 3.1 UNets.

- **TF32** (on by default, ``TF32``): fp32 matmuls and convolutions on TF32 tensor cores. What runs in
  fp32 on a GPU here: Flan-UL2's feed-forward output layers (``wo``, kept in fp32 by transformers), the
  MoVQ decoder (run in fp32, as the authors do) and the samplers' arithmetic. TF32 keeps a 10-bit
  mantissa, as fp16 does, so it is no less precise than the fp16 layers around it.
- **FP8** (off by default, ``FP8_UNETS``; the ``[fp8]`` extra installs torchao): the linear layers of the
  UNets' attention blocks get FP8 (e4m3) weights with one scale per tensor, and their inputs are cast to
  FP8 on the fly (torchao's ``Float8DynamicActivationFloat8WeightConfig``), so the products run on the
  FP8 tensor cores of compute capability 8.9+ (L4, L40S, H100, H200). Elsewhere, or without torchao, a
  log line says why and the UNets stay in fp16/bf16. ``python -m benchmarks.gpu_check`` measures its
  speed and its PSNR against fp16 on fixed seeds.
"""

from __future__ import annotations

import logging
import re

import torch

log = logging.getLogger(__name__)

FP8_MIN_CAPABILITY = (8, 9)


def enable_tf32() -> None:
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def tf32_state() -> str:
    """How fp32 products run now, for logs and the benchmark's header."""
    matmul = "tf32" if torch.backends.cuda.matmul.allow_tf32 else "fp32"
    conv = "tf32" if torch.backends.cudnn.allow_tf32 else "fp32"
    return f"fp32 matmul {matmul}, fp32 conv {conv}"


def fp8_unavailable(device: str) -> str | None:
    """Why FP8 UNets cannot run on ``device``; None when they can."""
    if not device.startswith("cuda") or not torch.cuda.is_available():
        return "no CUDA GPU"
    major, minor = torch.cuda.get_device_capability(torch.device(device))
    if (major, minor) < FP8_MIN_CAPABILITY:
        name = torch.cuda.get_device_name(torch.device(device))
        return f"{name} has compute capability {major}.{minor}; FP8 needs 8.9 or newer"
    try:
        import torchao.quantization  # noqa: F401
    except ImportError:
        return "torchao is not installed (pip install '.[fp8]')"
    return None


_ATTENTION_PROJECTION = re.compile(r"(^|\.)attention\.(to_q|to_k|to_v|to_out\.0)$")


def _attention_linear(module: torch.nn.Module, name: str) -> bool:
    """The projections of the attention blocks (queries, keys, values, output): the UNet's linear
    FLOPs. The text projection, the time embedding and the norms' time MLPs run once per call on
    one vector per image and stay as they are."""
    return isinstance(module, torch.nn.Linear) and bool(_ATTENTION_PROJECTION.search(name))


def quantize_fp8(unet: torch.nn.Module, device: str, label: str = "UNet") -> bool:
    """FP8 weights and matmuls for ``unet``'s attention layers, in place, on ``device``; False (and a
    warning naming the reason) where FP8 cannot run, leaving ``unet`` unchanged."""
    reason = fp8_unavailable(device)
    if reason is not None:
        log.warning("FP8_UNETS is on but %s stays in %s: %s", label, next(unet.parameters()).dtype, reason)
        return False
    from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, quantize_

    layers = sum(1 for name, module in unet.named_modules() if _attention_linear(module, name))
    quantize_(unet, Float8DynamicActivationFloat8WeightConfig(), filter_fn=_attention_linear, device=device)
    log.info("%s: %d attention layers in FP8 (e4m3, per-tensor scales) on %s", label, layers,
             torch.cuda.get_device_name(torch.device(device)))
    return True
