"""Where a picture goes on a zoomed-out or expanded canvas, and the masks around it (Pillow only).

Handlers use the sizes (no torch here); ``generation.edit_ops`` builds the inputs and puts the
original back over the model's result, so the middle stays the user's picture: only a narrow band
along the inner edge is blended, where the model repainted a few pixels of the original to hide
the seam.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageDraw, ImageFilter

ZOOM_FACTORS: tuple[float, ...] = (1.5, 2.0)
EXPAND_RATIOS: tuple[str, ...] = ("16:9", "9:16", "1:1")
SEAM = 16  # pixels of the original, along each inner edge, that the model repaints and blends


def _round64(value: float) -> int:
    return max(64, int(round(value / 64)) * 64)


@dataclass(frozen=True)
class Placement:
    """A canvas of ``size`` with the original scaled into ``box`` (left, top, right, bottom)."""

    size: tuple[int, int]
    box: tuple[int, int, int, int]

    @property
    def box_size(self) -> tuple[int, int]:
        return self.box[2] - self.box[0], self.box[3] - self.box[1]


def _centered(canvas: tuple[int, int], inner: tuple[int, int]) -> Placement:
    left, top = (canvas[0] - inner[0]) // 2, (canvas[1] - inner[1]) // 2
    return Placement(canvas, (left, top, left + inner[0], top + inner[1]))


def zoom_out(width: int, height: int, factor: float) -> Placement:
    """The same canvas; the picture shrunk by ``factor`` in the middle."""
    if factor <= 1:
        raise ValueError(f"zoom-out factor {factor} must be above 1")
    return _centered((width, height), (round(width / factor), round(height / factor)))


def parse_ratio(ratio: str) -> tuple[int, int]:
    a, _, b = ratio.partition(":")
    w, h = int(a), int(b)
    if w <= 0 or h <= 0:
        raise ValueError(ratio)
    return w, h


def expand(width: int, height: int, ratio: str, max_side: int) -> Placement:
    """The smallest canvas of ``ratio`` that holds the picture, scaled to fit ``max_side`` (x64)."""
    rw, rh = parse_ratio(ratio)
    canvas_w, canvas_h = max(width, height * rw / rh), max(height, width * rh / rw)
    scale = min(1.0, max_side / max(canvas_w, canvas_h))
    limit = max(64, max_side // 64 * 64)
    size = (min(limit, _round64(canvas_w * scale)), min(limit, _round64(canvas_h * scale)))
    return fit_into(size, (width, height))


def fit_into(size: tuple[int, int], picture: tuple[int, int]) -> Placement:
    """The picture, its ratio kept, as large as fits in the middle of a canvas of ``size``."""
    fit = min(size[0] / picture[0], size[1] / picture[1])
    return _centered(size, (round(picture[0] * fit), round(picture[1] * fit)))


def compose(source: Image.Image, placement: Placement, seam: int = SEAM) -> tuple[Image.Image, Image.Image]:
    """(canvas with the picture in place, mask: white where the model paints)."""
    inner = source.convert("RGB").resize(placement.box_size, Image.LANCZOS)
    # The border starts as the picture stretched and blurred: K2.2's inpainting decoder sees it
    # (Kandinsky 3.1's sees the masked area as black, whatever is there).
    background = source.convert("RGB").resize(placement.size, Image.BILINEAR).filter(ImageFilter.GaussianBlur(24))
    canvas = background.copy()
    canvas.paste(inner, placement.box[:2])
    mask = Image.new("L", placement.size, 255)
    left, top, right, bottom = placement.box
    width, height = placement.size
    # The seam band is repainted only on edges that face a painted border (not on the canvas edge).
    keep = (
        left + (seam if left > 0 else 0),
        top + (seam if top > 0 else 0),
        right - (seam if right < width else 0),
        bottom - (seam if bottom < height else 0),
    )
    ImageDraw.Draw(mask).rectangle((keep[0], keep[1], keep[2] - 1, keep[3] - 1), fill=0)
    return canvas, mask


def paste_back(result: Image.Image, source: Image.Image, placement: Placement, seam: int = SEAM) -> Image.Image:
    """The result with the original over the middle, blended into the result across the seam band."""
    inner = source.convert("RGB").resize(placement.box_size, Image.LANCZOS)
    w, h = placement.box_size
    left, top, right, bottom = placement.box
    width, height = placement.size
    alpha = Image.new("L", (w, h), 0)
    # Opaque inside, fading to transparent over the seam band on edges that face a painted border.
    inset = (seam if left > 0 else 0, seam if top > 0 else 0, seam if right < width else 0, seam if bottom < height else 0)
    steps = max(inset) or 1
    draw = ImageDraw.Draw(alpha)
    for i in range(steps + 1):
        value = round(255 * i / steps)
        box = tuple(min(d, i) for d in inset)
        draw.rectangle((box[0], box[1], w - 1 - box[2], h - 1 - box[3]), fill=value)
    out = result.convert("RGB").copy()
    region = out.crop(placement.box)
    out.paste(Image.composite(inner, region, alpha), placement.box[:2])
    return out


def encode_mask(mask: Image.Image) -> str:
    """A mask as base64 PNG (1 bit: a 1024 px mask is a few KB), as job parameters keep it."""
    buffer = io.BytesIO()
    mask.convert("L").point(lambda v: 255 if v >= 128 else 0).convert("1").save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_mask(data: str, size: tuple[int, int]) -> Image.Image:
    """The mask of :func:`encode_mask` (or any PNG/WebP the Mini App sent), L mode at ``size``."""
    raw = base64.b64decode(data, validate=True)
    with Image.open(io.BytesIO(raw)) as image:
        image.load()
        if image.mode in ("RGBA", "LA"):
            mask = image.getchannel("A")  # painted strokes are opaque on a transparent layer
        else:
            mask = image.convert("L")
    return mask.resize(size, Image.NEAREST).point(lambda v: 255 if v >= 128 else 0)


def dilate(mask: Image.Image, pixels: int = 6) -> Image.Image:
    """Grow the painted area by ``pixels`` (as the authors prepare masks), so strokes cover edges."""
    return mask.filter(ImageFilter.MaxFilter(2 * pixels + 1))


def painted_fraction(mask: Image.Image) -> float:
    histogram = mask.convert("L").point(lambda v: 255 if v >= 128 else 0).histogram()
    return histogram[255] / max(1, sum(histogram))


def is_blank(mask: Image.Image) -> bool:
    return ImageChops.difference(mask.convert("L"), Image.new("L", mask.size, 0)).getbbox() is None
