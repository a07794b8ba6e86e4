"""The face-swap pipeline: detect -> describe -> draw -> swap -> restore.

``prepare_face`` runs when the user sends their photo (``/face``): it finds the face and returns a
:class:`FaceProfile`, the part that is stored (box, landmarks, flags; never the pixels, which stay
in Telegram under the photo's file id). ``run`` serves one ``@me`` job: it describes the face
(``@me`` becomes the description, or "a person" when the describer is off), draws the scene through
the generation layer, swaps the user's face into every picture and restores it.

Neither the photo nor the description is ever logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image

from faceswap.config import FaceSwapConfig
from faceswap.describe import FaceDescriber
from faceswap.detect import Face, FaceDetector, largest_face, to_rgb_array
from faceswap.profile import NO_DESCRIPTION, FaceProfile, FaceSwapError, fill_me, has_me
from faceswap.restore import FaceRestorer
from faceswap.swap import FaceSwapper, SwapRefused
from generation.backend import Backend, GenerationRequest, Mode, ProgressFn

__all__ = ["FaceProfile", "FaceSwapError", "FaceSwapPipeline", "fill_me", "has_me", "prepare_face"]

log = logging.getLogger(__name__)

STAGES = ("describing", "drawing", "swapping", "restoring")

StageFn = Callable[[str], None]
"""Called when a stage starts, with one of :data:`STAGES`. It may raise GenerationCancelled."""

DrawFn = Callable[[GenerationRequest, ProgressFn], list[Image.Image]]


def _no_stage(stage: str) -> None:
    pass


MIN_FACE_PX = 80  # the face box's width: smaller faces carry too little detail to move
MAX_SELFIE_YAW = 25.0  # degrees: a turned head shows one side only
MAX_SELFIE_ROLL = 25.0
MAX_SELFIE_PITCH = 35.0  # the generic head model reads frontal faces as pitched by about 15


def prepare_face(detector: FaceDetector, photo: Image.Image | np.ndarray) -> FaceProfile:
    """Check the user's photo and find their face. Needs only the detector (dlib, CPU): the bot
    process runs it when a photo arrives. ``FaceSwapError`` codes, each with its own answer:
    ``no_face``, ``several_faces`` (only one's own face may be used: a photo with one person),
    ``face_too_small`` (under :data:`MIN_FACE_PX`), ``face_turned`` (not roughly frontal)."""
    from faceswap.geometry import head_pose

    rgb = to_rgb_array(photo)
    faces = detector.detect(rgb)
    if not faces:
        raise FaceSwapError("no_face")
    if len(faces) > 1:
        raise FaceSwapError("several_faces", f"{len(faces)} faces")
    face = faces[0]
    left, top, right, bottom = face.box
    if min(right - left, bottom - top) < MIN_FACE_PX:
        raise FaceSwapError("face_too_small", f"{right - left} px")
    pose = head_pose(face.landmarks, (rgb.shape[1], rgb.shape[0]))
    if abs(pose.yaw) > MAX_SELFIE_YAW or abs(pose.roll) > MAX_SELFIE_ROLL or abs(pose.pitch) > MAX_SELFIE_PITCH:
        raise FaceSwapError("face_turned", f"yaw {pose.yaw:.0f}, pitch {pose.pitch:.0f}, roll {pose.roll:.0f}")
    return FaceProfile.from_face(face, (rgb.shape[1], rgb.shape[0]), several_faces=False)


@dataclass
class FaceSwapPipeline:
    detector: FaceDetector
    describer: FaceDescriber | None
    draw: DrawFn
    swapper: FaceSwapper
    restorer: FaceRestorer | None = None

    @classmethod
    def from_config(
        cls, config: FaceSwapConfig, draw: Backend | DrawFn, on_use: Callable[[Any], None] | None = None
    ) -> FaceSwapPipeline:
        """``on_use(model)`` brings a face model (OmniFusion, GHOST, GFPGAN) to the GPU before it
        runs: the worker passes its model manager's ``use_external``, so the face models share the
        image models' VRAM budget (least-recently-used models move to the CPU to make room)."""
        from faceswap.describe import make_describer
        from faceswap.detect import DlibFaceDetector
        from faceswap.restore import make_restorer
        from faceswap.swap import make_swapper

        detector = DlibFaceDetector()
        return cls(
            detector=detector,
            describer=make_describer(config, on_use=on_use),
            draw=draw.generate if hasattr(draw, "generate") else draw,  # type: ignore[union-attr]
            swapper=make_swapper(config, detector=detector, on_use=on_use),
            restorer=make_restorer(config, on_use=on_use),
        )

    # -- /face ------------------------------------------------------------------------------
    def prepare_face(self, photo: Image.Image | np.ndarray, describe: bool = False) -> FaceProfile:
        """:func:`prepare_face`; ``describe=True`` also describes the face now (otherwise each job
        does, on the GPU worker, so no description is ever stored)."""
        profile = prepare_face(self.detector, photo)
        if describe:
            profile.description = self.describe(to_rgb_array(photo), profile)
        return profile

    def describe(self, photo: np.ndarray, profile: FaceProfile) -> str | None:
        if self.describer is None:
            return None
        return self.describer.describe(photo, profile.face)

    # -- an @me job -----------------------------------------------------------------------------
    def run(
        self,
        photo: Image.Image | np.ndarray,
        profile: FaceProfile,
        request: GenerationRequest,
        progress: ProgressFn,
        on_stage: StageFn = _no_stage,
    ) -> list[Image.Image]:
        """Draw ``request`` (its prompt containing ``@me``) with the user's face in it.

        Every returned picture has the face swapped in; pictures where no face was drawn are
        dropped, and when none has one ``FaceSwapError("no_face_in_result")`` is raised.
        """
        source = to_rgb_array(photo)
        if profile.width and (source.shape[1], source.shape[0]) != (profile.width, profile.height):
            raise FaceSwapError("no_face", "the stored face does not belong to this photo")

        on_stage("describing")
        description = profile.description or self.describe(source, profile)
        if description is None:
            log.info("face describer is off: the prompt says %r", NO_DESCRIPTION)

        on_stage("drawing")
        scene = replace(request, mode=Mode.TEXT2IMG, prompt=fill_me(request.prompt, description), images=[])
        drawn = self.draw(scene, progress)

        on_stage("swapping")
        source_face = profile.face
        swapped: list[tuple[np.ndarray, Face]] = []
        refused = 0
        for image in drawn:
            target = to_rgb_array(image)
            target_face = largest_face(self.detector.detect(target))
            if target_face is None:
                continue
            try:
                result = self.swapper.swap(source, source_face, target, target_face)
            except SwapRefused as error:  # the heads are turned too differently: not sent
                log.info("face swap: refused for one picture (%s)", error)
                refused += 1
                continue
            except ValueError as error:  # a face too small or too distorted to swap: like no face
                log.info("face swap: a drawn face could not be used (%s)", error)
                continue
            swapped.append((result, target_face))
        if not swapped:
            raise FaceSwapError("face_pose_mismatch" if refused else "no_face_in_result")
        if len(swapped) < len(drawn):
            log.info("face swap: %d of %d pictures had no face and were dropped", len(drawn) - len(swapped), len(drawn))

        if self.restorer is not None:
            on_stage("restoring")
            restored = []
            for result, target_face in swapped:
                # The swap moved the landmarks (the source's face shape): find the face again.
                face = largest_face(self.detector.detect(result)) or target_face
                restored.append((self.restorer.restore(result, [face]), face))
            swapped = restored
        return [Image.fromarray(result) for result, _ in swapped]
