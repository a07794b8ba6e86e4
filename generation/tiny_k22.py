"""Tiny random-weight Kandinsky 2.2 checkpoints, for tests and for trying the bot without a GPU.

:func:`write_k22` builds every component from a config (nothing is downloaded) and saves it with
``save_pretrained``, so the folders look like the hub repositories (``model_index.json``, one
subfolder per component, config files and safetensors) and the real loading code reads them:

* ``kandinsky-2-2-prior``: CLIP text and vision encoders with projection, ``PriorTransformer``,
  ``UnCLIPScheduler``, ``CLIPTokenizer`` and ``CLIPImageProcessor``;
* ``kandinsky-2-2-decoder``: image-conditioned ``UNet2DConditionModel``, ``DDPMScheduler`` and a
  4-level MoVQ (``VQModel``) with the real 8x downsampling, so a requested 1024x576 comes out 1024x576;
* ``kandinsky-2-2-controlnet-depth``: the hint-conditioned UNet, the same MoVQ and scheduler;
* ``dpt-hybrid-midas``: a small ``DPTForDepthEstimation`` and its image processor.

Component sizes follow diffusers' own Kandinsky 2.2 pipeline tests (hidden size 32).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import torch

from generation.sources import FOLDERS

EMBED_DIM = 32  # CLIP projection = prior embedding = decoder image-embedding size
CLIP_IMAGE_SIZE = 64
MODEL_MAX_LENGTH = 77
_WORDS = (
    "a cat dog red blue green photo of the in on with style painting portrait city night sea "
    "sky house tree forest mountain car robot anime art oil pencil drawing bright dark"
).split()


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte -> printable character table (the base alphabet of CLIP's BPE)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def _clip_vocab() -> tuple[dict[str, int], list[str]]:
    """A small CLIP BPE vocabulary: every byte (alone and word-final) plus merges for a few words."""
    alphabet = list(_bytes_to_unicode().values())
    tokens = alphabet + [c + "</w>" for c in alphabet]
    merges: list[str] = []
    for word in _WORDS:
        # Merge the word left to right: "c a" -> "ca", "ca t</w>" -> "cat</w>".
        current = word[0]
        for i, ch in enumerate(word[1:], start=1):
            piece = ch + "</w>" if i == len(word) - 1 else ch
            merge = f"{current} {piece}"
            if merge not in merges:
                merges.append(merge)
            current = current + piece
            if current not in tokens:
                tokens.append(current)
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


def _write_tokenizer_files(folder: Path) -> None:
    """The files of the hub repository's ``tokenizer`` folder: vocab.json, merges.txt, configs."""
    vocab, merges = _clip_vocab()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    special = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
    }
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2), encoding="utf-8")
    config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": MODEL_MAX_LENGTH, **special}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")


def _tokenizer():
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        _write_tokenizer_files(Path(tmp))
        return CLIPTokenizer.from_pretrained(tmp)


def _prior_pipeline():
    from diffusers import KandinskyV22PriorPipeline, PriorTransformer, UnCLIPScheduler
    from transformers import (
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModelWithProjection,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    tokenizer = _tokenizer()
    text_encoder = CLIPTextModelWithProjection(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=EMBED_DIM,
            projection_dim=EMBED_DIM,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=MODEL_MAX_LENGTH,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    image_encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=EMBED_DIM,
            projection_dim=EMBED_DIM,
            image_size=CLIP_IMAGE_SIZE,
            patch_size=16,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            num_channels=3,
        )
    )
    prior = PriorTransformer(
        num_attention_heads=2, attention_head_dim=12, embedding_dim=EMBED_DIM, num_layers=1
    )
    # The trained prior un-normalises its output with CLIP statistics; zero std (the init value)
    # would map every embedding to the mean and hide the effect of prompts and weights.
    with torch.no_grad():
        prior.clip_std.copy_(torch.ones_like(prior.clip_std))
        prior.clip_mean.copy_(0.1 * torch.randn_like(prior.clip_mean))
    scheduler = UnCLIPScheduler(
        variance_type="fixed_small_log",
        prediction_type="sample",
        num_train_timesteps=1000,
        clip_sample=True,
        clip_sample_range=10.0,
    )
    image_processor = CLIPImageProcessor(
        crop_size=CLIP_IMAGE_SIZE,
        size=CLIP_IMAGE_SIZE,
        do_center_crop=True,
        do_normalize=True,
        do_resize=True,
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
        resample=3,
    )
    return KandinskyV22PriorPipeline(
        prior=prior,
        image_encoder=image_encoder,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        image_processor=image_processor,
    )


