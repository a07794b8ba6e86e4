"""Time every Kandinsky 2.2 mode: seconds per request and per decoder step.

    python -m benchmarks.k22_modes --models-dir DIR [--device cuda] [--dtype fp16] [--size 1024x1024]
    python -m benchmarks.k22_modes --tiny        # tiny random-weight checkpoints in a temp dir, on CPU

Each mode runs once to warm up, then ``--repeat`` times; the figures are the median.
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
from generation.k22 import MODES, Kandinsky22
from generation.sources import GenerationConfig

INPUT_COUNT = {Mode.TEXT2IMG: 0, Mode.STYLE: 2, Mode.FUSE: 3}


def _photos(width: int, height: int) -> list[Image.Image]:
    from skimage import data

    return [
        Image.fromarray(getattr(data, name)()).convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
        for name in ("astronaut", "coffee", "chelsea")
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, help="KANDINSKY_MODELS_DIR (hub ids when omitted)")
    parser.add_argument("--tiny", action="store_true", help="write and use tiny checkpoints")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="fp16", choices=["fp16", "bf16", "fp32"])
    parser.add_argument("--offload", default="none", choices=["none", "model", "sequential"])
    parser.add_argument("--size", default="1024x1024", help="WIDTHxHEIGHT, multiples of 64")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--prior-steps", type=int, default=25)
    parser.add_argument("--images", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    width, height = (int(v) for v in args.size.lower().split("x"))
    dtype = "fp32" if args.device == "cpu" else args.dtype
    with tempfile.TemporaryDirectory() as tmp:
        models_dir = args.models_dir
        if args.tiny:
            from generation.tiny_k22 import write_k22

            models_dir = Path(tmp)
            write_k22(models_dir)
        config = GenerationConfig(models_dir=models_dir, offload=args.offload)
        started = time.perf_counter()
        model = Kandinsky22.load(config, args.device, dtype)
        model.controlnet()
        model.depth_estimator()
        print(f"load: {time.perf_counter() - started:.1f} s, weights {model.memory_bytes() / 1024**3:.2f} GiB")
        print(f"device {args.device} {dtype} offload={args.offload} {width}x{height} x{args.images}")
        print(f"{'mode':<14} {'s/request':>10} {'s/step':>8} {'steps':>6}")
        photos = _photos(width, height)
        for mode in MODES:
            steps_run: list[int] = []
            request = GenerationRequest(
                mode=mode,
                model=ModelId.K22,
                prompt="a red cat in a garden, oil painting",
                negative_prompt=None,
                width=width,
                height=height,
                num_images=args.images,
                seed=0,
                steps=args.steps,
                images=photos[: INPUT_COUNT.get(mode, 1)],
                extra={"prior_steps": args.prior_steps},
            )
            model.generate(request, lambda step, total: None)  # warm-up
            times = []
            for _ in range(args.repeat):
                steps_run.clear()
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                started = time.perf_counter()
                model.generate(request, lambda step, total: steps_run.append(step))
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - started)
            seconds = statistics.median(times)
            per_step = seconds / max(1, len(steps_run))
            print(f"{mode.value:<14} {seconds:>10.2f} {per_step:>8.3f} {len(steps_run):>6}")
        if args.device.startswith("cuda"):
            print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 1024**3:.2f} GiB")


if __name__ == "__main__":
    main()
