"""Styles, aspect ratios and image sizes: plain data shared by handlers and workers (no torch)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from generation import registry
from generation.backend import ModelId


@dataclass(frozen=True)
class Style:
    key: str
    template: str  # "{prompt}" is replaced by the user's prompt

    def apply(self, prompt: str) -> str:
        return self.template.replace("{prompt}", prompt)

    @property
    def suffix(self) -> str:
        """What the style adds after the prompt (every template is ``"{prompt}<suffix>"``)."""
        return self.template.split("{prompt}", 1)[1]


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

# Aspect ratios of the settings menu. Each preset is the largest image of about one megapixel (the
# resolutions Kandinsky 3 was fine-tuned at: at most 1024 x 1024 pixels) whose sides are multiples of 64,
# fit MAX_IMAGE_SIDE and give the ratio within RATIO_TOLERANCE (1:1 1024x1024, 16:9 1024x576, 3:2 960x640,
# 4:3 1024x768 at the default 1024 side; 16:9 1344x768, 3:2 1152x768 when the side may reach 1344).
ASPECT_RATIOS: tuple[str, ...] = ("1:1", "16:9", "9:16", "3:2", "2:3", "4:3", "3:4")
DEFAULT_ASPECT_RATIO = "1:1"
MAX_PIXELS = 1024 * 1024
RATIO_TOLERANCE = 0.02

# How far a restyle moves from the photo (img2img strength), by the names the buttons show.
EDIT_STRENGTHS: dict[str, float] = {"light": 0.3, "medium": 0.5, "strong": 0.75}
DEFAULT_EDIT_STRENGTH = "medium"

MODELS: tuple[ModelId, ...] = registry.SELECTABLE_MODELS  # the registry's order
DEFAULT_MODEL = registry.DEFAULT_MODEL


def _round64(value: float) -> int:
    return max(64, int(round(value / 64)) * 64)


def ratio_error(width: int, height: int, aspect_ratio: str) -> float:
    a, b = (int(x) for x in aspect_ratio.split(":"))
    return abs(width / height - a / b) / (a / b)


@lru_cache(maxsize=256)
def image_size(aspect_ratio: str, max_side: int) -> tuple[int, int]:
    """The preset (width, height) of an aspect ratio: sides multiples of 64 and at most ``max_side``,
    at most MAX_PIXELS, ratio within RATIO_TOLERANCE, as large as possible. When no size is that close
    (a very small ``max_side``), the closest ratio wins."""
    sides = range(64, max(64, max_side // 64 * 64) + 1, 64)
    sizes = [(w, h) for w in sides for h in sides if w * h <= MAX_PIXELS]
    close = [s for s in sizes if ratio_error(*s, aspect_ratio) <= RATIO_TOLERANCE]
    if close:
        return max(close, key=lambda s: (s[0] * s[1], -ratio_error(*s, aspect_ratio)))
    return min(sizes, key=lambda s: (ratio_error(*s, aspect_ratio), -s[0] * s[1]))


def fit_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Scale (width, height) to fit ``max_side`` keeping the ratio; both sides multiples of 64."""
    scale = min(1.0, max_side / max(width, height))
    w, h = _round64(width * scale), _round64(height * scale)
    # Rounding may push a side over the limit; the limit itself is rounded down to 64.
    limit = max(64, max_side // 64 * 64)
    return min(w, limit), min(h, limit)
