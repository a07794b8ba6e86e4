"""One table of the Kandinsky 3 family's speed on the GPU: the check to run when a GPU is lent.

    python -m benchmarks.gpu_check                   # CUDA: full size, 1024x1024, fp16, batch 1 and 4
    python -m benchmarks.gpu_check --smoke           # CPU: the tiny test architectures, 64x64 (seconds)

It builds the full-size architectures from ``generation/configs/`` with random weights (speed does not
depend on the weights) through ``benchmarks.pipelines.build_backend``, so the figures include the
project's own code (prompt encoding, batched sampling, MoVQ decoding, PIL conversion). For Kandinsky
3.1, Flash and the refiner, at batch 1 and batch 4, it prints seconds per image, peak GPU memory,
the TFLOP one image takes (counted by ``torch.utils.flop_counter`` on one run, so convolutions,
matmuls and attention of every step and the decode are all in) and the TFLOP/s achieved, so the
distance to the hardware's peak shows (an H200 does about 990 dense fp16 TFLOP/s).

A second table compares batching across users (issue #16): ``--users`` requests of one image each,
different prompts and seeds, half with a negative prompt, run one at a time (``generate`` per request)
and as one batch (``generate_batch``), in images per second and as a ratio in the same run. The text
cache is emptied before each timed run, so both pay for encoding every prompt.

Then the FP8 check (:mod:`generation.precision`, ``FP8_UNETS``): the UNets' attention layers are
quantized to FP8 with torchao and Kandinsky 3.1 and Flash run again on fixed seeds; the table gives
seconds per image at batch 1 next to fp16's, the PSNR of the FP8 images against the fp16 images of
the same seeds, and the PSNR of the UNet's output at the first step, where both runs have the same
inputs (random weights: it measures how far FP8 arithmetic moves the output, not how good a picture
is; images decoded from NaN are marked, and the first step still compares). Without an FP8 GPU
(compute capability 8.9+) or torchao, that row says why it was skipped.
fp32 products (the encoder's fp32 layers, the MoVQ) run on TF32, as the worker runs them.

``--compile MODE`` compiles the UNets first, as ``TORCH_COMPILE=true TORCH_COMPILE_MODE=MODE`` does
(``reduce-overhead`` adds CUDA graphs); each row's warm-up pays the compilation, and the FP8 check
is best left out then (``--no-fp8``: quantizing changes the compiled modules).

It is sized to finish within 8 minutes on one H100/H200: one warm-up and ``--repeats`` timed runs
per row (the batching figures reuse the rows' warm-up: the same shapes), one counted run per model,
and two seeds per model for FP8.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.pipelines import PROMPT, build_backend, hardware, median_seconds, time_model
from generation.backend import GenerationRequest, Mode, ModelId, batch_key
from generation.manager import FLASH_UNET, K3_UNET
from generation.precision import enable_tf32, fp8_unavailable, quantize_fp8, tf32_state

MODELS = {"k3": ModelId.K31, "flash": ModelId.K31_FLASH, "refiner": ModelId.K31_REFINER}
FP8_MODELS = (ModelId.K31, ModelId.K31_FLASH)  # the refiner is these two UNets in turn
FP8_SEEDS = (0, 1)


def tiny(unet: dict, text: dict, movq: dict) -> tuple[dict, dict, dict]:
    """The tiny architectures of the test checkpoints (``generation.tiny``), for a smoke run in seconds."""
    from generation.tiny import TINY_K3_UNET, TINY_MOVQ, TINY_T5

    return dict(unet, **TINY_K3_UNET), dict(text, **TINY_T5), dict(movq, **TINY_MOVQ)


def request(model: ModelId, size: int, images: int, seed: int = 0) -> GenerationRequest:
    return GenerationRequest(
        mode=Mode.TEXT2IMG, model=model, prompt=PROMPT, negative_prompt=None,
        width=size, height=size, num_images=images, seed=seed,
    )


USER_PROMPTS = (
    PROMPT,
    "an old red tram in the rain, evening lights, film photo",
    "a cat",
    "a bowl of ramen on a wooden table, studio light, top view",
)


def users(model: ModelId, size: int, count: int) -> list[GenerationRequest]:
    """``count`` users' requests that share a batch key: one image each, their own prompts and seeds."""
    return [
        GenerationRequest(
            mode=Mode.TEXT2IMG, model=model, prompt=USER_PROMPTS[i % len(USER_PROMPTS)],
            negative_prompt="blurry, low quality" if i % 2 else None,
            width=size, height=size, num_images=1, seed=100 + i,
        )
        for i in range(count)
    ]


