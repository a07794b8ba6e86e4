"""Tiny random-weight checkpoints for every model, in the real layouts, built from configs alone.

``python -m generation.tiny DIR`` writes, under DIR, one folder per entry of
:data:`generation.sources.FOLDERS` that the generation layer reads:

- ``kandinsky-3``: a diffusers folder like ``kandinsky-community/kandinsky-3`` (model_index.json,
  tokenizer, text_encoder, unet, movq, scheduler), weights saved as the ``fp16`` variant as on the hub;
- ``Kandinsky3.1``: ai-forever's format, ``weights/kandinsky3_flash.pt`` (``{"unet", "null_embedding"}``)
  and ``weights/flan_ul2_encoder/projection_flash.pt``, so that the Flash conversion runs;
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

CONFIGS = Path(__file__).with_name("configs")

# Small, but the same architectures and downsampling factors as the real ones.
TINY_K3_UNET = dict(
    in_channels=4,
    time_embedding_dim=4,
    groups=2,
    attention_head_dim=4,
    layers_per_block=3,
    block_out_channels=(32, 64),
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
    norm_num_groups=8,
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


def k3_components(seed: int = 0) -> dict:
    from diffusers import DDPMScheduler, Kandinsky3UNet, VQModel
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    unet = Kandinsky3UNet(**TINY_K3_UNET)
    _randomize_zero_inits(unet)
    text_encoder = T5EncoderModel(T5Config(**TINY_T5)).eval()
    movq = VQModel(**TINY_MOVQ)
    scheduler_config = json.loads((CONFIGS / "kandinsky3_scheduler.json").read_text())
    scheduler = DDPMScheduler.from_config(scheduler_config)
    return dict(tokenizer=t5_tokenizer(), text_encoder=text_encoder, unet=unet, scheduler=scheduler, movq=movq)


def _randomize_zero_inits(unet: torch.nn.Module) -> None:
    # Kandinsky 3 zero-initialises the time conditioning of its norms; random values there make the
    # timestep (and so the sampler's schedule) actually change the output of a tiny model.
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if "context_mlp" in name:
                param.normal_(0.0, 0.2)


def write_k3(root: Path, seed: int = 0) -> Path:
    from diffusers import Kandinsky3Pipeline

    pipe = Kandinsky3Pipeline(**k3_components(seed)).to(torch.float16)
    out = root / FOLDERS["k3"]
    pipe.save_pretrained(out, variant="fp16", safe_serialization=True)
    return out


def write_k31(root: Path, seed: int = 1) -> Path:
    """ai-forever's Kandinsky3.1 layout: the Flash UNet and its own text projection."""
    from diffusers import Kandinsky3UNet

    from generation.flash import FLASH_PROJECTION_FILES, FLASH_UNET_FILE, to_ai_forever

    torch.manual_seed(seed)
    unet = Kandinsky3UNet(**TINY_K3_UNET)
    _randomize_zero_inits(unet)
    unet_state, projection_state = to_ai_forever(unet.state_dict())
    out = root / FOLDERS["k31"]
    unet_file = out / FLASH_UNET_FILE
    projection_file = out / FLASH_PROJECTION_FILES[0]
    projection_file.parent.mkdir(parents=True, exist_ok=True)
    null_embedding = torch.randn(TINY_K3_UNET["cross_attention_dim"])
    torch.save({"unet": unet_state, "null_embedding": null_embedding}, unet_file)
    torch.save(projection_state, projection_file)
    return out


def write_all(root: Path) -> None:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    write_k3(root)
    write_k31(root)
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
