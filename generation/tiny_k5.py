"""Tiny random-weight Kandinsky 5.0 Video Lite checkpoints, laid out like
``kandinskylab/Kandinsky-5.0-T2V-Lite-<variant>-{5s,10s}-Diffusers``: ``model_index.json`` and the
folders ``transformer`` (``Kandinsky5Transformer3DModel``), ``vae`` (``AutoencoderKLHunyuanVideo``,
8x space and 4x time compression as the real one), ``text_encoder`` (``Qwen2_5_VLForConditionalGeneration``),
``tokenizer`` (a byte-level BPE Qwen2 tokenizer and the Qwen2-VL image processor config),
``text_encoder_2`` / ``tokenizer_2`` (CLIP text) and ``scheduler`` (``FlowMatchEulerDiscreteScheduler``).

Sizes follow diffusers' own Kandinsky 5 pipeline tests; the tokenizer's BPE merges are learnt here,
in memory, from the pipeline's own prompt template so that the template's system part is about as
many tokens as with the real tokenizer. Nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from generation.sources import FOLDERS

QWEN_HIDDEN = 16
CLIP_HIDDEN = 32
QWEN_SPECIALS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
QWEN_VOCAB = 1024


def _template_text() -> str:
    from diffusers import Kandinsky5T2VPipeline

    pipe = Kandinsky5T2VPipeline.__new__(Kandinsky5T2VPipeline)
    # The template is set in __init__; build it without components to read it.
    Kandinsky5T2VPipeline.__init__(pipe, *([None] * 7))
    return pipe.prompt_template


def qwen_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    template = _template_text()
    words = "a cat dog red blue green photo of the in on with city night sea sky house tree forest robot"
    trainer = trainers.BpeTrainer(
        vocab_size=QWEN_VOCAB - 8,
        special_tokens=list(QWEN_SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator([template.replace("{}", ""), words], trainer=trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    tokenizer = Qwen2Tokenizer(vocab=model["vocab"], merges=merges)
    tokenizer.add_special_tokens({"additional_special_tokens": list(QWEN_SPECIALS[1:])})
    return tokenizer


def components(seed: int = 0) -> dict:
    from diffusers import AutoencoderKLHunyuanVideo, FlowMatchEulerDiscreteScheduler, Kandinsky5Transformer3DModel
    from transformers import CLIPTextConfig, CLIPTextModel, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from generation.tiny_k22 import _tokenizer as clip_tokenizer

    tokenizer = qwen_tokenizer()
    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in QWEN_SPECIALS}
    torch.manual_seed(seed)
    vae = AutoencoderKLHunyuanVideo(
        in_channels=3,
        out_channels=3,
        spatial_compression_ratio=8,
        temporal_compression_ratio=4,
        latent_channels=4,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        norm_num_groups=4,
    )
    text_encoder = Qwen2_5_VLForConditionalGeneration(
        Qwen2_5_VLConfig(
            text_config={
                "hidden_size": QWEN_HIDDEN,
                "intermediate_size": QWEN_HIDDEN,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "num_key_value_heads": 2,
                "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
                "rope_theta": 1000000.0,
                "vocab_size": QWEN_VOCAB,
            },
            vision_config={"depth": 2, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2, "out_hidden_size": 16},
            hidden_size=QWEN_HIDDEN,
            vocab_size=QWEN_VOCAB,
            vision_start_token_id=ids["<|vision_start|>"],
            vision_end_token_id=ids["<|vision_end|>"],
            vision_token_id=ids["<|vision_pad|>"],
            image_token_id=ids["<|image_pad|>"],
            video_token_id=ids["<|video_pad|>"],
        )
    ).eval()
    clip = clip_tokenizer()
    text_encoder_2 = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=clip.bos_token_id,
            eos_token_id=clip.eos_token_id,
            pad_token_id=clip.pad_token_id,
            hidden_size=CLIP_HIDDEN,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=len(clip),
            projection_dim=CLIP_HIDDEN,
        )
    ).eval()
    transformer = Kandinsky5Transformer3DModel(
        in_visual_dim=4,
        in_text_dim=QWEN_HIDDEN,
        in_text_dim2=CLIP_HIDDEN,
        time_dim=32,
        out_visual_dim=4,
        patch_size=(1, 2, 2),
        model_dim=48,
        ff_dim=128,
        num_text_blocks=1,
        num_visual_blocks=1,
        axes_dims=(8, 8, 8),
        visual_cond=True,  # as the Lite checkpoints: zero visual conditioning for text-to-video
    ).eval()
    return dict(
        transformer=transformer,
        vae=vae.eval(),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=5.0),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=clip,
    )


def write_k5_video(root: Path, names: tuple[str, ...] = ("k5-video-5s", "k5-video-10s"), variant: str = "distilled16steps") -> list[Path]:
    """One tiny folder per clip length (the same tiny weights: tests need the layout, not two models)."""
    from diffusers import Kandinsky5T2VPipeline
    from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil

    devices: list[int] = []
    with torch.random.fork_rng(devices=devices):
        parts = components()
    tokenizer = parts.pop("tokenizer")
    out = []
    for name in names:
        folder = Path(root) / FOLDERS[name].format(variant=variant)
        Kandinsky5T2VPipeline(tokenizer=None, **parts).save_pretrained(folder, safe_serialization=True)
        # The hub's tokenizer folder holds a Qwen2-VL processor: the tokenizer and the image
        # processor's config (its video half needs torchvision; see generation.k5video).
        tokenizer.save_pretrained(folder / "tokenizer")
        Qwen2VLImageProcessorPil().save_pretrained(folder / "tokenizer")
        index_file = folder / "model_index.json"
        index = json.loads(index_file.read_text(encoding="utf-8"))
        index["tokenizer"] = ["transformers", "Qwen2VLProcessor"]
        index_file.write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
        out.append(folder)
    return out
