"""The swap stage: GHOST's ONNX path on tiny exported stand-ins, and the classical swap measured
with dlib's face-recognition embedding on real photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from faceswap.config import FaceSwapConfig
from faceswap.detect import SAME_PERSON, face_distance
from faceswap.swap import (
    ARCFACE_INPUT,
    GHOST_CROP,
    GHOST_INPUT,
    GHOST_TEMPLATES,
    ClassicalFaceSwapper,
    GhostFaceSwapper,
    estimate_norm,
    make_swapper,
)


class TinyArcFace(nn.Module):
    """iresnet100's signature: RGB (N, 3, 112, 112) in [-1, 1] -> identity (N, 512)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.PReLU(8), nn.AdaptiveAvgPool2d(4))
        self.fc = nn.Linear(8 * 16, 512)

    def forward(self, x):
        return self.fc(self.features(x).flatten(1))


class TinyAEINet(nn.Module):
    """AEI_Net's signature: G(target (N, 3, 256, 256), source_embedding (N, 512)) -> (Y, attributes)."""

    def __init__(self) -> None:
        super().__init__()
        self.encode = nn.Conv2d(3, 8, 3, padding=1)
        self.identity = nn.Linear(512, 8)
        self.decode = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, target, source_embedding):
        attributes = self.encode(target)
        y = torch.tanh(self.decode(attributes * self.identity(source_embedding)[:, :, None, None]))
        return y, attributes


@pytest.fixture(scope="module")
def ghost_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ghost")
    torch.manual_seed(0)
    generator, arcface = folder / "G_unet_2blocks.onnx", folder / "arcface.onnx"
    torch.onnx.export(
        TinyAEINet().eval(),
        (torch.zeros(1, 3, GHOST_INPUT, GHOST_INPUT), torch.zeros(1, 512)),
        str(generator),
        input_names=["target", "source_embedding"],
        output_names=["output", "attributes"],
        dynamo=False,
    )
    torch.onnx.export(
        TinyArcFace().eval(),
        (torch.zeros(1, 3, ARCFACE_INPUT, ARCFACE_INPUT),),
        str(arcface),
        input_names=["input"],
        output_names=["embedding"],
        dynamo=False,
    )
    return generator, arcface


def test_ghost_alignment_puts_the_landmarks_on_a_template(faces_of, astronaut):
    face = faces_of(astronaut)[0]
    matrix, index = estimate_norm(face.five_points, GHOST_CROP, GHOST_TEMPLATES)
    moved = np.hstack([face.five_points, np.ones((5, 1))]) @ matrix.T
    # A frontal face picks the frontal template, and lands within about 5% of it at 224 px.
    assert index == 2
    assert np.abs(moved - GHOST_TEMPLATES[index] * 2).max() < 12  # she smiles: wider mouth corners


def test_ghost_path_through_onnxruntime(ghost_files, faces_of, astronaut, group_photo):
    generator, arcface = ghost_files
    swapper = make_swapper(FaceSwapConfig(ghost_generator_path=generator, ghost_arcface_path=arcface, device="cpu"))
    assert isinstance(swapper, GhostFaceSwapper)
    source_face = faces_of(astronaut)[0]
    target_face = faces_of(group_photo)[0]
    identity = swapper.identity(astronaut, source_face)
    assert identity.shape == (1, 512)
    out = swapper.swap(astronaut, source_face, group_photo, target_face)
    assert out.shape == group_photo.shape and out.dtype == np.uint8
    changed = np.abs(out.astype(int) - group_photo.astype(int)).sum(axis=-1) > 0
    ys, xs = np.nonzero(changed)
    left, top, right, bottom = target_face.box
    assert changed.sum() > 0.3 * target_face.area  # the face was replaced by the generator's output
    assert xs.min() >= left - 20 and xs.max() <= right + 20 and ys.min() >= top - 40 and ys.max() <= bottom + 20
    # The identity reaches the generator: another source face gives another result.
    other = swapper.swap(group_photo, faces_of(group_photo)[1], group_photo, target_face)
    assert np.abs(other.astype(int) - out.astype(int)).sum() > 0


def test_classical_swap_is_used_without_ghost_files(tmp_path):
    assert isinstance(make_swapper(FaceSwapConfig()), ClassicalFaceSwapper)
    missing = FaceSwapConfig(ghost_generator_path=tmp_path / "g.onnx", ghost_arcface_path=tmp_path / "a.onnx")
    assert isinstance(make_swapper(missing), ClassicalFaceSwapper)


def _centre(box) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


def _nearest_face(faces, box):
    return min(faces, key=lambda f: np.linalg.norm(_centre(f.box) - _centre(box)))


@pytest.mark.parametrize("target_name, face_index", [("group_photo", 0), ("group_photo", 1), ("portrait", 0)])
def test_classical_swap_carries_the_identity(request, faces_of, detector, embedder, astronaut, target_name, face_index):
    target = request.getfixturevalue(target_name)
    source_face = faces_of(astronaut)[0]
    target_face = faces_of(target)[face_index]
    source_identity = embedder.embed(astronaut, source_face)
    before = face_distance(source_identity, embedder.embed(target, target_face))

    out = ClassicalFaceSwapper().swap(astronaut, source_face, target, target_face)
    assert out.shape == target.shape
    found = detector.detect(out)
    assert found, "the swapped face must still be a face"
    after = face_distance(source_identity, embedder.embed(out, _nearest_face(found, target_face.box)))
    print(f"\nclassical swap astronaut -> {target_name}[{face_index}]: dlib distance {before:.3f} before, {after:.3f} after")
    assert before > SAME_PERSON  # different people to begin with
    assert after < before
    assert after < SAME_PERSON
