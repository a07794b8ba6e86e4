"""The ``fake`` backend: a quick deterministic picture from the prompt and parameters.

For development and tests of everything around the models; it honours the contract (sizes, number of
images, seeds, progress per step, cancellation) so the rest of the bot cannot tell it apart.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from PIL import Image, ImageDraw

from generation.backend import GenerationError, GenerationRequest, Mode, ModelId, ProgressFn
from generation.registry import MODELS, spec


class FakeBackend:
    def __init__(self, step_seconds: float = 0.0, video_fps: int = 4) -> None:
        self.step_seconds = step_seconds
        self.video_fps = video_fps  # frames a second of fake videos (few: quick to encode in tests)
        self.calls: list[GenerationRequest] = []
        self.batches: list[int] = []  # the size of every generate_batch call, in order
        self.steps_done = 0  # steps run by the latest call (tests check where a cancel stopped it)
        self.resident: set[ModelId] = set(ModelId)  # every model counts as loaded until unloaded
        self.loads: list[ModelId] = []  # load() / unload() calls, in order (admin /models tests)
        self.unloads: list[ModelId] = []

    def generate(self, request: GenerationRequest, progress: ProgressFn) -> list[Image.Image]:
        return self._run([request], progress)[0]

    def generate_batch(self, requests: list[GenerationRequest], progress: ProgressFn) -> list[list[Image.Image]]:
        """One pass of steps for the whole batch, as a batched pipeline call makes."""
        self.batches.append(len(requests))
        return self._run(requests, progress)

    def _run(self, requests: list[GenerationRequest], progress: ProgressFn) -> list[list[Image.Image]]:
        total = max(request.steps or spec(request.model).total_steps for request in requests)
        self.calls.extend(requests)
        self.steps_done = 0
        for step in range(1, total + 1):
            if self.step_seconds:
                time.sleep(self.step_seconds)
            self.steps_done = step
            progress(step, total)
        return [[self._draw(r, r.seed + i) for i in range(r.num_images)] for r in requests]

    @staticmethod
    def _draw(request: GenerationRequest, seed: int) -> Image.Image:
        digest = hashlib.sha256(
            f"{request.mode}|{request.model}|{request.prompt}|{request.negative_prompt}|{seed}".encode()
        ).digest()
        image = Image.new("RGB", (request.width, request.height), tuple(digest[:3]))
        draw = ImageDraw.Draw(image)
        for i in range(8):
            a, b, c, d, *color = digest[3 + i * 3 : 3 + i * 3 + 7] if i < 4 else digest[i : i + 7]
            box = sorted((a * request.width // 255, c * request.width // 255)), sorted(
                (b * request.height // 255, d * request.height // 255)
            )
            draw.rectangle((box[0][0], box[1][0], box[0][1], box[1][1]), fill=tuple(color[:3]))
        if request.images:  # editing modes: blend the first input in, so the result depends on it
            source = request.images[0].convert("RGB").resize(image.size)
            image = Image.blend(image, source, 1.0 - request.strength / 2)
        return image

    def render_video(self, request: GenerationRequest, progress: ProgressFn, path: Any) -> Any:
        """A real H.264 MP4 of the right length: the request's picture sliding a pixel a frame.

        Animations: 4 s a scene at ``video_fps``; videos: the model's seconds at ``video_fps`` + 1."""
        import numpy as np

        from generation.motion import AnimationSettings
        from generation.video_io import write_mp4
        from generation.video_specs import VIDEO_SECONDS, num_frames

        self.calls.append(request)
        if request.mode == Mode.ANIMATE:
            scenes = len(request.extra.get("scenes") or [])
            if not 1 <= scenes <= 4:
                raise GenerationError("bad_scenes", f"{scenes} scenes")
            total = AnimationSettings(fps=self.video_fps).total_frames(scenes)
        elif request.mode == Mode.VIDEO:
            total = num_frames(VIDEO_SECONDS[ModelId(request.model)], self.video_fps)
        else:
            raise GenerationError("unsupported_mode", str(request.mode))
        base = np.asarray(self._draw(request, request.seed))
        self.steps_done = 0

        def frames():
            for i in range(total):
                if self.step_seconds:
                    time.sleep(self.step_seconds)
                self.steps_done = i + 1
                progress(i + 1, total)
                yield np.roll(base, i, axis=1)

        return write_mp4(frames(), path, self.video_fps)

    def model_status(self) -> list[dict[str, Any]]:
        return [
            {"model": str(m), "loaded": m in self.resident, "device": "cpu", "memory_bytes": 0} for m in MODELS
        ]

    def load(self, model: ModelId) -> None:
        self.loads.append(model)
        self.resident.add(model)

    def unload(self, model: ModelId) -> None:
        self.unloads.append(model)
        self.resident.discard(model)