def batching_row(backend: Any, device: str, model: ModelId, size: int, count: int, repeats: int) -> dict:
    """Images per second of ``count`` users' requests one at a time and as one batch."""
    requests = users(model, size, count)
    # Kandinsky 2.2 would split these by negative prompt; the Kandinsky 3 family batches them all.
    assert len({batch_key(r) for r in requests}) == 1

    def timed(work: Callable[[], Any]) -> float:
        return median_seconds(work, device, repeats, before=backend.manager.text_cache.clear)

    alone = timed(lambda: [backend.generate(r, lambda s, t: None) for r in requests])
    batched = timed(lambda: backend.generate_batch(requests, lambda s, t: None))
    return {"model": model.value, "users": count, "alone_ips": count / alone, "batched_ips": count / batched}


def psnr(ours: Any, reference: Any) -> float:
    """Peak signal-to-noise ratio of two 8-bit RGB images, in dB (inf when equal)."""
    a, b = np.asarray(ours, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    return psnr_db(float(((a - b) ** 2).mean()), 255.0)


def psnr_db(mse: float, peak: float) -> float:
    """The PSNR of a mean squared error against a signal's peak, in dB (inf when the error is 0)."""
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)


FP8_UNET_OF = {ModelId.K31: K3_UNET, ModelId.K31_FLASH: FLASH_UNET}


@dataclass
class Sample:
    """One image of a fixed seed, for the FP8 comparison."""

    image: Any
    finite: bool  # its pixels came from finite values
    first_step: torch.Tensor  # the UNet's output at the first step (fp32, on the CPU)


