"""Zoom out, inpaint, zoom in and upscale: seconds per request and peak GPU memory, against text-to-image.

    python -m benchmarks.canvas_edit                # CUDA when available, else a scaled-down CPU smoke run
    python -m benchmarks.canvas_edit --device cpu --size 128

Like ``benchmarks.pipelines``: full-size architectures with random weights in fp16 on CUDA (Kandinsky 3.1
inpainting = the Kandinsky 3 UNet with a 9-channel input; KandiSuperRes as published), scaled down on
a CPU; everything runs through the project's own code (ModelManager + DiffusersBackend + edit_ops).
Upscale x4 of a 1024 px picture is the "4K" button: 4096 px in MultiDiffusion tiles of 1024.
Prints per operation: seconds per request, the ratio to one text-to-image request of the same size,
and peak GPU memory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from benchmarks.pipelines import build_backend, building, hardware, load_config, scaled_down, sync
from generation import canvas
from generation.backend import GenerationRequest, Mode, ModelId
from generation.manager import FLASH_UNET, INPAINT_UNET, SR_FLASH, SR_X4

SR_FULL = dict(init_channels=128, model_channels=128, time_embed_dim=512, dim_mult=(1, 2, 4, 8), num_resnet_blocks=(2, 4, 8, 8))
SR_SMALL = dict(init_channels=32, model_channels=32, time_embed_dim=64, dim_mult=(1, 2, 2, 2), num_resnet_blocks=(2, 2, 2, 2))


def add_edit_models(backend, device: str, dtype: torch.dtype, full: bool) -> dict[str, int]:
    from generation.k3_inpaint import Kandinsky3InpaintUNet
    from generation.superres import SuperResUNet

    unet_cfg = load_config("kandinsky3_unet.json")
    if not full:
        unet_cfg = scaled_down(unet_cfg, load_config("kandinsky3_text_encoder.json"), load_config("kandinsky3_movq.json"))[0]
    unet_cfg = {k: v for k, v in unet_cfg.items() if k != "in_channels"}
    with building(device, dtype):
        inpaint = Kandinsky3InpaintUNet(in_channels=9, out_channels=4, **unet_cfg).eval()
        sr = {name: SuperResUNet(**(SR_FULL if full else SR_SMALL)).eval() for name in (SR_FLASH, SR_X4)}
    backend.manager.add_part(INPAINT_UNET, inpaint)
    for name, module in sr.items():
        backend.manager.add_part(name, module)
    # The Flash refinement's fixed context (the authors' weights/context.pt: 128 rows, mask [1, 0, ...]).
    width = backend.manager.parts[FLASH_UNET].obj.config.cross_attention_dim
    mask = torch.zeros(1, 128, dtype=torch.bool, device=device)
    mask[0, 0] = True
    backend.manager.extras["superres_context"] = (torch.randn(1, 128, width, device=device), mask)
    return {"inpaint_unet": sum(p.numel() for p in inpaint.parameters()), "superres_unet": sum(p.numel() for p in sr[SR_X4].parameters())}


def picture(size: int) -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut()).resize((size, size))


def requests(size: int) -> dict[str, GenerationRequest]:
    source = picture(size)
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).ellipse((size // 3, size // 3, 2 * size // 3, 2 * size // 3), fill=255)

    def edit(mode: Mode, model: ModelId, **extra) -> GenerationRequest:
        return GenerationRequest(mode=mode, model=model, prompt="a lighthouse on a cliff at dawn", negative_prompt=None,
                                 width=size, height=size, num_images=1, seed=0, images=[source], extra=extra)

    return {
        "text2img (Kandinsky 3.1, baseline)": GenerationRequest(
            mode=Mode.TEXT2IMG, model=ModelId.K31, prompt="a lighthouse on a cliff at dawn", negative_prompt=None,
            width=size, height=size, num_images=1, seed=0),
        "zoom out 2x": edit(Mode.ZOOM_OUT, ModelId.K31_INPAINT, factor=2.0),
        "inpaint": edit(Mode.INPAINT, ModelId.K31_INPAINT, mask=canvas.encode_mask(mask)),
        "zoom in 2x": edit(Mode.ZOOM_IN, ModelId.K31),
        "upscale x2 (Flash + refinement)": edit(Mode.UPSCALE, ModelId.SUPERRES, scale=2),
        f"upscale x4 ({4 * size} px)": edit(Mode.UPSCALE, ModelId.SUPERRES, scale=4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--size", type=int, default=None, help="picture side (default 1024 on CUDA, 128 on CPU)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    full = device.startswith("cuda")
    size = args.size or (1024 if full else 128)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = torch.float16 if full else torch.float32
    # Kandinsky 3.1 for text-to-image and zoom in; its Flash UNet refines the x2 upscale.
    backend, params = build_backend(device, dtype, full, models=(ModelId.K31, ModelId.K31_FLASH))
    params.update(add_edit_models(backend, device, dtype, full))
    print(f"# {hardware(device)}; {'full-size' if full else 'scaled-down CPU smoke'} models, {size} px; params {params}")
    rows = []
    for name, request in requests(size).items():
        backend.generate(request, lambda s, t: None)  # warm-up
        if full:
            torch.cuda.reset_peak_memory_stats()
        runs = []
        for _ in range(args.repeats):
            sync(device)
            start = time.perf_counter()
            backend.generate(request, lambda s, t: None)
            sync(device)
            runs.append(time.perf_counter() - start)
        peak = torch.cuda.max_memory_allocated() / 1024**3 if full else None
        rows.append({"operation": name, "seconds": statistics.median(runs), "peak_gpu_gb": peak})
    baseline = rows[0]["seconds"]
    print(f"{'operation':36} {'s/request':>10} {'x text2img':>11} {'peak GPU GB':>12}")
    for row in rows:
        row["ratio"] = row["seconds"] / baseline
        peak = f"{row['peak_gpu_gb']:.1f}" if row["peak_gpu_gb"] is not None else "-"
        print(f"{row['operation']:36} {row['seconds']:10.2f} {row['ratio']:11.2f} {peak:>12}")
    if args.json:
        args.json.write_text(json.dumps({"device": hardware(device), "size": size, "params": params, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
