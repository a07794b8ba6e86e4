"""Swap stage: put the source face into the target picture.

Two implementations behind :class:`FaceSwapper`:

- :class:`GhostFaceSwapper`: GHOST (ai-forever/ghost), its AEI-Net generator and ArcFace identity
  encoder exported to ONNX and run with onnxruntime, with GHOST's own 224 px alignment;
- :class:`ClassicalFaceSwapper`: no learned weights at all: a piecewise-affine warp over the
  Delaunay triangulation of the 68 landmarks, colour transfer in Lab, and Poisson blending.

:func:`make_swapper` picks GHOST when both of its files are present, the classical one otherwise.
"""

from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from skimage.transform import PiecewiseAffineTransform, SimilarityTransform, warp

from faceswap.config import FaceSwapConfig
from faceswap.detect import Face

log = logging.getLogger(__name__)

# insightface's ArcFace template: eye centres, nose tip, mouth corners in a 112 x 112 crop.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)
# insightface 0.2.1's five pose templates (left profile .. right profile) at 112 px. GHOST crops
# with ``norm_crop(img, kps, 224, mode="None")``: these doubled, the best-fitting one wins.
GHOST_TEMPLATES = np.array(
    [
        [[51.642, 50.115], [57.617, 49.990], [35.740, 69.007], [51.157, 89.050], [57.025, 89.702]],
        [[45.031, 50.118], [65.568, 50.872], [39.677, 68.111], [45.177, 86.190], [64.246, 86.758]],
        [[39.730, 51.138], [72.270, 51.138], [56.000, 68.493], [42.463, 87.010], [69.537, 87.010]],
        [[46.845, 50.872], [67.382, 50.118], [72.737, 68.111], [48.167, 86.758], [67.236, 86.190]],
        [[54.796, 49.990], [60.771, 50.115], [76.673, 69.007], [55.388, 89.702], [61.257, 89.050]],
    ],
    dtype=np.float32,
)
GHOST_CROP = 224  # GHOST's alignment size
GHOST_INPUT = 256  # the generator's input size (the 224 crop resized)
ARCFACE_INPUT = 112  # the identity encoder's input size (the 224 crop halved)


class FaceSwapper(Protocol):
    name: str

    def swap(self, source: np.ndarray, source_face: Face, target: np.ndarray, target_face: Face) -> np.ndarray:
        """The target picture (RGB uint8) with the face ``target_face`` replaced by ``source_face``."""
        ...


def estimate_norm(points5: np.ndarray, image_size: int, templates: np.ndarray) -> tuple[np.ndarray, int]:
    """The similarity transform (2 x 3) that best maps the five points onto one of ``templates``.

    insightface's ``estimate_norm`` (0.2.1, which GHOST pins): a least-squares similarity to each
    template scaled to ``image_size``; the one with the smallest summed point error wins.
    """
    points5 = np.asarray(points5, dtype=np.float64)
    best, best_index, best_error = None, 0, np.inf
    for index, template in enumerate(np.asarray(templates, dtype=np.float64) * (image_size / 112.0)):
        tform = SimilarityTransform.from_estimate(points5, template)
        if not tform:
            continue
        error = np.linalg.norm(tform(points5) - template, axis=1).sum()
        if error < best_error:
            best, best_index, best_error = tform.params[:2], index, error
    if best is None:
        raise ValueError("degenerate face landmarks")
    return best.astype(np.float32), best_index


def norm_crop(image: np.ndarray, points5: np.ndarray, size: int, templates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    matrix, _ = estimate_norm(points5, size, templates)
    return cv2.warpAffine(image, matrix, (size, size), borderValue=0.0), matrix


def face_mask(shape: tuple[int, int], landmarks: np.ndarray, erode: float = 0.04, blur: float = 0.08) -> np.ndarray:
    """A soft float mask (0..1) over the convex hull of the landmarks, shrunk and feathered."""
    mask = np.zeros(shape, dtype=np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(landmarks).astype(np.int32)), 255)
    x, y, w, h = cv2.boundingRect(mask)
    size = max(w, h, 1)
    erode_px = max(1, int(size * erode))
    mask = cv2.erode(mask, np.ones((erode_px, erode_px), np.uint8))
    blur_px = max(1, int(size * blur)) | 1
    return cv2.GaussianBlur(mask, (blur_px, blur_px), 0).astype(np.float32) / 255.0


