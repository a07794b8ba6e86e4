"""The face-swap job kind behind the generation layer's Backend contract.

:class:`FaceSwapBackend` wraps the backend the worker already has: ``Mode.FACESWAP`` requests run the
face-swap pipeline (which draws through the wrapped backend), every other request goes straight
to it. The pipeline reports its stages (describing, drawing, swapping, restoring) through the
request's ``on_stage`` callback, which the job runner connects to the chat: face swap knows nothing
of the runner.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from PIL import Image

from faceswap.config import FaceSwapConfig
from generation.backend import Backend, GenerationError, GenerationRequest, ModelId, Mode, OutOfMemory, ProgressFn

if TYPE_CHECKING:
    from faceswap.pipeline import FaceSwapPipeline

# Keys of GenerationRequest.extra for a FACESWAP request.
FACE_KEY = "face"  # the stored FaceProfile as a dict


class FaceSwapBackend:
    def __init__(self, inner: Backend, config: FaceSwapConfig, pipeline: FaceSwapPipeline | None = None) -> None:
        self.inner = inner
        self.config = config
        self._pipeline = pipeline
        self._lock = threading.Lock()

    @property
    def pipeline(self) -> FaceSwapPipeline:
        # Built on the first face-swap job: dlib's models and the optional GHOST / GFPGAN /
        # OmniFusion weights load only when someone uses @me.
        with self._lock:
            if self._pipeline is None:
                from faceswap.pipeline import FaceSwapPipeline

                # The face models share the image models' VRAM budget when the backend has a
                # model manager (the diffusers backend).
                manager = getattr(self.inner, "manager", None)
                on_use = (lambda model: manager.use_external(model.name, model)) if manager is not None else None
                self._pipeline = FaceSwapPipeline.from_config(self.config, self.inner, on_use=on_use)
            return self._pipeline

    def generate(self, request: GenerationRequest, progress: ProgressFn) -> list[Image.Image]:
        if request.mode != Mode.FACESWAP:
            return self.inner.generate(request, progress)
        from faceswap.profile import FaceProfile, FaceSwapError

        extra = dict(request.extra)
        face = extra.pop(FACE_KEY, None)
        on_stage = request.on_stage or (lambda stage: None)
        if not face or not request.images:
            raise FaceSwapError("no_face", "the job carries no face")
        request = replace(request, extra=extra)
        return run_face_models(
            lambda: self.pipeline.run(request.images[0], FaceProfile.from_dict(face), request, progress, on_stage)
        )

    def generate_batch(self, requests: list[GenerationRequest], progress: ProgressFn) -> list[list[Image.Image]]:
        return self.inner.generate_batch(requests, progress)  # batch_key never groups face swaps

    def render_video(self, request: GenerationRequest, progress: ProgressFn, path: Any) -> Any:
        return self.inner.render_video(request, progress, path)  # type: ignore[attr-defined]

    def model_status(self) -> list[dict[str, Any]]:
        return self.inner.model_status()

    def load(self, model: ModelId) -> None:
        self.inner.load(model)

    def unload(self, model: ModelId) -> None:
        self.inner.unload(model)


def run_face_models(run: Callable[[], list[Image.Image]]) -> list[Image.Image]:
    """Turn the face models' failures into job errors the user understands: a CUDA out-of-memory
    (after freeing the cache) and a missing or broken checkpoint each fail this job only; the
    models that did load stay loaded, and a broken file is not read again for the next job."""
    from faceswap.ghost import GhostWeightsError
    from faceswap.loading import FaceModelUnavailable

    try:
        return run()
    except (GhostWeightsError, FaceModelUnavailable) as exc:
        raise GenerationError("face_model_unavailable", str(exc)) from exc
    except Exception as exc:
        if type(exc).__name__ != "OutOfMemoryError":  # torch.OutOfMemoryError, without importing torch here
            raise
        import gc

        import torch

        gc.collect()
        torch.cuda.empty_cache()
        raise OutOfMemory("face-swap models") from None