def _movq():
    from diffusers import VQModel

    # Four levels: 8x downsampling like the real MoVQ (a 2-level one would give quarter-size images).
    return VQModel(
        block_out_channels=[32, 32, 64, 64],
        down_block_types=["DownEncoderBlock2D"] * 3 + ["AttnDownEncoderBlock2D"],
        up_block_types=["AttnUpDecoderBlock2D"] + ["UpDecoderBlock2D"] * 3,
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        norm_type="spatial",
        num_vq_embeddings=12,
        vq_embed_dim=4,
    )


def _decoder_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule="linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        steps_offset=1,
        prediction_type="epsilon",
        thresholding=False,
    )


def _unet(*, controlnet: bool):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        # The ControlNet UNet takes the latents and the encoded depth hint side by side.
        in_channels=8 if controlnet else 4,
        out_channels=8,  # mean and learned variance
        addition_embed_type="image_hint" if controlnet else "image",
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        block_out_channels=(32, 64),
        layers_per_block=1,
        encoder_hid_dim=EMBED_DIM,
        encoder_hid_dim_type="image_proj",
        cross_attention_dim=32,
        attention_head_dim=4,
        resnet_time_scale_shift="scale_shift",
        class_embed_type=None,
    )


def _depth_estimator():
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    model = DPTForDepthEstimation(
        DPTConfig(
            image_size=64,
            patch_size=16,
            num_channels=3,
            hidden_size=32,
            num_hidden_layers=4,
            backbone_out_indices=[0, 1, 2, 3],
            num_attention_heads=4,
            intermediate_size=37,
            neck_hidden_sizes=[16, 16, 32, 32],
            fusion_hidden_size=16,
            reassemble_factors=[4, 2, 1, 0.5],
        )
    )
    processor = DPTImageProcessor(
        do_resize=True,
        size={"height": 64, "width": 64},
        keep_aspect_ratio=False,
        ensure_multiple_of=1,
        do_rescale=True,
        do_normalize=True,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    return model, processor


def write_k22(root: Path) -> None:
    """Write tiny random-weight Kandinsky 2.2 checkpoints under ``root`` (see the module doc)."""
    from diffusers import KandinskyV22ControlnetPipeline, KandinskyV22Pipeline

    root = Path(root)
    # Fixed weights: the same folders every time, so test expectations do not depend on the run.
    devices: list[int] = []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(0)
        prior_dir = root / FOLDERS["k22-prior"]
        _prior_pipeline().save_pretrained(prior_dir, safe_serialization=True)
        # Like the hub repository: the slow-tokenizer files (no tokenizer.json), and the processor
        # under its public class name (without torchvision, transformers saves its PIL variant's name).
        shutil.rmtree(prior_dir / "tokenizer")
        _write_tokenizer_files(prior_dir / "tokenizer")
        index_file = prior_dir / "model_index.json"
        index = json.loads(index_file.read_text(encoding="utf-8"))
        index["image_processor"] = ["transformers", "CLIPImageProcessor"]
        index_file.write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
        movq = _movq()
        KandinskyV22Pipeline(unet=_unet(controlnet=False), scheduler=_decoder_scheduler(), movq=movq).save_pretrained(
            root / FOLDERS["k22-decoder"], safe_serialization=True
        )
        # The hub's ControlNet repository carries its own copy of the (same) MoVQ.
        KandinskyV22ControlnetPipeline(
            unet=_unet(controlnet=True), scheduler=_decoder_scheduler(), movq=movq
        ).save_pretrained(root / FOLDERS["k22-controlnet-depth"], safe_serialization=True)
        depth_model, depth_processor = _depth_estimator()
        depth_dir = root / FOLDERS["depth-estimator"]
        depth_model.save_pretrained(depth_dir, safe_serialization=True)
        depth_processor.save_pretrained(depth_dir)
