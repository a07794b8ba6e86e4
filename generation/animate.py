"""/animate: Deforum-style animation on Kandinsky 3.1 (the Kandinsky 3 paper, §5.6 and appendix C).

The first frame is drawn by the user's model. Then, frame after frame:

1. estimate the depth of the last diffused frame (a monocular depth model through transformers),
2. lift it into 2.5D with a pinhole camera between ``z_near`` and ``z_far``, move the camera along
   the scene's trajectory and project back (:mod:`generation.warp`),
3. match the warped frame's colours to the scene's first frame (no colour drift),
4. run image-to-image at a low strength (Kandinsky 3.1 or Flash) with the same seed every time (the
   same noise, so nothing flickers) to repair what the move uncovered and to pull the picture toward
   the scene's prompt; over the last ``transition_seconds`` of a scene the prompt embedding slides
   linearly toward the next scene's.

With a cadence k, steps 1-4 run on every k-th frame only (a keyframe); each frame between two
keyframes is a cross-fade of the earlier keyframe warped forward and the later one warped back to
that frame's camera, so the motion stays smooth between diffusion steps.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from generation.motion import AnimationSettings, CameraMove
from generation.warp import CameraPose, camera_path, depth_from_disparity, warp

FrameProgress = Callable[[int, int], None]
"""Called after every finished frame with (frames done, total frames); may raise GenerationCancelled."""


@dataclass(frozen=True)
class Scene:
    prompt: str
    move: CameraMove


class FrameModel(Protocol):
    """Image-to-image on prompt embeddings, so that two scenes' prompts can be blended."""

    def encode(self, prompt: str) -> Any: ...

    def blend(self, a: Any, b: Any, weight: float) -> Any:
        """``a`` moved ``weight`` (0..1) of the way toward ``b``."""
        ...

    def img2img(self, image: Image.Image, embedding: Any, strength: float, seed: int) -> Image.Image: ...


DepthModel = Callable[[Image.Image], torch.Tensor]
"""Relative inverse depth (larger = nearer) of a picture, shape (H, W) at the picture's size."""


def to_tensor(image: Image.Image | np.ndarray) -> torch.Tensor:
    array = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)[None].contiguous()


def to_uint8(frame: torch.Tensor) -> np.ndarray:
    return (frame[0].permute(1, 2, 0).clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).cpu().numpy()


