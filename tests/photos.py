"""Real photos (scikit-image's samples) encoded the ways users send them, and broken files."""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image
from skimage import data


@lru_cache(maxsize=None)
def photo(name: str = "astronaut") -> Image.Image:
    """``astronaut`` 512x512, ``coffee`` 600x400, ``chelsea`` 451x300 (RGB)."""
    return Image.fromarray(getattr(data, name)()).convert("RGB")


def encode(image: Image.Image, fmt: str = "JPEG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def photo_bytes(name: str = "astronaut", fmt: str = "JPEG", size: tuple[int, int] | None = None) -> bytes:
    image = photo(name)
    if size is not None:
        image = image.resize(size)
    return encode(image, fmt)


def exif_rotated_jpeg(name: str = "coffee", orientation: int = 6) -> bytes:
    """The photo stored sideways with an EXIF tag saying how to turn it upright (as phones do).

    Orientation 6 means "rotate 90° clockwise to display": the pixels are stored turned 90° to the
    left, so the upright picture is the original one.
    """
    upright = photo(name)
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(stored, "JPEG", exif=exif.tobytes())


def animated_gif(frames: int = 3, size: tuple[int, int] = (128, 128)) -> bytes:
    images = [Image.new("RGB", size, (40 * i, 100, 200 - 40 * i)) for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return buffer.getvalue()


def random_bytes(count: int = 4096, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, count, dtype=np.uint8).tobytes()
