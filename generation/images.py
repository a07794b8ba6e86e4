"""Input photos of the editing modes: decode, check, orient, convert and scale (Pillow only, no torch).

Handlers call :func:`prepare_input_image` on documents before a job exists (to refuse bad files with
a clear message); the worker calls it again on every input it downloads, so the backend always gets
RGB images, upright, scaled to fit the side limit, both sides multiples of 64.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from generation.styles import fit_size

MIN_SIDE = 64  # smaller inputs carry too little for the models to work from
MAX_RATIO = 4.0  # long side / short side
# What a user may send as a file. Telegram's compressed photos are always JPEG.
ACCEPTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP"})  # MPO: the JPEG variant of many phone cameras


class InputImageError(ValueError):
    """A file the editing modes refuse. ``code``: not_image | animated | too_small | bad_ratio."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


def check_dimensions(width: int, height: int) -> None:
    """Refuse sides under :data:`MIN_SIDE` and ratios beyond 1:4 (also used on Telegram's photo metadata)."""
    if min(width, height) < MIN_SIDE:
        raise InputImageError("too_small", f"{width}x{height}")
    if max(width, height) / min(width, height) > MAX_RATIO:
        raise InputImageError("bad_ratio", f"{width}x{height}")


def _decode(data: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if getattr(image, "is_animated", False) and image.format != "MPO":  # MPO frames are stereo views
                raise InputImageError("animated", f"{image.format} with {image.n_frames} frames")
            if image.format not in ACCEPTED_FORMATS:
                raise InputImageError("not_image", f"format {image.format}")
            image.load()  # decode now: a truncated or corrupt file fails here, not in the worker
            return image
    except InputImageError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        raise InputImageError("not_image", str(exc)) from exc


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB; transparent areas become white (a model sees black there otherwise)."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def prepare_input_image(data: bytes, max_side: int) -> Image.Image:
    """Decode ``data`` and return the upright RGB image scaled to fit ``max_side``.

    The size is :func:`generation.styles.fit_size` of the upright image: the aspect ratio is kept,
    both sides rounded to multiples of 64. Raises :class:`InputImageError` for anything that is not a
    still PNG, JPEG or WebP of at least 64 px a side and at most 1:4.
    """
    image = _decode(data)
    image = ImageOps.exif_transpose(image)  # phones store portraits as rotated landscapes + an EXIF tag
    check_dimensions(*image.size)
    image = _to_rgb(image)
    size = fit_size(*image.size, max_side=max_side)
    if image.size != size:
        image = image.resize(size, Image.Resampling.LANCZOS)
    return image