def paste_back(target: np.ndarray, crop: np.ndarray, matrix: np.ndarray, crop_mask: np.ndarray) -> np.ndarray:
    """Warp a face crop (made with ``matrix``) back into the target and blend it with the mask."""
    height, width = target.shape[:2]
    inverse = cv2.invertAffineTransform(matrix)
    face = cv2.warpAffine(crop, inverse, (width, height), borderMode=cv2.BORDER_REPLICATE)
    mask = cv2.warpAffine(crop_mask, inverse, (width, height))[..., None]
    blended = mask * face.astype(np.float32) + (1 - mask) * target.astype(np.float32)
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def transfer_colour(source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Reinhard colour transfer in Lab: give ``source`` the target's mean and spread under ``mask``."""
    src_lab = cv2.cvtColor(source, cv2.COLOR_RGB2LAB).astype(np.float32)
    dst_lab = cv2.cvtColor(target, cv2.COLOR_RGB2LAB).astype(np.float32)
    inside = mask > 0
    src_mean, src_std = src_lab[inside].mean(axis=0), src_lab[inside].std(axis=0) + 1e-6
    dst_mean, dst_std = dst_lab[inside].mean(axis=0), dst_lab[inside].std(axis=0) + 1e-6
    out = (src_lab - src_mean) * (dst_std / src_std) + dst_mean
    return cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def with_forehead(landmarks: np.ndarray, amount: float) -> np.ndarray:
    """The 68 landmarks plus the ten eyebrow points moved up the face by ``amount``."""
    points = np.asarray(landmarks, dtype=np.float64)
    if amount <= 0:
        return points
    brows = points[17:27]
    up = brows.mean(axis=0) - points[8]  # chin -> brows
    return np.vstack([points, brows + amount * up])


class ClassicalFaceSwapper:
    """Landmark warp + colour correction + Poisson blending (OpenCV's ``seamlessClone``)."""

    name = "classical"

    def __init__(self, shape_weight: float = 1.0, forehead: float = 0.2, margin: float = 0.15) -> None:
        # How much of the source face's shape the result takes (0: the target's landmarks, 1: the
        # source's landmarks moved onto the target by one similarity transform). Identity lives
        # largely in the geometry (eye distance, nose and mouth proportions): a pure warp onto the
        # target's landmarks would carry the skin and leave the target's face shape.
        self.shape_weight = shape_weight
        self.margin = margin  # context kept around the face box while warping
        # dlib's 68 points stop at the eyebrows; the brows are also raised by this fraction of
        # the chin-to-brow height so the swapped region covers the lower forehead.
        self.forehead = forehead

    def swap(self, source: np.ndarray, source_face: Face, target: np.ndarray, target_face: Face) -> np.ndarray:
        height, width = target.shape[:2]
        source_points = with_forehead(source_face.landmarks, self.forehead)
        target_points = with_forehead(target_face.landmarks, self.forehead)
        aligned = SimilarityTransform.from_estimate(source_points, target_points)
        if not aligned:
            raise ValueError("degenerate face landmarks")
        dst_points = (1 - self.shape_weight) * target_points + self.shape_weight * aligned(source_points)
        dst_points[:, 0] = dst_points[:, 0].clip(0, width - 1)
        dst_points[:, 1] = dst_points[:, 1].clip(0, height - 1)
        # Work inside the target face's bounding box (plus a margin): warping the whole picture
        # would cost seconds for nothing.
        x, y, w, h = cv2.boundingRect(np.round(np.vstack([dst_points, target_points])).astype(np.int32))
        pad = int(max(w, h) * self.margin) + 2
        x0, y0 = max(0, x - pad), max(0, y - pad)
        x1, y1 = min(width, x + w + pad), min(height, y + h + pad)
        local_points = dst_points - (x0, y0)

        # skimage triangulates the landmarks (Delaunay) and fits one affine map per triangle;
        # ``warp`` wants the inverse map, output coordinates -> source coordinates.
        tform = PiecewiseAffineTransform.from_estimate(local_points, source_points)
        if not tform:
            raise ValueError("could not triangulate the face landmarks")
        warped = warp(source, tform, output_shape=(y1 - y0, x1 - x0), order=1, preserve_range=True)
        warped = np.clip(warped, 0, 255).astype(np.uint8)

        region = np.ascontiguousarray(target[y0:y1, x0:x1])
        # Paint only where both the moved source face and the target's own face are: outside the
        # target's face the Poisson boundary would fall on hair or background and bleed.
        mask = np.zeros(region.shape[:2], dtype=np.uint8)
        cv2.fillConvexPoly(mask, cv2.convexHull(np.round(local_points).astype(np.int32)), 255)
        target_hull = np.zeros_like(mask)
        cv2.fillConvexPoly(target_hull, cv2.convexHull(np.round(target_points - (x0, y0)).astype(np.int32)), 255)
        mask = cv2.bitwise_and(mask, target_hull)
        erode_px = max(1, int(max(w, h) * 0.03))
        mask = cv2.erode(mask, np.ones((erode_px, erode_px), np.uint8))
        if not mask.any():
            raise ValueError("the target face is too small to swap")
        warped = transfer_colour(warped, region, mask)

        # Poisson blending keeps the warped face's gradients and takes the boundary colours from
        # the target, so lighting seams disappear.
        full_face = np.zeros_like(target)
        full_face[y0:y1, x0:x1] = warped
        full_mask = np.zeros(target.shape[:2], dtype=np.uint8)
        full_mask[y0:y1, x0:x1] = mask
        # seamlessClone needs a one-pixel frame around the mask inside the picture.
        full_mask[[0, -1], :] = 0
        full_mask[:, [0, -1]] = 0
        mx, my, mw, mh = cv2.boundingRect(full_mask)
        if mw == 0 or mh == 0:
            raise ValueError("the target face is too small to swap")
        centre = (mx + mw // 2, my + mh // 2)
        return cv2.seamlessClone(full_face, np.ascontiguousarray(target), full_mask, centre, cv2.NORMAL_CLONE)


def onnx_providers(device: str = "auto") -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device != "cpu" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def to_blob(rgb: np.ndarray, size: int) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> float32 (1, 3, size, size) in [-1, 1], as GHOST normalises."""
    if rgb.shape[0] != size or rgb.shape[1] != size:
        rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_LINEAR)
    blob = rgb.astype(np.float32) / 127.5 - 1.0
    return np.ascontiguousarray(blob.transpose(2, 0, 1)[None])


def from_blob(blob: np.ndarray) -> np.ndarray:
    image = (np.asarray(blob[0], dtype=np.float32).transpose(1, 2, 0) + 1.0) * 127.5
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


class GhostFaceSwapper:
    """GHOST's AEI-Net generator and ArcFace encoder, as ONNX files run by onnxruntime.

    Signatures (those of ai-forever/ghost's ``G(target, source_embed)`` and ``iresnet100``):
    the ArcFace encoder takes RGB (1, 3, 112, 112) in [-1, 1] and returns the (1, 512) identity;
    the generator takes the target face (1, 3, 256, 256) in [-1, 1] and the identity (1, 512) and
    returns the swapped face (1, 3, 256, 256) in [-1, 1] as its first output. Inputs are matched by
    rank, not by name, since exports name them differently.
    """

    name = "ghost"

    def __init__(self, generator_path: Path, arcface_path: Path, device: str = "auto") -> None:
        self.generator_path = Path(generator_path)
        self.arcface_path = Path(arcface_path)
        self.device = device

    def _session(self, path: Path):
        import onnxruntime as ort

        return ort.InferenceSession(str(path), providers=onnx_providers(self.device))

    @cached_property
    def _generator(self):
        return self._session(self.generator_path)

    @cached_property
    def _arcface(self):
        return self._session(self.arcface_path)

    def identity(self, source: np.ndarray, source_face: Face) -> np.ndarray:
        crop, _ = norm_crop(source, source_face.five_points, GHOST_CROP, GHOST_TEMPLATES)
        session = self._arcface
        (embedding,) = session.run(None, {session.get_inputs()[0].name: to_blob(crop, ARCFACE_INPUT)})[:1]
        return np.asarray(embedding, dtype=np.float32).reshape(1, -1)

    def swap(self, source: np.ndarray, source_face: Face, target: np.ndarray, target_face: Face) -> np.ndarray:
        embedding = self.identity(source, source_face)
        crop, matrix = norm_crop(target, target_face.five_points, GHOST_CROP, GHOST_TEMPLATES)
        session = self._generator
        feeds = {}
        for node in session.get_inputs():
            feeds[node.name] = to_blob(crop, GHOST_INPUT) if len(node.shape) == 4 else embedding
        swapped = from_blob(session.run(None, feeds)[0])
        swapped = cv2.resize(swapped, (GHOST_CROP, GHOST_CROP), interpolation=cv2.INTER_AREA)
        # Blend inside the target's landmark hull (GHOST masks by landmarks as well).
        crop_landmarks = cv2.transform(target_face.landmarks[None].astype(np.float32), matrix)[0]
        mask = face_mask((GHOST_CROP, GHOST_CROP), crop_landmarks)
        return paste_back(target, swapped, matrix, mask)


def make_swapper(config: FaceSwapConfig) -> FaceSwapper:
    generator, arcface = config.ghost_generator_path, config.ghost_arcface_path
    if generator and arcface and Path(generator).is_file() and Path(arcface).is_file():
        log.info("face swap: GHOST (onnxruntime)")
        return GhostFaceSwapper(generator, arcface, device=config.device)
    log.info("face swap: GHOST files not configured or absent, using the classical swap")
    return ClassicalFaceSwapper()
