"""Styles, aspect ratios and image sizes: plain data shared by handlers and workers (no torch)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from generation import registry
from generation.backend import ModelId


@dataclass(frozen=True)
class Style:
    key: str
    template: str  # "{prompt}" is replaced by the user's prompt

    def apply(self, prompt: str) -> str:
        return self.template.replace("{prompt}", prompt)


# The FusionBrain set (DEFAULT, KANDINSKY, UHD, ANIME) and the web editor's styles.
STYLES: dict[str, Style] = {
    s.key: s
    for s in (
        Style("DEFAULT", "{prompt}"),
        Style("KANDINSKY", "{prompt}, in the style of Wassily Kandinsky, abstract art, bright colours"),
        Style("UHD", "{prompt}, detailed photo, 4k, ultra high definition, sharp focus"),
        Style("ANIME", "{prompt}, in anime style, detailed anime illustration"),
        Style("DIGITAL_ART", "{prompt}, digital art, highly detailed"),
        Style("PIXEL_ART", "{prompt}, pixel art, 16-bit, retro game sprite"),
        Style("CARTOON", "{prompt}, cartoon style, vivid flat colours"),
        Style("PORTRAIT_PHOTO", "{prompt}, portrait photo, 85mm lens, soft light, shallow depth of field"),
        Style("STUDIO_PHOTO", "{prompt}, studio photo, professional lighting, high detail"),
        Style("CYBERPUNK", "{prompt}, cyberpunk style, neon lights, futuristic city"),
        Style("RENDER_3D", "{prompt}, 3D render, octane render, global illumination"),
        Style("CLASSICISM", "{prompt}, in the style of classicism, academic painting"),
        Style("OIL_PAINTING", "{prompt}, oil painting, thick brush strokes, canvas texture"),
        Style("PENCIL_DRAWING", "{prompt}, pencil drawing, graphite sketch, hatching"),
        Style("KHOKHLOMA", "{prompt}, in the style of Khokhloma painting, red and gold ornaments on black"),
        Style("AIVAZOVSKY", "{prompt}, in the style of Ivan Aivazovsky, romantic seascape painting"),
        Style("MALEVICH", "{prompt}, in the style of Kazimir Malevich, suprematism, geometric shapes"),
        Style("PICASSO", "{prompt}, in the style of Pablo Picasso, cubism"),
    )
}
DEFAULT_STYLE = "DEFAULT"

# Aspect ratio -> (width, height) at the base size: 1:1 is 1024x1024, the others keep about the
# same pixel count and are multiples of 64.
ASPECT_RATIOS: tuple[str, ...] = ("1:1", "16:9", "9:16", "3:2", "2:3", "4:3", "3:4")
DEFAULT_ASPECT_RATIO = "1:1"
BASE_SIDE = 1024

MODELS: tuple[ModelId, ...] = registry.SELECTABLE_MODELS  # the registry's order
DEFAULT_MODEL = registry.DEFAULT_MODEL


def _round64(value: float) -> int:
    return max(64, int(round(value / 64)) * 64)


def base_size(aspect_ratio: str) -> tuple[int, int]:
    a, b = (int(x) for x in aspect_ratio.split(":"))
    return _round64(BASE_SIDE * math.sqrt(a / b)), _round64(BASE_SIDE * math.sqrt(b / a))


def fit_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Scale (width, height) to fit ``max_side`` keeping the ratio; both sides multiples of 64."""
    scale = min(1.0, max_side / max(width, height))
    w, h = _round64(width * scale), _round64(height * scale)
    # Rounding may push a side over the limit; the limit itself is rounded down to 64.
    limit = max(64, max_side // 64 * 64)
    return min(w, limit), min(h, limit)


def image_size(aspect_ratio: str, max_side: int) -> tuple[int, int]:
    return fit_size(*base_size(aspect_ratio), max_side=max_side)
