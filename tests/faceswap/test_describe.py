"""OmniFusion on a tiny random-weight stand-in, saved in the hub repository's layout and loaded
through the same code the real weights go through."""

from __future__ import annotations

import logging
import sys
import types

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    CLIPVisionModel,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedTokenizerFast,
)

from faceswap import describe
from faceswap.config import FaceSwapConfig
from faceswap.describe import OmniFusionDescriber, clean_description

WORDS = "a man woman young old with short long dark blond hair beard glasses smiling person in the photo".split()
VARIANT = "OmniMistral-v1_1"
EMB, PATCHES = 32, 16  # LM hidden size; a 56 px image in 14 px patches


def _pickled_like_omnifusion(module):
    """An instance of the projection whose pickle names OmniFusion's own module (``models``),
    as the published projection.pt does."""
    fake = types.ModuleType("models")
    cls = type("VisualToGPTMapping", (describe.visual_to_gpt_mapping(),), {"__module__": "models"})
    fake.VisualToGPTMapping = cls
    module.__class__ = cls
    return fake


@pytest.fixture(scope="module")
def tiny_omnifusion(tmp_path_factory):
    root = tmp_path_factory.mktemp("omnifusion")
    repo, clip = root / "OmniFusion", root / "clip-vit-large-patch14-336"
    torch.manual_seed(0)

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2} | {w: i + 3 for i, w in enumerate(WORDS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    tokenizer.save_pretrained(repo / VARIANT / "tokenizer")

    lm = MistralForCausalLM(
        MistralConfig(
            vocab_size=len(vocab), hidden_size=EMB, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
            bos_token_id=1, eos_token_id=2,
        )
    )
    lm.save_pretrained(repo / VARIANT / "tuned-model")

    vision = CLIPVisionModel(
        CLIPVisionConfig(
            hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=56, patch_size=14
        )
    )
    vision.save_pretrained(clip)
    CLIPImageProcessor(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56}).save_pretrained(clip)

    projection = describe.visual_to_gpt_mapping()(visual_emb_dim=32, gpt_emb_dim=EMB, num_gpt_embs=PATCHES, num_heads=4)
    fake = _pickled_like_omnifusion(projection)
    sys.modules["models"] = fake
    try:
        torch.save(projection, repo / VARIANT / "projection.pt")
    finally:
        del sys.modules["models"]
    special = {k: torch.randn(EMB) / EMB**0.5 for k in ("SOI", "EOI", "USER", "BOT")}
    torch.save(special, repo / VARIANT / "special_embeddings.pt")
    return FaceSwapConfig(omnifusion_source=str(repo), clip_source=str(clip), device="cpu", describer_max_new_tokens=8)


# The publisher's settings include no_repeat_ngram_size, which transformers notes applies to the
# generated tokens only when generating from inputs_embeds.
@pytest.mark.filterwarnings("ignore:Passing `no_repeat_ngram_size`:UserWarning")
def test_describes_through_the_omnifusion_loading_code(tiny_omnifusion, faces_of, astronaut):
    describer = OmniFusionDescriber(tiny_omnifusion)
    seen = {}
    vlm = describer._load()
    assert vlm is not None and type(vlm.projection).__name__ == "VisualToGPTMapping"
    vlm.projection.register_forward_hook(lambda m, args, out: seen.update(patches=args[0].shape, out=out.shape))
    original_generate = vlm.model.generate

    def spy(**kwargs):
        seen["embeddings"] = kwargs["inputs_embeds"].shape
        return original_generate(**kwargs)

    vlm.model.generate = spy
    text = describer.describe(astronaut, faces_of(astronaut)[0])
    # The penultimate CLIP layer's patch tokens go through the projection into the LM.
    assert seen["patches"] == (1, PATCHES, 32) and seen["out"] == (1, PATCHES, EMB)
    prompt_len = seen["embeddings"][1]
    assert prompt_len > PATCHES + 4 and seen["embeddings"][2] == EMB
    # Random weights say random words, but words of the vocabulary, as one short phrase.
    assert text and set(text.split()) <= set(WORDS) and len(text.split()) <= 8


def test_describer_off_when_weights_are_absent(tmp_path, caplog, faces_of, astronaut):
    config = FaceSwapConfig(omnifusion_source=str(tmp_path / "nothing"), clip_source=str(tmp_path / "clip"), device="cpu")
    with caplog.at_level(logging.INFO):
        describer = OmniFusionDescriber(config)
        assert describer.describe(astronaut, faces_of(astronaut)[0]) is None
        assert describer.off
    assert "face describer is off" in caplog.text


def test_describer_switched_off(caplog, faces_of, astronaut):
    with caplog.at_level(logging.INFO):
        describer = OmniFusionDescriber(FaceSwapConfig(describer_enabled=False))
        assert describer.describe(astronaut, faces_of(astronaut)[0]) is None
    assert "face describer is off" in caplog.text


def test_clean_description():
    assert clean_description("  a young woman with short dark hair. She smiles.") == "a young woman with short dark hair"
    assert clean_description("   ") is None
    assert len(clean_description("word " * 100)) <= 100
    # A chatty answer is cut down to the noun phrase the prompt needs.
    assert clean_description("The person in the photo is a middle-aged man with a grey beard.") == (
        "a middle-aged man with a grey beard"
    )
    assert clean_description("This is an elderly woman with glasses") == "an elderly woman with glasses"
