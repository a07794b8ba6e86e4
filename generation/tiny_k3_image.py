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
