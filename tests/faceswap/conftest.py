"""Real photos shipped inside pip packages: scikit-image's data and the insightface wheel's images.

insightface is installed with ``--no-deps`` only for its photos (see pyproject.toml): it is never
imported, its folder is found from the package spec.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from faceswap.detect import DlibFaceDetector, DlibFaceEmbedder


def insightface_images() -> Path:
    spec = importlib.util.find_spec("insightface")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the insightface wheel (installed with --no-deps) provides the test photos")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "images"


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return data.astronaut()


@pytest.fixture(scope="session")
def coffee() -> np.ndarray:
    return data.coffee()


@pytest.fixture(scope="session")
def group_photo() -> np.ndarray:
    return np.asarray(Image.open(insightface_images() / "t1.jpg").convert("RGB"))


@pytest.fixture(scope="session")
def portrait() -> np.ndarray:
    return np.asarray(Image.open(insightface_images() / "Tom_Hanks_54745.png").convert("RGB"))


@pytest.fixture(scope="session")
def detector() -> DlibFaceDetector:
    return DlibFaceDetector()


@pytest.fixture(scope="session")
def embedder() -> DlibFaceEmbedder:
    return DlibFaceEmbedder()


@pytest.fixture(scope="session")
def faces_of(detector):
    """Detection results per photo, computed once per session (the CNN check costs ~1 s a photo)."""
    cache: dict[int, list] = {}

    def faces(image: np.ndarray):
        key = id(image)
        if key not in cache:
            cache[key] = detector.detect(image)
        return cache[key]

    return faces
