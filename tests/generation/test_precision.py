"""FP8_UNETS falls back with a clear log line where FP8 cannot run; TF32 is set on CUDA (generation.precision).

The FP8 path itself needs a GPU of compute capability 8.9+ and torchao: ``python -m benchmarks.gpu_check``
measures it there (speed and PSNR against fp16). Here: who may use it, and that nothing changes elsewhere.
"""

from __future__ import annotations

import dataclasses
import logging
import sys

import pytest
import torch

from generation import precision
from generation.backend import ModelId


def test_no_fp8_without_a_gpu():
    assert precision.fp8_unavailable("cpu") == "no CUDA GPU"


@pytest.mark.parametrize(
    ("capability", "torchao", "expected"),
    [
        ((8, 6), True, "compute capability 8.6; FP8 needs 8.9"),  # A100 / RTX 30xx: no FP8 tensor cores
        ((8, 9), False, "torchao is not installed"),
        ((9, 0), True, None),  # H100 / H200 with torchao
    ],
)
def test_fp8_needs_compute_capability_8_9_and_torchao(monkeypatch, capability, torchao, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "a GPU")
    if torchao:
        fake = type(sys)("torchao")
        fake.quantization = type(sys)("torchao.quantization")
        monkeypatch.setitem(sys.modules, "torchao", fake)
        monkeypatch.setitem(sys.modules, "torchao.quantization", fake.quantization)
    else:
        monkeypatch.setitem(sys.modules, "torchao", None)  # import fails
        monkeypatch.setitem(sys.modules, "torchao.quantization", None)
    reason = precision.fp8_unavailable("cuda")
    assert reason is None if expected is None else expected in reason


def test_fp8_setting_on_cpu_logs_and_keeps_the_unets(tiny_config, caplog):
    from generation.manager import ModelManager

    config = dataclasses.replace(tiny_config, fp8_unets=True)
    with caplog.at_level(logging.WARNING, logger="generation.precision"):
        pipes = ModelManager(config).k3_pipelines(ModelId.K31_FLASH)
    assert any("FP8_UNETS is on but" in r.getMessage() and "no CUDA GPU" in r.getMessage() for r in caplog.records)
    linear = pipes.flash.unet.add_time_condition.attention.to_q
    assert type(linear.weight) is torch.nn.Parameter and linear.weight.dtype == torch.float32


def test_fp8_takes_the_attention_projections_only(tiny_config):
    from generation.manager import ModelManager

    unet = ModelManager(tiny_config).k3_pipelines(ModelId.K31_FLASH).flash.unet
    chosen = {name for name, module in unet.named_modules() if precision._attention_linear(module, name)}
    assert chosen and all(name.rsplit(".", 1)[-1] in ("to_q", "to_k", "to_v", "0") for name in chosen)
    blocks = [n for n, m in unet.named_modules() if n.endswith(".attention") and hasattr(m, "to_q")]
    assert len(chosen) == 4 * len(blocks)  # every attention block's four projections
    assert "add_time_condition.attention.to_q" in chosen  # the text pooling is an attention too
    assert not any(name.startswith(("encoder_hid_proj", "time_embedding")) for name in chosen)


def test_tf32_switch():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        precision.enable_tf32()
        assert precision.tf32_state() == "fp32 matmul tf32, fp32 conv tf32"
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
