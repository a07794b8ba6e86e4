"""Real photos shipped inside pip packages: scikit-image's data and the insightface wheel's images.

insightface is installed with ``--no-deps`` only for its photos (see pyproject.toml): it is never
imported, its folder is found from the package spec.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from faceswap.detect import DlibFaceDetector, DlibFaceEmbedder, to_rgb_array
from faceswap.restore import GFPGAN_V14_ARCH

# GFPGAN v1.4's architecture, scaled down for CPU tests.
TINY_GFPGAN_ARCH = {
    **GFPGAN_V14_ARCH, "out_size": 64, "num_style_feat": 32, "channel_multiplier": 1, "num_mlp": 2, "narrow": 0.0625
}


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


class CachingDetector:
    """The real detector, remembering its answer per image content: the tests look at the same
    photos many times, and the CNN confirmation costs about a second a photo on a small CPU."""

    def __init__(self, detector: DlibFaceDetector) -> None:
        self.detector = detector
        self.cache: dict[tuple[str, tuple[int, ...]], list] = {}

    def detect(self, image):
        rgb = to_rgb_array(image)
        key = (hashlib.sha1(rgb.tobytes()).hexdigest(), rgb.shape)
        if key not in self.cache:
            self.cache[key] = self.detector.detect(rgb)
        return list(self.cache[key])


@pytest.fixture(scope="session")
def detector() -> CachingDetector:
    return CachingDetector(DlibFaceDetector())


@pytest.fixture(scope="session")
def embedder() -> DlibFaceEmbedder:
    return DlibFaceEmbedder()


@pytest.fixture(scope="session")
def faces_of(detector):
    """Detection results per photo (cached by the session's detector)."""
    return detector.detect


@pytest.fixture(scope="session")
def tiny_gfpgan(tmp_path_factory):
    """A seeded tiny GFPGAN saved like GFPGANv1.4.pth ({"params_ema": state_dict})."""
    import torch

    from faceswap.gfpgan_net import GFPGANClean

    from .seeded_weights import seeded_state_dict

    net = GFPGANClean(**TINY_GFPGAN_ARCH)
    net.load_state_dict(seeded_state_dict({k: v.shape for k, v in net.state_dict().items()}, 0))
    path = tmp_path_factory.mktemp("gfpgan") / "GFPGANv1.4.pth"
    torch.save({"params_ema": net.state_dict()}, path)
    return path, TINY_GFPGAN_ARCH
