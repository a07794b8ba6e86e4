"""Swap stage: put the source face into the target picture.

Two implementations behind :class:`FaceSwapper`:

- :class:`faceswap.ghost.GhostFaceSwapper`: GHOST (ai-forever/ghost) in PyTorch, from its published
  checkpoints;
- :class:`ClassicalFaceSwapper`: no learned weights: the source's skin and features warped onto the
  target's face geometry, relit with the target's light, feathered in.

:func:`make_swapper` picks GHOST when both of its files are present, the classical one otherwise.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from skimage.transform import PiecewiseAffineTransform, SimilarityTransform, warp

from faceswap.config import FaceSwapConfig
from faceswap.detect import Face, FaceDetector

log = logging.getLogger(__name__)

class FaceSwapper(Protocol):
    name: str

    def swap(self, source: np.ndarray, source_face: Face, target: np.ndarray, target_face: Face) -> np.ndarray:
        """The target picture (RGB uint8) with the face ``target_face`` replaced by ``source_face``."""
        ...


class SwapRefused(ValueError):
    """The swap would not give a face worth sending; the pipeline tells the user why."""


class PoseMismatch(SwapRefused):
    """The source and target faces are turned too differently for the classical swap."""

    def __init__(self, yaw: float, pitch: float) -> None:
        super().__init__(f"the faces are turned too differently (yaw {yaw:.0f}, pitch {pitch:.0f} degrees apart)")
        self.yaw = yaw
        self.pitch = pitch


class ResultDistorted(SwapRefused):
    """The swapped face no longer has the target's pose (the texture did not fit the geometry)."""


