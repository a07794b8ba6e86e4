"""Peak GPU memory of the upscaler at full size, counted without a GPU.

    python -m benchmarks.superres_memory              # fp16, the published architectures
    python -m benchmarks.superres_memory --dtype bf16

The published networks (KandiSuperRes' SR UNet as in ``get_sr_model``, the Kandinsky 3.1 Flash UNet of
``generation/configs/kandinsky3_unet.json``, the MoVQ of ``kandinsky3_movq.json`` in fp32 as the bot
loads it) are built on PyTorch's ``meta`` device, where tensors have shapes and dtypes but no data,
and run through the project's own ``KandiSuperResPipeline``. A ``TorchDispatchMode`` sees every
operator: each new (non-aliasing) output adds its bytes to a live total and a ``weakref`` finaliser
takes them off when Python frees it; the peak of that total is the activations' peak, to which the
weights resident at the time are added. Scaled dot-product attention is counted as the fused CUDA
kernels run it (flash / memory-efficient, what ``AttnProcessor2_0`` gets on a GPU): its output only,
never the (tokens x tokens) score matrix. Not counted: the CUDA context (about 0.5 GB), cuDNN
workspaces and the caching allocator's fragmentation; the table therefore adds a 20 % margin.
Prints one line per unit (one SR window, one refiner tile, one MoVQ tile) and per whole run.
"""

from __future__ import annotations

import argparse
import json
import weakref
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from generation import superres

GB = 1024**3
CONFIGS = Path(__file__).resolve().parents[1] / "generation" / "configs"
SR_PUBLISHED = dict(init_channels=128, model_channels=128, time_embed_dim=512, dim_mult=(1, 2, 4, 8), num_resnet_blocks=(2, 4, 8, 8))
MARGIN = 1.2
CUDA_CONTEXT_GB = 0.5


