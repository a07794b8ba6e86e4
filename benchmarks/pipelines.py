"""Generation speed of the Kandinsky 3 family: seconds per image, peak GPU memory, Flash vs Kandinsky 3.

    python -m benchmarks.pipelines              # CUDA when available, else a scaled-down CPU smoke run
    python -m benchmarks.pipelines --device cpu --size 256

On CUDA it builds the full-size architectures from the real configs in ``generation/configs/``
(Flan-UL2 encoder 8.6B, Kandinsky 3 UNet, MoVQ) with random weights in fp16, the MoVQ in fp32 as the
bot loads it (the speed of a network does not depend on its weights), and runs them through the
project's own code: the :class:`ModelManager` adopts the modules and :class:`DiffusersBackend`
generates. On CPU, where the full models do not fit in memory, the same architectures are scaled
down (widths / 8, fewer encoder layers) and the image is smaller: the figures check the code path,
not the GPU numbers.

It prints, per model, seconds per image, peak GPU memory, the Flash-to-Kandinsky-3 speed ratio, and the
time from a queued job to the image bytes (the job queue's JobRunner: database row -> worker ->
backend -> PNG files on disk -> the bytes read back for delivery).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from generation.backend import GenerationRequest, Mode, ModelId
from generation.diffusers_backend import DiffusersBackend
from generation.manager import FLASH_UNET, K3_UNET, MOVQ, TEXT_ENCODER, ModelManager, channels_last_pays
from generation.sources import GenerationConfig

CONFIGS = Path(__file__).resolve().parents[1] / "generation" / "configs"
PROMPT = "A cute corgi lives in a house made out of sushi, highly detailed, soft light"


def load_config(name: str) -> dict[str, Any]:
    config = json.loads((CONFIGS / name).read_text())
    return {k: v for k, v in config.items() if not k.startswith("_") and k != "architectures"}


def scaled_down(unet: dict, text: dict, movq: dict) -> tuple[dict, dict, dict]:
    """The same architectures, narrower and shallower, for a CPU smoke run."""
    unet = dict(unet, block_out_channels=[c // 8 for c in unet["block_out_channels"]])
    unet.update(
        time_embedding_dim=unet["time_embedding_dim"] // 8, cross_attention_dim=512, encoder_hid_dim=512,
        groups=8, attention_head_dim=32,
    )
    text = dict(text, d_model=512, d_ff=2048, d_kv=64, num_heads=8, num_layers=4)
    movq = dict(movq, block_out_channels=[c // 8 for c in movq["block_out_channels"]], norm_num_groups=32)
    movq["block_out_channels"] = [max(32, c) for c in movq["block_out_channels"]]
    return unet, text, movq


def build_backend(
    device: str,
    dtype: torch.dtype,
    full: bool,
    models: tuple[ModelId, ...] = tuple(ModelId),
    shrink: Callable[[dict, dict, dict], tuple[dict, dict, dict]] | None = None,
) -> tuple[DiffusersBackend, dict[str, int]]:
    """``shrink``: how a run that is not ``full`` narrows the architectures (default: :func:`scaled_down`)."""
    from diffusers import Kandinsky3UNet, VQModel
    from transformers import T5Config, T5EncoderModel

    from generation.k31 import Kandinsky3AuthorsScheduler, install_text_projection
    from generation.tiny import t5_tokenizer

    unet_cfg, text_cfg, movq_cfg = (
        load_config("kandinsky3_unet.json"),
        load_config("kandinsky3_text_encoder.json"),
        load_config("kandinsky3_movq.json"),
    )
    if not full:
        unet_cfg, text_cfg, movq_cfg = (shrink or scaled_down)(unet_cfg, text_cfg, movq_cfg)

    with building(device, dtype):
        text_encoder = encoder_as_from_pretrained(T5EncoderModel(T5Config(**text_cfg)).eval())
        # fp32, as the model manager loads it (the authors run it in fp32), so the decode costs what
        # it costs the bot
        movq = VQModel.from_config(movq_cfg).float().eval()
        unets = {}
        null_embedding = torch.randn(unet_cfg["cross_attention_dim"])
        if {ModelId.K31, ModelId.K31_REFINER} & set(models):
            unets[K3_UNET] = install_text_projection(Kandinsky3UNet.from_config(unet_cfg).eval(), null_embedding)
        if {ModelId.K31_FLASH, ModelId.K31_REFINER} & set(models):
            unets[FLASH_UNET] = install_text_projection(Kandinsky3UNet.from_config(unet_cfg).eval(), null_embedding)

    config = GenerationConfig(device=device, dtype="fp16" if dtype == torch.float16 else "bf16")
    manager = ModelManager(config)
    manager.add_part(
        TEXT_ENCODER,
        text_encoder,
        tokenizer=t5_tokenizer(),
        scheduler=Kandinsky3AuthorsScheduler(),
    )
    for name, module in ((MOVQ, movq), *unets.items()):
        if device.startswith("cuda") and channels_last_pays(module):  # as the manager loads them
            module.to(memory_format=torch.channels_last)
        manager.add_part(name, module)
    params = {
        "text_encoder": sum(p.numel() for p in text_encoder.parameters()),
        "text_encoder_bytes": sum(p.numel() * p.element_size() for p in text_encoder.parameters()),
        "unet": sum(p.numel() for p in next(iter(unets.values())).parameters()),
        "movq": sum(p.numel() for p in movq.parameters()),
    }
    return DiffusersBackend(config, manager), params


@contextlib.contextmanager
def building(device: str, dtype: torch.dtype) -> Iterator[None]:
    """Modules built inside are created on ``device`` in ``dtype`` (random weights, no gradients)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device), torch.no_grad():
            yield
    finally:
        torch.set_default_dtype(previous)


