"""Detect and align faces with dlib and the models shipped in ``face-recognition-models``.

Detection runs in two stages: dlib's HOG detector proposes faces (fast, with one upsampling step
and a permissive score threshold so small and slightly turned faces are kept), then dlib's CNN
(MMOD) detector confirms each proposal on a crop around it. HOG alone either misses faces or, on
scikit-image's astronaut photo, reports a false face on the suit; the CNN on the whole image is
right but takes seconds on a CPU. On a crop scaled so the face is about 120 px it costs a fraction
of that and rejects the false proposals.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Protocol

import dlib
import numpy as np
from PIL import Image

# Indices into dlib's 68-point layout (iBUG 300-W).
LEFT_EYE = slice(36, 42)  # the eye on the left of the image
RIGHT_EYE = slice(42, 48)
NOSE_TIP = 30
MOUTH_LEFT = 48
MOUTH_RIGHT = 54


def face_models_dir() -> Path:
    """The ``models/`` folder of ``face-recognition-models``.

    The package's ``__init__`` imports ``pkg_resources``, which current setuptools no longer
    ships, so the folder is found from the package spec without importing it.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face-recognition-models is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def to_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """An RGB uint8 array (H, W, 3), contiguous, as dlib wants it."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3], dtype=np.uint8)


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]  # left, top, right, bottom (pixels, may reach past the image)
    score: float  # the HOG detector's score
    landmarks: np.ndarray  # (68, 2) float32, x and y
    landmarks5: np.ndarray  # (5, 2) float32: dlib's 5-point model (eye corners, below the nose)

    @property
    def area(self) -> int:
        left, top, right, bottom = self.box
        return max(0, right - left) * max(0, bottom - top)

    @property
    def rect(self) -> dlib.rectangle:
        return dlib.rectangle(*self.box)

    @property
    def five_points(self) -> np.ndarray:
        """Eye centres, nose tip and mouth corners, in insightface's order (for ArcFace alignment)."""
        lm = self.landmarks
        return np.array(
            [
                lm[LEFT_EYE].mean(axis=0),
                lm[RIGHT_EYE].mean(axis=0),
                lm[NOSE_TIP],
                lm[MOUTH_LEFT],
                lm[MOUTH_RIGHT],
            ],
            dtype=np.float32,
        )


def largest_face(faces: list[Face]) -> Face | None:
    return max(faces, key=lambda face: face.area, default=None)


class FaceDetector(Protocol):
    def detect(self, image: Image.Image | np.ndarray) -> list[Face]:
        """All faces, largest first."""
        ...


class FaceEmbedder(Protocol):
    def embed(self, image: Image.Image | np.ndarray, face: Face) -> np.ndarray:
        """A 128-d identity vector; two faces of one person are closer than ``SAME_PERSON``."""
        ...


SAME_PERSON = 0.6  # dlib's threshold for its face-recognition ResNet (99.38% on LFW)


def face_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))


def _shape_to_array(shape: dlib.full_object_detection) -> np.ndarray:
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


class DlibFaceDetector:
    def __init__(
        self,
        models_dir: Path | None = None,
        hog_threshold: float = -0.3,
        confirm_with_cnn: bool = True,
        max_upsample_side: int = 1400,
    ) -> None:
        self.models_dir = Path(models_dir) if models_dir else face_models_dir()
        self.hog_threshold = hog_threshold
        self.confirm_with_cnn = confirm_with_cnn
        # Images larger than this are searched without upsampling (their faces are big enough).
        self.max_upsample_side = max_upsample_side

    @cached_property
    def _hog(self):
        return dlib.get_frontal_face_detector()

    @cached_property
    def _cnn(self):
        return dlib.cnn_face_detection_model_v1(str(self.models_dir / "mmod_human_face_detector.dat"))

    @cached_property
    def _predictor68(self):
        return dlib.shape_predictor(str(self.models_dir / "shape_predictor_68_face_landmarks.dat"))

    @cached_property
    def _predictor5(self):
        return dlib.shape_predictor(str(self.models_dir / "shape_predictor_5_face_landmarks.dat"))

    def detect(self, image: Image.Image | np.ndarray) -> list[Face]:
        rgb = to_rgb_array(image)
        upsample = 1 if max(rgb.shape[:2]) <= self.max_upsample_side else 0
        rects, scores, _ = self._hog.run(rgb, upsample, self.hog_threshold)
        faces = []
        for rect, score in zip(rects, scores):
            if self.confirm_with_cnn and not self._confirmed(rgb, rect):
                continue
            faces.append(self.align(rgb, rect, float(score)))
        faces.sort(key=lambda face: face.area, reverse=True)
        return faces

    def align(self, image: np.ndarray, rect: dlib.rectangle, score: float = 0.0) -> Face:
        """Landmarks for a face box."""
        return Face(
            box=(rect.left(), rect.top(), rect.right(), rect.bottom()),
            score=score,
            landmarks=_shape_to_array(self._predictor68(image, rect)),
            landmarks5=_shape_to_array(self._predictor5(image, rect)),
        )

    def landmarks68(self, image: Image.Image | np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """The 68 landmarks inside a given face box (for a face whose position is already known)."""
        return _shape_to_array(self._predictor68(to_rgb_array(image), dlib.rectangle(*(int(v) for v in box))))

    def _confirmed(self, rgb: np.ndarray, rect: dlib.rectangle, face_px: int = 120) -> bool:
        """Whether the CNN detector also finds a face in a crop twice the proposal's size."""
        height, width = rgb.shape[:2]
        cx, cy = (rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2
        half = max(rect.width(), rect.height())
        x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
        x1, y1 = int(min(width, cx + half)), int(min(height, cy + half))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return False
        crop = Image.fromarray(rgb[y0:y1, x0:x1])
        scale = 2 * face_px / max(crop.size)
        crop = crop.resize((max(1, round(crop.width * scale)), max(1, round(crop.height * scale))))
        return len(self._cnn(np.asarray(crop), 0)) > 0


class DlibFaceEmbedder:
    """dlib's 128-d face-recognition ResNet, on faces aligned with the 5-point predictor."""

    def __init__(self, models_dir: Path | None = None) -> None:
        self.models_dir = Path(models_dir) if models_dir else face_models_dir()

    @cached_property
    def _model(self):
        return dlib.face_recognition_model_v1(str(self.models_dir / "dlib_face_recognition_resnet_model_v1.dat"))

    @cached_property
    def _predictor5(self):
        return dlib.shape_predictor(str(self.models_dir / "shape_predictor_5_face_landmarks.dat"))

    def embed(self, image: Image.Image | np.ndarray, face: Face) -> np.ndarray:
        rgb = to_rgb_array(image)
        shape = self._predictor5(rgb, face.rect)
        return np.array(self._model.compute_face_descriptor(rgb, shape), dtype=np.float32)
