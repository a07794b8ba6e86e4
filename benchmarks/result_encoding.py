"""What storing a result costs between the GPU's last step and the photo's upload.

Every image is checked by OpenNSFW and encoded as PNG before it can be sent. Printed for a real photo
(scikit-image's astronaut, scaled to each side as a result is), in the same run:

- PNG encoding at Pillow's default zlib level (6) against the result store's level
  (``jobs.results.PNG_COMPRESS_LEVEL``): milliseconds, megabytes, and the ratio of the times;
- one 1024 px result finished the way the runner did before (the check, then the PNG at level 6)
  and the way it does now (the PNG encoded by ``ResultStore.stage`` while the real OpenNSFW check
  runs, then published): wall milliseconds per result and the ratio.

    python -m benchmarks.result_encoding [--repeats 5] [--sides 512 1024 2048 4096]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import tempfile
import time
from collections.abc import Callable

from PIL import Image
from skimage import data

from jobs.results import PNG_COMPRESS_LEVEL, ResultStore
from prompting.guard import ContentGuard
from prompting.safety import ImageSafety

PILLOW_DEFAULT_LEVEL = 6


def photo(side: int) -> Image.Image:
    return Image.fromarray(data.astronaut()).resize((side, side), Image.Resampling.LANCZOS)


def png(image: Image.Image, level: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=level)
    return buffer.getvalue()


def median_ms(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


async def finish_before(guard: ContentGuard, store: ResultStore, job_id: int, image: Image.Image) -> None:
    """The check, then the PNG (Pillow's default level), as the runner stored a result before."""
    await guard.check_images([image])

    def save() -> None:
        folder = store.folder(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / "0.png", format="PNG")

    await asyncio.to_thread(save)


async def finish_now(guard: ContentGuard, store: ResultStore, job_id: int, image: Image.Image) -> None:
    """The PNG staged while the check runs, then published (``JobRunner._store_checked``'s order)."""
    staging = asyncio.ensure_future(asyncio.to_thread(store.stage, job_id, {0: image}))
    await guard.check_images([image])
    await staging
    await asyncio.to_thread(store.publish, job_id, [0])


async def finishing(repeats: int) -> None:
    guard = ContentGuard(image_safety=ImageSafety(threshold=0.8))
    store = ResultStore(tempfile.mkdtemp(prefix="result-encoding-"))
    image = photo(1024)
    await guard.check_images([image])  # the ONNX session is built and warm
    figures: dict[str, list[float]] = {"before": [], "now": []}
    for n in range(repeats):  # taking turns, so that the machine's drift cancels
        for name, finish in (("before", finish_before), ("now", finish_now)):
            started = time.perf_counter()
            await finish(guard, store, n * 2 + (name == "now"), image)
            figures[name].append(time.perf_counter() - started)
    before, now = (statistics.median(figures[k]) * 1000 for k in ("before", "now"))
    print("\none 1024 px result, from the GPU's last step to a stored file (OpenNSFW, onnxruntime's default threads)")
    print(f"  check, then PNG level {PILLOW_DEFAULT_LEVEL} (before)      {before:7.1f} ms")
    print(f"  PNG level {PNG_COMPRESS_LEVEL} beside the check (now)     {now:7.1f} ms   ({before / now:.2f}x faster)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sides", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    args = parser.parse_args(argv)

    print(f"PNG encoding of a real photo, median of {args.repeats}")
    fast_label = f"level {PNG_COMPRESS_LEVEL} ms"
    print(f"{'side':>6}  {'level 6 ms':>10}  {'MB':>6}  {fast_label:>10}  {'MB':>6}  {'faster':>7}")
    for side in args.sides:
        image = photo(side)
        slow = median_ms(lambda: png(image, PILLOW_DEFAULT_LEVEL), args.repeats)
        fast = median_ms(lambda: png(image, PNG_COMPRESS_LEVEL), args.repeats)
        slow_mb = len(png(image, PILLOW_DEFAULT_LEVEL)) / 1e6
        fast_mb = len(png(image, PNG_COMPRESS_LEVEL)) / 1e6
        print(f"{side:>6}  {slow:10.1f}  {slow_mb:6.2f}  {fast:10.1f}  {fast_mb:6.2f}  {slow / fast:6.2f}x")
    asyncio.run(finishing(args.repeats))


if __name__ == "__main__":
    main()
