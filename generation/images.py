"""Checking and preparing the photos users send for the editing modes (Pillow only, no torch).

:func:`prepare_input_image` turns the downloaded bytes into the RGB picture a
:class:`~generation.backend.GenerationRequest` carries: upright (EXIF orientation applied), with no
transparency, and scaled to fit the model's largest side with both sides multiples of 64.
"""

from __future__ import annotations

import io
import logging
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from generation.styles import fit_size

log = logging.getLogger(__name__)

MIN_SIDE = 64  # smaller photos carry too little for the image encoder (224 px) to work with
MAX_RATIO = 4.0  # longest side / shortest side


class InputImageError(ValueError):
    """A photo that cannot be used. ``code``: "not_image", "animated", "too_small" or "bad_ratio"
    (an i18n key suffix, like :class:`~generation.backend.GenerationError`'s codes)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


def _open(data: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if getattr(image, "n_frames", 1) > 1:
                raise InputImageError("animated", f"{image.format} with {image.n_frames} frames")
            image.load()  # decode now: truncated or corrupt files fail here, not later
    except InputImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputImageError("not_image", str(exc)) from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # what Pillow's decoders raise on bad data
        raise InputImageError("not_image", str(exc)) from exc
    return image


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB; transparent parts become white (as a chat shows them), not black."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def prepare_input_image(data: bytes, max_side: int) -> Image.Image:
    """Open, check and prepare a user's photo; raise :class:`InputImageError` when it is unusable.

    Rejected: anything Pillow cannot decode ("not_image"), multi-frame GIF/WebP/APNG ("animated"),
    a side under 64 px ("too_small"), sides further apart than 1:4 ("bad_ratio"). The result is
    upright RGB, scaled to fit ``max_side`` (never enlarged beyond rounding) and cropped by at most a
    few pixels so both sides are multiples of 64 with the aspect ratio kept.
    """
    image = _open(data)
    try:
        image = ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError, KeyError, TypeError) as exc:
        # A photo with a broken EXIF block is still a photo: use it as stored.
        log.info("ignoring unreadable EXIF orientation: %s", exc)
    width, height = image.size
    if min(width, height) < MIN_SIDE:
        raise InputImageError("too_small", f"{width}x{height}")
    if max(width, height) / min(width, height) > MAX_RATIO:
        raise InputImageError("bad_ratio", f"{width}x{height}")
    target = fit_size(width, height, max_side)
    # fit: scale to cover the target, then trim the few pixels that rounding to 64 added.
    return ImageOps.fit(_to_rgb(image), target, method=Image.Resampling.LANCZOS)
