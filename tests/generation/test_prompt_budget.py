"""A chosen style reaches the model even when the (beautified) prompt is longer than the text context."""

from __future__ import annotations

import pytest
import torch

from generation.backend import GenerationRequest, Mode, ModelId
from generation.prompts import fit_to_context
from generation.styles import STYLES
from tests.fixtures_k22 import k22, k22_models_dir, torch_one_thread  # noqa: F401  (fixtures)

STYLE = STYLES["ANIME"]
# About 250 tokens for both tokenizers (the tiny T5 one reads one token per character, CLIP one per
# character of unknown words): a beautifier's long answer.
LONG = " ".join(["a quiet harbour at dawn with fishing boats"] * 6)[:250]


def contains(sequence: list[int], part: list[int]) -> bool:
    return any(sequence[i : i + len(part)] == part for i in range(len(sequence) - len(part) + 1))


def test_the_style_is_cut_without_the_budget():
    from generation.tiny import t5_tokenizer

    tokenizer = t5_tokenizer()
    prompt = STYLE.apply(LONG)
    assert len(tokenizer(prompt)["input_ids"]) > 250
    cut = tokenizer(prompt, max_length=128, truncation=True)["input_ids"]
    style = tokenizer(STYLE.suffix.lstrip(", "), add_special_tokens=False)["input_ids"]
    assert not contains(cut, style)


def test_short_prompts_and_prompts_without_style_are_untouched():
    from generation.tiny import t5_tokenizer

    tokenizer = t5_tokenizer()
    assert fit_to_context(tokenizer, STYLE.apply("a cat"), STYLE.suffix, 128) == STYLE.apply("a cat")
    assert fit_to_context(tokenizer, LONG, "", 128) == LONG


@pytest.mark.parametrize("model", [ModelId.K31_FLASH, ModelId.K31])
def test_kandinsky3_encodes_the_style_inside_128_tokens(backend, model):
    backend.load(model)
    backend.manager.text_cache.clear()  # the encoder must run: the other model may have cached this prompt
    encoder = backend.manager.parts["k3-text-encoder"].obj
    seen: list[torch.Tensor] = []
    handle = encoder.register_forward_pre_hook(lambda module, args, kwargs: seen.append(args[0] if args else kwargs["input_ids"]), with_kwargs=True)
    request = GenerationRequest(
        mode=Mode.TEXT2IMG, model=model, prompt=STYLE.apply(LONG), negative_prompt=None, width=64, height=64,
        num_images=1, seed=1, steps=1, style_suffix=STYLE.suffix,
    )
    try:
        backend.generate(request, lambda step, total: None)
    finally:
        handle.remove()
    tokenizer = backend.manager.extras["tokenizer"]
    ids = seen[0][0].tolist()
    end = ids.index(tokenizer.eos_token_id)
    assert 120 <= end < 128  # the prompt was cut to what the context holds ...
    style = tokenizer(STYLE.suffix.lstrip(", "), add_special_tokens=False)["input_ids"]
    assert ids[end - len(style) : end] == style  # ... and ends with the whole style


def test_kandinsky22_encodes_the_style_inside_77_tokens(k22):  # noqa: F811
    tokenizer = k22.prior.tokenizer
    seen: list[torch.Tensor] = []
    handle = k22.prior.text_encoder.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs.get("input_ids", args[0] if args else None)), with_kwargs=True
    )
    request = GenerationRequest(
        mode=Mode.TEXT2IMG, model=ModelId.K22, prompt=STYLE.apply(LONG), negative_prompt=None, width=64, height=64,
        num_images=1, seed=1, steps=1, style_suffix=STYLE.suffix, extra={"prior_steps": 2},
    )
    try:
        k22.generate(request, lambda step, total: None)
    finally:
        handle.remove()
    ids = seen[0][0].tolist()
    style = tokenizer(STYLE.suffix.lstrip(", "), add_special_tokens=False)["input_ids"]
    assert len(ids) == 77 and contains(ids, style)
    assert not contains(tokenizer(STYLE.apply(LONG), max_length=77, truncation=True)["input_ids"], style)


def test_jobs_carry_the_style_suffix():
    from types import SimpleNamespace

    from jobs.runner import build_request

    job = SimpleNamespace(
        kind="text2img", model="kandinsky-3.1",
        params={"prompt": "a cat", "style": "ANIME", "width": 64, "height": 64, "seed": 1},
    )
    request = build_request(job, prompt=LONG)
    assert request.prompt == STYLE.apply(LONG) and request.style_suffix == STYLE.suffix
