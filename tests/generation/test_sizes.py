"""Aspect-ratio presets: each within 2% of its ratio, multiples of 64, about one megapixel at most."""

from __future__ import annotations

import pytest

from generation.styles import ASPECT_RATIOS, MAX_PIXELS, image_size, ratio_error


@pytest.mark.parametrize("max_side", [512, 768, 1024, 1344, 1536, 2048])
@pytest.mark.parametrize("aspect", ASPECT_RATIOS)
def test_every_preset_is_within_two_percent(aspect, max_side):
    width, height = image_size(aspect, max_side)
    a, b = (int(x) for x in aspect.split(":"))
    assert abs(width / height - a / b) <= 0.02 * a / b
    assert ratio_error(width, height, aspect) <= 0.02
    assert width % 64 == 0 and height % 64 == 0 and max(width, height) <= max_side
    assert width * height <= MAX_PIXELS


def test_default_side_presets():
    sizes = {aspect: image_size(aspect, 1024) for aspect in ASPECT_RATIOS}
    assert sizes == {
        "1:1": (1024, 1024), "16:9": (1024, 576), "9:16": (576, 1024), "3:2": (960, 640),
        "2:3": (640, 960), "4:3": (1024, 768), "3:4": (768, 1024),
    }


def test_about_one_megapixel_when_the_side_allows():
    assert image_size("16:9", 1344) == (1344, 768)  # 1.03 MP, 1.75 = 16:9 within 1.6%
    assert all(w * h >= 0.84 * MAX_PIXELS for w, h in (image_size(a, 1536) for a in ASPECT_RATIOS))