def signal_psnr(ours: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR of a float tensor against a reference, in dB, over the reference's range (inf when equal)."""
    ours, reference = ours.double(), reference.double()
    return psnr_db(float(((ours - reference) ** 2).mean()), float(reference.max() - reference.min()))


def sample(backend: Any, model: ModelId, req: GenerationRequest) -> Sample:
    """Generate ``req`` and keep what the FP8 check compares.

    - Whether the pixels came from finite values: diffusers turns the decoded array into 8-bit pixels
      with numpy, which casts NaN and infinity silently but for an "invalid value" RuntimeWarning; the
      PSNR of such pictures says nothing (the first GPU run compared two of them).
    - The UNet's output at the first step: a fixed seed gives it the same latents and context in fp16
      and in FP8, so the two differ only by FP8's arithmetic, even where random weights make the
      pictures themselves NaN. Later steps start from latents that have drifted apart."""
    outputs: list[torch.Tensor] = []

    def keep_first(module: Any, args: Any, output: Any) -> None:
        if not outputs:
            outputs.append((output[0] if isinstance(output, tuple) else output.sample).detach().float().cpu())

    hook = backend.manager.parts[FP8_UNET_OF[model]].obj.register_forward_hook(keep_first)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            image = backend.generate(req, lambda s, t: None)[0]
    finally:
        hook.remove()
    finite = not any("invalid value" in str(w.message) for w in caught)
    return Sample(image, finite, outputs[0])


def fp8_check(backend: Any, device: str, size: int, models: tuple[ModelId, ...], repeats: int, fp16_rows: list[dict]) -> dict:
    """FP8 UNets against the fp16 ones on fixed seeds; ``{"skipped": reason}`` where FP8 cannot run."""
    reason = fp8_unavailable(device)
    if reason is not None:
        return {"skipped": f"no FP8 GPU ({reason})"}
    chosen = [m for m in FP8_MODELS if m in models]
    if not chosen:
        return {"skipped": "neither kandinsky-3.1 nor kandinsky-3.1-flash was benchmarked"}

    def samples(model: ModelId) -> list[Sample]:
        return [sample(backend, model, request(model, size, 1, seed)) for seed in FP8_SEEDS]

    reference = {model: samples(model) for model in chosen}
    for name in (K3_UNET, FLASH_UNET):
        part = backend.manager.parts.get(name)
        if part is not None and not quantize_fp8(part.obj, device, name):
            return {"skipped": f"torchao could not quantize {name}"}
    fp16 = {(r["model"], r["batch"]): r["s_per_image"] for r in fp16_rows}
    rows = []
    for model in chosen:
        pairs = list(zip(samples(model), reference[model]))
        scores = [psnr(ours.image, theirs.image) for ours, theirs in pairs]
        steps = [signal_psnr(ours.first_step, theirs.first_step) for ours, theirs in pairs]
        timed = time_model(backend, device, model, size, 1, repeats)
        rows.append({"model": model.value, "s_per_image": timed["s_per_image"], "fp16_s_per_image": fp16.get((model.value, 1)),
                     "psnr_mean": sum(scores) / len(scores), "psnr_min": min(scores),
                     "finite": all(ours.finite and theirs.finite for ours, theirs in pairs),
                     "step_psnr_mean": sum(steps) / len(steps), "step_psnr_min": min(steps),
                     "peak_gib": timed["peak_gpu_gb"]})
    return {"rows": rows}


def counted_tflop(backend: Any, model: ModelId, size: int) -> float:
    """TFLOP of one image of ``model``, its prompt's encoding included: the text cache is emptied first
    (the first GPU run counted Flash and the refiner without the encoder, whose output Kandinsky 3.1's
    run had left in the cache: 2.2 TFLOP at full size)."""
    backend.manager.text_cache.clear()
    counter = FlopCounterMode(display=False)
    with counter:
        backend.generate(request(model, size, 1), lambda s, t: None)
    return counter.get_total_flops() / 1e12


def time_row(backend: Any, device: str, model: ModelId, size: int, images: int, repeats: int) -> dict:
    row = time_model(backend, device, model, size, images, repeats)
    return {"model": row["model"], "batch": images, "s_per_image": row["s_per_image"], "peak_gib": row["peak_gpu_gb"]}


def compile_unets(backend: Any, size: int, mode: str, compiler: str) -> None:
    """``torch.compile`` the UNets for ``size`` as TORCH_COMPILE does (``generation.compiled``). Each
    row's warm-up then pays the compilation."""
    from generation.compiled import compile_unet

    for name in (K3_UNET, FLASH_UNET):
        part = backend.manager.parts.get(name)
        if part is not None:
            compile_unet(part.obj, [(size, size)], backend=compiler, mode=mode)


def run(
    device: str, dtype: torch.dtype, smoke: bool, size: int, models: tuple[ModelId, ...], repeats: int,
    compile_mode: str | None = None, compiler: str = "inductor",
) -> tuple[list[dict], Any]:
    if device.startswith("cuda"):
        enable_tf32()  # as the worker does (TF32 setting, on by default)
    backend, _ = build_backend(device, dtype, full=not smoke, models=models, shrink=tiny if smoke else None)
    # Counted before any compilation: the FLOP counter sees the eager modules' operations only.
    tflops = {model: counted_tflop(backend, model, size) for model in models}
    if compile_mode is not None:
        compile_unets(backend, size, compile_mode, compiler)
    rows = []
    for model in models:
        tflop = tflops[model]
        for batch in (1, 4):
            row = time_row(backend, device, model, size, batch, repeats)
            row["tflop_per_image"] = tflop
            row["tflops_achieved"] = tflop / row["s_per_image"]
            rows.append(row)
    return rows, backend


def run_batching(backend: Any, device: str, size: int, models: tuple[ModelId, ...], count: int, repeats: int) -> list:
    return [batching_row(backend, device, model, size, count, repeats) for model in models] if count > 1 else []


def batching_table(rows: list[dict]) -> str:
    lines = [
        "| users x 1 image | model | one at a time, images/s | batched, images/s | batched / one at a time |",
        "|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['users']} | {r['model']} | {r['alone_ips']:.3g} | {r['batched_ips']:.3g} | "
            f"{r['batched_ips'] / r['alone_ips']:.2f}x |"
        )
    return "\n".join(lines)


def table(rows: list[dict]) -> str:
    lines = [
        f"| model | batch | s / image | peak GPU GiB | TFLOP / image | TFLOP/s achieved |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        peak = f"{r['peak_gib']:.1f}" if r["peak_gib"] is not None else "n/a"
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['s_per_image']:.3f} | {peak} | "
            f"{r['tflop_per_image']:.3g} | {r['tflops_achieved']:.3g} |"
        )
    by = {(r["model"], r["batch"]): r for r in rows}
    lines.append("")
    for batch in (1, 4):
        k3, flash = by.get((ModelId.K31.value, batch)), by.get((ModelId.K31_FLASH.value, batch))
        if k3 and flash:
            lines.append(f"Flash vs Kandinsky 3.1 at batch {batch}: {k3['s_per_image'] / flash['s_per_image']:.1f}x faster")
    return "\n".join(lines)


