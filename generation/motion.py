"""Camera moves and animation settings of /animate: plain data (no torch), shared by handlers and workers.

A scene's camera follows a trajectory: its position (x, y, z) and its three angles (tilt about x,
pan-turn about y, roll about z) as functions of the time since the scene began, in the frame of the
camera at that moment. Axes are the image's: x to the right, y down, z forward (into the picture).
Every button names what the *camera* does, as a film crew would: "pan right" moves the camera to the
right, so the picture's content slides to the left; "zoom in" moves the camera forward (a dolly), so
the content grows about the centre; "rotate clockwise" rolls the camera clockwise, so the content
turns counter-clockwise on the screen.

Units: positions in the same units as the depth range (``z_near``..``z_far``), angles in degrees.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

Pose = tuple[float, float, float, float, float, float]  # x, y, z, tilt, turn, roll
Trajectory = Callable[[float], Pose]


class CameraMove(StrEnum):
    ZOOM_IN = "zoom_in"
    ZOOM_OUT = "zoom_out"
    PAN_LEFT = "pan_left"
    PAN_RIGHT = "pan_right"
    PAN_UP = "pan_up"
    PAN_DOWN = "pan_down"
    ROTATE_CW = "rotate_cw"
    ROTATE_CCW = "rotate_ccw"
    DRIFT = "drift"  # a slow zoom in with a pan to the right and a gentle sway


# Speeds chosen so a 4-second scene moves clearly but keeps the picture recognisable: at the middle
# of the default depth range (z = 3) with the default 60 degree field of view, a pan slides the
# content by about a tenth of the frame width a second and a zoom grows it by about 1.2x a second.
PAN_SPEED = 0.35  # units per second
ZOOM_SPEED = 0.5  # units per second
ROLL_SPEED = 10.0  # degrees per second


def _linear(vx: float = 0.0, vy: float = 0.0, vz: float = 0.0, roll: float = 0.0) -> Trajectory:
    def pose(t: float) -> Pose:
        return (vx * t, vy * t, vz * t, 0.0, 0.0, roll * t)

    return pose


def _drift(t: float) -> Pose:
    # Slow dolly forward and pan right, with the camera turning slightly side to side (4 s period).
    sway = 1.5 * math.sin(2 * math.pi * t / 4.0)
    return (0.4 * PAN_SPEED * t, 0.0, 0.5 * ZOOM_SPEED * t, 0.0, sway, 0.0)


TRAJECTORIES: dict[CameraMove, Trajectory] = {
    CameraMove.ZOOM_IN: _linear(vz=ZOOM_SPEED),
    CameraMove.ZOOM_OUT: _linear(vz=-ZOOM_SPEED),
    CameraMove.PAN_LEFT: _linear(vx=-PAN_SPEED),
    CameraMove.PAN_RIGHT: _linear(vx=PAN_SPEED),
    CameraMove.PAN_UP: _linear(vy=-PAN_SPEED),
    CameraMove.PAN_DOWN: _linear(vy=PAN_SPEED),
    CameraMove.ROTATE_CW: _linear(roll=ROLL_SPEED),
    CameraMove.ROTATE_CCW: _linear(roll=-ROLL_SPEED),
    CameraMove.DRIFT: _drift,
}

MAX_SCENES = 4
ANIMATION_MAX_SIDE = 768  # frames: the user's aspect ratio, the longest side at most this
SCENE_SECONDS = 4.0  # each scene, the transition to the next included (Kandinsky 3 paper, appendix C)


@dataclass(frozen=True)
class AnimationSettings:
    """How an animation is rendered. Defaults: what the bot uses; tests pass tiny values."""

    fps: int = 12
    scene_seconds: float = SCENE_SECONDS
    transition_seconds: float = 1.0  # the last part of a scene, blending its prompt into the next one's
    cadence: int = 2  # image-to-image on every k-th frame; the frames between are warps, cross-faded
    strength: float = 0.35  # image-to-image strength on the warped frames
    z_near: float = 1.0
    z_far: float = 6.0
    fov_degrees: float = 60.0
    colour_coherence: bool = True  # match each diffused frame's colours to the scene's first frame

    def __post_init__(self) -> None:
        if self.fps < 1 or self.cadence < 1:
            raise ValueError("fps and cadence must be at least 1")
        if not 0 < self.z_near < self.z_far:
            raise ValueError("0 < z_near < z_far")
        if not 0 <= self.transition_seconds <= self.scene_seconds:
            raise ValueError("the transition is a part of the scene")

    @property
    def frames_per_scene(self) -> int:
        return max(1, round(self.fps * self.scene_seconds))

    def total_frames(self, scenes: int) -> int:
        return self.frames_per_scene * scenes


def scene_of_frame(frame: int, frames_per_scene: int) -> int:
    """The 0-based scene a 0-based frame index belongs to."""
    return frame // frames_per_scene
