"""Face-swap quality and speed on real photos, measured with dlib's face-recognition embedding.

The astronaut's face (scikit-image) is swapped onto every face of the insightface wheel's group
photo (t1.jpg) and onto its portrait (Tom_Hanks_54745.png) with the classical swap. For each
target it prints the dlib distance between the astronaut and the target face before the swap
and the face found at the same place after it (same person: < 0.6), and the time of the swap.

    PYTHONPATH=. python benchmarks/faceswap_quality.py
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from faceswap.detect import SAME_PERSON, DlibFaceDetector, DlibFaceEmbedder, face_distance
from faceswap.swap import ClassicalFaceSwapper


def insightface_image(name: str) -> np.ndarray:
    spec = importlib.util.find_spec("insightface")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data" / "images"
    return np.asarray(Image.open(folder / name).convert("RGB"))


def nearest(faces, box):
    centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
    return min(
        faces,
        key=lambda f: np.linalg.norm(np.array([(f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2]) - centre),
        default=None,
    )


def main() -> None:
    detector, embedder, swapper = DlibFaceDetector(), DlibFaceEmbedder(), ClassicalFaceSwapper()
    source = data.astronaut()
    t = time.perf_counter()
    source_face = detector.detect(source)[0]
    print(f"detect astronaut (512x512): {time.perf_counter() - t:.2f} s")
    identity = embedder.embed(source, source_face)
    print(f"{'target':<22} {'face px':>7} {'before':>7} {'after':>7} {'swap s':>7}")
    afters = []
    for name in ("t1.jpg", "Tom_Hanks_54745.png"):
        target = insightface_image(name)
        t = time.perf_counter()
        faces = detector.detect(target)
        detect_s = time.perf_counter() - t
        print(f"detect {name} ({target.shape[1]}x{target.shape[0]}): {len(faces)} faces, {detect_s:.2f} s")
        for index, face in enumerate(faces):
            before = face_distance(identity, embedder.embed(target, face))
            t = time.perf_counter()
            out = swapper.swap(source, source_face, target, face)
            swap_s = time.perf_counter() - t
            found = nearest(detector.detect(out), face.box)
            after = face_distance(identity, embedder.embed(out, found)) if found else float("nan")
            afters.append(after)
            width = face.box[2] - face.box[0]
            print(f"{name + f'[{index}]':<22} {width:>7} {before:>7.3f} {after:>7.3f} {swap_s:>7.2f}")
    afters = np.array(afters)
    print(f"after the swap: mean {np.nanmean(afters):.3f}, max {np.nanmax(afters):.3f}, "
          f"{int((afters < SAME_PERSON).sum())}/{len(afters)} under {SAME_PERSON}")


if __name__ == "__main__":
    main()
