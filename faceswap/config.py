"""Paths and switches of the face-swap pipeline (the bot settings fill this in)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# AIRI-Institute/OmniFusion on the hub, the commit "Update README.md" after the 1.1 weights.
OMNIFUSION_REVISION = "1c29548c7fc9135baa609f6e15acd7b8a93e5125"


@dataclass
class FaceSwapConfig:
    # Describe: OmniFusion. A hub id (downloaded on the operator's machine on first use) or a local
    # folder laid out like the hub repository (``OmniMistral-v1_1/tuned-model``, ``.../tokenizer``,
    # ``.../projection.pt``, ``.../special_embeddings.pt``).
    describer_enabled: bool = True
    describer_fake: bool = False  # GENERATION_BACKEND=fake: a fixed description, nothing downloaded
    omnifusion_source: str = "AIRI-Institute/OmniFusion"
    omnifusion_variant: str = "OmniMistral-v1_1"
    # The hub commit the files are downloaded at (ignored for a local folder).
    omnifusion_revision: str | None = OMNIFUSION_REVISION
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
