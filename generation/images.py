"""Checking and preparing the photos users send for the editing modes (Pillow only, no torch).

:func:`prepare_input_image` turns the downloaded bytes into the RGB picture a
:class:`~generation.backend.GenerationRequest` carries: upright (EXIF orientation applied), with no
transparency, and scaled to fit the model's largest side with both sides multiples of 64.

Every user image in the project is opened here (:func:`open_user_image`, :func:`decode_user_image`):
only the PNG, JPEG and WebP plugins of Pillow ever see user bytes, the pixel count is checked on the
header before anything is decoded, and at most :data:`MAX_CONCURRENT_DECODES` decodes run at once.
"""

from __future__ import annotations

import io
import logging
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from PIL import Image, ImageOps, UnidentifiedImageError

from generation.styles import fit_size

log = logging.getLogger(__name__)
T = TypeVar("T")

MIN_SIDE = 64  # smaller photos carry too little for the image encoder (224 px) to work with
MAX_RATIO = 4.0  # longest side / shortest side


class InputImageError(ValueError):
    """A photo that cannot be used. ``code``: "not_image", "animated", "too_small", "bad_ratio" or
    "too_many_pixels" (an i18n key suffix, like :class:`~generation.backend.GenerationError`'s codes)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


# The only Pillow plugins that ever see a user's bytes. Pillow knows dozens of formats, some of
# which hand the file to other programs (EPS runs Ghostscript); a file is opened by its bytes, not
# its name, so the list is enforced at ``Image.open``. JPEG covers MPO (many phones' JPEG).
USER_IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")
# The most pixels a user's image may have, read from the header before anything is decoded.
# Pillow's own bomb limit (89 MP) lets a 0.3 MB PNG of 9400x9400 take 1.7 GB once decoded. A PNG
# or WebP of 25 MP (6000x4160) takes about 250 MB to prepare; a JPEG is decoded at 1/2 to 1/8 of
# its size for editing (libjpeg's DCT scaling), so 50 MP phone photos are fine.
MAX_INPUT_PIXELS = 25_000_000
MAX_JPEG_PIXELS = 50_000_000
# Decodes of user images running at once in this process (each may take a few hundred MB). They
# run on this pool's threads only: a cap on concurrency, and on the memory the C allocator keeps
# per thread after a decode (glibc keeps an arena per thread that decoded; a decode in each of the
# event loop's dozens of worker threads would leave dozens of them).
MAX_CONCURRENT_DECODES = 2
_decode_pool = ThreadPoolExecutor(MAX_CONCURRENT_DECODES, thread_name_prefix="image-decode")


def _on_decode_pool(function: Callable[..., T], *args: Any) -> T:
    """Run ``function`` on a decode thread and wait for it (blocking: call it in a worker thread)."""
    if threading.current_thread().name.startswith("image-decode"):
        return function(*args)
    return _decode_pool.submit(function, *args).result()


_GIF_MAGIC = (b"GIF87a", b"GIF89a")


def _refuse_unknown(data: bytes, exc: Exception) -> InputImageError:
    # An animated GIF deserves the "animated" answer, told from its bytes (the looping extension)
    # without handing it to Pillow's GIF plugin.
    if data[:6] in _GIF_MAGIC and b"NETSCAPE2.0" in data[:65536]:
        return InputImageError("animated", "GIF animation")
    return InputImageError("not_image", str(exc))


def open_user_image(data: bytes) -> Image.Image:
    """The header of a user's image, nothing decoded yet: PNG, JPEG or WebP only, one frame, at
    most :data:`MAX_INPUT_PIXELS` (:data:`MAX_JPEG_PIXELS` for a JPEG). Raises :class:`InputImageError`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=USER_IMAGE_FORMATS)
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _refuse_unknown(data, exc) from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # what Pillow's parsers raise on bad data
        raise InputImageError("not_image", str(exc)) from exc
    width, height = image.size
    if width * height > (MAX_JPEG_PIXELS if image.format in ("JPEG", "MPO") else MAX_INPUT_PIXELS):
        raise InputImageError("too_many_pixels", f"{image.format} {width}x{height}")
    try:
        frames = getattr(image, "n_frames", 1)
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InputImageError("not_image", str(exc)) from exc
    if frames > 1:
        raise InputImageError("animated", f"{image.format} with {frames} frames")
    return image