def masked_blur(image: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of ``image`` that only averages pixels under ``mask`` (normalised convolution)."""
    weight = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma)
    values = cv2.GaussianBlur(image.astype(np.float32) * mask[..., None], (0, 0), sigma)
    return values / np.maximum(weight[..., None], 1e-3)


def feather(mask: np.ndarray, width: float) -> np.ndarray:
    """A hard 0/1 mask -> 0..1, rising smoothly over ``width`` pixels inwards from its edge."""
    inside = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    t = np.clip(inside / max(width, 1.0), 0.0, 1.0)
    return (t * t * (3 - 2 * t)).astype(np.float32)


# dlib's 68 points: the face outline (jaw, then the brows' upper edge, outer to outer).
OUTLINE = list(range(17)) + list(range(26, 16, -1))
FEATURES = [list(range(17, 22)), list(range(22, 27)), list(range(27, 36)), list(range(36, 42)), list(range(42, 48)), list(range(48, 68))]
# Upper and lower lid / lip points that face each other: the opening of the eyes and the mouth.
OPENINGS = ((37, 41), (38, 40), (43, 47), (44, 46), (61, 67), (62, 66), (63, 65))
# For each inner-lip point (60-67), the outer-lip points around it (averaged), as pairs.
OUTER_FOR_INNER = [48, 48, 49, 50, 51, 51, 52, 53, 54, 54, 55, 56, 57, 57, 58, 59]


class ClassicalFaceSwapper:
    """The source face's skin and features, moved onto the target face's geometry.

    - Geometry: a piecewise-affine warp over the Delaunay triangles of the 68 landmarks maps the
      source face onto the target's geometry, so the result keeps the target's head pose, face
      outline and expression: the destination is the target's generic head in its pose plus
      ``face_shape`` of the source's own shape (:meth:`destination`), with the target's mouth and eye
      opening kept.
    - Region: the target's face outline up to the brows; the forehead and hairline stay the target's,
      and so does the inside of the mouth.
    - Light and skin tone: in Lab, the target's low frequencies (measured on skin only) plus the
      source's detail, its colour detail no stronger than the scene's own.
    - Blend: a mask feathered inwards from the outline; no Poisson step, whose boundary conditions
      pulled colour casts from the background into the face.
    - Check: with a ``detector``, the result's head pose must stay within ``max_pose_drift`` degrees of
      the target's, else :class:`ResultDistorted`.
    - Refusal: when the heads are turned too differently (yaw or pitch apart by more than
      ``max_yaw`` / ``max_pitch`` degrees) the source cannot cover the target's visible side:
      :class:`PoseMismatch`.
    """

    name = "classical"

    def __init__(
        self,
        face_shape: float = 1.0,
        margin: float = 0.15,
        max_yaw: float = 40.0,
        max_pitch: float = 30.0,
        light_sigma: float = 0.15,
        feather_width: float = 0.04,
        colour_detail: float = 1.0,
        target_mouth: float = 0.0,
        detector: FaceDetector | None = None,
        max_pose_drift: float = 5.0,
    ) -> None:
        # With a detector, each result is checked: the face found on it must have the target's head
        # pose within ``max_pose_drift`` degrees, or the swap is refused (ResultDistorted).
        self.detector = detector
        self.max_pose_drift = max_pose_drift
        self.colour_detail = colour_detail
        self.target_mouth = target_mouth
        self.face_shape = face_shape
        self.margin = margin
        self.max_yaw = max_yaw
        self.max_pitch = max_pitch
        self.light_sigma = light_sigma  # of the face size: what counts as light rather than detail
        self.feather_width = feather_width  # of the face size

    def check_pose(self, source: np.ndarray, source_face: Face, target: np.ndarray, target_face: Face) -> None:
        from faceswap.geometry import head_pose

        a = head_pose(source_face.landmarks, (source.shape[1], source.shape[0]))
        b = head_pose(target_face.landmarks, (target.shape[1], target.shape[0]))
        yaw, pitch = abs(a.yaw - b.yaw), abs(a.pitch - b.pitch)
        if yaw > self.max_yaw or pitch > self.max_pitch:
            raise PoseMismatch(yaw, pitch)

    def verify(self, result: np.ndarray, target: np.ndarray, target_face: Face) -> None:
        from faceswap.geometry import head_pose
        from faceswap.quality import face_near

        found = face_near(self.detector, result, target_face.box)
        if found is None:
            raise ResultDistorted("no face is found on the swapped picture")
        size = (target.shape[1], target.shape[0])
        drift = head_pose(found.landmarks, size).distance(head_pose(target_face.landmarks, size))
        if drift > self.max_pose_drift:
            raise ResultDistorted(f"the swapped face turned by {drift:.0f} degrees")

    def destination(
        self, source_points: np.ndarray, source_size: tuple[int, int], target_points: np.ndarray, target_size: tuple[int, int]
    ) -> np.ndarray:
        """Where the source's features go: the target's pose and expression, the source's shape.

        Each face is split into a generic head seen in its pose (:func:`generic_projection`) and its
        own remainder, the shape of this person. The result takes the target's generic head (its
        pose) plus ``face_shape`` of the source's remainder, turned and scaled like the target's
        head; the lids and the inner lips then keep the target's opening (its expression).
        """
        from faceswap.geometry import generic_projection

        dst = np.asarray(target_points, dtype=np.float64).copy()
        if self.face_shape > 0:
            source_generic = generic_projection(source_points, source_size)
            target_generic = generic_projection(dst, target_size)
            fit = SimilarityTransform.from_estimate(source_generic, target_generic)
            if fit:
                linear = fit.params[:2, :2]
                source_own = (source_points - source_generic) @ linear.T
                target_own = dst - target_generic
                dst += self.face_shape * (source_own - target_own)
        for upper, lower in OPENINGS:
            centre = (dst[upper] + dst[lower]) / 2
            half = (target_points[lower] - target_points[upper]) / 2
            dst[upper], dst[lower] = centre - half, centre + half
        return dst

    def swap(self, source: np.ndarray, source_face: Face, target: np.ndarray, target_face: Face) -> np.ndarray:
        self.check_pose(source, source_face, target, target_face)
        height, width = target.shape[:2]
        source_points = np.asarray(source_face.landmarks, dtype=np.float64)
        target_points = np.asarray(target_face.landmarks, dtype=np.float64)
        dst_points = self.destination(
            source_points, (source.shape[1], source.shape[0]), target_points, (target.shape[1], target.shape[0])
        )
        dst_points[:, 0] = dst_points[:, 0].clip(0, width - 1)
        dst_points[:, 1] = dst_points[:, 1].clip(0, height - 1)

        # Work inside the target face's box plus a margin.
        x, y, w, h = cv2.boundingRect(np.round(target_points).astype(np.int32))
        size = max(w, h)
        pad = int(size * self.margin) + 2
        x0, y0 = max(0, x - pad), max(0, y - pad)
        x1, y1 = min(width, x + w + pad), min(height, y + h + pad)
        local = dst_points - (x0, y0)

        # ``warp`` wants the inverse map: output coordinates -> source coordinates.
        tform = PiecewiseAffineTransform.from_estimate(local, source_points)
        if not tform:
            raise ValueError("could not triangulate the face landmarks")
        warped = warp(source, tform, output_shape=(y1 - y0, x1 - x0), order=1, preserve_range=True).astype(np.float32)
        covered = warp(np.ones(source.shape[:2]), tform, output_shape=(y1 - y0, x1 - x0), order=0) > 0.5

        region = target[y0:y1, x0:x1].astype(np.float32)
        hard = np.zeros(region.shape[:2], np.uint8)
        cv2.fillPoly(hard, [np.round(target_points[OUTLINE] - (x0, y0)).astype(np.int32)], 1)
        hard &= covered.astype(np.uint8)
        if hard.sum() < 64:
            raise ValueError("the target face is too small to swap")

        # Relight: the source's detail over the target's light and skin tone, measured on skin only
        # (eyes, brows and lips would print the target's features into the ratio).
        skin = hard.copy()
        for group in (*FEATURES[:2], FEATURES[3], FEATURES[4], FEATURES[5]):
            for points in (target_points[group], dst_points[group]):
                cv2.fillConvexPoly(skin, cv2.convexHull(np.round(points - (x0, y0)).astype(np.int32)), 0)
        skin = cv2.erode(skin, np.ones((3, 3), np.uint8)).astype(np.float32)
        # In Lab: the target's low frequencies plus the source's detail; the source's colour detail
        # at half strength, so its make-up and colour cast do not fight the scene's light.
        sigma = max(1.0, self.light_sigma * size)
        source_lab = cv2.cvtColor(np.clip(warped, 0, 255).astype(np.uint8), cv2.COLOR_RGB2LAB).astype(np.float32)
        target_lab = cv2.cvtColor(region.astype(np.uint8), cv2.COLOR_RGB2LAB).astype(np.float32)
        detail = source_lab - masked_blur(source_lab, skin, sigma)
        target_detail = target_lab - masked_blur(target_lab, skin, sigma)
        # The source's colour detail no stronger than the target's own: a grey or pale scene gets
        # no pink or blue casts from the source's make-up and light.
        on_skin = skin > 0
        for channel in (1, 2):
            spread = float(detail[..., channel][on_skin].std()) if on_skin.any() else 0.0
            own = float(target_detail[..., channel][on_skin].std()) if on_skin.any() else 0.0
            detail[..., channel] *= self.colour_detail * min(1.0, own / max(spread, 1e-3))
        relit_lab = np.clip(masked_blur(target_lab, skin, sigma) + detail, 0, 255).astype(np.uint8)
        relit = cv2.cvtColor(relit_lab, cv2.COLOR_LAB2RGB).astype(np.float32)

        # The mouth stays the target's: its opening is the target's expression, and the source's teeth
        # squeezed into another opening would not look like teeth.
        paint = hard.copy()
        inner = target_points[60:68]
        outer = target_points[OUTER_FOR_INNER].reshape(8, -1, 2).mean(axis=1)
        mouth = inner + self.target_mouth * (outer - inner)
        cv2.fillPoly(paint, [np.round(mouth - (x0, y0)).astype(np.int32)], 0)
        alpha = feather(hard, self.feather_width * size)
        alpha = np.minimum(alpha, cv2.GaussianBlur(paint.astype(np.float32), (0, 0), max(1.0, 0.01 * size)))[..., None]
        out = target.copy()
        out[y0:y1, x0:x1] = np.clip(alpha * relit + (1 - alpha) * region + 0.5, 0, 255).astype(np.uint8)
        if self.detector is not None:
            self.verify(out, target, target_face)
        return out


def make_swapper(config: FaceSwapConfig, detector: FaceDetector | None = None, on_use=None) -> FaceSwapper:
    """GHOST when both of its checkpoints are configured and present, the classical swap otherwise."""
    generator, arcface = config.ghost_generator_path, config.ghost_arcface_path
    if generator and arcface and Path(generator).is_file() and Path(arcface).is_file():
        from faceswap.ghost import GhostFaceSwapper

        log.info("face swap: GHOST (PyTorch, %s + %s)", Path(generator).name, Path(arcface).name)
        landmarks = getattr(detector, "landmarks68", None)
        return GhostFaceSwapper(generator, arcface, device=config.device, landmarks=landmarks, on_use=on_use)
    if generator or arcface:
        log.warning("face swap: GHOST files not found (%s, %s): using the classical swap", generator, arcface)
    else:
        log.info("face swap: GHOST not configured, using the classical swap")
    return ClassicalFaceSwapper(detector=detector)
