"""Writing the videos of /animate and /video: H.264 MP4 through PyAV (its wheel bundles FFmpeg with
libx264), a JPEG thumbnail of the first frame, and the frames the safety check looks at.

No torch here: frames are uint8 RGB arrays (H, W, 3).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

# Telegram: bots upload files up to 50 MB; a little room is left for the multipart envelope.
MAX_VIDEO_BYTES = 49 * 1024 * 1024
THUMBNAIL_SIDE = 320  # Telegram: a thumbnail is a JPEG up to 320 px a side and under 200 kB
THUMBNAIL_MAX_BYTES = 200 * 1000
DEFAULT_CRF = 20
MAX_CRF = 40


@dataclass
class VideoFile:
    """A finished video on disk and what delivery and the safety check need to know about it."""

    path: Path
    fps: int
    frames: int
    width: int
    height: int
    thumbnail: bytes  # JPEG
    # (frame index, picture) of the first frame, one frame a second and the last frame.
    samples: list[tuple[int, Image.Image]] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.frames / self.fps


def sample_indices(frames: int, fps: int) -> list[int]:
    """The frames the safety check looks at: the first, one every second, the last."""
    if frames <= 0:
        return []
    return sorted(set(range(0, frames, max(1, fps))) | {frames - 1})


def thumbnail(frame: np.ndarray | Image.Image) -> bytes:
    image = frame if isinstance(frame, Image.Image) else Image.fromarray(frame)
    image = image.convert("RGB")
    image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    for quality in (85, 70, 50, 30):
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        if buffer.tell() <= THUMBNAIL_MAX_BYTES:
            break
    return buffer.getvalue()


def _even(value: int) -> int:
    return value - value % 2


class Mp4Writer:
    """Frames in, an H.264 (yuv420p, +faststart) MP4 out; frames are written as they come."""

    def __init__(self, path: Path, fps: int, crf: int = DEFAULT_CRF) -> None:
        import av

        self.path = Path(path)
        self.fps = int(fps)
        self.crf = crf
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), mode="w", options={"movflags": "+faststart"})
        self._stream = None
        self.frames = 0
        self.size: tuple[int, int] | None = None
        self.first: np.ndarray | None = None
        self.samples: dict[int, Image.Image] = {}

    def _open_stream(self, width: int, height: int) -> None:
        stream = self._container.add_stream("libx264", rate=Fraction(self.fps))
        stream.width, stream.height = _even(width), _even(height)
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(self.crf), "preset": "medium"}
        stream.time_base = Fraction(1, self.fps)
        self._stream = stream
        self.size = (width, height)

    def write(self, frame: np.ndarray) -> None:
        import av

        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        h, w = frame.shape[:2]
        if self._stream is None:
            self._open_stream(w, h)
            self.first = frame
        elif (w, h) != self.size:
            raise ValueError(f"frame {self.frames} is {w}x{h}, the video is {self.size[0]}x{self.size[1]}")
        picture = av.VideoFrame.from_ndarray(frame[: _even(h), : _even(w)], format="rgb24")
        picture.pts = self.frames
        for packet in self._stream.encode(picture):
            self._container.mux(packet)
        if self.frames % self.fps == 0:
            self.samples[self.frames] = Image.fromarray(frame)
        self._last = frame
        self.frames += 1

    def close(self) -> VideoFile:
        if self._stream is None:
            self._container.close()
            raise ValueError("a video needs at least one frame")
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self.samples[self.frames - 1] = Image.fromarray(self._last)
        width, height = self.size
        return VideoFile(
            path=self.path,
            fps=self.fps,
            frames=self.frames,
            width=_even(width),
            height=_even(height),
            thumbnail=thumbnail(self.first),
            samples=sorted(self.samples.items()),
        )

    def abort(self) -> None:
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - the half-written file is removed anyway
            pass
        self.path.unlink(missing_ok=True)


def decode_frames(path: Path) -> Iterable[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def fit_upload_limit(video: VideoFile, max_bytes: int = MAX_VIDEO_BYTES) -> VideoFile:
    """Re-encode with a higher CRF (lower quality) until the file fits Telegram's upload limit."""
    crf = DEFAULT_CRF
    while video.path.stat().st_size > max_bytes:
        crf += 6
        if crf > MAX_CRF:
            raise ValueError(f"{video.path} stays over {max_bytes} bytes even at CRF {MAX_CRF}")
        log.info("%s is %d bytes, over the limit: re-encoding at CRF %d", video.path, video.path.stat().st_size, crf)
        smaller = video.path.with_suffix(".tmp.mp4")
        writer = Mp4Writer(smaller, video.fps, crf=crf)
        for frame in decode_frames(video.path):
            writer.write(frame)
        encoded = writer.close()
        smaller.replace(video.path)
        video = VideoFile(
            path=video.path,
            fps=video.fps,
            frames=encoded.frames,
            width=encoded.width,
            height=encoded.height,
            thumbnail=video.thumbnail,
            samples=video.samples,
        )
    return video


def write_mp4(frames: Iterable[np.ndarray], path: Path, fps: int, max_bytes: int = MAX_VIDEO_BYTES) -> VideoFile:
    writer = Mp4Writer(path, fps)
    try:
        for frame in frames:
            writer.write(frame)
        video = writer.close()
    except BaseException:
        writer.abort()
        raise
    return fit_upload_limit(video, max_bytes)
