"""Kandinsky 5.0 Video Lite facts the bot needs without torch: clip lengths, sizes, steps."""

from __future__ import annotations

from generation.backend import ModelId

VIDEO_FPS = 24  # the frame rate the model was trained at
VIDEO_SECONDS: dict[ModelId, int] = {ModelId.K5_VIDEO_5S: 5, ModelId.K5_VIDEO_10S: 10}
VIDEO_MODELS = frozenset(VIDEO_SECONDS)
# (steps, guidance) of each hub variant: the distilled one runs 16 steps without guidance.
VARIANT_DEFAULTS: dict[str, tuple[int, float]] = {
    "distilled16steps": (16, 1.0),
    "nocfg": (50, 1.0),
    "sft": (50, 5.0),
    "pretrain": (50, 5.0),
}
DEFAULT_VARIANT = "distilled16steps"
VIDEO_SHORT_SIDE = 512


def num_frames(seconds: int, fps: int) -> int:
    """Frames of a clip: the video VAE compresses time 4x, so the count is 4k + 1."""
    return seconds * fps + 1


def video_size(aspect_ratio: str, short_side: int = VIDEO_SHORT_SIDE) -> tuple[int, int]:
    """(width, height) the Lite model supports for a user's aspect ratio: 512x512, 768x512 or 512x768
    at full size (``short_side`` scales it down for tests); sides multiples of 16."""
    try:
        w, h = (int(v) for v in aspect_ratio.split(":"))
    except ValueError:
        w, h = 1, 1
    long_side = (short_side * 3 // 2) // 16 * 16
    if w > h:
        return long_side, short_side
    if h > w:
        return short_side, long_side
    return short_side, short_side
