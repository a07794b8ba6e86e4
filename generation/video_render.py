"""The two video job kinds on the real models: /animate (Kandinsky 3.1 family) and /video (Kandinsky 5.0
Video Lite). Both end in an H.264 MP4 on disk (:class:`generation.video_io.VideoFile`).

A request carries its own parts in ``request.extra``:

- ANIMATE: ``scenes``: [{"prompt", "move"}] (1..4); the first scene's prompt is ``request.prompt``
  (style applied). The first frame is drawn by ``request.model``; the frames after it by
  ``GenerationConfig.animation_frame_model`` (Flash by default, for speed).
- VIDEO: ``request.model`` names the clip length (5 s or 10 s checkpoint).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from generation.backend import GenerationError, GenerationRequest, Mode, ModelId, ProgressFn
from generation.motion import MAX_SCENES, CameraMove
from generation.video_io import VideoFile, write_mp4


def scenes_of(request: GenerationRequest) -> list[tuple[str, CameraMove]]:
    raw = request.extra.get("scenes") or []
    if not 1 <= len(raw) <= MAX_SCENES:
        raise GenerationError("bad_scenes", f"{len(raw)} scenes (1..{MAX_SCENES})")
    scenes = []
    for i, scene in enumerate(raw):
        try:
            move = CameraMove(scene["move"])
        except (KeyError, ValueError):
            raise GenerationError("bad_scenes", f"scene {i + 1}: unknown camera move {scene.get('move')!r}") from None
        # The first scene's prompt is the request's own (the style and beautification applied to it).
        scenes.append((request.prompt if i == 0 else str(scene.get("prompt") or ""), move))
    return scenes


def render(backend: Any, request: GenerationRequest, progress: ProgressFn, path: Path) -> VideoFile:
    """Render a VIDEO or ANIMATE request into ``path`` with a :class:`DiffusersBackend`'s models."""
    if request.mode == Mode.VIDEO:
        return _video(backend, request, progress, path)
    if request.mode == Mode.ANIMATE:
        return _animation(backend, request, progress, path)
    raise GenerationError("unsupported_mode", str(request.mode))


def _video(backend: Any, request: GenerationRequest, progress: ProgressFn, path: Path) -> VideoFile:
    from generation import k5video

    config = backend.config
    seconds = k5video.VIDEO_SECONDS.get(ModelId(request.model))
    if seconds is None:
        raise GenerationError("unknown_model", f"{request.model} makes no videos")
    steps, guidance = k5video.VARIANT_DEFAULTS.get(config.video_variant, k5video.VARIANT_DEFAULTS["sft"])
    # The job holds the full-size frame of its orientation; the worker's short side decides the size.
    orientation = "16:9" if request.width > request.height else "9:16" if request.height > request.width else "1:1"
    width, height = k5video.video_size(orientation, config.video_short_side)
    video = k5video.VideoRequest(
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        seconds=seconds,
        fps=config.video_fps,
        width=width,
        height=height,
        seed=request.seed,
        steps=request.steps or steps,
        guidance_scale=guidance if request.guidance_scale is None else request.guidance_scale,
    )
    if not backend.manager.loaded(ModelId(request.model)):
        progress(0, video.steps)  # step 0: the status says the video model is being loaded
    frames = k5video.generate(backend.manager.k5_video(ModelId(request.model)), video, progress)
    return write_mp4(iter(frames), path, config.video_fps)


def _animation(backend: Any, request: GenerationRequest, progress: ProgressFn, path: Path) -> VideoFile:
    from generation.animate import Animation, Scene
    from generation.animation_models import K3FrameModel

    config = backend.config
    settings = config.animation
    scenes = [Scene(prompt, move) for prompt, move in scenes_of(request)]
    total = settings.total_frames(len(scenes))

    def first_frame_progress(step: int, steps: int) -> None:
        progress(0, total)  # the status says "frame 1"; cancelling works during the first picture too

    first_request = dataclasses.replace(request, mode=Mode.TEXT2IMG, num_images=1, images=[], extra={})
    first = backend.generate(first_request, first_frame_progress)[0]
    frame_model_id = ModelId(config.animation_frame_model)
    frame_model = K3FrameModel(
        backend.manager.k3_pipelines(frame_model_id),
        frame_model_id,
        negative_prompt=request.negative_prompt,
    )
    animation = Animation(
        scenes,
        first,
        settings,
        depth_model=backend.manager.depth_estimator(),
        frame_model=frame_model,
        seed=request.seed,
        progress=progress,
        device=backend.manager.device,
    )
    return write_mp4(animation.frames(), path, settings.fps)
