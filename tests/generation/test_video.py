"""/animate and /video pipelines: camera motion measured on a real photo, and real MP4s from the tiny
checkpoints (Kandinsky 3.1 Flash + the depth model; Kandinsky 5.0 Video Lite) decoded with PyAV."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import color, data, transform
from skimage.registration import phase_cross_correlation

from generation.animate import Animation, Scene
from generation.backend import GenerationCancelled, GenerationRequest, Mode, ModelId
from generation.motion import AnimationSettings, CameraMove
from generation.video_io import decode_frames, sample_indices

SIDE = 96


def astronaut(side: int = SIDE) -> Image.Image:
    """scikit-image's astronaut photo: real texture for phase correlation."""
    return Image.fromarray((transform.resize(data.astronaut(), (side, side), anti_aliasing=True) * 255).astype(np.uint8))


def flat_depth(image: Image.Image) -> torch.Tensor:
    # A wall facing the camera: every move has an exact expected image motion.
    return torch.ones(image.height, image.width)


def gray(frame: np.ndarray) -> np.ndarray:
    return color.rgb2gray(frame)


def shift_of(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """How the content moved from a to b, (dy, dx) in pixels (phase correlation)."""
    shift, _, _ = phase_cross_correlation(gray(b), gray(a), upsample_factor=20)
    return float(shift[0]), float(shift[1])


def similarity(a: np.ndarray, b: np.ndarray, offset: int = 22, half: int = 16) -> tuple[float, float, float, float]:
    """(scale, angle in degrees counter-clockwise on the screen, dy, dx) taking frame a to frame b.

    Phase correlation of 3x3 patches around the centre gives the local motion (u, v) at each patch
    offset (x, y); a similarity moves (x, y) by (a x + phi y + tx, -phi x + a y + ty) for small
    angles (y points down), solved by least squares: scale 1 + a, angle phi."""
    c = a.shape[0] // 2
    rows, rhs = [], []
    for y in (-offset, 0, offset):
        for x in (-offset, 0, offset):
            box = (slice(c + y - half, c + y + half), slice(c + x - half, c + x + half))
            v, u = shift_of(a[box], b[box])
            rows += [[x, y, 1, 0], [y, -x, 0, 1]]
            rhs += [u, v]
    (k, phi, tx, ty), *_ = np.linalg.lstsq(np.array(rows, float), np.array(rhs), rcond=None)
    return 1 + k, float(np.degrees(phi)), float(ty), float(tx)


def rotation_and_scale(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    scale, angle, _, _ = similarity(a, b)
    return angle, scale


def about_centre(factor: float) -> transform.AffineTransform:
    """skimage's inverse map (output -> input coordinates) of a scaling by 1/factor about the centre."""
    centre = np.array([SIDE / 2 - 0.5, SIDE / 2 - 0.5])
    return (
        transform.AffineTransform(translation=-centre)
        + transform.AffineTransform(scale=factor)
        + transform.AffineTransform(translation=centre)
    )


def warp_only(move: CameraMove, fps: int = 4) -> list[np.ndarray]:
    settings = AnimationSettings(fps=fps, scene_seconds=0.5, cadence=1, transition_seconds=0.0)
    anim = Animation([Scene("", move)], astronaut(), settings, flat_depth, frame_model=None, seed=0)
    return list(anim.frames())


def test_the_measurements_agree_with_skimage_transforms():
    # The yardsticks themselves, on transforms made by scikit-image: a counter-clockwise rotation
    # reads as a positive angle, an enlargement as a scale above 1, a shift to the left as dx < 0.
    base = np.asarray(astronaut())
    rotated = (transform.rotate(base, 6.0, mode="reflect") * 255).astype(np.uint8)
    angle, scale = rotation_and_scale(base, rotated)
    assert angle == pytest.approx(6.0, abs=1.0) and scale == pytest.approx(1.0, abs=0.03)
    zoomed = transform.warp(base, about_centre(1 / 1.1), mode="reflect")
    _, scale = rotation_and_scale(base, (zoomed * 255).astype(np.uint8))
    assert scale == pytest.approx(1.1, abs=0.03)
    left = np.roll(base, -3, axis=1)
    dy, dx = shift_of(base, left)
    assert dx == pytest.approx(-3, abs=0.2) and abs(dy) < 0.2


@pytest.mark.parametrize(
    ("move", "direction"),
    [
        (CameraMove.PAN_RIGHT, (0, -1)),  # the camera goes right: the content slides left
        (CameraMove.PAN_LEFT, (0, 1)),
        (CameraMove.PAN_UP, (1, 0)),  # the camera goes up: the content slides down
        (CameraMove.PAN_DOWN, (-1, 0)),
    ],
)
def test_pans_move_the_content_the_other_way(move, direction):
    frames = warp_only(move)
    for a, b in zip(frames, frames[1:]):
        dy, dx = shift_of(a, b)
        # Flat depth 3.5 (the middle of 1..6), 60 degree view: f = 48 / tan(30) = 83.1 px;
        # 0.35 units/s at 4 fps moves 83.1 * 0.0875 / 3.5 = 2.08 px a frame.
        expected = 83.14 * 0.35 / 4 / 3.5
        assert (dy, dx) == pytest.approx((direction[0] * expected, direction[1] * expected), abs=0.35)


@pytest.mark.parametrize(("move", "grows"), [(CameraMove.ZOOM_IN, True), (CameraMove.ZOOM_OUT, False)])
def test_zooms_scale_about_the_centre(move, grows):
    frames = warp_only(move)
    for a, b in zip(frames, frames[1:]):
        angle, scale = rotation_and_scale(a, b)
        # Dolly of 0.5/4 units toward a wall 3.5 away: 3.5 / 3.375 = 1.037 a frame.
        expected = 3.5 / (3.5 - 0.125) if grows else 3.5 / (3.5 + 0.125)
        assert scale == pytest.approx(expected, abs=0.012)
        assert abs(angle) < 1.0
        # About the centre: the fitted similarity has no translation, the centre patch stays put.
        _, _, dy, dx = similarity(a, b)
        assert abs(dy) < 0.15 and abs(dx) < 0.15


@pytest.mark.parametrize(("move", "sign"), [(CameraMove.ROTATE_CW, 1), (CameraMove.ROTATE_CCW, -1)])
def test_rolls_turn_the_content_the_other_way(move, sign):
    frames = warp_only(move)
    for a, b in zip(frames, frames[1:]):
        angle, scale = rotation_and_scale(a, b)
        # The camera rolls clockwise 10 degrees a second: the content turns counter-clockwise, 2.5 a frame.
        assert angle == pytest.approx(sign * 2.5, abs=0.6)
        assert scale == pytest.approx(1.0, abs=0.01)


def test_drift_zooms_in_and_pans_right():
    frames = warp_only(CameraMove.DRIFT)
    for a, b in zip(frames, frames[1:]):
        _, scale = rotation_and_scale(a, b)
        _, dx = shift_of(a[24:-24, 24:-24], b[24:-24, 24:-24])
        assert scale > 1.005
        assert dx < -0.3  # content slides left: the camera pans (and turns) right


def test_scenes_continue_the_camera_and_blend_prompts():
    settings = AnimationSettings(fps=4, scene_seconds=2.0, transition_seconds=1.0)
    anim = Animation(
        [Scene("a", CameraMove.PAN_RIGHT), Scene("b", CameraMove.ZOOM_IN)], astronaut(), settings, flat_depth, None, 0
    )
    assert anim.total == 16
    # Scene 1: frames 0..7; its last second (frames 5..7 after t = 1 s) slides toward scene 2's prompt.
    assert [anim.prompt_weights(i) for i in (0, 4, 5, 6, 7, 8, 15)] == [
        (0, 0, 0.0), (0, 0, 0.0), (0, 1, 0.25), (0, 1, 0.5), (0, 1, 0.75), (1, 1, 0.0), (1, 1, 0.0)
    ]
    # The camera does not jump at the cut: scene 2 starts where scene 1's trajectory ends.
    steps = [anim.poses[i + 1].centre - anim.poses[i].centre for i in (6, 7, 8)]
    assert steps[0] == pytest.approx([0.0875, 0, 0]) and steps[1] == pytest.approx([0.0875, 0, 0])
    assert steps[2] == pytest.approx([0, 0, 0.125])  # then scene 2's dolly begins


def test_sampled_frames_for_the_safety_check():
    assert sample_indices(33, 4) == [0, 4, 8, 12, 16, 20, 24, 28, 32]
    assert sample_indices(10, 4) == [0, 4, 8, 9]
    assert sample_indices(1, 24) == [0]


class RecordingFrameModel:
    """Image-to-image that tints every frame it redraws (as a model drifting in colour would) and
    records what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, float, int]] = []

    def encode(self, prompt: str) -> str:
        return prompt

    def blend(self, a: str, b: str, weight: float) -> tuple[str, str, float]:
        return (a, b, round(weight, 3))

    def img2img(self, image: Image.Image, embedding: object, strength: float, seed: int) -> Image.Image:
        self.calls.append((embedding, strength, seed))
        pixels = np.asarray(image).astype(int)
        pixels[..., 0] += 12  # a red cast on every redraw
        return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def red_drift(coherence: bool) -> tuple[float, RecordingFrameModel]:
    settings = AnimationSettings(fps=4, scene_seconds=2.0, cadence=1, colour_coherence=coherence, transition_seconds=0)
    model = RecordingFrameModel()
    anim = Animation([Scene("a", CameraMove.ZOOM_IN)], astronaut(), settings, flat_depth, model, seed=5)
    frames = list(anim.frames())
    return float(frames[-1][..., 0].mean() - frames[0][..., 0].mean()), model


def test_colours_do_not_drift_and_the_noise_is_the_same_every_frame():
    drift_without, _ = red_drift(coherence=False)
    drift_with, model = red_drift(coherence=True)
    assert drift_without > 60  # 7 redraws x 12: the cast piles up
    assert drift_with < 15  # matched back to the scene's first frame before each redraw
    assert {seed for _, _, seed in model.calls} == {5}  # one seed: the same noise on every frame
    assert {strength for _, strength, _ in model.calls} == {0.35}


def test_transitions_blend_the_prompt_embeddings():
    settings = AnimationSettings(fps=2, scene_seconds=2.0, cadence=1, transition_seconds=1.0)
    model = RecordingFrameModel()
    anim = Animation(
        [Scene("a", CameraMove.PAN_LEFT), Scene("b", CameraMove.PAN_RIGHT)], astronaut(), settings, flat_depth, model, 0
    )
    list(anim.frames())
    # Frames 1..7 are redrawn: scene 1 is t = 0.5, 1.0, 1.5 s (the last second blends toward "b").
    assert [e for e, _, _ in model.calls] == ["a", "a", ("a", "b", 0.5), "b", "b", "b", "b"]


# -- real MP4s from the tiny checkpoints ------------------------------------------------------------
def probe(path: Path) -> tuple[int, float, float, str, tuple[int, int]]:
    """(decoded frames, frame rate, duration in seconds, codec, size) read back with PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video=0))
        duration = float(stream.duration * stream.time_base)
        return frames, float(stream.average_rate), duration, stream.codec_context.name, (stream.width, stream.height)