def _load(image: Image.Image) -> None:
    try:
        image.load()  # decode now: truncated or corrupt files fail here, not later
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise InputImageError("not_image", str(exc)) from exc


def _decode_rgb(data: bytes, max_side: int | None) -> Image.Image:
    image = open_user_image(data)
    if max_side is not None:
        if image.format == "JPEG":
            image.draft("RGB", (max_side, max_side))
        _load(image)
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    else:
        _load(image)
    return _to_rgb(image)


def decode_user_image(data: bytes, max_side: int | None = None) -> Image.Image:
    """A user's image decoded as RGB, as stored (face swap measures landmarks on it), or shrunk to
    fit ``max_side`` (a check that needs no detail). Checked like :func:`open_user_image`, decoded
    on a decode thread. Blocking."""
    return _on_decode_pool(_decode_rgb, data, max_side)


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB; transparent parts become white (as a chat shows them), not black."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.getchannel("A"))  # one RGB buffer more, not three RGBA ones
        return white
    return image if image.mode == "RGB" else image.convert("RGB")


# Modes Pillow resizes well as they are (RGBA with premultiplied alpha); others become RGB first.
_RESIZABLE_MODES = frozenset({"RGB", "RGBA", "L", "LA"})


_ORIENTATION = 0x0112
_TRANSPOSED = frozenset({5, 6, 7, 8})  # EXIF orientations that swap width and height


def prepare_input_image(data: bytes, max_side: int) -> Image.Image:
    """Open, check and prepare a user's photo; raise :class:`InputImageError` when it is unusable.

    Rejected before decoding, on the header: anything but PNG, JPEG and WebP ("not_image"),
    multi-frame WebP/APNG and GIF animations ("animated"), more than :data:`MAX_INPUT_PIXELS`
    (:data:`MAX_JPEG_PIXELS` for a JPEG: "too_many_pixels"), a side under 64 px ("too_small"),
    sides further apart than 1:4 ("bad_ratio"). Files Pillow cannot decode are "not_image". The result is upright RGB, scaled to
    fit ``max_side`` (never enlarged beyond rounding) and cropped by at most a few pixels so both
    sides are multiples of 64 with the aspect ratio kept. A large JPEG is decoded at a reduced
    scale (libjpeg's DCT scaling), never at full size. Blocking: runs on a decode thread.
    """
    return _on_decode_pool(_prepare, data, max_side)


def _prepare(data: bytes, max_side: int) -> Image.Image:
    image = open_user_image(data)
    width, height = image.size
    if min(width, height) < MIN_SIDE:
        raise InputImageError("too_small", f"{width}x{height}")
    if max(width, height) / min(width, height) > MAX_RATIO:
        raise InputImageError("bad_ratio", f"{width}x{height}")
    try:
        transposed = image.getexif().get(_ORIENTATION) in _TRANSPOSED
    except (OSError, ValueError, SyntaxError, KeyError, TypeError):
        transposed = False
    upright = (height, width) if transposed else (width, height)
    target = fit_size(*upright, max_side)
    if image.format == "JPEG":
        stored_target = (target[1], target[0]) if transposed else target
        image.draft("RGB", stored_target)  # scale 1/2, 1/4 or 1/8, never below the target
    _load(image)
    try:
        image = ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError, KeyError, TypeError) as exc:
        # A photo with a broken EXIF block is still a photo: use it as stored.
        log.info("ignoring unreadable EXIF orientation: %s", exc)
    if image.mode not in _RESIZABLE_MODES or "transparency" in image.info:
        image = _to_rgb(image)
    # fit: scale to cover the target, then trim the few pixels that rounding to 64 added;
    # flattening the transparency after it works on the small picture, not the large one.
    return _to_rgb(ImageOps.fit(image, target, method=Image.Resampling.LANCZOS))
