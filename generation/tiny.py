"""Tiny random-weight checkpoints for every model, in the real layouts, built from configs alone.

``python -m generation.tiny DIR`` writes, under DIR, one folder per entry of
:data:`generation.sources.FOLDERS` that the generation layer reads:

- ``Kandinsky3.1``: ai-forever's format and layout, as ``ai-forever/Kandinsky3.1`` (the base and
  Flash UNets ``{"unet", "null_embedding"}``, ``movq.pt``, the encoder folder with its tokenizer and
  projections), plus the diffusers configs of the small UNet and MoVQ, so that the converter runs;
- ``weights/kandinsky3_inpainting.pt`` and ``KandiSuperRes`` (``generation.tiny_edit``);
- the Kandinsky 5.0 Video Lite folders (5 s and 10 s), written by ``generation.tiny_k5``;
- ``kandinsky3_ip_adapter``, ``kandinsky3_controlnet_hed`` (ai-forever's own UNet classes) and
  ``Annotators/ControlNetHED.pth``, written by ``generation.tiny_k3_image``;
- the Kandinsky 2.2 folders, written by ``generation.tiny_k22`` when that module is present.

The models keep the real downsampling (MoVQ 8x), so a requested 1024x576 comes out 1024x576. Nothing
is downloaded: the tokenizer is built in memory with the ``tokenizers`` library.
"""

from __future__ import annotations

import argparse
import json
import string
import sys
from pathlib import Path

import torch

from generation.sources import FOLDERS


# Small, but the same architectures and downsampling factors as the real ones. Four levels, as the real
# UNet: diffusers' Kandinsky3UNet reverses a fixed four-level attention layout for its up blocks, so a
# UNet with fewer levels is not the authors' architecture (its up blocks get attention the authors' lack).
TINY_K3_UNET = dict(
    in_channels=4,
    time_embedding_dim=4,
    groups=2,
    attention_head_dim=4,
    layers_per_block=3,
    block_out_channels=(16, 16, 16, 16),
    cross_attention_dim=4,
    encoder_hid_dim=32,
)
TINY_T5 = dict(vocab_size=1000, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4, feed_forward_proj="gated-silu")
TINY_MOVQ = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=["DownEncoderBlock2D"] * 3 + ["AttnDownEncoderBlock2D"],
    up_block_types=["AttnUpDecoderBlock2D"] + ["UpDecoderBlock2D"] * 3,
    block_out_channels=[32, 32, 32, 32],  # SpatialNorm needs multiples of 32
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=32,  # the authors' MoVQ normalises in 32 groups
    norm_type="spatial",
    num_vq_embeddings=12,
    vq_embed_dim=4,
)
TOKENS = 128  # Kandinsky 3's text length


def t5_tokenizer(max_length: int = TOKENS):
    """A T5-like fast tokenizer (pad 0, eos 1, unk 2, one token per character) built in memory."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "</s>", "<unk>"]
    chars = list(string.ascii_letters + string.digits + string.punctuation + "▁") + [
        chr(c) for c in range(0x430, 0x450)  # Russian lower case: prompts come in both languages
    ]
    vocab = {tok: i for i, tok in enumerate(specials + chars)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=max_length,
    )


def _randomize_zero_inits(unet: torch.nn.Module) -> None:
    # Kandinsky 3 zero-initialises the time conditioning of its norms; random values there make the
    # timestep (and so the sampler's schedule) actually change the output of a tiny model.
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if "context_mlp" in name:
                param.normal_(0.0, 0.2)


def write_k31(root: Path, seed: int = 0) -> Path:
    """ai-forever/Kandinsky3.1's layout and key format: both UNets with their null embeddings, the MoVQ,
    and the encoder folder (Flan-UL2 stand-in, tokenizer, one projection per UNet)."""
    from diffusers import Kandinsky3UNet, VQModel
    from transformers import T5Config, T5EncoderModel

    from generation import k31_weights as w

    out = root / FOLDERS["k31"]
    encoder_dir = out / w.ENCODER_FOLDER
    encoder_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    T5EncoderModel(T5Config(**TINY_T5)).save_pretrained(encoder_dir, safe_serialization=True)
    t5_tokenizer().save_pretrained(encoder_dir)
    for which, (unet_name, projection_name) in w.UNET_FILES.items():
        unet = Kandinsky3UNet(**TINY_K3_UNET)
        _randomize_zero_inits(unet)
        unet_state, projection_state = w.unet_to_ai_forever(unet.state_dict())
        null_embedding = torch.randn(TINY_K3_UNET["cross_attention_dim"])
        torch.save({"unet": unet_state, "null_embedding": null_embedding}, out / unet_name)
        torch.save(projection_state, out / projection_name)
    movq = VQModel(**TINY_MOVQ)
    torch.save(w.movq_to_ai_forever(movq.state_dict(), len(TINY_MOVQ["block_out_channels"])), out / w.MOVQ_FILE)
    # Not in the real repository: the diffusers configs of these small architectures.
    (out / w.UNET_CONFIG_FILE).write_text(json.dumps(dict(TINY_K3_UNET, _class_name="Kandinsky3UNet")))
    (out / w.MOVQ_CONFIG_FILE).write_text(json.dumps(dict(TINY_MOVQ, _class_name="VQModel", norm_type="spatial")))
    return out


def write_all(root: Path) -> None:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    write_k31(root)
    from generation.tiny_edit import write_edit

    write_edit(root)  # Kandinsky 3.1 inpainting, KandiSuperRes

    from generation.tiny_k5 import write_k5_video

    write_k5_video(root)

    from generation.tiny_k3_image import write_k3_image

    write_k3_image(root)
    try:
        from generation.tiny_k22 import write_k22
    except ModuleNotFoundError as exc:
        # The Kandinsky 2.2 writer lives in its own module; absent until it is merged. Any other
        # import failure is a real error and propagates.
        if exc.name != "generation.tiny_k22":
            raise
        return
    write_k22(root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write tiny random-weight checkpoints for every model.")
    parser.add_argument("dir", type=Path)
    args = parser.parse_args(argv)
    write_all(args.dir)
    print(f"tiny checkpoints written to {args.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