class PeakMemory(TorchDispatchMode):
    """Live and peak bytes of the tensors operators create on the meta device."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0

    def _free(self, nbytes: int) -> None:
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        returns = func._schema.returns
        for i, t in enumerate(tree_flatten(out)[0]):
            if not isinstance(t, torch.Tensor) or t.device.type != "meta":
                continue
            if i < len(returns) and returns[i].alias_info is not None:
                continue  # a view or an in-place result: no new memory
            nbytes = t.numel() * t.element_size()
            self.live += nbytes
            self.peak = max(self.peak, self.live)
            weakref.finalize(t, self._free, nbytes)
        return out


def _fused_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kwargs):
    # The fused kernels' output; their (tokens x tokens) scores are never materialised.
    return query.new_empty(*query.shape[:-1], value.shape[-1])


@contextmanager
def counted():
    original = F.scaled_dot_product_attention
    F.scaled_dot_product_attention = _fused_attention
    mode = PeakMemory()
    try:
        with torch.no_grad(), mode:
            yield mode
    finally:
        F.scaled_dot_product_attention = original


def build(dtype: torch.dtype):
    from diffusers import Kandinsky3UNet, VQModel
    from diffusers.models.attention_processor import AttnProcessor2_0

    def config(name: str) -> dict:
        return {k: v for k, v in json.loads((CONFIGS / name).read_text()).items() if not k.startswith("_")}

    previous = torch.get_default_dtype()
    try:
        with torch.device("meta"):
            torch.set_default_dtype(dtype)
            sr = superres.SuperResUNet(**SR_PUBLISHED).eval()
            refiner = Kandinsky3UNet.from_config(config("kandinsky3_unet.json")).eval()
            refiner.set_attn_processor(AttnProcessor2_0())
            torch.set_default_dtype(torch.float32)  # the bot's MoVQ is fp32, as the authors run it
            movq = VQModel.from_config(config("kandinsky3_movq.json")).eval()
    finally:
        torch.set_default_dtype(previous)
    return sr, refiner, movq


def weights_gb(module: torch.nn.Module) -> float:
    return sum(p.numel() * p.element_size() for p in module.parameters()) / GB


def units(sr, refiner, movq, dtype: torch.dtype) -> list[tuple[str, float]]:
    meta = dict(device="meta", dtype=dtype)
    rows = []
    for batch in (1, 4):
        with counted() as m:
            x = torch.empty(batch, 3, superres.WINDOW, superres.WINDOW, **meta)
            sr(x, torch.tensor(500.0, **meta), x)
        rows.append((f"SR UNet, {batch} window(s) of {superres.WINDOW} px", m.peak / GB))
    with counted() as m:
        z = torch.empty(1, 4, superres.REFINE_TILE, superres.REFINE_TILE, **meta)
        context = torch.empty(1, 128, refiner.config.cross_attention_dim, **meta)
        mask = torch.ones(1, 128, device="meta", dtype=torch.bool)
        with superres.projected_context(refiner):
            refiner(z, torch.full((1,), 229, device="meta"), encoder_hidden_states=context, encoder_attention_mask=mask)
    rows.append((f"Flash refiner UNet, one {superres.REFINE_TILE}x{superres.REFINE_TILE} latent tile", m.peak / GB))
    with counted() as m:
        movq.encode(torch.empty(1, 3, superres.MOVQ_TILE, superres.MOVQ_TILE, device="meta"))
    rows.append((f"MoVQ encode, one {superres.MOVQ_TILE} px tile (fp32)", m.peak / GB))
    tile = superres.MOVQ_TILE // superres.MOVQ_FACTOR
    with counted() as m:
        movq.decode(torch.empty(1, 4, tile, tile, device="meta"), force_not_quantize=True)
    rows.append((f"MoVQ decode, one {tile} latent px tile (fp32)", m.peak / GB))
    return rows


def whole_run(sr, refiner, movq, side: int, scale: int, view_batch_size: int) -> float:
    from generation.k31 import Kandinsky3AuthorsScheduler

    flash = scale == 2
    scheduler = superres.KandiSuperResPipeline.flash_scheduler() if flash else superres.KandiSuperResPipeline.x4_scheduler()
    set_timesteps = scheduler.set_timesteps
    # The timesteps stay readable (the loop reads them as ints; meta tensors have no values).
    scheduler.set_timesteps = lambda steps, device=None: set_timesteps(steps, device="cpu")
    extra = {}
    if flash:
        context = (torch.empty(1, 128, refiner.config.cross_attention_dim), torch.zeros(1, 128, dtype=torch.bool))
        extra = dict(refiner=refiner, movq=movq, refiner_scheduler=Kandinsky3AuthorsScheduler(), context=context)
    pipe = superres.KandiSuperResPipeline(sr, scheduler, **extra)
    pipe.set_progress_bar_config(disable=True)
    image = Image.new("RGB", (side // scale, side // scale))
    with counted() as m:
        pipe(image, scale=scale, flash=flash, view_batch_size=view_batch_size, output_type="pt")
    return m.peak / GB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="fp16", choices=["fp16", "bf16"])
    parser.add_argument("--side", type=int, default=4096, help="output side of the whole runs")
    args = parser.parse_args(argv)
    dtype = torch.float16 if args.dtype == "fp16" else torch.bfloat16
    sr, refiner, movq = build(dtype)
    w = {"SR UNet": weights_gb(sr), "Flash UNet": weights_gb(refiner), "MoVQ (fp32)": weights_gb(movq)}
    print(f"# {args.dtype}; weights GB: " + ", ".join(f"{k} {v:.2f}" for k, v in w.items()))
    print(f"{'unit':58} {'activations GB':>15}")
    for name, peak in units(sr, refiner, movq, dtype):
        print(f"{name:58} {peak:15.2f}")
    print(f"{'whole run':58} {'activations GB':>15} {'+ weights GB':>13} {'x1.2 + context':>15}")
    for scale in (4, 2):
        for batch in (4, 1):
            peak = whole_run(sr, refiner, movq, args.side, scale, batch)
            weights = w["SR UNet"] + (w["Flash UNet"] + w["MoVQ (fp32)"] if scale == 2 else 0)
            total = (peak + weights) * MARGIN + CUDA_CONTEXT_GB
            name = f"x{scale} to {args.side} px, view_batch_size {batch}" + (" (+ refinement)" if scale == 2 else "")
            print(f"{name:58} {peak:15.2f} {peak + weights:13.2f} {total:15.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
