"""The project's Kandinsky 2.2 output equals, pixel for pixel, what the plain diffusers pipelines
return for the same checkpoints, parameters and seeds (loaded separately here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from generation.backend import Mode
from generation.sources import FOLDERS
from tests.fixtures_k22 import (  # noqa: F401  (fixtures)
    arrays,
    k22,
    k22_models_dir,
    k22_request,
    no_progress,
    photos,
    torch_one_thread,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _generators(seeds):
    return [torch.Generator("cpu").manual_seed(s) for s in seeds]


@pytest.fixture(scope="module")
def reference(k22_models_dir: Path):
    """Plain diffusers pipelines, loaded on their own from the same folders."""
    from diffusers import (
        KandinskyV22Img2ImgPipeline,
        KandinskyV22Pipeline,
        KandinskyV22PriorPipeline,
    )

    prior = KandinskyV22PriorPipeline.from_pretrained(k22_models_dir / FOLDERS["k22-prior"])
    decoder = KandinskyV22Pipeline.from_pretrained(k22_models_dir / FOLDERS["k22-decoder"])
    img2img = KandinskyV22Img2ImgPipeline.from_pretrained(k22_models_dir / FOLDERS["k22-decoder"])
    for pipe in (prior, decoder, img2img):
        pipe.set_progress_bar_config(disable=True)
    return prior, decoder, img2img


def _assert_same(ours, theirs):
    """The same pictures: at most one 8-bit level apart, in a handful of pixels. float32 kernels may
    sum in another order from one library release to the next (with transformers 5.24 and numpy
    2.4, 11 to 15 of 24576 text-to-image values differ by one level); anything else that differs
    (a seed, a step, a scale, a component) changes nearly every pixel by much more."""
    assert len(ours) == len(theirs)
    for a, b in zip(arrays(ours), arrays(theirs), strict=True):
        assert a.shape == b.shape
        difference = np.abs(a.astype(np.int32) - b.astype(np.int32))
        assert difference.max() <= 1, difference.max()
        assert (difference > 0).mean() < 0.005, (difference > 0).sum()


def test_text2img_equals_prior_then_decoder(k22, reference):
    prior, decoder, _ = reference
    request = k22_request(
        Mode.TEXT2IMG,
        negative_prompt="blurry",
        width=128,
        height=64,
        num_images=2,
        seed=11,
        steps=4,
        guidance_scale=5.0,
        extra={"prior_steps": 3, "prior_guidance_scale": 3.0},
    )
    ours = k22.generate(request, no_progress)

    seeds = [11, 12]
    embeds, negative_embeds = prior(
        request.prompt,
        negative_prompt="blurry",
        num_images_per_prompt=2,
        num_inference_steps=3,
        guidance_scale=3.0,
        generator=_generators(seeds) + _generators(seeds),
    ).to_tuple()
    theirs = decoder(
        image_embeds=embeds,
        negative_image_embeds=negative_embeds,
        width=128,
        height=64,
        num_inference_steps=4,
        guidance_scale=5.0,
        generator=_generators(seeds),
    ).images
    _assert_same(ours, theirs)


def test_img2img_equals_diffusers_img2img(k22, reference, photos):
    # Square: the size at which diffusers' own resizing is right (see the next test).
    prior, _, img2img = reference
    photo = photos["coffee"]
    request = k22_request(
        Mode.IMG2IMG, images=[photo], width=128, height=128, num_images=2, seed=3, steps=6, strength=0.5
    )
    ours = k22.generate(request, no_progress)

    seeds = [3, 4]
    embeds, negative_embeds = prior(
        request.prompt, num_images_per_prompt=2, num_inference_steps=2, generator=_generators(seeds)
    ).to_tuple()
    theirs = img2img(
        image=[photo, photo],
        image_embeds=embeds,
        negative_image_embeds=negative_embeds,
        width=128,
        height=128,
        strength=0.5,
        num_inference_steps=6,
        guidance_scale=4.0,
        generator=_generators(seeds),
    ).images
    _assert_same(ours, theirs)


def test_diffusers_img2img_transposes_non_square_sizes(k22, reference, photos):
    """Why ``Kandinsky22`` resizes the photo itself: diffusers 0.42 passes (width, height) to
    ``preprocess(image, height, width)``, so its non-square img2img output comes out transposed.
    When this test fails, diffusers has fixed it and the workaround can go."""
    prior, _, img2img = reference
    embeds, negative_embeds = prior("a cat", num_inference_steps=2, generator=_generators([0])).to_tuple()
    theirs = img2img(
        image=photos["coffee"],
        image_embeds=embeds,
        negative_image_embeds=negative_embeds,
        width=128,
        height=64,
        strength=0.5,
        num_inference_steps=2,
        generator=_generators([0]),
    ).images[0]
    assert theirs.size == (64, 128)
    ours = k22.generate(k22_request(Mode.IMG2IMG, images=[photos["coffee"]], width=128, height=64), no_progress)
    assert ours[0].size == (128, 64)


def test_fuse_equals_interpolate_then_decoder(k22, reference, photos):
    prior, decoder, _ = reference
    images = [photos["astronaut"], photos["coffee"], photos["rocket"]]
    request = k22_request(Mode.FUSE, images=images, weights=[0.2, 0.3, 0.5], width=64, height=128, num_images=2)
    ours = k22.generate(request, no_progress)

    seeds = [7, 8]
    out = prior.interpolate(
        images, [0.2, 0.3, 0.5], num_images_per_prompt=2, num_inference_steps=2, generator=_generators(seeds)
    )
    theirs = decoder(
        image_embeds=out.image_embeds,
        negative_image_embeds=out.negative_image_embeds,
        width=64,
        height=128,
        num_inference_steps=3,
        generator=_generators(seeds),
    ).images
    _assert_same(ours, theirs)


def test_mix_equals_interpolate_of_image_and_text(k22, reference, photos):
    prior, decoder, _ = reference
    photo = photos["chelsea"]
    request = k22_request(
        Mode.MIX, images=[photo], prompt="a blue robot", weights=[0.4, 0.6], negative_prompt="ugly", width=64, height=64
    )
    ours = k22.generate(request, no_progress)

    out = prior.interpolate(
        [photo, "a blue robot"],
        [0.4, 0.6],
        num_inference_steps=2,
        generator=_generators([7]),
        negative_prompt="ugly",
    )
    theirs = decoder(
        image_embeds=out.image_embeds,
        negative_image_embeds=out.negative_image_embeds,
        width=64,
        height=64,
        num_inference_steps=3,
        generator=_generators([7]),
    ).images
    _assert_same(ours, theirs)


def test_fuse_with_a_caption_interpolates_the_text_too(k22, reference, photos):
    """An album's caption is one more item of the interpolation (weights: one per photo, then the text)."""
    prior, decoder, _ = reference
    images = [photos["astronaut"], photos["coffee"]]
    request = k22_request(
        Mode.FUSE, images=images, prompt="a blue robot", weights=[0.4, 0.3, 0.3], width=64, height=128, num_images=1
    )
    ours = k22.generate(request, no_progress)

    seeds = [7]
    out = prior.interpolate(
        [*images, "a blue robot"], [0.4, 0.3, 0.3], num_images_per_prompt=1, num_inference_steps=2,
        generator=_generators(seeds),
    )
    theirs = decoder(
        image_embeds=out.image_embeds,
        negative_image_embeds=out.negative_image_embeds,
        width=64,
        height=128,
        num_inference_steps=3,
        generator=_generators(seeds),
    ).images
    _assert_same(ours, theirs)