def encoder_as_from_pretrained(model: torch.nn.Module) -> torch.nn.Module:
    """The T5 encoder as ``from_pretrained(..., dtype=fp16)`` leaves it: the modules T5 names in
    ``_keep_in_fp32_modules`` (each block's feed-forward output ``wo``) stay in fp32. For Flan-UL2 that
    is 2.1B of 8.7B parameters: the encoder takes about 21.7 GB instead of 17."""
    keep = tuple(getattr(model, "_keep_in_fp32_modules", None) or ())
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in keep:
            module.float()
    return model


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_seconds(call: Callable[[], object], device: str, repeats: int,
                   before: Callable[[], object] | None = None) -> float:
    """Median wall time of ``repeats`` runs of ``call``, the device synchronised around each; ``before``
    runs ahead of each, untimed."""
    runs = []
    for _ in range(repeats):
        if before is not None:
            before()
        sync(device)
        start = time.perf_counter()
        call()
        sync(device)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def time_model(backend: DiffusersBackend, device: str, model: ModelId, size: int, images: int, repeats: int) -> dict:
    request = GenerationRequest(
        mode=Mode.TEXT2IMG, model=model, prompt=PROMPT, negative_prompt=None,
        width=size, height=size, num_images=images, seed=0,
    )
    backend.generate(request, lambda s, t: None)  # warm-up: kernels, allocator, lazy inits
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    seconds = median_seconds(lambda: backend.generate(request, lambda s, t: None), device, repeats)
    peak = torch.cuda.max_memory_allocated() / 1024**3 if device.startswith("cuda") else None
    return {"model": model.value, "s_per_image": seconds / images, "s_per_request": seconds, "peak_gpu_gb": peak}


class _BenchEvents:
    """The chat side of a job, reduced to reading the image bytes back as delivery would."""

    def __init__(self) -> None:
        self.delivered_at: float | None = None
        self.nbytes = 0
        self.failed: str | None = None

    async def started(self, ctx: Any) -> None: ...

    async def progress(self, ctx: Any, step: int, total: int) -> None: ...

    def working(self, ctx: Any) -> contextlib.AbstractAsyncContextManager[Any]:
        return contextlib.nullcontext()  # type: ignore[return-value]

    async def deliver(self, ctx: Any, paths: list[Path]) -> list[str]:
        self.nbytes = sum(len(p.read_bytes()) for p in paths)
        self.delivered_at = time.perf_counter()
        return [f"file-{i}" for i in range(len(paths))]

    async def failed(self, ctx: Any, code: str) -> None:
        self.failed = code

    async def cancelled(self, ctx: Any) -> None: ...

    async def fetch_file(self, file_id: str) -> bytes:
        raise NotImplementedError


