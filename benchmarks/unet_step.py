"""One Kandinsky 3 UNet call, three ways: eager, eager in channels_last, and replayed as a CUDA graph.

    python -m benchmarks.unet_step                  # CUDA: the full-size UNet, fp16, 1024 px, 2 and 8 rows
    python -m benchmarks.unet_step --smoke          # CPU: the tiny test UNet (checks the command)

A denoising step of Kandinsky 3.1 is one such call (one image with classifier-free guidance is 2 rows,
four images 8). The table says whether the step waits for the CPU to launch kernels: the GPU's own busy
time (the kernels' time under PyTorch's profiler) against the call's wall time, and the same kernels
replayed as one CUDA graph, which launches them all at once. It also times channels_last, which the
model manager leaves off for these UNets (``generation.manager.channels_last_pays``). The ratios are
against the eager call in the same run. The UNet is the architecture of ``generation/configs/`` with
random weights; speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch

from benchmarks.pipelines import building, hardware, load_config, median_seconds
from generation.k31 import CONTEXT_ROWS


def build(smoke: bool, device: str, dtype: torch.dtype) -> tuple[torch.nn.Module, int]:
    """The UNet and its text width."""
    from diffusers import Kandinsky3UNet

    if smoke:
        from generation.tiny import TINY_K3_UNET

        config = dict(TINY_K3_UNET)
    else:
        config = load_config("kandinsky3_unet.json")
    with building(device, dtype):
        unet = Kandinsky3UNet.from_config(config).eval()
    return unet, config["encoder_hid_dim"]


def timed(call: Callable[[], object], device: str, repeats: int) -> float:
    """Median seconds of ``call`` after two warm-ups."""
    for _ in range(2):
        call()
    return median_seconds(call, device, repeats)


def kernel_seconds(call: Callable[[], object]) -> float:
    """The GPU's busy time in one ``call``: the sum of its kernels' own time under the profiler."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        call()
        torch.cuda.synchronize()
    return sum(event.self_device_time_total for event in prof.key_averages()) / 1e6


def graphed(step: Callable[[], object]) -> Callable[[], object]:
    """``step`` captured as a CUDA graph (its inputs are fixed tensors); the returned call replays it."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):  # cuDNN and cuBLAS pick their algorithms outside the capture
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def measure(unet: torch.nn.Module, text_width: int, rows: int, side: int, device: str, dtype: torch.dtype,
            repeats: int) -> dict:
    latent = side // 8  # MoVQ: one latent cell per 8x8 pixels
    generator = torch.Generator(device).manual_seed(rows)
    sample = torch.randn(rows, 4, latent, latent, device=device, dtype=dtype, generator=generator)
    text = torch.randn(rows, CONTEXT_ROWS, text_width, device=device, dtype=dtype, generator=generator)
    mask = torch.ones(rows, CONTEXT_ROWS, device=device, dtype=torch.long)
    timestep = torch.full((rows,), 500, device=device)

    def call(latents: torch.Tensor) -> object:
        with torch.no_grad():
            return unet(latents, timestep, encoder_hidden_states=text, encoder_attention_mask=mask)

    def step() -> object:
        return call(sample)

    cuda = device.startswith("cuda")
    row = {"rows": rows, "eager": timed(step, device, repeats)}
    row["busy"] = kernel_seconds(step) if cuda else None
    row["graph"] = timed(graphed(step), device, repeats) if cuda else None
    unet.to(memory_format=torch.channels_last)
    sample_cl = sample.to(memory_format=torch.channels_last)
    try:
        row["channels_last"] = timed(lambda: call(sample_cl), device, repeats)
    finally:
        unet.to(memory_format=torch.contiguous_format)
    return row


def table(rows: list[dict]) -> str:
    def ms(seconds: float | None, eager: float) -> str:
        return "n/a" if seconds is None else f"{seconds * 1000:.1f} ({eager / seconds:.2f}x)"

    lines = [
        "| rows | eager ms | GPU busy ms (share of eager) | channels_last ms (speed vs eager) | CUDA graph ms (speed vs eager) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        busy = "n/a" if r["busy"] is None else f"{r['busy'] * 1000:.1f} ({r['busy'] / r['eager']:.0%})"
        lines.append(f"| {r['rows']} | {r['eager'] * 1000:.1f} | {busy} | {ms(r['channels_last'], r['eager'])} | "
                     f"{ms(r['graph'], r['eager'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="the tiny test UNet on the CPU (checks the command)")
    parser.add_argument("--rows", default="2,8", help="rows per call: 2 = one image with guidance")
    parser.add_argument("--size", type=int, default=None, help="image side in pixels (1024 on CUDA, 64 in the smoke run)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtype", default="fp16", choices=["fp16", "bf16"])
    args = parser.parse_args(argv)

    smoke = args.smoke or not torch.cuda.is_available()
    device = "cpu" if smoke else "cuda"
    dtype = torch.float32 if smoke else {"fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    side = args.size or (64 if smoke else 1024)
    if smoke:
        torch.set_num_threads(1)  # a shared 2-core machine: OpenMP's spinning threads slow it down
    unet, text_width = build(smoke, device, dtype)
    print(f"# {'smoke run (tiny UNet)' if smoke else 'full-size Kandinsky 3 UNet'} on {device}, {dtype}, "
          f"{side}x{side}: {hardware(device)}")
    rows = [measure(unet, text_width, int(n), side, device, dtype, args.repeats) for n in args.rows.split(",")]
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
