"""Fusion, mix and style weights reach the Kandinsky 2.2 prior: a different weight is a different
embedding, and a different picture."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from generation.backend import Mode
from generation.k22 import normalized_weights
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


def _clip_embedding(k22, photo):
    prior = k22.prior
    pixels = prior.image_processor(photo, return_tensors="pt").pixel_values
    with torch.no_grad():
        return prior.image_encoder(pixels)["image_embeds"][0]


def test_fusion_embedding_is_the_weighted_sum_of_clip_embeddings(k22, photos):
    a, b = photos["astronaut"], photos["coffee"]
    embeds, _ = k22.mixed_embeddings([a, b], [0.8, 0.2], None, seeds=[1, 2], steps=2)
    expected = 0.8 * _clip_embedding(k22, a) + 0.2 * _clip_embedding(k22, b)
    assert embeds.shape == (2, expected.shape[0])
    assert torch.allclose(embeds[0], expected, atol=1e-5)
    assert torch.allclose(embeds[1], expected, atol=1e-5)


def test_changing_a_weight_changes_the_embedding(k22, photos):
    images = [photos["astronaut"], photos["coffee"], photos["rocket"]]
    equal, _ = k22.mixed_embeddings(images, [1, 1, 1], None, seeds=[1], steps=2)
    skewed, _ = k22.mixed_embeddings(images, [1, 1, 3], None, seeds=[1], steps=2)
    assert (equal - skewed).abs().max() > 1e-3
    # Weights are relative: scaling them all changes nothing; no weights means equal weights.
    scaled, _ = k22.mixed_embeddings(images, [2, 2, 2], None, seeds=[1], steps=2)
    default, _ = k22.mixed_embeddings(images, [], None, seeds=[1], steps=2)
    assert torch.allclose(equal, scaled, atol=1e-6)
    assert torch.allclose(equal, default, atol=1e-6)


def test_mix_text_weight_reaches_the_prior(k22, photos):
    photo = photos["chelsea"]
    image_only, _ = k22.mixed_embeddings([photo, "a blue robot"], [1.0, 0.0], None, seeds=[5], steps=2)
    text_only, _ = k22.mixed_embeddings([photo, "a blue robot"], [0.0, 1.0], None, seeds=[5], steps=2)
    half, _ = k22.mixed_embeddings([photo, "a blue robot"], [0.5, 0.5], None, seeds=[5], steps=2)
    assert torch.allclose(image_only[0], _clip_embedding(k22, photo), atol=1e-5)
    # The text part is the prior's embedding of the prompt, with the same seed.
    prompt_embeds, _ = k22.text_embeddings("a blue robot", None, [5], steps=2)
    assert torch.allclose(text_only, prompt_embeds, atol=1e-5)
    assert torch.allclose(half, (image_only + text_only) / 2, atol=1e-5)
    assert (image_only - text_only).abs().max() > 1e-3


def test_negative_prompt_sets_the_negative_embedding_of_a_fusion(k22, photos):
    images = [photos["astronaut"], photos["coffee"]]
    _, zero = k22.mixed_embeddings(images, [1, 1], None, seeds=[1], steps=2)
    _, negative = k22.mixed_embeddings(images, [1, 1], "blurry", seeds=[1], steps=2)
    assert torch.allclose(zero, k22.prior.get_zero_embed(1))
    assert (zero - negative).abs().max() > 1e-3


@pytest.mark.parametrize(
    "mode,names,weights_a,weights_b",
    [
        (Mode.FUSE, ["astronaut", "coffee"], [0.5, 0.5], [0.9, 0.1]),
        (Mode.MIX, ["chelsea"], [0.8, 0.2], [0.2, 0.8]),
        (Mode.STYLE, ["coffee", "rocket"], [0.3, 0.7], [0.7, 0.3]),
    ],
)
def test_weights_change_the_images(k22, photos, mode, names, weights_a, weights_b):
    def run(weights):
        request = k22_request(mode, images=[photos[n] for n in names], weights=weights, strength=1.0)
        return arrays(k22.generate(request, no_progress))[0]

    first, again, other = run(weights_a), run(weights_a), run(weights_b)
    assert np.array_equal(first, again)
    assert np.abs(first - other).max() > 2


def test_variations_use_the_photo_embedding(k22, photos):
    photo = photos["rocket"]
    embeds, _ = k22.mixed_embeddings([photo], [1.0], None, seeds=[1, 2, 3], steps=2)
    assert all(torch.allclose(e, _clip_embedding(k22, photo), atol=1e-5) for e in embeds)
    # Same embedding, different seeds: different images.
    request = k22_request(Mode.VARIATIONS, images=[photo], num_images=3)
    a, b, c = arrays(k22.generate(request, no_progress))
    assert not np.array_equal(a, b) and not np.array_equal(b, c)


def test_restyle_embedding_moves_the_photo_towards_the_prompt(k22, photos):
    photo = photos["coffee"]
    clip = _clip_embedding(k22, photo)
    light, _ = k22.restyle_embeddings("a blue robot", photo, None, seeds=[1], strength=0.3, steps=10)
    strong, _ = k22.restyle_embeddings("a blue robot", photo, None, seeds=[1], strength=1.0, steps=10)
    other_prompt, _ = k22.restyle_embeddings("a dark forest", photo, None, seeds=[1], strength=1.0, steps=10)
    assert light.shape == (1, clip.shape[0])
    assert not torch.allclose(light, strong)
    assert (strong - other_prompt).abs().max() > 1e-3


def test_depth_hint_is_a_three_channel_map_in_unit_range(k22, photos):
    hint = k22.depth_hint(photos["coffee"], width=128, height=64)
    assert hint.shape == (1, 3, 64, 128)
    assert hint.min() >= 0 and hint.max() <= 1
    assert torch.equal(hint[:, 0], hint[:, 1]) and torch.equal(hint[:, 1], hint[:, 2])


def test_normalized_weights():
    assert normalized_weights([1, 3], 2) == [0.25, 0.75]
    assert normalized_weights([], 4) == [0.25] * 4
    for bad in ([1], [1, -1], [0, 0]):
        with pytest.raises(ValueError):
            normalized_weights(bad, 2)