@pytest.fixture(scope="module")
def video_backend(tiny_config):
    from generation.diffusers_backend import DiffusersBackend

    config = dataclasses.replace(
        tiny_config,
        video_fps=4,
        video_short_side=32,
        # A 2-second transition: keyframe 6 (t = 3 s) is drawn on a blend of the two scenes' prompts.
        animation=AnimationSettings(fps=2, cadence=2, strength=0.3, transition_seconds=2.0),
    )
    return DiffusersBackend(config)


def test_two_scene_animation_is_an_8_second_h264_mp4(video_backend, tmp_path):
    seen: list[tuple[int, int]] = []
    request = GenerationRequest(
        mode=Mode.ANIMATE,
        model=ModelId.K31_FLASH,
        prompt="a lighthouse at dawn",
        negative_prompt=None,
        width=64,
        height=64,
        num_images=1,
        seed=7,
        extra={"scenes": [{"prompt": "", "move": "zoom_in"}, {"prompt": "a lighthouse at night", "move": "pan_left"}]},
    )
    video = video_backend.render_video(request, lambda done, total: seen.append((done, total)), tmp_path / "a.mp4")
    frames, fps, duration, codec, size = probe(video.path)
    assert (frames, fps, codec, size) == (16, 2.0, "h264", (64, 64))
    assert duration == pytest.approx(8.0, abs=1 / fps)  # 2 scenes x 4 s
    assert video.frames == 16 and video.duration == 8.0
    assert [i for i, _ in video.samples] == [0, 2, 4, 6, 8, 10, 12, 14, 15]
    assert Image.open(io.BytesIO(video.thumbnail)).format == "JPEG"
    assert seen[-1] == (16, 16) and [d for d, _ in seen if d] == list(range(1, 17))
    # The first frame is the user's model's picture of the first prompt (Flash, seed 7).
    first = video_backend.generate(dataclasses.replace(request, mode=Mode.TEXT2IMG, extra={}), lambda *_: None)[0]
    decoded = next(iter(decode_frames(video.path)))
    # Luma (4:2:0 keeps it at full resolution): only H.264's loss stands between them; a picture of
    # another seed is far further away (the tiny models draw pixel noise, which H.264 smooths).
    other = video_backend.generate(dataclasses.replace(request, mode=Mode.TEXT2IMG, extra={}, seed=8), lambda *_: None)[0]
    same = np.abs(gray(decoded) - gray(np.asarray(first))).mean()
    assert same < 0.08 and same < 0.5 * np.abs(gray(decoded) - gray(np.asarray(other))).mean()


