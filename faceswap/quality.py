"""How good one swap is, by measures that a plain paste cannot pass all at once.

For a swap of a source face onto a target face (benchmarks/faceswap_quality.py, tests):

- identity: dlib's face-recognition distance from the source to the face found in the result
  (lower is better; same person under 0.6);
- pose kept: the largest of yaw / pitch / roll differences between the result's face and the target's
  (:func:`faceswap.geometry.head_pose`), degrees;
- expression kept: mouth and eye openness of the result minus the target's;
- seam: :func:`faceswap.geometry.seam_score` (about 1 when the edge looks like the face inside).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from skimage.transform import SimilarityTransform

from faceswap.detect import Face, FaceDetector, FaceEmbedder, face_distance
from faceswap.geometry import eye_openness, head_pose, mouth_openness, seam_score

# The bars a swap must pass (issue 15).
MAX_IDENTITY = 0.6
MAX_POSE_ERROR = 5.0
MAX_MOUTH_CHANGE = 0.1
MAX_EYE_CHANGE = 0.1
MAX_SEAM = 1.0


@dataclass
class SwapQuality:
    identity: float  # nan when no face was found in the result
    pose_error: float
    mouth_change: float
    eye_change: float
    seam: float

    @property
    def found(self) -> bool:
        return not np.isnan(self.identity)

    def failures(self) -> list[str]:
        failed = []
        if not self.found or self.identity >= MAX_IDENTITY:
            failed.append("identity")
        if not self.found or self.pose_error >= MAX_POSE_ERROR:
            failed.append("pose")
        if not self.found or self.mouth_change >= MAX_MOUTH_CHANGE or self.eye_change >= MAX_EYE_CHANGE:
            failed.append("expression")
        if self.seam >= MAX_SEAM:
            failed.append("seam")
        return failed


def _centre(box) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


def face_near(detector: FaceDetector, image: np.ndarray, box: tuple[int, int, int, int]) -> Face | None:
    """The face found in a window around ``box`` (twice its size), in the image's coordinates."""
    height, width = image.shape[:2]
    left, top, right, bottom = box
    half = max(right - left, bottom - top)
    cx, cy = _centre(box)
    x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
    x1, y1 = int(min(width, cx + half)), int(min(height, cy + half))
    faces = detector.detect(np.ascontiguousarray(image[y0:y1, x0:x1]))
    if not faces:
        return None
    face = min(faces, key=lambda f: np.linalg.norm(_centre(f.box) + (x0, y0) - (cx, cy)))
    shift = np.array([x0, y0], np.float32)
    return Face(
        box=(face.box[0] + x0, face.box[1] + y0, face.box[2] + x0, face.box[3] + y0),
        score=face.score,
        landmarks=face.landmarks + shift,
        landmarks5=face.landmarks5 + shift,
    )


def measure(
    result: np.ndarray,
    target: np.ndarray,
    target_face: Face,
    source_identity: np.ndarray,
    detector: FaceDetector,
    embedder: FaceEmbedder,
) -> SwapQuality:
    seam = seam_score(result, target, target_face.landmarks)
    found = face_near(detector, result, target_face.box)
    if found is None:
        nan = float("nan")
        return SwapQuality(nan, nan, nan, nan, seam)
    size = (target.shape[1], target.shape[0])
    return SwapQuality(
        identity=face_distance(source_identity, embedder.embed(result, found)),
        pose_error=head_pose(found.landmarks, size).distance(head_pose(target_face.landmarks, size)),
        mouth_change=abs(mouth_openness(found.landmarks) - mouth_openness(target_face.landmarks)),
        eye_change=abs(eye_openness(found.landmarks) - eye_openness(target_face.landmarks)),
        seam=seam,
    )


class RectanglePaste:
    """The control that must lose: the source picture moved onto the target face by one similarity
    fit of the landmarks, and the target face's bounding box pasted hard."""

    name = "rectangle paste"

    def swap(self, source: np.ndarray, source_face: Face, target: np.ndarray, target_face: Face) -> np.ndarray:
        fit = SimilarityTransform.from_estimate(
            np.asarray(source_face.landmarks, np.float64), np.asarray(target_face.landmarks, np.float64)
        )
        height, width = target.shape[:2]
        moved = cv2.warpAffine(source, fit.params[:2], (width, height))
        x, y, w, h = cv2.boundingRect(np.round(target_face.landmarks).astype(np.int32))
        x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
        out = target.copy()
        out[y0:y1, x0:x1] = moved[y0:y1, x0:x1]
        return out