def match_colours(frame: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``frame``'s colour distribution matched to ``reference`` in CIELAB (per channel histograms)."""
    from skimage.color import lab2rgb, rgb2lab
    from skimage.exposure import match_histograms

    matched = match_histograms(rgb2lab(frame), rgb2lab(reference), channel_axis=-1)
    with warnings.catch_warnings():
        # Matched Lab values can fall a little outside sRGB; they are clipped, as intended.
        warnings.simplefilter("ignore", UserWarning)
        rgb = lab2rgb(matched)
    return (np.clip(rgb, 0, 1) * 255.0 + 0.5).astype(np.uint8)


class Animation:
    """Renders the frames of one animation; iterate over :meth:`frames`."""

    def __init__(
        self,
        scenes: Sequence[Scene],
        first_frame: Image.Image,
        settings: AnimationSettings,
        depth_model: DepthModel,
        frame_model: FrameModel | None,
        seed: int,
        progress: FrameProgress | None = None,
        device: str = "cpu",
    ) -> None:
        if not scenes:
            raise ValueError("an animation needs at least one scene")
        self.scenes = list(scenes)
        self.first = first_frame.convert("RGB")
        self.settings = settings
        self.depth_model = depth_model
        self.frame_model = frame_model  # None: warps only (tests of the camera, previews)
        self.seed = seed
        self.progress = progress
        self.device = device  # where the warps run (the GPU, when the models are there)
        self.poses: list[CameraPose] = camera_path([s.move for s in self.scenes], settings)
        self.total = len(self.poses)
        self._embeddings: list[Any] = []

    # -- prompts --------------------------------------------------------------------------------
    def prompt_weights(self, index: int) -> tuple[int, int, float]:
        """(scene, next scene, weight of the next one) at frame ``index``: the transition blends the
        last ``transition_seconds`` of a scene toward the next scene's prompt, reaching it at the cut."""
        s = self.settings
        per_scene = s.frames_per_scene
        scene = min(index // per_scene, len(self.scenes) - 1)
        if scene + 1 >= len(self.scenes) or s.transition_seconds <= 0:
            return scene, scene, 0.0
        t = (index - scene * per_scene) / s.fps
        start = s.scene_seconds - s.transition_seconds
        if t <= start:
            return scene, scene, 0.0
        return scene, scene + 1, min(1.0, (t - start) / s.transition_seconds)

    def _embedding(self, index: int) -> Any:
        assert self.frame_model is not None
        if not self._embeddings:
            self._embeddings = [self.frame_model.encode(scene.prompt) for scene in self.scenes]
        a, b, weight = self.prompt_weights(index)
        if weight <= 0.0:
            return self._embeddings[a]
        return self.frame_model.blend(self._embeddings[a], self._embeddings[b], weight)

    # -- frames ---------------------------------------------------------------------------------
    def _depth(self, frame: torch.Tensor) -> torch.Tensor:
        disparity = self.depth_model(Image.fromarray(to_uint8(frame)))
        return depth_from_disparity(disparity.to(self.device), self.settings.z_near, self.settings.z_far)

    def _warp(self, frame: torch.Tensor, depth: torch.Tensor, src: int, dst: int) -> torch.Tensor:
        return warp(frame, depth, self.poses[src], self.poses[dst], self.settings.fov_degrees)

    def _keyframe(self, warped: torch.Tensor, index: int, reference: np.ndarray) -> torch.Tensor:
        if self.frame_model is None:
            return warped
        picture = to_uint8(warped)
        if self.settings.colour_coherence:
            picture = match_colours(picture, reference)
        repaired = self.frame_model.img2img(
            Image.fromarray(picture), self._embedding(index), self.settings.strength, self.seed
        )
        if repaired.size != (picture.shape[1], picture.shape[0]):
            repaired = repaired.resize((picture.shape[1], picture.shape[0]), Image.Resampling.LANCZOS)
        return to_tensor(repaired).to(self.device)

    def _done(self, count: int) -> None:
        if self.progress is not None:
            self.progress(count, self.total)

    def frames(self) -> Iterator[np.ndarray]:
        """The frames in order (uint8 RGB, the first frame's size)."""
        cadence = self.settings.cadence
        per_scene = self.settings.frames_per_scene
        key = to_tensor(self.first).to(self.device)
        key_index = 0
        key_depth = self._depth(key)
        reference = to_uint8(key)
        reference_scene = 0
        yield reference
        self._done(1)
        while key_index < self.total - 1:
            nxt = min(key_index + cadence, self.total - 1)
            scene = nxt // per_scene
            if scene != reference_scene:
                # A new scene keeps its own colours: the first keyframe of a scene becomes the reference.
                reference_scene, reference = scene, None
            warped = self._warp(key, key_depth, key_index, nxt)
            new_key = self._keyframe(warped, nxt, reference if reference is not None else to_uint8(warped))
            if reference is None:
                reference = to_uint8(new_key)
            # The new keyframe's depth: the next warps start from it, and the frames between warp it back.
            new_depth = self._depth(new_key) if nxt < self.total - 1 or nxt - key_index > 1 else key_depth
            for j in range(key_index + 1, nxt):
                weight = (j - key_index) / (nxt - key_index)
                forward = self._warp(key, key_depth, key_index, j)
                backward = self._warp(new_key, new_depth, nxt, j)
                yield to_uint8((1 - weight) * forward + weight * backward)
                self._done(j + 1)
            yield to_uint8(new_key)
            self._done(nxt + 1)
            key, key_index, key_depth = new_key, nxt, new_depth