def test_animation_cancels_between_frames(video_backend, tmp_path):
    def progress(done: int, total: int) -> None:
        if done >= 3:
            raise GenerationCancelled()

    request = GenerationRequest(
        mode=Mode.ANIMATE, model=ModelId.K31_FLASH, prompt="a forest", negative_prompt=None, width=64, height=64,
        num_images=1, seed=1, extra={"scenes": [{"prompt": "", "move": "drift"}]},
    )
    with pytest.raises(GenerationCancelled):
        video_backend.render_video(request, progress, tmp_path / "c.mp4")
    assert not (tmp_path / "c.mp4").exists()


def test_text_to_video_is_a_5_second_h264_mp4(video_backend, tmp_path):
    from generation.k5video import video_size

    width, height = video_size("16:9", 32)
    seen: list[tuple[int, int]] = []
    request = GenerationRequest(
        mode=Mode.VIDEO, model=ModelId.K5_VIDEO_5S, prompt="a red fox running in the snow", negative_prompt=None,
        width=width, height=height, num_images=1, seed=3, steps=2,
    )
    video = video_backend.render_video(request, lambda s, t: seen.append((s, t)), tmp_path / "v.mp4")
    frames, fps, duration, codec, size = probe(video.path)
    assert (frames, fps, codec, size) == (21, 4.0, "h264", (48, 32))  # 5 s x 4 fps + 1 (the VAE's 4k + 1)
    assert duration == pytest.approx(5.0, abs=1 / fps + 1e-6)
    assert seen == [(0, 2), (1, 2), (2, 2)]  # 0: loading the model
    assert [m["model"] for m in video_backend.model_status() if m["loaded"]].count(str(ModelId.K5_VIDEO_5S)) == 1


