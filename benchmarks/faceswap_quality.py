"""Face-swap quality on real photos: identity, pose kept, expression kept, seam (faceswap/quality.py).

Two source faces: scikit-image's astronaut, and the frontal man in the middle of the insightface
wheel's t1.jpg (its face 4). Targets: the other faces of t1.jpg, Tom_Hanks_54745.png, and the
astronaut for the second source. Methods: the classical swap, GHOST when its checkpoints are given
(GHOST_GENERATOR=.../G_unet_2blocks.pth GHOST_ARCFACE=.../backbone.pth), and a hard rectangle paste
as the control that must fail a bar. A refused pair (heads turned too differently, or a result
whose head pose drifted) is listed as such: the bot says so instead of sending it.

    PYTHONPATH=. python benchmarks/faceswap_quality.py
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from faceswap.detect import DlibFaceDetector, DlibFaceEmbedder
from faceswap.quality import (
    MAX_EYE_CHANGE,
    MAX_IDENTITY,
    MAX_MOUTH_CHANGE,
    MAX_POSE_ERROR,
    MAX_SEAM,
    RectanglePaste,
    measure,
)
from faceswap.swap import ClassicalFaceSwapper, SwapRefused

SECOND_SOURCE = 4  # t1.jpg's face 4 (largest first): frontal, a man


def insightface_image(name: str) -> np.ndarray:
    spec = importlib.util.find_spec("insightface")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data" / "images"
    return np.asarray(Image.open(folder / name).convert("RGB"))


def cases(detector):
    """(source name, source image, source face, [(target name, target image, target face)])."""
    astronaut, t1, hanks = data.astronaut(), insightface_image("t1.jpg"), insightface_image("Tom_Hanks_54745.png")
    astronaut_face = detector.detect(astronaut)[0]
    t1_faces = detector.detect(t1)
    hanks_face = detector.detect(hanks)[0]
    t1_targets = [(f"t1[{i}]", t1, face) for i, face in enumerate(t1_faces)]
    yield "astronaut", astronaut, astronaut_face, t1_targets + [("hanks", hanks, hanks_face)]
    others = [t for i, t in enumerate(t1_targets) if i != SECOND_SOURCE]
    yield f"t1[{SECOND_SOURCE}]", t1, t1_faces[SECOND_SOURCE], others + [("hanks", hanks, hanks_face), ("astronaut", astronaut, astronaut_face)]


def methods(detector):
    found = [ClassicalFaceSwapper(detector=detector)]
    generator, arcface = os.environ.get("GHOST_GENERATOR"), os.environ.get("GHOST_ARCFACE")
    if generator and arcface:
        from faceswap.ghost import GhostFaceSwapper

        found.append(GhostFaceSwapper(Path(generator), Path(arcface)))
    found.append(RectanglePaste())
    return found


def main() -> None:
    detector, embedder = DlibFaceDetector(), DlibFaceEmbedder()
    print(
        f"bars: identity < {MAX_IDENTITY}, pose error < {MAX_POSE_ERROR} deg, mouth change < {MAX_MOUTH_CHANGE}, "
        f"eye change < {MAX_EYE_CHANGE}, seam < {MAX_SEAM}\n"
    )
    print("| method | source | target | identity | pose err ° | mouth Δ | eye Δ | seam | swap s | fails |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---|")
    summary: dict[str, list[int]] = {}
    for source_name, source, source_face, targets in cases(detector):
        identity = embedder.embed(source, source_face)
        for method in methods(detector):
            for target_name, target, target_face in targets:
                t = time.perf_counter()
                try:
                    result = method.swap(source, source_face, target, target_face)
                except SwapRefused as exc:
                    print(f"| {method.name} | {source_name} | {target_name} | refused: {exc} | | | | | | |")
                    continue
                seconds = time.perf_counter() - t
                q = measure(result, target, target_face, identity, detector, embedder)
                fails = q.failures()
                passed, total = summary.setdefault(method.name, [0, 0])
                summary[method.name] = [passed + (not fails), total + 1]
                print(
                    f"| {method.name} | {source_name} | {target_name} | {q.identity:.3f} | {q.pose_error:.1f} | "
                    f"{q.mouth_change:.3f} | {q.eye_change:.3f} | {q.seam:.2f} | {seconds:.2f} | {', '.join(fails) or '-'} |"
                )
    print()
    for name, (passed, total) in summary.items():
        print(f"{name}: {passed}/{total} swaps pass all four bars")


if __name__ == "__main__":
    main()