async def queued_job_to_bytes(backend: DiffusersBackend, model: ModelId, size: int, images: int) -> dict:
    """Queue a job row, run it with the queue's JobRunner, stop when the PNG bytes are read back."""
    from jobs.runner import JobRunner
    from storage.db import create_engine, create_sessionmaker
    from storage.migrate import upgrade_async
    from storage.models import Job, User
    from storage.repositories import Database

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        await upgrade_async(url)
        engine = create_engine(url)
        db = Database(create_sessionmaker(engine))
        async with db.session() as session:
            session.add(User(id=1, first_name="bench", language="en"))
            await session.flush()
            job = Job(
                user_id=1, chat_id=1, kind=Mode.TEXT2IMG.value, model=model.value,
                params={"prompt": PROMPT, "width": size, "height": size, "num_images": images, "seed": 0},
            )
            session.add(job)
            await session.commit()
            job_id = job.id
        events = _BenchEvents()
        runner = JobRunner(db, backend, events, Path(tmp) / "results")  # type: ignore[arg-type]
        start = time.perf_counter()
        await runner.run(job_id)
        await engine.dispose()
    if events.delivered_at is None:
        raise RuntimeError(f"the job did not deliver: {events.failed}")
    return {"model": model.value, "queued_to_bytes_s": events.delivered_at - start, "png_bytes": events.nbytes}


def hardware(device: str) -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    text = f"CPU {cpu}, {torch.get_num_threads()} torch threads; torch {torch.__version__}"
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        text = f"GPU {props.name} ({props.total_memory / 1024**3:.0f} GiB), " + text
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--dtype", default="fp16", choices=["fp16", "bf16"])
    parser.add_argument("--size", type=int, default=None, help="image side (default 1024 on CUDA, 256 on CPU)")
    parser.add_argument("--images", type=int, default=1, help="images per request (one batched call)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument(
        "--models", default="k3,flash,refiner",
        help="comma-separated subset of k3,flash,refiner (fewer models fit a smaller GPU)",
    )
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    full = device == "cuda"
    dtype = ({"fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]) if full else torch.float32
    size = args.size or (1024 if full else 256)

    names = {"k3": ModelId.K31, "flash": ModelId.K31_FLASH, "refiner": ModelId.K31_REFINER}
    models = tuple(names[m.strip()] for m in args.models.split(",") if m.strip())

    print(f"# {'full-size' if full else 'scaled-down smoke run'} on {device}: {hardware(device)}")
    build_start = time.perf_counter()
    backend, params = build_backend(device, dtype, full, models)
    print(
        f"# built in {time.perf_counter() - build_start:.1f} s: text encoder {params['text_encoder'] / 1e9:.2f}B "
        f"({params['text_encoder_bytes'] / 1e9:.1f} GB with its wo layers in fp32, as from_pretrained keeps them), "
        f"UNet {params['unet'] / 1e9:.3f}B (one per Kandinsky 3 / Flash), MoVQ {params['movq'] / 1e6:.0f}M parameters, "
        f"{dtype}; {size}x{size}, {args.images} image(s) per request, median of {args.repeats}"
    )
    rows = [time_model(backend, device, m, size, args.images, args.repeats) for m in models]
    print(f"{'model':<24}{'s/image':>10}{'s/request':>11}{'peak GPU GiB':>14}")
    for row in rows:
        peak = f"{row['peak_gpu_gb']:.1f}" if row["peak_gpu_gb"] is not None else "n/a"
        print(f"{row['model']:<24}{row['s_per_image']:>10.3f}{row['s_per_request']:>11.3f}{peak:>14}")
    by_model = {r["model"]: r for r in rows}
    ratio = None
    if ModelId.K31.value in by_model and ModelId.K31_FLASH.value in by_model:
        ratio = by_model[ModelId.K31.value]["s_per_image"] / by_model[ModelId.K31_FLASH.value]["s_per_image"]
        print(f"Flash is {ratio:.1f}x faster than Kandinsky 3 (50 steps with guidance vs 4 without; the paper says 3x)")

    queue_model = ModelId.K31_FLASH if ModelId.K31_FLASH in models else models[0]
    queue = asyncio.run(queued_job_to_bytes(backend, queue_model, size, args.images))
    print(
        f"queued job -> image bytes ({queue['model']}): {queue['queued_to_bytes_s']:.3f} s "
        f"({queue['png_bytes']} PNG bytes)"
    )
    if not device.startswith("cuda"):
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
        print(f"# peak process RSS {rss:.1f} GiB; GPU figures not measured (no CUDA device)")
    if args.json:
        args.json.write_text(json.dumps(
            {"device": device, "hardware": hardware(device), "full": full, "size": size, "rows": rows,
             "flash_speedup": ratio, "queue": queue, "params": params}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
