"""Paths and switches of the face-swap pipeline (the bot settings fill this in)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class FaceSwapConfig:
    # Describe: OmniFusion. A hub id (downloaded on the operator's machine on first use) or a local
    # folder laid out like the hub repository (``OmniMistral-v1_1/tuned-model``, ``.../tokenizer``,
    # ``.../projection.pt``, ``.../special_embeddings.pt``).
    describer_enabled: bool = True
    describer_fake: bool = False  # GENERATION_BACKEND=fake: a fixed description, nothing downloaded
    omnifusion_source: str = "AIRI-Institute/OmniFusion"
    omnifusion_variant: str = "OmniMistral-v1_1"
    clip_source: str = "openai/clip-vit-large-patch14-336"
    describer_max_new_tokens: int = 32  # a noun phrase, not a paragraph
    # Swap: GHOST's published PyTorch checkpoints: the generator ``G_unet_2blocks.pth`` and its own
    # ArcFace ``backbone.pth`` (never insightface's glintr100.onnx). Both must exist, otherwise the
    # classical swap (warp onto the target's geometry, relight, feather) is used.
    ghost_generator_path: Path | None = None
    ghost_arcface_path: Path | None = None
    # Restore: GFPGAN v1.4 checkpoint (``GFPGANv1.4.pth``); absent or switched off: skipped.
    restore_enabled: bool = True
    gfpgan_path: Path | None = None
    device: str = "auto"  # auto | cuda | cpu, for the face models (OmniFusion, GHOST, GFPGAN)
