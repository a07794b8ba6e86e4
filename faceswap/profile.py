"""What the chat side needs from the face-swap pipeline, without its heavy imports (dlib, OpenCV,
scikit-image): the stored face profile, the ``@me`` placeholder and the pipeline's errors."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from generation.backend import GenerationError

if TYPE_CHECKING:
    from faceswap.detect import Face

ME = re.compile(r"@me\b", re.IGNORECASE)
NO_DESCRIPTION = "a person"


class FaceSwapError(GenerationError):
    """``no_face``: the user's photo has no face; ``no_face_in_result``: the drawn picture has none."""


def has_me(prompt: str) -> bool:
    return bool(ME.search(prompt))


def fill_me(prompt: str, description: str | None) -> str:
    """The prompt with ``@me`` replaced by the description (or "a person")."""
    who = description or NO_DESCRIPTION
    if not has_me(prompt):  # e.g. the beautifier rewrote the prompt without the placeholder
        return f"{who}, {prompt.strip()}"
    return ME.sub(lambda _: who, prompt).strip()


@dataclass
class FaceProfile:
    """What the pipeline derives from the user's photo; JSON-serialisable for storage."""

    box: tuple[int, int, int, int]
    landmarks: list[list[float]]  # 68 x 2
    landmarks5: list[list[float]]  # 5 x 2 (dlib's 5-point model)
    several_faces: bool = False
    description: str | None = None
    width: int = 0  # the photo's size, to check that a later download is the same photo
    height: int = 0

    @classmethod
    def from_face(cls, face: Face, photo_size: tuple[int, int], several_faces: bool) -> FaceProfile:
        return cls(
            box=tuple(int(v) for v in face.box),  # type: ignore[arg-type]
            landmarks=face.landmarks.round(2).tolist(),
            landmarks5=face.landmarks5.round(2).tolist(),
            several_faces=several_faces,
            width=photo_size[0],
            height=photo_size[1],
        )

    @property
    def face(self) -> Face:
        from faceswap.detect import Face

        return Face(
            box=tuple(self.box),  # type: ignore[arg-type]
            score=0.0,
            landmarks=np.asarray(self.landmarks, dtype=np.float32),
            landmarks5=np.asarray(self.landmarks5, dtype=np.float32),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": list(self.box),
            "landmarks": self.landmarks,
            "landmarks5": self.landmarks5,
            "several_faces": self.several_faces,
            "description": self.description,
            "width": self.width,
            "height": self.height,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaceProfile:
        return cls(
            box=tuple(data["box"]),  # type: ignore[arg-type]
            landmarks=data["landmarks"],
            landmarks5=data["landmarks5"],
            several_faces=bool(data.get("several_faces", False)),
            description=data.get("description"),
            width=int(data.get("width", 0)),
            height=int(data.get("height", 0)),
        )

    def __repr__(self) -> str:  # keep the description out of any log line that prints a profile
        return f"FaceProfile(box={self.box}, several_faces={self.several_faces})"
