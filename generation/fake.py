"""The ``fake`` backend: a quick deterministic picture from the prompt and parameters.

For development and tests of everything around the models; it honours the contract (sizes, number of
images, seeds, progress per step, cancellation) so the rest of the bot cannot tell it apart.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from PIL import Image, ImageDraw

from generation.backend import GenerationRequest, ModelId, ProgressFn
from generation.registry import MODELS, spec


class FakeBackend:
    def __init__(self, step_seconds: float = 0.0) -> None:
        self.step_seconds = step_seconds
        self.calls: list[GenerationRequest] = []
        self.steps_done = 0  # steps run by the latest call (tests check where a cancel stopped it)
        self.resident: set[ModelId] = set(ModelId)  # every model counts as loaded until unloaded
        self.loads: list[ModelId] = []  # load() / unload() calls, in order (admin /models tests)
        self.unloads: list[ModelId] = []

    def generate(self, request: GenerationRequest, progress: ProgressFn) -> list[Image.Image]:
        self.calls.append(request)
        total = request.steps or spec(request.model).total_steps
        self.steps_done = 0
        for step in range(1, total + 1):
            if self.step_seconds:
                time.sleep(self.step_seconds)
            self.steps_done = step
            progress(step, total)
        return [self._draw(request, request.seed + i) for i in range(request.num_images)]

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
