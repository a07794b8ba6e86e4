"""Tiny random-weight checkpoints of the editing models, in the authors' own layouts.

- ``Kandinsky3.1/weights/kandinsky3_inpainting.pt`` (``{"unet", "null_embedding"}``, ai-forever's key
  names, 9 input channels) and ``weights/flan_ul2_encoder/projection_inpainting.pt``;
- ``KandiSuperRes/KandiSuperRes.ckpt`` (x4) and ``KandiSuperRes_flash_x2.pt``: bare state dicts of the
  super-resolution UNet with the real three halvings, channels a multiple of the real 32 groups; and
  the Flash refiner's fixed context as the authors' repository lays it out (``weights/context.pt``,
  (1, 128, the tiny Flash UNet's context width) in fp16, and ``weights/context_mask.pt``, ``[1, 0, ...]``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from generation.sources import FOLDERS

TINY_SUPERRES = dict(init_channels=32, model_channels=32, time_embed_dim=32, dim_mult=(1, 1, 1, 1), num_resnet_blocks=(2, 2, 2, 2))


def write_k31_inpainting(root: Path, seed: int = 3) -> Path:
    from generation.k31_weights import unet_to_ai_forever as to_ai_forever
    from generation.k3_inpaint import INPAINT_PROJECTION_FILES, INPAINT_UNET_FILE, Kandinsky3InpaintUNet
    from generation.tiny import TINY_K3_UNET, _randomize_zero_inits

    torch.manual_seed(seed)
    config = {k: v for k, v in TINY_K3_UNET.items() if k != "in_channels"}
    unet = Kandinsky3InpaintUNet(in_channels=9, out_channels=4, **config)
    _randomize_zero_inits(unet)
    state = unet.state_dict()
    null_embedding = torch.randn_like(state.pop("null_embedding"))
    unet_state, projection_state = to_ai_forever(state)
    out = root / FOLDERS["k31"]
    (out / INPAINT_PROJECTION_FILES[0]).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"unet": unet_state, "null_embedding": null_embedding}, out / INPAINT_UNET_FILE)
    torch.save(projection_state, out / INPAINT_PROJECTION_FILES[0])
    return out


def write_superres(root: Path, seed: int = 4) -> Path:
    from generation.superres import CONTEXT_FILES, SR_FLASH_X2_FILE, SR_X4_FILE, SuperResUNet
    from generation.tiny import TINY_K3_UNET

    out = root / FOLDERS["superres"]
    out.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate((SR_X4_FILE, SR_FLASH_X2_FILE)):
        torch.manual_seed(seed + i)
        unet = SuperResUNet(**TINY_SUPERRES)
        # The x4 file as {"unet": ...}, the Flash one bare: the loader takes both, as the authors'.
        state = unet.state_dict()
        torch.save({"unet": state} if name == SR_X4_FILE else state, out / name)
    (out / CONTEXT_FILES[0]).parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed + 2)
    torch.save(torch.randn(1, 128, TINY_K3_UNET["cross_attention_dim"]).half(), out / CONTEXT_FILES[0])
    mask = torch.zeros(1, 128, dtype=torch.int64)
    mask[0, 0] = 1
    torch.save(mask, out / CONTEXT_FILES[1])
    return out


def write_k22_inpainting(root: Path, seed: int = 5) -> Path:
    """``kandinsky-2-2-decoder-inpaint``: the tiny decoder's architecture with a 9-channel input."""
    from diffusers import KandinskyV22InpaintPipeline, UNet2DConditionModel

    from generation.tiny_k22 import _decoder_scheduler, _movq, _unet

    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_config({**_unet(controlnet=False).config, "in_channels": 9})
    out = root / FOLDERS["k22-decoder-inpaint"]
    KandinskyV22InpaintPipeline(unet=unet, scheduler=_decoder_scheduler(), movq=_movq()).save_pretrained(
        out, safe_serialization=True
    )
    return out


def write_edit(root: Path) -> None:
    write_k31_inpainting(root)
    write_superres(root)
    write_k22_inpainting(root)