def test_a_video_over_the_upload_limit_is_re_encoded_smaller(tmp_path):
    from generation.video_io import write_mp4

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(12)]  # noise: hard to compress
    plain = write_mp4(iter(frames), tmp_path / "plain.mp4", fps=4)
    limit = plain.path.stat().st_size * 2 // 3
    smaller = write_mp4(iter(frames), tmp_path / "small.mp4", fps=4, max_bytes=limit)
    assert smaller.path.stat().st_size <= limit < plain.path.stat().st_size
    assert probe(smaller.path)[:2] == (12, 4.0)
    with pytest.raises(ValueError, match="stays over"):
        write_mp4(iter(frames), tmp_path / "tiny.mp4", fps=4, max_bytes=1000)


def test_tiny_video_checkpoints_are_laid_out_like_the_hub(tiny_models_dir):
    import json

    for seconds in ("5s", "10s"):
        folder = tiny_models_dir / f"Kandinsky-5.0-T2V-Lite-distilled16steps-{seconds}-Diffusers"
        index = json.loads((folder / "model_index.json").read_text())
        assert index["_class_name"] == "Kandinsky5T2VPipeline"
        assert {k: v[1] for k, v in index.items() if not k.startswith("_")} == {
            "transformer": "Kandinsky5Transformer3DModel",
            "vae": "AutoencoderKLHunyuanVideo",
            "text_encoder": "Qwen2_5_VLForConditionalGeneration",
            "tokenizer": "Qwen2VLProcessor",
            "text_encoder_2": "CLIPTextModel",
            "tokenizer_2": "CLIPTokenizer",
            "scheduler": "FlowMatchEulerDiscreteScheduler",
        }
        assert (folder / "tokenizer" / "tokenizer.json").is_file() and (folder / "tokenizer" / "preprocessor_config.json").is_file()
        assert (folder / "transformer" / "diffusion_pytorch_model.safetensors").is_file()
