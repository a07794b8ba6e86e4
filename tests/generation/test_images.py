import numpy as np
import pytest
from PIL import Image

from generation.images import InputImageError, check_dimensions, prepare_input_image
from tests.photos import animated_gif, encode, exif_rotated_jpeg, photo, photo_bytes, random_bytes


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_accepted_formats_come_back_rgb_and_scaled(fmt):
    image = prepare_input_image(photo_bytes("coffee", fmt), max_side=256)
    assert image.mode == "RGB"
    assert image.size == (256, 192)  # 600x400 -> 256x170.7 -> sides rounded to multiples of 64
    # Still the same picture: close to the original resized the same way.
    reference = np.asarray(photo("coffee").resize(image.size), dtype=float)
    assert np.abs(np.asarray(image, dtype=float) - reference).mean() < 12


def test_small_enough_photo_is_not_upscaled_beyond_rounding():
    image = prepare_input_image(photo_bytes("astronaut", "PNG"), max_side=1024)
    assert image.size == (512, 512)


def test_exif_orientation_is_applied():
    data = exif_rotated_jpeg("coffee")
    with Image.open(__import__("io").BytesIO(data)) as stored:
        assert stored.size == (400, 600)  # stored sideways
    image = prepare_input_image(data, max_side=640)
    assert image.size == (576, 384)  # upright: landscape like the original 600x400 (rounded)
    reference = np.asarray(photo("coffee").resize(image.size), dtype=float)
    assert np.abs(np.asarray(image, dtype=float) - reference).mean() < 15


def test_transparent_png_gets_a_white_background():
    rgba = Image.new("RGBA", (128, 128), (255, 0, 0, 0))
    image = prepare_input_image(encode(rgba, "PNG"), max_side=128)
    assert image.mode == "RGB" and image.getpixel((5, 5)) == (255, 255, 255)


def test_random_bytes_are_not_an_image():
    with pytest.raises(InputImageError) as err:
        prepare_input_image(random_bytes(), max_side=512)
    assert err.value.code == "not_image"


def test_truncated_jpeg_is_not_an_image():
    data = photo_bytes("astronaut", "JPEG")
    with pytest.raises(InputImageError) as err:
        prepare_input_image(data[: len(data) // 2], max_side=512)
    assert err.value.code == "not_image"


def test_other_formats_are_refused():
    with pytest.raises(InputImageError) as err:
        prepare_input_image(encode(photo("astronaut"), "BMP"), max_side=512)
    assert err.value.code == "not_image"


def test_tiny_image():
    with pytest.raises(InputImageError) as err:
        prepare_input_image(photo_bytes("astronaut", "PNG", size=(63, 200)), max_side=512)
    assert err.value.code == "too_small"


def test_extreme_ratio():
    with pytest.raises(InputImageError) as err:
        prepare_input_image(photo_bytes("coffee", "PNG", size=(900, 200)), max_side=512)
    assert err.value.code == "bad_ratio"
    check_dimensions(800, 200)  # exactly 1:4 is allowed


def test_animated_gif():
    with pytest.raises(InputImageError) as err:
        prepare_input_image(animated_gif(), max_side=512)
    assert err.value.code == "animated"


def test_animated_webp():
    frames = [Image.new("RGB", (128, 128), (i * 60, 0, 0)) for i in range(3)]
    with pytest.raises(InputImageError) as err:
        prepare_input_image(encode(frames[0], "WEBP", save_all=True, append_images=frames[1:]), max_side=512)
    assert err.value.code == "animated"
