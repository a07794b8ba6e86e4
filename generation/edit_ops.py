"""Zoom out, expand, zoom in, inpaint and upscale: one request each, on the model manager's pipelines.

- Zoom out / expand: the picture goes onto a larger canvas (``generation.canvas``), Kandinsky 3.1
  inpainting paints the border with the original prompt, then the original is put back over the
  middle, blended only across a narrow seam band.
- Inpaint: the user's mask (white = change), grown by a few pixels as the authors prepare masks.
- Zoom in: the middle half is cut out, enlarged by KandiSuperRes Flash x2 and redrawn by the user's
  model image-to-image at a low strength, so it gains detail instead of blur.
- Upscale: KandiSuperRes Flash x2 (with the authors' Kandinsky 3.1 Flash refinement), or x4 with
  MultiDiffusion tiles ("4K"); the result is the authors' pipeline's, nothing added.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import torch
from PIL import Image

from generation import canvas
from generation.backend import GenerationError, GenerationRequest, Mode, ModelId, ProgressFn
from generation.registry import CANVAS_MODES

def generators(seed: int, n: int) -> list[torch.Generator]:
    """One generator per image (seed + i): any image of a request can be redone alone."""
    return [torch.Generator("cpu").manual_seed(seed + i) for i in range(n)]


class _Progress:
    """A ``callback_on_step_end`` reporting (step, total); ``progress`` may raise GenerationCancelled."""

    def __init__(self, progress: ProgressFn, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0

    def __call__(self, pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        self.done += 1
        self.progress(self.done, self.total)
        return kwargs


EDIT_MODES = CANVAS_MODES
ZOOM_IN_STRENGTH = 0.35
UPSCALE_SCALES = (2, 4)
MAX_UPSCALED_SIDE = 4096


def _source(request: GenerationRequest) -> Image.Image:
    if not request.images:
        raise GenerationError("no_image", f"{request.mode} needs the picture")
    return request.images[0].convert("RGB")


def _steps(request: GenerationRequest, default: int) -> int:
    return request.steps or default


def _inpaint(manager: Any, request: GenerationRequest, image: Image.Image, mask: Image.Image, progress: ProgressFn) -> list[Image.Image]:
    from generation.k3_inpaint import INPAINT_GUIDANCE, INPAINT_STEPS

    if request.model == ModelId.K22:  # Kandinsky 2.2's own inpainting decoder (diffusers)
        return manager.k22().inpaint(request, image, mask, progress)
    pipe = manager.inpaint_pipeline()
    steps = _steps(request, INPAINT_STEPS)
    return pipe(
        request.prompt,
        image=image,
        mask_image=mask,
        negative_prompt=request.negative_prompt,
        num_inference_steps=steps,
        guidance_scale=request.guidance_scale if request.guidance_scale is not None else INPAINT_GUIDANCE,
        num_images_per_prompt=request.num_images,
        generator=generators(request.seed, request.num_images),
        callback_on_step_end=_Progress(progress, steps),
    ).images


def placement(request: GenerationRequest, source: Image.Image) -> canvas.Placement:
    if request.mode == Mode.ZOOM_OUT:
        factor = float(request.extra.get("factor", 2.0))
        if factor not in canvas.ZOOM_FACTORS:
            raise GenerationError("bad_option", f"zoom factor {factor}")
        return canvas.zoom_out(request.width, request.height, factor)
    ratio = str(request.extra.get("ratio", "1:1"))
    if ratio not in canvas.EXPAND_RATIOS:
        raise GenerationError("bad_option", f"ratio {ratio}")
    # The job's size is the canvas (canvas.expand chose it); the picture fills it on one axis.
    return canvas.fit_into((request.width, request.height), source.size)


def outpaint(manager: Any, request: GenerationRequest, progress: ProgressFn) -> list[Image.Image]:
    source = _source(request)
    where = placement(request, source)
    image, mask = canvas.compose(source, where)
    results = _inpaint(manager, request, image, mask, progress)
    return [canvas.paste_back(result, source, where) for result in results]


def inpaint(manager: Any, request: GenerationRequest, progress: ProgressFn) -> list[Image.Image]:
    source = _source(request).resize((request.width, request.height), Image.LANCZOS)
    try:
        mask = canvas.decode_mask(str(request.extra.get("mask", "")), source.size)
    except (ValueError, OSError, binascii.Error) as exc:
        raise GenerationError("bad_mask", str(exc)) from exc
    if canvas.is_blank(mask):
        raise GenerationError("bad_mask", "nothing painted")
    mask = canvas.dilate(mask)
    results = _inpaint(manager, request, source, mask, progress)
    # Outside the (grown) mask the picture is the user's own, to the pixel.
    return [Image.composite(result, source, mask) for result in results]


def upscale_image(manager: Any, source: Image.Image, scale: int, seed: int, progress: ProgressFn) -> Image.Image:
    """The authors' KandiSuperRes result as it comes (x2: Flash and its refinement; x4: 5 steps)."""
    pipe = manager.superres_pipeline(flash=scale == 2)
    from generation.superres import FLASH_TIMESTEPS, X4_STEPS

    total = len(FLASH_TIMESTEPS) + 1 if scale == 2 else X4_STEPS
    return pipe(
        source,
        scale=scale,
        flash=scale == 2,
        generator=torch.Generator("cpu").manual_seed(seed),
        callback_on_step_end=_Progress(progress, total),
    ).images[0]


