"""The real backend: Kandinsky 2.2, 3.1, 3.1 Flash, the refiner and Kandinsky 3.1's image-prompt models
(IP-Adapter, HED ControlNet) on diffusers, one GPU per worker.

A worker thread calls :meth:`DiffusersBackend.generate`; a CUDA out-of-memory error fails that request
with :class:`OutOfMemory` after the memory is freed, and the next request runs normally.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from generation.backend import (
    GenerationError,
    GenerationRequest,
    Mode,
    ModelId,
    OutOfMemory,
    ProgressFn,
    batch_key,
    generate_each,
)
from generation.manager import ModelManager
from generation.registry import Family, spec
from generation.sources import GenerationConfig
from generation.video_io import VideoFile

log = logging.getLogger(__name__)


class DiffusersBackend:
    """:class:`generation.backend.Backend` on diffusers pipelines and the :class:`ModelManager`."""

    def __init__(self, config: GenerationConfig, manager: ModelManager | None = None) -> None:
        self.config = config
        self.manager = manager or ModelManager(config)

    def _check(self, request: GenerationRequest) -> None:
        side = self.config.max_image_side
        for value in (request.width, request.height):
            if value % 64 or not 64 <= value <= side:
                raise GenerationError("bad_size", f"{request.width}x{request.height}: multiples of 64 up to {side}")
        if not 1 <= request.num_images <= 4:
            raise GenerationError("bad_count", f"{request.num_images} images")

    def generate(self, request: GenerationRequest, progress: ProgressFn) -> list[Image.Image]:
        from generation import edit_ops

        if request.mode == Mode.UPSCALE:  # the output is larger than MAX_IMAGE_SIDE by design
            if request.num_images != 1:
                raise GenerationError("bad_count", f"{request.num_images} images")
        else:
            self._check(request)
        with self.manager.lock, torch.no_grad():
            try:
                images = self._run(request, progress)
            except torch.OutOfMemoryError as exc:
                # Drop every reference to the failed step's tensors before freeing the cache.
                del exc
                self.manager.free_memory()
                log.warning("out of memory: %s %dx%d x%d", request.model, request.width, request.height, request.num_images)
                raise OutOfMemory(f"{request.model} {request.width}x{request.height} x{request.num_images}") from None
        size = edit_ops.expected_size(request) if request.mode in edit_ops.EDIT_MODES else (request.width, request.height)
        wrong = [im.size for im in images if im.size != size]
        if len(images) != request.num_images or wrong:
            raise GenerationError("bad_output", f"expected {request.num_images} of {size[0]}x{size[1]}, got {wrong}")
        return images

    def generate_batch(self, requests: list[GenerationRequest], progress: ProgressFn) -> list[list[Image.Image]]:
        """Text-to-image requests of one :func:`batch_key` as one pipeline call per stage (Kandinsky 2.2,
        3.1, Flash, the refiner); anything else one request after another."""
        keys = {batch_key(request) for request in requests}
        if len(requests) < 2 or None in keys or len(keys) > 1:
            return generate_each(self, requests, progress)
        for request in requests:
            self._check(request)
        first = requests[0]
        count = sum(request.num_images for request in requests)
        with self.manager.lock, torch.no_grad():
            try:
                if spec(first.model).family is Family.K22:
                    results = self.manager.k22().generate_batch(requests, progress)
                else:  # Kandinsky 3.1, Flash, the refiner: batch_key's other BATCHED_MODELS
                    from generation import k3

                    results = k3.generate_batch(self.manager.k3_pipelines(first.model), requests, progress)
            except torch.OutOfMemoryError as exc:
                del exc
                self.manager.free_memory()
                log.warning("out of memory: %s %dx%d, a batch of %d requests, %d images",
                            first.model, first.width, first.height, len(requests), count)
                detail = f"{first.model} {first.width}x{first.height} x{count} ({len(requests)} requests)"
                raise OutOfMemory(detail) from None
        for request, images in zip(requests, results):
            wrong = [im.size for im in images if im.size != (request.width, request.height)]
            if len(images) != request.num_images or wrong:
                raise GenerationError(
                    "bad_output", f"expected {request.num_images} of {request.width}x{request.height}, got {wrong}"
                )
        return results

    def _run(self, request: GenerationRequest, progress: ProgressFn) -> list[Image.Image]:
        from generation import edit_ops

        if request.mode in edit_ops.EDIT_MODES:
            return edit_ops.run(self.manager, request, progress, img2img=self._run)
        family = spec(request.model).family
        if family is Family.K22:
            return self.manager.k22().generate(request, progress)
        if family is Family.K3_IMAGE:
            from generation import k3_image_pipelines

            return k3_image_pipelines.generate(self.manager.k3_image_pipelines(request.model), request, progress)
        if family is Family.K3:
            from generation import k3

            return k3.generate(self.manager.k3_pipelines(request.model), request, progress)
        raise GenerationError("unknown_model", str(request.model))

    def render_video(self, request: GenerationRequest, progress: ProgressFn, path: Path) -> VideoFile:
        """An ANIMATE or VIDEO request rendered into an MP4 at ``path``."""
        from generation.video_render import render

        with self.manager.lock, torch.no_grad():
            try:
                return render(self, request, progress, path)
            except torch.OutOfMemoryError as exc:
                del exc
                self.manager.free_memory()
                log.warning("out of memory: %s %s %dx%d", request.mode, request.model, request.width, request.height)
                raise OutOfMemory(f"{request.mode} {request.model} {request.width}x{request.height}") from None

    def model_status(self) -> list[dict[str, Any]]:
        return self.manager.status()

    def load(self, model: ModelId) -> None:
        self.manager.load(model)

    def unload(self, model: ModelId) -> None:
        self.manager.unload(model)
