"""The result store: where a job's images live on disk, the only code that knows the layout.

``{results_dir}/{job id}/{i}.png`` is image ``i`` of the job, drawn with seed ``seed + i`` (the
safety check may leave gaps); ``preview-{i}.jpg`` are blurred stand-ins for withheld images, never
taken for results. Images are written atomically, so a crash never leaves half a file and a result
stored before a restart is delivered after it; an image is encoded first as ``{i}.png.tmp``
("staged") and becomes ``{i}.png`` only once the safety check passed it.

A video job (/animate, /video) has one result, ``video.mp4`` (H.264), with ``thumbnail.jpg`` beside
it; the backend writes ``partial-video.mp4`` and :meth:`ResultStore.save_video` renames it when the
safety check passed, so delivery never sees half a video.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from PIL import Image


VIDEO_FILE = "video.mp4"
VIDEO_THUMBNAIL = "thumbnail.jpg"
PARTIAL_VIDEO = "partial-video.mp4"
STAGED_SUFFIX = ".png.tmp"  # an encoded image not (yet) a result: never matched by paths()'s "*.png"

# zlib level 1 instead of Pillow's 6: a 1024 px picture encodes in about a third of the time for
# about 15% more bytes (benchmarks/result_encoding.py). Encoding is on every result's way to the
# chat, and a 4096 px upscale at level 6 takes seconds.
PNG_COMPRESS_LEVEL = 1


class ResultStore:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def folder(self, job_id: int) -> Path:
        return self.root / str(job_id)

    def paths(self, job_id: int) -> list[Path]:
        """The stored images of a job, by index (or its one video); empty when there are none."""
        video = self.folder(job_id) / VIDEO_FILE
        if video.is_file():
            return [video]
        return sorted(self.folder(job_id).glob("*.png"), key=lambda p: int(p.stem))

    def partial_video(self, job_id: int) -> Path:
        """Where the backend writes a video job's MP4 before it is checked."""
        folder = self.folder(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        return folder / PARTIAL_VIDEO

    def save_video(self, job_id: int, partial: Path, thumbnail: bytes) -> Path:
        folder = self.folder(job_id)
        (folder / VIDEO_THUMBNAIL).write_bytes(thumbnail)
        partial.replace(folder / VIDEO_FILE)  # atomic
        return folder / VIDEO_FILE

    @staticmethod
    def index(path: Path) -> int:
        """The image's index ``i`` (its seed is the job's seed + i)."""
        return int(path.stem)

    def save(self, job_id: int, images: Mapping[int, Image.Image]) -> list[Path]:
        self.stage(job_id, images)
        return self.publish(job_id, images.keys())

    def stage(self, job_id: int, images: Mapping[int, Image.Image]) -> None:
        """Encode images as ``{i}.png.tmp``: written, but no result until :meth:`publish` (the runner
        encodes while the safety check runs, and publishes only the images that passed)."""
        folder = self.folder(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        for index, image in images.items():
            image.save(folder / f"{index}{STAGED_SUFFIX}", format="PNG", compress_level=PNG_COMPRESS_LEVEL)

    def publish(self, job_id: int, indices: Iterable[int]) -> list[Path]:
        """Staged images ``indices`` become results (atomic renames); the job's other staged files go."""
        folder = self.folder(job_id)
        paths = []
        for index in indices:
            path = folder / f"{index}.png"
            (folder / f"{index}{STAGED_SUFFIX}").replace(path)
            paths.append(path)
        self.discard_staged(job_id)
        return paths

    def discard_staged(self, job_id: int) -> None:
        for staged in self.folder(job_id).glob(f"*{STAGED_SUFFIX}"):
            staged.unlink(missing_ok=True)

    def save_previews(self, job_id: int, previews: Iterable[Image.Image]) -> list[Path]:
        folder = self.folder(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for index, preview in enumerate(previews):
            path = folder / f"preview-{index}.jpg"  # not *.png: never taken for a result
            preview.save(path, format="JPEG", quality=70)
            paths.append(path)
        return paths

    def delete(self, job_ids: Iterable[int]) -> None:
        """Remove jobs' files (``/forgetface`` deletes what was made from a face)."""
        for job_id in job_ids:
            shutil.rmtree(self.folder(job_id), ignore_errors=True)