def upscale(manager: Any, request: GenerationRequest, progress: ProgressFn) -> list[Image.Image]:
    source = _source(request)
    scale = int(request.extra.get("scale", 2))
    if scale not in UPSCALE_SCALES:
        raise GenerationError("bad_option", f"scale {scale}")
    if max(source.size) * scale > MAX_UPSCALED_SIDE:
        raise GenerationError("bad_size", f"{source.width}x{source.height} x{scale}")
    return [upscale_image(manager, source, scale, request.seed, progress)]


def _zoom_in_request(request: GenerationRequest, image: Image.Image) -> GenerationRequest:
    # Kandinsky 3.1 Flash and the refiner have no image-to-image: Kandinsky 3.1 redraws for them.
    model = request.model if request.model in (ModelId.K22, ModelId.K31) else ModelId.K31
    return GenerationRequest(
        mode=Mode.IMG2IMG,
        model=model,
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        width=request.width,
        height=request.height,
        num_images=request.num_images,
        seed=request.seed,
        steps=request.steps,
        guidance_scale=request.guidance_scale,
        images=[image],
        strength=float(request.extra.get("strength", ZOOM_IN_STRENGTH)),
    )


def zoom_in(manager: Any, request: GenerationRequest, progress: ProgressFn, img2img: Any) -> list[Image.Image]:
    """``img2img(inner_request, progress)`` runs the image-to-image stage on the backend."""
    from generation.superres import FLASH_TIMESTEPS

    source = _source(request).resize((request.width, request.height), Image.LANCZOS)
    w, h = source.size
    middle = source.crop((w // 4, h // 4, w // 4 + w // 2, h // 4 + h // 2))
    first = len(FLASH_TIMESTEPS) + 1  # and the refinement
    enlarged = upscale_image(manager, middle, 2, request.seed, lambda step, total: progress(step, first + 1))
    enlarged = enlarged.resize((w, h), Image.LANCZOS)
    return img2img(_zoom_in_request(request, enlarged), lambda step, total: progress(first + step, first + total))


def run(manager: Any, request: GenerationRequest, progress: ProgressFn, img2img: Any) -> list[Image.Image]:
    if request.mode in (Mode.ZOOM_OUT, Mode.EXPAND):
        return outpaint(manager, request, progress)
    if request.mode == Mode.INPAINT:
        return inpaint(manager, request, progress)
    if request.mode == Mode.UPSCALE:
        return upscale(manager, request, progress)
    if request.mode == Mode.ZOOM_IN:
        return zoom_in(manager, request, progress, img2img)
    raise GenerationError("unsupported_mode", str(request.mode))


def expected_size(request: GenerationRequest) -> tuple[int, int]:
    """The size every result of ``request`` must have."""
    if request.mode == Mode.UPSCALE:
        source = _source(request)
        scale = int(request.extra.get("scale", 2))
        return source.width * scale, source.height * scale
    return request.width, request.height


def mask_from_png(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
