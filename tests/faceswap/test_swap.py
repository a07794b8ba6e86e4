"""The classical swap on real photos, held to the bars of benchmarks/faceswap_quality.py, and the
rectangle paste that must fail them (a subset of the benchmark's pairs: the full table is in
benchmarks/RESULTS.md)."""

from __future__ import annotations

import numpy as np
import pytest

from faceswap.config import FaceSwapConfig
from faceswap.detect import SAME_PERSON
from faceswap.geometry import eye_openness, head_pose, mouth_openness
from faceswap.ghost import GhostFaceSwapper
from faceswap.quality import MAX_EYE_CHANGE, MAX_MOUTH_CHANGE, MAX_POSE_ERROR, MAX_SEAM, RectanglePaste, measure
from faceswap.swap import ClassicalFaceSwapper, PoseMismatch, SwapRefused, make_swapper


def test_classical_swap_is_used_without_ghost_files(tmp_path):
    assert isinstance(make_swapper(FaceSwapConfig()), ClassicalFaceSwapper)
    missing = FaceSwapConfig(ghost_generator_path=tmp_path / "G.pth", ghost_arcface_path=tmp_path / "backbone.pth")
    assert isinstance(make_swapper(missing), ClassicalFaceSwapper)


def test_ghost_is_used_when_both_checkpoints_are_there(tmp_path):
    generator, arcface = tmp_path / "G_unet_2blocks.pth", tmp_path / "backbone.pth"
    generator.write_bytes(b"x")
    arcface.write_bytes(b"x")
    swapper = make_swapper(FaceSwapConfig(ghost_generator_path=generator, ghost_arcface_path=arcface))
    assert isinstance(swapper, GhostFaceSwapper)  # loaded on the first swap, not here


def test_head_pose_sees_a_turned_face(faces_of, astronaut, group_photo):
    frontal = head_pose(faces_of(astronaut)[0].landmarks, (512, 512))
    turned = head_pose(faces_of(group_photo)[0].landmarks, (group_photo.shape[1], group_photo.shape[0]))
    assert abs(frontal.yaw) < 10 and abs(frontal.roll) < 10
    assert abs(turned.yaw) > 30  # the man on the right of t1.jpg looks to his side


@pytest.fixture(scope="module")
def astronaut_identity(embedder, faces_of, astronaut):
    return embedder.embed(astronaut, faces_of(astronaut)[0])


# Targets that span a frontal face (t1[4]), a turned one (t1[3], yaw ~23 degrees) and a grey
# low-resolution portrait.
@pytest.mark.parametrize("target_name, face_index", [("group_photo", 3), ("group_photo", 4), ("portrait", 0)])
def test_classical_swap_passes_every_bar(
    request, faces_of, detector, embedder, astronaut, astronaut_identity, target_name, face_index
):
    target = request.getfixturevalue(target_name)
    source_face, target_face = faces_of(astronaut)[0], faces_of(target)[face_index]
    before = measure(target, target, target_face, astronaut_identity, detector, embedder)
    result = ClassicalFaceSwapper(detector=detector).swap(astronaut, source_face, target, target_face)
    q = measure(result, target, target_face, astronaut_identity, detector, embedder)
    print(f"\nclassical astronaut -> {target_name}[{face_index}]: {q}")
    assert before.identity > SAME_PERSON  # different people to begin with
    assert q.failures() == [], q
    # The hairline and everything outside the face are the target's.
    left, top, right, bottom = target_face.box
    brows_top = int(target_face.landmarks[17:27, 1].min())
    assert np.array_equal(result[: max(0, brows_top - 2)], target[: max(0, brows_top - 2)])


def test_rectangle_paste_fails_a_bar(faces_of, detector, embedder, astronaut, astronaut_identity, group_photo):
    target_face = faces_of(group_photo)[3]
    result = RectanglePaste().swap(astronaut, faces_of(astronaut)[0], group_photo, target_face)
    q = measure(result, group_photo, target_face, astronaut_identity, detector, embedder)
    assert q.identity < SAME_PERSON  # it does carry the identity...
    assert q.seam > MAX_SEAM and q.pose_error > MAX_POSE_ERROR  # ...with a visible edge and the wrong pose
    assert "seam" in q.failures() and "pose" in q.failures()


def test_classical_swap_keeps_the_targets_expression(faces_of, astronaut):
    """The destination geometry keeps the target's lid and lip openings, whatever the source's."""
    swapper = ClassicalFaceSwapper()
    source = faces_of(astronaut)[0].landmarks.astype(np.float64)
    target = source.copy()
    target[[65, 66, 67], 1] += 12  # the target's mouth is open
    dst = swapper.destination(source, (512, 512), target, (512, 512))
    assert abs(mouth_openness(dst) - mouth_openness(target)) < 0.02
    assert abs(eye_openness(dst) - eye_openness(target)) < 0.02
    assert mouth_openness(dst) > mouth_openness(source) + 0.1
    assert MAX_MOUTH_CHANGE > 0.02 and MAX_EYE_CHANGE > 0.02


def test_classical_swap_refuses_faces_turned_too_differently(faces_of, astronaut, group_photo):
    # t1.jpg's face 0 is turned about 45 degrees; the astronaut looks at the camera.
    with pytest.raises(PoseMismatch) as refused:
        ClassicalFaceSwapper().swap(astronaut, faces_of(astronaut)[0], group_photo, faces_of(group_photo)[0])
    assert isinstance(refused.value, SwapRefused) and refused.value.yaw > 40
