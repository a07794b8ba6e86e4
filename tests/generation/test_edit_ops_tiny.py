"""Zoom out, expand, inpaint, zoom in and upscale through the real (tiny) pipelines."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from generation import canvas
from generation.backend import GenerationError, GenerationRequest, Mode, ModelId
from tests.photos import photo


def _request(mode: Mode, source: Image.Image, model: ModelId = ModelId.K31_INPAINT, **extra) -> GenerationRequest:
    return GenerationRequest(
        mode=mode, model=model, prompt="a red fox in the snow", negative_prompt=None,
        width=source.width, height=source.height, num_images=1, seed=5, steps=3, images=[source], extra=extra,
    )


def _source(size=(256, 192)) -> Image.Image:
    return photo("astronaut").resize(size, Image.LANCZOS)


def _progress(events):
    return lambda step, total: events.append((step, total))


def test_zoom_out_keeps_the_middle_and_paints_the_border(backend):
    source = _source()
    events: list = []
    [result] = backend.generate(_request(Mode.ZOOM_OUT, source, factor=2.0), _progress(events))
    assert result.size == source.size
    where = canvas.zoom_out(*source.size, 2.0)
    assert where.box == (64, 48, 192, 144)
    got = np.asarray(result, dtype=np.float32)
    want = np.asarray(source.resize(where.box_size, Image.LANCZOS), dtype=np.float32)
    left, top, right, bottom = where.box
    seam = canvas.SEAM
    middle = got[top + seam : bottom - seam, left + seam : right - seam]
    assert np.abs(middle - want[seam:-seam, seam:-seam]).max() <= 1  # the original, to rounding
    # The seam band is a blend, near the original on average.
    band = got[top:bottom, left:right]
    assert np.abs(band - want).mean() < 40
    # The border is the model's: not the blurred fill it started from, not flat.
    fill, _ = canvas.compose(source, where)
    border = np.concatenate([got[:top].reshape(-1, 3), got[bottom:].reshape(-1, 3)])
    start = np.asarray(fill, dtype=np.float32)
    start_border = np.concatenate([start[:top].reshape(-1, 3), start[bottom:].reshape(-1, 3)])
    assert np.abs(border - start_border).mean() > 5
    assert border.std() > 3
    assert events and events[-1] == (3, 3)


def test_expand_to_16_9_outpaints_a_wider_canvas(backend):
    source = _source((192, 192))
    where = canvas.expand(192, 192, "16:9", 1024)
    assert where.size == (320, 192) and where.box_size == (192, 192)
    request = _request(Mode.EXPAND, source, ratio="16:9")
    request.width, request.height = where.size
    [result] = backend.generate(request, lambda s, t: None)
    assert result.size == (320, 192)
    got = np.asarray(result, dtype=np.float32)[:, 64 + 16 : 256 - 16]
    want = np.asarray(source, dtype=np.float32)[:, 16:-16]
    assert np.abs(got - want).max() <= 1


def test_inpaint_changes_only_the_painted_area(backend):
    source = _source((192, 192))
    mask = Image.new("L", source.size, 0)
    ImageDraw.Draw(mask).ellipse((60, 60, 130, 130), fill=255)
    [result] = backend.generate(_request(Mode.INPAINT, source, mask=canvas.encode_mask(mask)), lambda s, t: None)
    got, want = np.asarray(result, dtype=np.int16), np.asarray(source, dtype=np.int16)
    changed = np.abs(got - want).max(axis=2) > 0
    assert changed[95, 95]  # the middle of the stroke was repainted
    grown = np.asarray(canvas.dilate(mask)) > 0
    assert not changed[~grown].any()  # outside the (grown) stroke: the user's pixels


def test_inpaint_refuses_an_empty_or_broken_mask(backend):
    source = _source((128, 128))
    with pytest.raises(GenerationError) as err:
        backend.generate(_request(Mode.INPAINT, source, mask=canvas.encode_mask(Image.new("L", (128, 128)))), lambda s, t: None)
    assert err.value.code == "bad_mask"
    with pytest.raises(GenerationError) as err:
        backend.generate(_request(Mode.INPAINT, source, mask="not base64!"), lambda s, t: None)
    assert err.value.code == "bad_mask"


@pytest.mark.parametrize("scale", [2, 4])
def test_upscale_is_the_authors_pipeline_at_the_new_size(backend, scale):
    """The job's result is KandiSuperRes' own (x2: Flash and its refinement), nothing added after it.
    That downscaling it gives the input back is a trained network's property: see
    test_superres_roundtrip.py for the pipeline's share of it on real photos."""
    source = _source((96, 64))
    request = _request(Mode.UPSCALE, source, model=ModelId.SUPERRES, scale=scale)
    events: list = []
    [result] = backend.generate(request, _progress(events))
    assert result.size == (96 * scale, 64 * scale)
    assert events[-1] == (5, 5)  # x2: 4 Flash steps and the refinement; x4: 5 DPM-Solver++ steps
    pipe = backend.manager.superres_pipeline(flash=scale == 2)
    assert (pipe.refiner is not None) == (scale == 2)
    direct = pipe(source, scale=scale, flash=scale == 2, generator=torch.Generator().manual_seed(request.seed)).images[0]
    assert np.array_equal(np.asarray(result), np.asarray(direct))
    # Not just the input enlarged: the networks' own picture.
    plain = np.asarray(source.resize(result.size, Image.BICUBIC), dtype=np.float32)
    assert np.abs(np.asarray(result, dtype=np.float32) - plain).mean() > 2


def test_zoom_in_redraws_the_middle(backend):
    source = _source((128, 128))
    request = _request(Mode.ZOOM_IN, source, model=ModelId.K31_FLASH)
    request.steps = 4
    events: list = []
    [result] = backend.generate(request, _progress(events))
    assert result.size == (128, 128)
    assert events[-1][0] == events[-1][1]
    # Closer to the enlarged middle than to the whole picture.
    middle = np.asarray(source.crop((32, 32, 96, 96)).resize((128, 128)), dtype=np.float32)
    got = np.asarray(result, dtype=np.float32)
    assert np.abs(got - middle).mean() < np.abs(got - np.asarray(source, dtype=np.float32)).mean()


def test_kandinsky_22_zooms_out_with_its_inpainting_decoder(backend):
    source = _source((192, 128))
    [result] = backend.generate(_request(Mode.ZOOM_OUT, source, model=ModelId.K22, factor=1.5), lambda s, t: None)
    assert result.size == (192, 128)
    pipe = backend.manager.k22().inpaint_pipeline()
    assert type(pipe).__name__ == "KandinskyV22InpaintPipeline" and pipe.unet.config.in_channels == 9
    where = canvas.zoom_out(192, 128, 1.5)
    left, top, right, bottom = where.box
    got = np.asarray(result, dtype=np.float32)[top + 16 : bottom - 16, left + 16 : right - 16]
    want = np.asarray(source.resize(where.box_size, Image.LANCZOS), dtype=np.float32)[16:-16, 16:-16]
    assert np.abs(got - want).max() <= 1
    assert np.asarray(result, dtype=np.float32)[:top].std() > 3  # the border was painted
