"""What the OpenNSFW check of each result costs the machine, by onnxruntime's thread count.

The check runs on the CPU of the bot (or of the GPU worker), beside the event loop that answers
users. onnxruntime's default uses a thread per core, and those threads spin for a while after each
run waiting for more work, so a check now and then (as results come) burns CPU long after it ended.
Printed per setting, in the same run, for a real photo (scikit-image's astronaut, 1024 px, as a
result is): CPU milliseconds of the whole process per check and wall milliseconds per check, with
checks back to back and with a pause between checks (as results arrive), and the ratio against
onnxruntime's default; the scores must agree.

    python -m benchmarks.safety_check [--checks 30] [--pause 0.02]
"""

from __future__ import annotations

import argparse
import os
import resource
import time

from PIL import Image
from skimage import data

from prompting.safety import ImageSafety


def process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of the process, onnxruntime's too
    return usage.ru_utime + usage.ru_stime


def measure(safety: ImageSafety, image: Image.Image, checks: int, pause: float) -> tuple[float, float, float]:
    """(CPU ms, wall ms) per check, and the score."""
    score = safety.score(image)  # the session is built and warm
    cpu, wall, busy = process_cpu(), time.perf_counter(), 0.0
    for _ in range(checks):
        started = time.perf_counter()
        safety.score(image)
        busy += time.perf_counter() - started
        if pause:
            time.sleep(pause)
    if pause:  # what the spinning threads burn after the last check is counted too
        time.sleep(0.1)
    return (process_cpu() - cpu) * 1000 / checks, busy * 1000 / checks, score


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checks", type=int, default=30)
    parser.add_argument("--pause", type=float, default=0.02, help="seconds between checks in the paced rows")
    args = parser.parse_args(argv)

    image = Image.fromarray(data.astronaut()).resize((1024, 1024))
    settings = [("onnxruntime default", None), ("1 thread", 1), ("2 threads", 2)]
    print(f"{os.cpu_count()} CPUs, {args.checks} checks of a 1024 px photo per row")
    print(f"{'threads':<24} {'pattern':<14} {'CPU ms/check':>12} {'wall ms/check':>14} {'CPU vs default':>15}  score")
    baseline: dict[str, float] = {}
    for label, threads in settings:
        safety = ImageSafety(intra_op_num_threads=threads)
        for pattern, pause in (("back to back", 0.0), (f"{args.pause * 1000:.0f} ms apart", args.pause)):
            cpu, wall, score = measure(safety, image, args.checks, pause)
            baseline.setdefault(pattern, cpu)
            print(f"{label:<24} {pattern:<14} {cpu:12.1f} {wall:14.1f} {cpu / baseline[pattern]:14.2f}x  {score:.4f}")


if __name__ == "__main__":
    main()
