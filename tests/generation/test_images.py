"""Checking and preparing user photos: real photos from scikit-image in several formats."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from skimage import data

from generation.images import InputImageError, prepare_input_image


def _encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(data.astronaut())  # 512x512


@pytest.fixture(scope="module")
def coffee() -> Image.Image:
    return Image.fromarray(data.coffee())  # 600x400


@pytest.mark.parametrize(
    "fmt,max_side,size",
    [("PNG", 256, (256, 256)), ("JPEG", 1024, (512, 512)), ("WEBP", 320, (320, 320))],
)
def test_astronaut_in_each_format(astronaut, fmt, max_side, size):
    image = prepare_input_image(_encode(astronaut, fmt), max_side)
    assert image.mode == "RGB" and image.size == size
    # Still the same picture: compare with a plain resize of the original.
    reference = np.asarray(astronaut.resize(size, Image.Resampling.LANCZOS), dtype=np.float32)
    assert np.abs(np.asarray(image, dtype=np.float32) - reference).mean() < 8


@pytest.mark.parametrize(
    "fmt,max_side,size",
    # 600x400 -> fit_size: (576, 384) at 1024, (256, 192) at 256, (448, 320) at 448
    [("JPEG", 1024, (576, 384)), ("PNG", 256, (256, 192)), ("WEBP", 448, (448, 320))],
)
def test_sides_become_multiples_of_64_within_max_side(coffee, fmt, max_side, size):
    image = prepare_input_image(_encode(coffee, fmt), max_side)
    assert image.size == size
    assert image.width % 64 == 0 and image.height % 64 == 0 and max(image.size) <= max_side


def test_exif_orientation_is_applied(coffee):
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the stored picture must be turned 90 degrees clockwise to view it
    image = prepare_input_image(_encode(coffee, "JPEG", exif=exif, quality=95), 1024)
    assert image.size == (384, 576)  # portrait now
    upright = coffee.transpose(Image.Transpose.ROTATE_270).resize((384, 576), Image.Resampling.LANCZOS)
    assert np.abs(np.asarray(image, dtype=np.float32) - np.asarray(upright, dtype=np.float32)).mean() < 8


def test_transparency_becomes_white_and_gray_becomes_rgb(astronaut):
    rgba = astronaut.convert("RGBA")
    rgba.putalpha(Image.new("L", rgba.size, 0))  # fully transparent
    image = prepare_input_image(_encode(rgba, "PNG"), 256)
    assert image.mode == "RGB" and np.asarray(image).min() == 255
    gray = prepare_input_image(_encode(astronaut.convert("L"), "JPEG"), 256)
    assert gray.mode == "RGB" and gray.size == (256, 256)


@pytest.mark.parametrize(
    "payload",
    [
        np.random.default_rng(0).bytes(4096),
        b"",
        b"%PDF-1.4 not a photo at all",
        "Привет".encode(),
    ],
    ids=["random", "empty", "pdf", "text"],
)
def test_non_images_are_rejected(payload):
    with pytest.raises(InputImageError) as err:
        prepare_input_image(payload, 1024)
    assert err.value.code == "not_image"


def test_truncated_jpeg_is_rejected(coffee):
    payload = _encode(coffee, "JPEG")
    with pytest.raises(InputImageError) as err:
        prepare_input_image(payload[: len(payload) // 2], 1024)
    assert err.value.code == "not_image"


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animated_images_are_rejected(astronaut, coffee, fmt):
    frames = [astronaut.resize((128, 128)), coffee.resize((128, 128))]
    payload = _encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with pytest.raises(InputImageError) as err:
        prepare_input_image(payload, 1024)
    assert err.value.code == "animated"


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_still_images_in_other_formats_are_refused(astronaut, fmt):
    # Only the PNG, JPEG and WebP plugins of Pillow see user bytes (issue 14).
    with pytest.raises(InputImageError) as err:
        prepare_input_image(_encode(astronaut.resize((128, 128)), fmt), 1024)
    assert err.value.code == "not_image"


@pytest.mark.parametrize(
    "size,code",
    [((63, 200), "too_small"), ((200, 50), "too_small"), ((100, 401), "bad_ratio"), ((900, 200), "bad_ratio")],
)
def test_small_and_narrow_images_are_rejected(coffee, size, code):
    with pytest.raises(InputImageError) as err:
        prepare_input_image(_encode(coffee.resize(size), "PNG"), 1024)
    assert err.value.code == code


@pytest.mark.parametrize("size,expected", [((64, 64), (64, 64)), ((100, 400), (128, 384)), ((800, 200), (768, 192))])
def test_limits_themselves_are_accepted(coffee, size, expected):
    assert prepare_input_image(_encode(coffee.resize(size), "PNG"), 1024).size == expected
