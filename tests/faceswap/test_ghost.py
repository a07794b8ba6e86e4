"""GHOST in PyTorch against GHOST's own code (tests/reference/ghost.npz, see tests/reference/README.md).

The golden data were made by ai-forever/ghost's networks and inference helpers on full-size
networks filled by :mod:`tests.faceswap.seeded_weights` (the same numbers on every machine), with
insightface 0.2.1's alignment. The inputs are real photos shipped in packages: scikit-image's
astronaut (the source) and the insightface wheel's t1.jpg (the target).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from faceswap.ghost import (
    CROP,
    LAYOUT_106,
    GhostFaceSwapper,
    GhostNetworks,
    GhostWeightsError,
    align,
    arcface_from_state_dict,
    blend_mask,
    estimate_norm,
    generator_from_state_dict,
    load_arcface,
    load_generator,
    mask_settings,
    paste,
)
from faceswap.ghost_nets import AEINet, iresnet100

from .seeded_weights import seeded_state_dict

REFERENCE = Path(__file__).parents[1] / "reference"


@pytest.fixture(scope="module")
def golden():
    with np.load(REFERENCE / "ghost.npz") as data:
        return {key: data[key] for key in data.files}


def _shapes(name: str) -> dict[str, list[int]]:
    return json.loads((REFERENCE / name).read_text())


@pytest.mark.parametrize(
    "factory, keys", [(AEINet, "ghost_G_unet_2blocks_keys.json"), (iresnet100, "ghost_arcface_iresnet100_keys.json")]
)
def test_our_networks_have_the_checkpoints_layout(factory, keys):
    """Every key and shape of GHOST's G_unet_2blocks / iresnet100 state dicts, nothing more."""
    with torch.device("meta"):
        ours = {key: list(value.shape) for key, value in factory().state_dict().items()}
    assert ours == _shapes(keys)


def test_alignment_picks_ghosts_template_and_matrix(golden):
    for points, matrix, index in zip(golden["points5"], golden["norm_matrices"], golden["template_index"]):
        ours, our_index = estimate_norm(points, CROP)
        assert our_index == index
        np.testing.assert_allclose(ours, matrix, atol=1e-4)  # GHOST fits in float32
    assert set(golden["template_index"]) >= {1, 2, 3}  # frontal and turned faces were covered


def test_mask_matches_ghosts_face_mask_static(golden):
    target = golden["landmarks106_target"]
    for result, expected, settings in zip(golden["landmarks106_results"], golden["masks"], golden["mask_params"]):
        assert mask_settings(result, target, LAYOUT_106) == tuple(settings)
        mask = blend_mask((CROP, CROP), result, target, LAYOUT_106)
        np.testing.assert_array_equal(np.round(mask * 255).astype(np.uint8), expected)
    assert len({tuple(p) for p in golden["mask_params"]}) == 4  # all four erode/blur settings


@pytest.fixture(scope="module")
def seeded_ghost(golden):
    """Our networks with the golden run's weights, loaded strictly from state dicts."""
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    generator = generator_from_state_dict(
        seeded_state_dict(_shapes("ghost_G_unet_2blocks_keys.json"), int(golden["seed_generator"]))
    )
    arcface = arcface_from_state_dict(
        seeded_state_dict(_shapes("ghost_arcface_iresnet100_keys.json"), int(golden["seed_arcface"]))
    )
    return GhostFaceSwapper.from_networks(GhostNetworks(generator, arcface))


def test_identity_generator_and_paste_reproduce_ghost(golden, seeded_ghost, astronaut, group_photo):
    # Identity: the astronaut aligned as GHOST aligns the source, halved to 112 px, embedded.
    source_crop = align(astronaut, golden["points5"][0])[0]
    embedding = seeded_ghost.embed_crop(source_crop)
    np.testing.assert_allclose(embedding, golden["source_embedding"], rtol=1e-3, atol=1e-4)

    # Generator: the target crop from the same 320 px window of t1.jpg, 256 px, truncated to 8 bits.
    x0, y0 = golden["frame_origin"]
    frame = np.ascontiguousarray(group_photo[y0 : y0 + 320, x0 : x0 + 320])
    crop = align(frame, golden["points5"][1] - np.array([x0, y0], np.float32))[0]
    generated = seeded_ghost.generate_crop(crop, golden["source_embedding"])
    expected = golden["generator_output_bgr"][:, :, ::-1]
    off = np.abs(generated.astype(int) - expected.astype(int))
    assert off.max() <= 1 and (off > 0).mean() < 0.01  # truncation may flip a value by one
    assert expected.std() > 5  # the seeded network draws something, not a flat or saturated face

    # Paste back under GHOST's mask (the 106-point landmarks GHOST's get_final_image was given).
    import cv2

    mask = blend_mask((CROP, CROP), golden["landmarks106_results"][1], golden["landmarks106_target"], LAYOUT_106)
    final = paste(frame, cv2.resize(expected, (CROP, CROP)), golden["target_matrix"], mask)
    fy0, fy1, fx0, fx1 = golden["final_box"]
    np.testing.assert_array_equal(final[fy0:fy1, fx0:fx1], golden["final_patch_bgr"][:, :, ::-1])
    outside = np.ones(frame.shape[:2], bool)
    outside[fy0:fy1, fx0:fx1] = False
    np.testing.assert_array_equal(final[outside], frame[outside])


def test_full_swap_runs_on_a_real_photo(seeded_ghost, detector, astronaut, group_photo):
    source_face = detector.detect(astronaut)[0]
    target_face = detector.detect(group_photo)[0]
    seeded_ghost._landmarks = detector.detector.landmarks68  # the session's loaded predictor
    out = seeded_ghost.swap(astronaut, source_face, group_photo, target_face)
    assert out.shape == group_photo.shape and out.dtype == np.uint8
    changed = np.abs(out.astype(int) - group_photo.astype(int)).sum(axis=-1) > 0
    left, top, right, bottom = target_face.box
    ys, xs = np.nonzero(changed)
    assert changed.sum() > 0.3 * target_face.area
    margin = 0.3 * (right - left)  # the mask grows past dlib's box by the raised brows and a dilation
    assert xs.min() >= left - margin and xs.max() <= right + margin
    assert ys.min() >= top - 2 * margin and ys.max() <= bottom + margin


def test_wrong_or_broken_files_are_refused_with_a_clear_message(tmp_path):
    wrong = tmp_path / "glintr100.onnx"
    wrong.write_bytes(b"onnx")
    with pytest.raises(GhostWeightsError, match="different ArcFace"):
        load_arcface(wrong)
    with pytest.raises(GhostWeightsError, match="does not exist"):
        load_generator(tmp_path / "G_unet_2blocks.pth")
    broken = tmp_path / "backbone.pth"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(GhostWeightsError, match="cannot read"):
        load_arcface(broken)
    foreign = tmp_path / "G_unet_2blocks.pth"
    torch.save({"encoder.conv1.0.weight": torch.zeros(1)}, foreign)
    with pytest.raises(GhostWeightsError, match="does not match"):
        load_generator(foreign)


def test_a_bad_file_is_not_read_again_for_every_job(tmp_path, monkeypatch):
    broken = tmp_path / "G_unet_2blocks.pth"
    broken.write_bytes(b"truncated")
    swapper = GhostFaceSwapper(broken, tmp_path / "backbone.pth", device="cpu")
    reads = []
    real = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: reads.append(a) or real(*a, **k))
    for _ in range(3):
        with pytest.raises(GhostWeightsError):
            swapper.networks()
    assert len(reads) == 1
