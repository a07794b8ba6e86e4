"""2.5D camera warps for /animate: a frame and its depth, seen from a moved pinhole camera.

A frame is lifted into 3D with its depth map (distances between ``z_near`` and ``z_far``) and a
pinhole camera of a given horizontal field of view, the camera moves, and the points are projected
back. The warp is computed backwards, for every pixel of the new frame: its ray in the new camera is
cut at the depth found there, the point is carried into the old camera and projected, and the old
frame is sampled at that spot (``grid_sample``). The depth along the new ray is refined once from
the old depth map at the projected spot, which makes the dolly (zoom) follow the scene's depth.
Uncovered borders are filled by reflection; image-to-image repairs them afterwards.

Coordinates follow :mod:`generation.motion`: x right, y down, z forward; a camera pose is its
rotation (camera axes in world coordinates, columns) and its centre in world coordinates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from generation.motion import TRAJECTORIES, AnimationSettings, CameraMove


@dataclass(frozen=True)
class CameraPose:
    rotation: np.ndarray  # 3x3, camera -> world
    centre: np.ndarray  # 3


IDENTITY = CameraPose(np.eye(3), np.zeros(3))


def rotation(tilt: float, turn: float, roll: float) -> np.ndarray:
    """Camera rotation from degrees about x (tilt, positive looks down), y (turn, positive looks
    right) and z (roll, positive rolls clockwise as the viewer sees it): R = Ry(turn) Rx(tilt) Rz(roll)."""
    a, b, c = (math.radians(v) for v in (tilt, turn, roll))
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return ry @ rx @ rz


def camera_path(moves: Sequence[CameraMove], settings: AnimationSettings) -> list[CameraPose]:
    """The camera pose of every frame: each scene's trajectory starts where the previous one ended."""
    poses: list[CameraPose] = []
    start = IDENTITY
    per_scene = settings.frames_per_scene
    for move in moves:
        trajectory = TRAJECTORIES[CameraMove(move)]

        def at(t: float, start: CameraPose = start, trajectory=trajectory) -> CameraPose:
            x, y, z, tilt, turn, roll = trajectory(t)
            return CameraPose(
                start.rotation @ rotation(tilt, turn, roll), start.centre + start.rotation @ np.array([x, y, z])
            )

        poses.extend(at(i / settings.fps) for i in range(per_scene))
        start = at(per_scene / settings.fps)
    return poses


def depth_from_disparity(disparity: torch.Tensor, z_near: float, z_far: float) -> torch.Tensor:
    """A monocular depth model's relative inverse depth (larger = nearer, MiDaS/DPT) -> distances
    in [z_near, z_far], linear in inverse depth as the model's output is."""
    d = disparity.float()
    lo, hi = d.amin(), d.amax()
    if float(hi - lo) < 1e-6:
        return torch.full_like(d, 0.5 * (z_near + z_far))
    d = (d - lo) / (hi - lo)
    return 1.0 / (1.0 / z_far + d * (1.0 / z_near - 1.0 / z_far))


def focal_length(width: int, fov_degrees: float) -> float:
    return 0.5 * width / math.tan(math.radians(fov_degrees) / 2)


def warp(
    image: torch.Tensor,
    depth: torch.Tensor,
    source: CameraPose,
    target: CameraPose,
    fov_degrees: float = 60.0,
    padding_mode: str = "reflection",
) -> torch.Tensor:
    """``image`` (B, C, H, W) seen from ``source`` with ``depth`` (H, W), re-rendered from ``target``."""
    _, _, h, w = image.shape
    device = image.device
    f = focal_length(w, fov_degrees)
    # Relative pose: a point in target-camera coordinates -> source-camera coordinates.
    rel_r = source.rotation.T @ target.rotation
    rel_t = source.rotation.T @ (target.centre - source.centre)
    rel_r_t = torch.tensor(rel_r, dtype=torch.float32, device=device)
    rel_t_t = torch.tensor(rel_t, dtype=torch.float32, device=device)

    u = torch.arange(w, device=device, dtype=torch.float32) + 0.5 - w / 2
    v = torch.arange(h, device=device, dtype=torch.float32) + 0.5 - h / 2
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    rays = torch.stack([uu / f, vv / f, torch.ones_like(uu)], dim=-1)  # (H, W, 3), z = 1
    depth = depth.to(device=device, dtype=torch.float32)
    depth4 = depth[None, None]

    def project(z_target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        points = rays * z_target[..., None] @ rel_r_t.T + rel_t_t
        z = points[..., 2].clamp(min=1e-4)
        grid = torch.stack([points[..., 0] * f / z / (w / 2), points[..., 1] * f / z / (h / 2)], dim=-1)
        # Points behind the old camera: sample far outside (filled by the padding mode).
        grid = torch.where((points[..., 2] > 1e-4)[..., None], grid, torch.full_like(grid, 4.0))
        return grid, points

    grid, _ = project(depth)
    # Refine the depth along the new rays once: the old depth at the projected spot, carried over.
    z_source = F.grid_sample(depth4, grid[None], mode="bilinear", padding_mode="border", align_corners=False)[0, 0]
    grid_norm = grid * torch.tensor([w / 2 / f, h / 2 / f], device=device)
    source_points = torch.cat([grid_norm, torch.ones_like(grid_norm[..., :1])], dim=-1) * z_source[..., None]
    z_target = ((source_points - rel_t_t) @ rel_r_t)[..., 2].clamp(min=1e-3)
    grid, _ = project(z_target)
    grid = grid.expand(image.shape[0], -1, -1, -1).to(image.dtype)
    return F.grid_sample(image, grid, mode="bicubic", padding_mode=padding_mode, align_corners=False).clamp(0, 1)
