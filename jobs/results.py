"""The result store: where a job's images live on disk, the only code that knows the layout.

``{results_dir}/{job id}/{i}.png`` is image ``i`` of the job, drawn with seed ``seed + i`` (the
safety check may leave gaps); ``preview-{i}.jpg`` are blurred stand-ins for withheld images, never
taken for results. Images are written atomically, so a crash never leaves half a file and a result
stored before a restart is delivered after it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from PIL import Image


class ResultStore:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def folder(self, job_id: int) -> Path:
        return self.root / str(job_id)

    def paths(self, job_id: int) -> list[Path]:
        """The stored images of a job, by index; empty when there are none."""
        return sorted(self.folder(job_id).glob("*.png"), key=lambda p: int(p.stem))

    @staticmethod
    def index(path: Path) -> int:
        """The image's index ``i`` (its seed is the job's seed + i)."""
        return int(path.stem)

    def save(self, job_id: int, images: Mapping[int, Image.Image]) -> list[Path]:
        folder = self.folder(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for index, image in images.items():
            tmp = folder / f"{index}.png.tmp"
            image.save(tmp, format="PNG")
            tmp.replace(folder / f"{index}.png")  # atomic
            paths.append(folder / f"{index}.png")
        return paths

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
