"""Tiny random-weight checkpoints of Kandinsky 3.1's image-prompt models, in the hub layouts.

``ai-forever/kandinsky3_ip_adapter`` and ``ai-forever/kandinsky3_controlnet_hed`` are diffusers-style
folders whose UNets are ai-forever's own classes (``UNetKandi3IpAdapter``; ``UNetKandi3`` plus
``UNetKandi3Controlnet``). Their ``config.json`` files hold those classes' constructor arguments and
their weights keep ai-forever's key names; :mod:`generation.k3_image` reads exactly that. The folders
written here have the same layout and configuration keys, with sizes small enough for a CPU test:
four resolution levels (the ControlNet feeds three skip connections, as the full-size one does).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

# Constructor arguments of ai-forever's UNetKandi3, as in the hub's unet/config.json.
TINY_KANDI3_UNET: dict = dict(
    model_channels=8,
    init_channels=4,
    num_channels=4,
    time_embed_dim=8,
    groups=2,
    head_dim=4,
    expansion_ratio=4,
    compression_ratio=2,
    dim_mult=[1, 1, 2, 2],
    num_blocks=[2, 2, 2, 2],
    model_dim=32,  # the tiny T5's d_model (generation.tiny.TINY_T5)
    context_dim=8,
    add_cross_attention=[False, True, True, True],
    add_self_attention=[False, True, True, True],
)
TINY_IP_ADAPTER_UNET: dict = dict(TINY_KANDI3_UNET, num_image_tokens=4, image_embedding_dim=16)
TINY_CONTROLNET: dict = dict(TINY_KANDI3_UNET, hint_channels=3)
# CLIP ViT image encoder (full size: ViT-L/14, projection 768).
TINY_CLIP_VISION: dict = dict(
    hidden_size=32,
    projection_dim=TINY_IP_ADAPTER_UNET["image_embedding_dim"],
    image_size=32,
    patch_size=8,
    intermediate_size=37,
    num_attention_heads=4,
    num_hidden_layers=2,
    num_channels=3,
)
TINY_HED_WIDTHS = (4, 4, 8, 8, 8)  # full size: 64, 128, 256, 512, 512
# The scheduler of the authors' diffusers-style folders (Kandinsky 3's DDPM on the cosine schedule).
K3_DDPM_SCHEDULER: dict = dict(
    num_train_timesteps=1000,
    beta_schedule="squaredcos_cap_v2",
    beta_start=0.0001,
    beta_end=0.02,
    clip_sample=True,
    clip_sample_range=1.0,
    prediction_type="epsilon",
    thresholding=False,
    timestep_spacing="leading",
    steps_offset=1,
    variance_type="fixed_small",
)


def key_to_authors(key: str) -> str:
    """Our key -> ai-forever's (the tiny writer saves the authors' names, as the hub files have)."""
    import re

    from generation.k31_weights import unet_key_to_ai_forever

    key = unet_key_to_ai_forever(key)
    for ours, theirs in (
        ("encoder_hid_proj.projection_linear", "projection_lin"),
        ("encoder_hid_proj.projection_norm", "projection_ln"),
        ("to_k_ip", "to_key_ip"),
        ("zero_convs", "convs"),
    ):
        key = re.sub(rf"(^|\.){re.escape(ours)}(?=\.)", lambda m: m.group(1) + theirs, key)
    return key


def _randomize(module: torch.nn.Module) -> torch.nn.Module:
    # The authors zero-initialise the time conditioning of the norms and the adapters' output layers;
    # random values there make timestep, image and hint actually change a tiny model's output.
    with torch.no_grad():
        for name, param in module.named_parameters():
            if "context_mlp" in name or "to_out_ip" in name or "zero_convs" in name or "input_hint_block.out" in name:
                param.normal_(0.0, 0.2)
    return module.eval()


def _write_authors_component(folder: Path, class_name: str, config: dict, model: torch.nn.Module) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"_class_name": class_name, **config}, indent=2) + "\n")
    state = {key_to_authors(k): v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, folder / "diffusion_pytorch_model.safetensors")


def _write_index(folder: Path, components: dict[str, list[str | None]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    index = {"_class_name": "KandinskyV3Pipeline", "_diffusers_version": "0.21.0.dev0", **components}
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")


def write_k3_image(root: Path) -> None:
    """``kandinsky3_ip_adapter``, ``kandinsky3_controlnet_hed`` and ``Annotators`` (ControlNetHED.pth).

    The hub folders also hold a text encoder, a tokenizer and a MoVQ; the bot never reads those (it
    shares Kandinsky 3.1's), so the tiny folders leave them out."""
    from diffusers import DDPMScheduler
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    from generation import k3_image
    from generation.edges import HED_FILE, HEDNetwork
    from generation.sources import FOLDERS

    root = Path(root)
    scheduler = DDPMScheduler.from_config(K3_DDPM_SCHEDULER)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(19)
        ip = root / FOLDERS["k31-ip-adapter"]
        _write_index(ip, {
            "unet": ["kandinsky3_diffusers", "UNetKandi3IpAdapter"],
            "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
            "image_processor": ["transformers", "CLIPImageProcessor"],
            "scheduler": ["diffusers", "DDPMScheduler"],
            "text_encoder": ["transformers", "T5EncoderModel"],
            "tokenizer": ["transformers", "T5Tokenizer"],
            "movq": ["diffusers", "VQModel"],
        })
        config = k3_image.unet_config_from_kandi3(TINY_IP_ADAPTER_UNET)
        config.update(num_image_tokens=TINY_IP_ADAPTER_UNET["num_image_tokens"],
                      image_embedding_dim=TINY_IP_ADAPTER_UNET["image_embedding_dim"])
        unet = _randomize(k3_image.Kandinsky3IPAdapterUNet(**config))
        _write_authors_component(ip / "unet", "UNetKandi3IpAdapter", TINY_IP_ADAPTER_UNET, unet)
        CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY_CLIP_VISION)).eval().save_pretrained(
            ip / "image_encoder", safe_serialization=True
        )
        size = TINY_CLIP_VISION["image_size"]
        CLIPImageProcessor(
            crop_size=size, size=size, do_center_crop=True, do_normalize=True, do_resize=True, resample=3,
            image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711],
        ).save_pretrained(ip / "image_processor")
        scheduler.save_pretrained(ip / "scheduler")

        hed = root / FOLDERS["k31-controlnet-hed"]
        _write_index(hed, {
            "unet": ["kandinsky3_diffusers", "UNetKandi3"],
            "unet_controlnet": ["kandinsky3_diffusers", "UNetKandi3Controlnet"],
            "scheduler": ["diffusers", "DDPMScheduler"],
            "text_encoder": ["transformers", "T5EncoderModel"],
            "tokenizer": ["transformers", "T5Tokenizer"],
            "movq": ["diffusers", "VQModel"],
        })
        unet = _randomize(k3_image.Kandinsky3ControlledUNet(**k3_image.unet_config_from_kandi3(TINY_KANDI3_UNET)))
        _write_authors_component(hed / "unet", "UNetKandi3", TINY_KANDI3_UNET, unet)
        controlnet = k3_image.Kandinsky3ControlNet(
            **k3_image.unet_config_from_kandi3(TINY_CONTROLNET), hint_channels=TINY_CONTROLNET["hint_channels"]
        )
        _write_authors_component(hed / "unet_controlnet", "UNetKandi3Controlnet", TINY_CONTROLNET,
                                 _randomize(controlnet))
        scheduler.save_pretrained(hed / "scheduler")

        annotators = root / FOLDERS["hed-annotator"]
        annotators.mkdir(parents=True, exist_ok=True)
        network = HEDNetwork(TINY_HED_WIDTHS)
        with torch.no_grad():
            network.norm.copy_(torch.tensor([122.7, 116.7, 104.0]).view(1, 3, 1, 1))
        torch.save(network.state_dict(), annotators / HED_FILE)
