"""What the 68 landmarks say about a face: head pose, how open the mouth and eyes are, and how
visible a blend boundary is. The swap uses the pose to refuse pairs it cannot serve; the quality
benchmark and tests use all three to check that a swap kept the scene's face.

Head pose: ``cv2.solvePnP`` of the 68 points against a generic 3D face (below; millimetres, x to the
image's right, y down, z away from the camera, nose tip at the origin), with a pinhole camera whose
focal length is the image width. Angles in degrees: yaw (turn left/right), pitch (nod), roll (tilt).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# A generic head, one point per dlib landmark (iBUG 300-W order). Proportions of an average adult
# face: eye corners 90 mm apart, nose tip 30 mm in front of the eyes, jaw sides 70 mm behind them.
_jaw = []
for _i in range(17):
    _phi = np.pi * _i / 16
    _jaw.append((-68 * np.cos(_phi) * (1 - 0.15 * np.sin(_phi)), -25 + 100 * np.sin(_phi) ** 1.2, 30 + 70 * abs(np.cos(_phi)) + 10 * np.sin(_phi)))
FACE_MODEL_3D = np.array(
    _jaw
    + [(-60, -47, 45), (-49, -54, 37), (-37, -56, 32), (-25, -55, 29), (-13, -51, 28)]  # brow, image left
    + [(13, -51, 28), (25, -55, 29), (37, -56, 32), (49, -54, 37), (60, -47, 45)]  # brow, image right
    + [(0, -35, 25), (0, -23, 17), (0, -11, 8), (0, 0, 0)]  # nose bridge down to the tip
    + [(-15, 10, 18), (-8, 12, 14), (0, 13, 12), (8, 12, 14), (15, 10, 18)]  # nostrils
    + [(-45, -35, 38), (-37, -39, 33), (-27, -39, 32), (-18, -35, 32), (-27, -32, 33), (-37, -32, 34)]  # eye
    + [(18, -35, 32), (27, -39, 32), (37, -39, 33), (45, -35, 38), (37, -32, 34), (27, -32, 33)]  # eye
    + [(-25, 30, 35), (-15, 25, 27), (-6, 22, 23), (0, 23, 22), (6, 22, 23), (15, 25, 27), (25, 30, 35)]  # lip top
    + [(15, 36, 27), (6, 39, 24), (0, 40, 23), (-6, 39, 24), (-15, 36, 27)]  # lip bottom
    + [(-20, 30, 32), (-6, 28, 25), (0, 28, 24), (6, 28, 25), (20, 30, 32), (6, 32, 25), (0, 32, 24), (-6, 32, 25)],
    dtype=np.float64,
)
del _jaw, _i, _phi


@dataclass(frozen=True)
class HeadPose:
    yaw: float
    pitch: float
    roll: float

    def distance(self, other: HeadPose) -> float:
        """The largest of the three angle differences, in degrees."""
        return max(abs(self.yaw - other.yaw), abs(self.pitch - other.pitch), abs(self.roll - other.roll))


def _solve(landmarks: np.ndarray, image_size: tuple[int, int]):
    width, height = image_size
    camera = np.array([[width, 0, width / 2], [0, width, height / 2], [0, 0, 1]], dtype=np.float64)
    points = np.asarray(landmarks, dtype=np.float64).reshape(68, 2)
    # Start from a frontal head at the distance its size implies: without a guess the solver can
    # settle on a mirrored pose (a face seen from behind, upside down).
    span = float(np.ptp(points[:, 0])) or 1.0
    rvec = np.zeros((3, 1))
    tvec = np.array([[points[30, 0] - width / 2], [points[30, 1] - height / 2], [width]]) * (136.0 / span)
    tvec[2, 0] = width * 136.0 / span
    ok, rvec, tvec = cv2.solvePnP(
        FACE_MODEL_3D, points, camera, None, rvec=rvec, tvec=tvec, useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE
    )
    if not ok:
        raise ValueError("head pose not found")
    return rvec, tvec, camera


def generic_projection(landmarks: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """The generic face's 68 points seen in the pose that fits ``landmarks`` best: what the
    landmarks would be for an average face; the remainder is this face's own shape."""
    rvec, tvec, camera = _solve(landmarks, image_size)
    projected, _ = cv2.projectPoints(FACE_MODEL_3D, rvec, tvec, camera, None)
    return projected[:, 0, :]


