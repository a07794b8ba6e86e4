"""The whole pipeline with the real detector, swapper and describer loading code; the drawing
stage is a stand-in backend that "draws" a real photo (this tests the swap, not generation)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from faceswap.config import FaceSwapConfig
from faceswap.detect import SAME_PERSON, face_distance, largest_face
from faceswap.pipeline import FaceProfile, FaceSwapError, FaceSwapPipeline, fill_me, has_me
from faceswap.restore import GfpganRestorer
from faceswap.swap import ClassicalFaceSwapper
from generation.backend import GenerationRequest, Mode, ModelId

DESCRIPTION = "a young woman with short dark hair"


class PhotoBackend:
    """A Backend whose 'generated picture' is a crop of a real photo, of the requested size."""

    def __init__(self, photo: np.ndarray) -> None:
        self.photo = photo
        self.requests: list[GenerationRequest] = []

    def generate(self, request, progress):
        self.requests.append(request)
        for step in range(1, 3):
            progress(step, 2)
        crop = self.photo[: request.height, 640 : 640 + request.width]
        return [Image.fromarray(np.ascontiguousarray(crop)) for _ in range(request.num_images)]

    def model_status(self):
        return []

    def load(self, model):
        pass

    def unload(self, model):
        pass


class FixedDescriber:
    def __init__(self) -> None:
        self.calls = 0

    def describe(self, image, face):
        self.calls += 1
        return DESCRIPTION


def request(prompt="@me at the bar, photo", num_images=1) -> GenerationRequest:
    return GenerationRequest(
        mode=Mode.FACESWAP, model=ModelId.K31, prompt=prompt, negative_prompt=None,
        width=512, height=512, num_images=num_images, seed=7,
    )


@pytest.fixture()
def pipeline(detector, group_photo):
    return FaceSwapPipeline(
        detector=detector,
        describer=FixedDescriber(),
        draw=PhotoBackend(group_photo).generate,
        swapper=ClassicalFaceSwapper(),
    )


def test_prompt_placeholder():
    assert has_me("@me at the bar") and has_me("a portrait of @Me") and not has_me("email@mesh.org is not it")
    assert fill_me("@me at the bar, photo", "a bearded man") == "a bearded man at the bar, photo"
    assert fill_me("@me at the bar", None) == "a person at the bar"
    # A prompt that lost the placeholder (the beautifier rewrote it) still gets the person.
    assert fill_me("a cosy bar at night, photo", "a bearded man") == "a bearded man, a cosy bar at night, photo"


def test_prepare_face_one_several_none(pipeline, astronaut, group_photo, coffee):
    one = pipeline.prepare_face(astronaut)
    assert not one.several_faces and one.description is None and (one.width, one.height) == (512, 512)
    with pytest.raises(FaceSwapError) as several:
        pipeline.prepare_face(group_photo)
    assert several.value.code == "several_faces"
    with pytest.raises(FaceSwapError) as turned:  # the man on the right, three-quarter view
        pipeline.prepare_face(np.ascontiguousarray(group_photo[0:300, 800:1100]))
    assert turned.value.code == "face_turned"
    small = np.asarray(Image.fromarray(astronaut).resize((300, 300)))
    with pytest.raises(FaceSwapError) as too_small:
        pipeline.prepare_face(small)
    assert too_small.value.code == "face_too_small"
    with pytest.raises(FaceSwapError) as error:
        pipeline.prepare_face(coffee)
    assert error.value.code == "no_face"
    # The profile survives storage as JSON and describes itself without the description.
    described = pipeline.prepare_face(astronaut, describe=True)
    assert described.description == DESCRIPTION
    again = FaceProfile.from_dict(described.to_dict())
    assert again == described and DESCRIPTION not in repr(again)


def test_run_swaps_the_users_face_into_the_picture(pipeline, astronaut, group_photo, embedder, detector, caplog):
    profile = pipeline.prepare_face(astronaut)
    stages, steps = [], []
    with caplog.at_level(logging.DEBUG):
        images = pipeline.run(astronaut, profile, request(), lambda s, t: steps.append((s, t)), stages.append)
    assert stages == ["describing", "drawing", "swapping"]  # no restorer configured
    assert steps == [(1, 2), (2, 2)]
    drawn = pipeline.draw.__self__.requests[0]
    assert drawn.mode == Mode.TEXT2IMG and drawn.prompt == f"{DESCRIPTION} at the bar, photo"
    assert len(images) == 1 and images[0].size == (512, 512)
    # Measured: the face in the result is the user's.
    source = embedder.embed(astronaut, profile.face)
    target = np.asarray(group_photo[:512, 640:1152])
    before = face_distance(source, embedder.embed(target, largest_face(detector.detect(target))))
    result = np.asarray(images[0])
    after = face_distance(source, embedder.embed(result, largest_face(detector.detect(result))))
    print(f"\npipeline (classical swap): dlib distance to the user's face {before:.3f} before, {after:.3f} after")
    assert after < before and after < SAME_PERSON
    # Never a face description in the logs.
    assert DESCRIPTION not in caplog.text


def test_run_without_describer_uses_a_person(detector, astronaut, group_photo):
    backend = PhotoBackend(group_photo)
    pipeline = FaceSwapPipeline.from_config(FaceSwapConfig(describer_enabled=False, restore_enabled=False), backend)
    profile = pipeline.prepare_face(astronaut)
    images = pipeline.run(astronaut, profile, request("@me as an astronaut", num_images=2), lambda s, t: None)
    assert backend.requests[0].prompt == "a person as an astronaut"
    assert len(images) == 2


def test_no_face_in_the_result(detector, astronaut, coffee):
    no_face = PhotoBackend(np.pad(coffee, ((0, 200), (0, 600), (0, 0))))
    pipeline = FaceSwapPipeline(detector=detector, describer=None, draw=no_face.generate, swapper=ClassicalFaceSwapper())
    profile = pipeline.prepare_face(astronaut)
    with pytest.raises(FaceSwapError) as error:
        pipeline.run(astronaut, profile, request(), lambda s, t: None)
    assert error.value.code == "no_face_in_result"


def test_restoring_stage(detector, astronaut, group_photo, tiny_gfpgan):
    checkpoint, arch = tiny_gfpgan
    pipeline = FaceSwapPipeline(
        detector=detector, describer=None, draw=PhotoBackend(group_photo).generate,
        swapper=ClassicalFaceSwapper(), restorer=GfpganRestorer(checkpoint, device="cpu", arch=arch),
    )
    stages = []
    images = pipeline.run(astronaut, pipeline.prepare_face(astronaut), request(), lambda s, t: None, stages.append)
    assert stages == ["describing", "drawing", "swapping", "restoring"]
    assert images[0].size == (512, 512)


def test_profile_must_match_the_photo(pipeline, astronaut, portrait):
    profile = pipeline.prepare_face(astronaut)
    with pytest.raises(FaceSwapError):
        pipeline.run(portrait, profile, request(), lambda s, t: None)


def test_pictures_without_a_face_are_dropped(detector, astronaut, group_photo, coffee):
    face_picture = Image.fromarray(np.ascontiguousarray(group_photo[:512, 640:1152]))
    no_face = Image.fromarray(np.ascontiguousarray(np.pad(coffee, ((0, 112), (0, 0), (0, 0)))[:512, :512]))

    def draw(request, progress):
        return [no_face, face_picture]

    pipeline = FaceSwapPipeline(detector=detector, describer=None, draw=draw, swapper=ClassicalFaceSwapper())
    images = pipeline.run(astronaut, pipeline.prepare_face(astronaut), request(num_images=2), lambda s, t: None)
    assert len(images) == 1 and images[0].size == (512, 512)
    assert np.abs(np.asarray(images[0]).astype(int) - np.asarray(face_picture).astype(int)).sum() > 0


def test_a_drawn_face_turned_too_far_is_refused_with_its_own_error(detector, astronaut, group_photo):
    """The classical swap cannot put a frontal face on a three-quarter one: the job fails with
    "face_pose_mismatch" (its own message) instead of sending a broken face."""
    turned = Image.fromarray(np.ascontiguousarray(group_photo[0:300, 800:1100])).resize((512, 512))
    pipeline = FaceSwapPipeline(
        detector=detector, describer=None, draw=lambda request, progress: [turned], swapper=ClassicalFaceSwapper(detector=detector)
    )
    with pytest.raises(FaceSwapError) as error:
        pipeline.run(astronaut, pipeline.prepare_face(astronaut), request(), lambda s, t: None)
    assert error.value.code == "face_pose_mismatch"
