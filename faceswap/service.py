"""What the bot process needs from the pipeline when a user sends their photo: the face, found
with dlib on the CPU (no torch, no model download)."""

from __future__ import annotations

import io
import threading

from PIL import Image

from faceswap.profile import FaceProfile


def open_photo(data: bytes) -> Image.Image:
    """The photo as the job worker will see it (jobs.runner opens inputs the same way)."""
    return Image.open(io.BytesIO(data)).convert("RGB")


class FaceService:
    def __init__(self) -> None:
        self._detector = None
        self._lock = threading.Lock()  # dlib's detectors are not meant to be shared between threads

    def prepare(self, data: bytes) -> FaceProfile:
        """Blocking (about a second): call it in a worker thread. Raises FaceSwapError("no_face")
        and PIL.UnidentifiedImageError."""
        from faceswap.pipeline import prepare_face

        photo = open_photo(data)
        with self._lock:
            if self._detector is None:
                from faceswap.detect import DlibFaceDetector

                self._detector = DlibFaceDetector()
            return prepare_face(self._detector, photo)