def head_pose(landmarks: np.ndarray, image_size: tuple[int, int]) -> HeadPose:
    """``image_size`` is (width, height)."""
    rvec, _, _ = _solve(landmarks, image_size)
    rotation, _ = cv2.Rodrigues(rvec)
    # Rotation = Rz(roll) @ Ry(yaw) @ Rx(pitch), angles of the head in the camera frame.
    yaw = np.degrees(np.arcsin(-np.clip(rotation[2, 0], -1, 1)))
    pitch = np.degrees(np.arctan2(rotation[2, 1], rotation[2, 2]))
    roll = np.degrees(np.arctan2(rotation[1, 0], rotation[0, 0]))
    return HeadPose(float(yaw), float(pitch), float(roll))


def _dist(points: np.ndarray, a: int, b: int) -> float:
    return float(np.linalg.norm(points[a] - points[b]))


def mouth_openness(landmarks: np.ndarray) -> float:
    """Inner-lip gap over inner mouth width (0: closed)."""
    p = np.asarray(landmarks, dtype=np.float64)
    return (_dist(p, 61, 67) + _dist(p, 62, 66) + _dist(p, 63, 65)) / (3 * max(_dist(p, 60, 64), 1e-6))


def eye_openness(landmarks: np.ndarray) -> float:
    """The eye aspect ratio (lid gap over eye width), both eyes averaged."""
    p = np.asarray(landmarks, dtype=np.float64)
    left = (_dist(p, 37, 41) + _dist(p, 38, 40)) / (2 * max(_dist(p, 36, 39), 1e-6))
    right = (_dist(p, 43, 47) + _dist(p, 44, 46)) / (2 * max(_dist(p, 42, 45), 1e-6))
    return (left + right) / 2


def seam_score(result: np.ndarray, original: np.ndarray, face_landmarks: np.ndarray, step: int = 3) -> float:
    """How visible the edge of the pasted region is.

    Along the boundary of what changed (where the result differs from the original picture), the
    colour jump across the boundary (Lab, pixels ``2 * step`` apart) and the gradient are compared
    with the original picture's at the same places: what the swap *added* there, over the typical
    colour jump and gradient between pixels as far apart inside the face. 0: no added edge; a hard
    paste adds several times the face's own texture.
    """
    diff = np.abs(result.astype(np.int16) - original.astype(np.int16)).sum(axis=-1)
    changed = (diff > 6).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(changed)
    if count <= 1:
        return 0.0
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    region = (labels == largest).astype(np.uint8)
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    boundary = max(contours, key=len)[:, 0, :].astype(np.float64)
    if len(boundary) < 8:
        return 0.0
    height, width = diff.shape

    def sample(img: np.ndarray, pts: np.ndarray) -> np.ndarray:
        x = np.clip(np.round(pts[:, 0]).astype(int), 0, width - 1)
        y = np.clip(np.round(pts[:, 1]).astype(int), 0, height - 1)
        return img[y, x]

    def measures(image: np.ndarray):
        lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float64)
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64)
        return lab, np.hypot(cv2.Sobel(gray, cv2.CV_64F, 1, 0), cv2.Sobel(gray, cv2.CV_64F, 0, 1))

    tangent = np.roll(boundary, -2, axis=0) - np.roll(boundary, 2, axis=0)
    normal = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-9
    inside, outside = boundary + step * normal, boundary - step * normal
    lab, gradient = measures(result)
    lab0, gradient0 = measures(original)
    jump = np.linalg.norm(sample(lab, inside) - sample(lab, outside), axis=1)
    jump0 = np.linalg.norm(sample(lab0, inside) - sample(lab0, outside), axis=1)
    added_jump = np.maximum(jump - jump0, 0)
    added_edge = np.maximum(sample(gradient, boundary) - sample(gradient0, boundary), 0)

    hull = np.zeros((height, width), np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(np.round(face_landmarks).astype(np.int32)), 1)
    hull = cv2.erode(hull, np.ones((2 * step + 1, 2 * step + 1), np.uint8))
    ys, xs = np.nonzero(hull)
    if len(xs) < 16:
        return 0.0
    rng = np.random.default_rng(0)
    pick = rng.choice(len(xs), size=min(2000, len(xs)), replace=False)
    centres = np.stack([xs[pick], ys[pick]], axis=1).astype(np.float64)
    angle = rng.uniform(0, np.pi, len(centres))
    offset = step * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    inner_jump = np.linalg.norm(sample(lab0, centres + offset) - sample(lab0, centres - offset), axis=1)
    inner_edge = sample(gradient0, centres)
    colour = np.mean(added_jump) / max(np.mean(inner_jump), 1.0)
    edges = np.mean(added_edge) / max(np.mean(inner_edge), 1.0)
    return float(max(colour, edges))
