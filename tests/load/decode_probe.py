"""Run the decoding paths of user images on one file, in a fresh process, and report peak memory.

``python -m tests.load.decode_probe FILE [--at-once N] [--paths a,b]`` prints one JSON line: the
resident memory before (MB), the peak resident memory during the decodes (MB) and what each call answered. A fresh
process per measurement: the peak of a pytest process says nothing about one path.
"""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    """Start the peak (VmHWM) afresh: imports and the classifier's warm-up peaked before the decodes."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def _paths() -> dict[str, Callable[[bytes], Any]]:
    from faceswap.service import open_photo
    from generation.images import prepare_input_image
    from prompting.safety import ImageSafety

    safety = ImageSafety()
    safety.warmup()  # the classifier's own memory is not the decode's
    return {
        "edit": lambda data: prepare_input_image(data, 1024),  # handlers.editing and the runner
        "face": open_photo,  # /face, and face-swap inputs in the runner
        "nsfw": safety.score,  # the upload check
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("file", type=Path)
    parser.add_argument("--at-once", type=int, default=1)
    parser.add_argument("--paths", default="edit,face,nsfw")
    args = parser.parse_args()
    data = args.file.read_bytes()
    paths = _paths()
    before = _status_mb("VmRSS")
    _reset_peak()
    answers: list[str] = []

    def run(name: str) -> None:
        try:
            result = paths[name](data)
            answers.append(f"{name}:ok:{getattr(result, 'size', result)}")
        except Exception as exc:  # the answer is what is measured
            answers.append(f"{name}:{type(exc).__name__}:{getattr(exc, 'code', '')}")

    for name in args.paths.split(","):
        threads = [threading.Thread(target=run, args=(name,)) for _ in range(args.at_once)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    print(json.dumps({"before_mb": before, "peak_mb": _status_mb("VmHWM"), "answers": answers}))


if __name__ == "__main__":
    main()