def fp8_table(result: dict) -> str:
    seeds = ", ".join(map(str, FP8_SEEDS))
    lines = [
        f"| FP8 UNets | FP8 s / image (batch 1) | fp16 s / image (batch 1) | image PSNR vs fp16, dB (mean / min, seeds {seeds}) "
        "| first-step UNet output PSNR vs fp16, dB (mean / min) | peak GPU GiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    if "skipped" in result:
        lines.append(f"| FP8 | skipped: {result['skipped']} | | | | |")
        return "\n".join(lines)
    for r in result["rows"]:
        fp16 = f"{r['fp16_s_per_image']:.3f}" if r["fp16_s_per_image"] is not None else "n/a"
        peak = f"{r['peak_gib']:.1f}" if r["peak_gib"] is not None else "n/a"
        quality = f"{r['psnr_mean']:.1f} / {r['psnr_min']:.1f}"
        if not r.get("finite", True):
            quality = f"n/a: NaN or infinity in the decoded images ({quality} of the cast pixels)"
        step = f"{r['step_psnr_mean']:.1f} / {r['step_psnr_min']:.1f}"
        lines.append(f"| {r['model']} | {r['s_per_image']:.3f} | {fp16} | {quality} | {step} | {peak} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny architectures on the CPU (checks the command)")
    parser.add_argument("--dtype", default="fp16", choices=["fp16", "bf16"])
    parser.add_argument("--size", type=int, default=None, help="image side (1024 on CUDA, 64 in the smoke run)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--users", type=int, default=4, help="users of the batching figure (0: skip it)")
    parser.add_argument("--models", default="k3,flash,refiner")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (smoke run: 1)")
    parser.add_argument("--no-fp8", dest="fp8", action="store_false", help="skip the FP8 check")
    parser.add_argument("--compile", metavar="MODE", default=None,
                        help="torch.compile the UNets first, as TORCH_COMPILE=true TORCH_COMPILE_MODE=MODE does "
                             "(default, reduce-overhead, ...); the warm-ups pay the compilation")
    parser.add_argument("--compiler", default="inductor", help=argparse.SUPPRESS)  # tests: a cheaper dynamo backend
    args = parser.parse_args(argv)

    smoke = args.smoke or not torch.cuda.is_available()
    device = "cpu" if smoke else "cuda"
    dtype = torch.float32 if smoke else {"fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    size = args.size or (64 if smoke else 1024)
    if args.threads or smoke:
        # One thread on a shared CPU: OpenMP's spinning threads slow a busy 2-core machine to a crawl.
        torch.set_num_threads(args.threads or 1)
    models = tuple(MODELS[m.strip()] for m in args.models.split(",") if m.strip())
    compiled = f", UNets compiled ({args.compile})" if args.compile else ""
    print(f"# {'smoke run (tiny architectures)' if smoke else 'full size'} on {device}, {dtype}, {size}x{size}{compiled}: "
          f"{hardware(device)}")
    start = time.perf_counter()
    rows, backend = run(device, dtype, smoke, size, models, args.repeats, args.compile, args.compiler)
    if device.startswith("cuda"):
        print(f"# {tf32_state()}")
    print(table(rows))
    batching = run_batching(backend, device, size, models, args.users, args.repeats)
    if batching:
        print()
        print(batching_table(batching))
    # Last: it quantizes the UNets in place.
    fp8_result = fp8_check(backend, device, size, models, args.repeats, rows) if args.fp8 else {"skipped": "--no-fp8"}
    print()
    print(fp8_table(fp8_result))
    print(f"# total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
