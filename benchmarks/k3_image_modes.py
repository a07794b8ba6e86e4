"""Time each editing mode on Kandinsky 3.1 (IP-Adapter, HED ControlNet) against the Kandinsky 2.2 path.

    python -m benchmarks.k3_image_modes --models-dir DIR [--device cuda] [--dtype fp16] [--size 1024x1024]
    python -m benchmarks.k3_image_modes --tiny --size 256x256 --steps 5   # CPU smoke on tiny checkpoints

Both paths run through the real backend (model manager included) in the same process; each mode runs
once to warm up (loading the models), then ``--repeat`` times, and the median is printed with the
ratio Kandinsky 3.1 / Kandinsky 2.2. Without ``--steps`` each model runs its own default steps
(Kandinsky 2.2: 25 prior + 50 decoder steps; Kandinsky 3.1: 25), as users get them.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from generation.backend import GenerationRequest, Mode, ModelId
from generation.diffusers_backend import DiffusersBackend
from generation.sources import GenerationConfig

# mode -> (photos, Kandinsky 3.1 model, prompt)
MODES: dict[Mode, tuple[int, ModelId, str]] = {
    Mode.FUSE: (2, ModelId.K31_IP_ADAPTER, ""),
    Mode.MIX: (1, ModelId.K31_IP_ADAPTER, "a red cat in a garden, oil painting"),
    Mode.VARIATIONS: (1, ModelId.K31_IP_ADAPTER, ""),
    Mode.STYLE: (2, ModelId.K31_IP_ADAPTER, ""),
    Mode.RESTYLE_DEPTH: (1, ModelId.K31_CONTROLNET_HED, "a watercolor painting"),
}


def _photos(width: int, height: int) -> list[Image.Image]:
    from skimage import data

    return [
        Image.fromarray(getattr(data, name)()).convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
        for name in ("astronaut", "coffee")
    ]


def _time(backend: DiffusersBackend, request: GenerationRequest, repeat: int, cuda: bool) -> tuple[float, int]:
    steps: list[int] = []
    backend.generate(request, lambda step, total: None)  # warm-up (and first load)
    times = []
    for _ in range(repeat):
        steps.clear()
        if cuda:
            torch.cuda.synchronize()
        started = time.perf_counter()
        backend.generate(request, lambda step, total: steps.append(step))
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times), len(steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, help="KANDINSKY_MODELS_DIR (hub ids when omitted)")
    parser.add_argument("--tiny", action="store_true", help="write and use tiny checkpoints")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="fp16", choices=["fp16", "bf16"])
    parser.add_argument("--offload", default="none", choices=["none", "model", "sequential"])
    parser.add_argument("--size", default="1024x1024", help="WIDTHxHEIGHT, multiples of 64")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps for both (default: each model's)")
    parser.add_argument("--images", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--modes", default=",".join(m.value for m in MODES))
    args = parser.parse_args()

    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    width, height = (int(v) for v in args.size.lower().split("x"))
    cuda = args.device.startswith("cuda")
    if not cuda:
        torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    with tempfile.TemporaryDirectory() as tmp:
        models_dir = args.models_dir
        if args.tiny:
            from generation.tiny import write_all

            models_dir = Path(tmp) / "models"
            write_all(models_dir)
        config = GenerationConfig(models_dir=models_dir, device=args.device, dtype=args.dtype, offload=args.offload,
                                  max_image_side=max(width, height, 1024), cache_dir=Path(tmp) / "cache")
        backend = DiffusersBackend(config)
        print(f"device {args.device} {'fp32' if not cuda else args.dtype} offload={args.offload} {width}x{height} "
              f"x{args.images} steps={args.steps or 'defaults'} repeat={args.repeat}")
        print(f"{'mode':<14} {'K2.2 s':>8} {'steps':>6} {'K3.1 s':>8} {'steps':>6} {'K3.1/K2.2':>10}")
        photos = _photos(width, height)
        for name in args.modes.split(","):
            mode = Mode(name)
            count, k3_model, prompt = MODES[mode]
            results = []
            for model in (ModelId.K22, k3_model):
                request = GenerationRequest(
                    mode=mode, model=model, prompt=prompt, negative_prompt=None, width=width, height=height,
                    num_images=args.images, seed=0, steps=args.steps, images=photos[:count],
                    weights=[0.5, 0.5] if mode in (Mode.FUSE, Mode.MIX, Mode.STYLE) else [], strength=0.6,
                )
                results.append(_time(backend, request, args.repeat, cuda))
            (k22, k22_steps), (k31, k31_steps) = results
            print(f"{mode.value:<14} {k22:>8.2f} {k22_steps:>6} {k31:>8.2f} {k31_steps:>6} {k31 / k22:>9.2f}x")
        if cuda:
            print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 1024**3:.2f} GiB")
        rows = backend.model_status()
        print("loaded:", ", ".join(f"{r['model']} {r['memory_bytes'] / 1024**2:.0f} MiB" for r in rows if r["loaded"]))


if __name__ == "__main__":
    main()
