"""The Flash UNet: ai-forever's format -> diffusers Kandinsky3UNet, its inverse, and the cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from generation import flash
from generation.backend import ModelId, ModelUnavailable
from generation.sources import GenerationConfig

# Names as ai-forever's kandinsky3/model/unet.py and nn.py build them.
AI_FOREVER_KEYS = [
    "to_time_embed.1.weight",
    "to_time_embed.3.bias",
    "in_layer.weight",
    "feature_pooling.attention.to_query.weight",
    "feature_pooling.attention.output_layer.weight",
    "down_samples.0.resnet_attn_blocks.0.0.resnet_blocks.0.group_norm.context_mlp.1.weight",
    "down_samples.0.resnet_attn_blocks.2.2.shortcut_down_sample.weight",
    "down_samples.1.self_attention_block.attention.to_key.weight",
    "down_samples.1.resnet_attn_blocks.1.1.attention.to_value.weight",
    "down_samples.1.resnet_attn_blocks.1.1.feed_forward.0.weight",
    "up_samples.1.resnet_attn_blocks.0.0.resnet_blocks.1.up_sample.weight",
    "up_samples.0.self_attention_block.out_norm.context_mlp.1.bias",
    "up_samples.1.resnet_attn_blocks.2.2.shortcut_projection.weight",
    "out_layer.0.weight",
    "out_layer.2.bias",
]


def load_source(root: Path) -> tuple[dict, dict, dict]:
    folder = root / "Kandinsky3.1"
    checkpoint = torch.load(folder / flash.FLASH_UNET_FILE, weights_only=True)
    projection = torch.load(folder / flash.FLASH_PROJECTION_FILES[0], weights_only=True)
    return checkpoint["unet"], projection, checkpoint


def k3_unet_config(root: Path) -> dict:
    from diffusers import Kandinsky3UNet

    return dict(Kandinsky3UNet.load_config(root / "kandinsky-3", subfolder="unet"))


def test_tiny_checkpoint_has_ai_forever_names(tiny_models_dir):
    unet, projection, checkpoint = load_source(tiny_models_dir)
    assert set(checkpoint) == {"unet", "null_embedding"}
    assert set(projection) == {"0.weight", "1.weight", "1.bias"}
    for key in AI_FOREVER_KEYS:
        assert key in unet, key
    assert not any(k.startswith(("conv_", "time_embedding", "down_blocks", "encoder_hid_proj")) for k in unet)


def test_mapping_agrees_with_the_diffusers_conversion_script(tiny_models_dir):
    # diffusers ships the script it converted Kandinsky 3 with; our segment-wise mapping is the same.
    from diffusers.pipelines.kandinsky3.convert_kandinsky3_unet import convert_state_dict

    unet, _, _ = load_source(tiny_models_dir)
    theirs = convert_state_dict(unet)
    assert {flash.unet_key_to_diffusers(k) for k in unet} == set(theirs)


def test_round_trip_uses_every_weight_and_gives_the_same_output(tiny_models_dir, tmp_path):
    from diffusers import Kandinsky3UNet

    unet_state, projection, _ = load_source(tiny_models_dir)
    config = k3_unet_config(tiny_models_dir)
    folder = flash.converted_unet_dir(str(tiny_models_dir / "Kandinsky3.1"), config, tmp_path)
    converted = Kandinsky3UNet.from_pretrained(folder).eval()

    # Inverse mapping: exactly the source's keys and tensors, nothing left over, nothing missing.
    back_unet, back_projection = flash.to_ai_forever(converted.state_dict())
    assert set(back_unet) == set(unet_state) and set(back_projection) == set(projection)
    assert all(torch.equal(back_unet[k], unet_state[k]) for k in unet_state)
    assert all(torch.equal(back_projection[k], projection[k]) for k in projection)

    # A UNet loaded (strictly) from the round-tripped ai-forever weights computes the same thing.
    again = Kandinsky3UNet.from_config(config).eval()
    again.load_state_dict(flash.to_diffusers(back_unet, back_projection), strict=True)
    x = torch.randn(2, 4, 8, 16, generator=torch.Generator().manual_seed(0))
    context = torch.randn(2, 5, config["encoder_hid_dim"], generator=torch.Generator().manual_seed(1))
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    with torch.no_grad():
        a = converted(x, torch.tensor(479), encoder_hidden_states=context, encoder_attention_mask=mask).sample
        b = again(x, torch.tensor(479), encoder_hidden_states=context, encoder_attention_mask=mask).sample
    assert torch.equal(a, b)


def test_a_leftover_or_missing_weight_fails(tiny_models_dir, tmp_path):
    from diffusers import Kandinsky3UNet

    unet_state, projection, _ = load_source(tiny_models_dir)
    model = Kandinsky3UNet.from_config(k3_unet_config(tiny_models_dir))
    extra = dict(unet_state, **{"down_samples.0.unknown.weight": torch.zeros(1)})
    with pytest.raises(RuntimeError, match="Unexpected"):
        model.load_state_dict(flash.to_diffusers(extra, projection), strict=True)
    missing = {k: v for k, v in unet_state.items() if k != "in_layer.weight"}
    with pytest.raises(RuntimeError, match="Missing"):
        model.load_state_dict(flash.to_diffusers(missing, projection), strict=True)


def test_conversion_is_cached(tiny_models_dir, tmp_path, monkeypatch):
    source = str(tiny_models_dir / "Kandinsky3.1")
    config = k3_unet_config(tiny_models_dir)
    first = flash.converted_unet_dir(source, config, tmp_path)
    assert (first / "config.json").is_file() and any(first.glob("*.safetensors"))
    monkeypatch.setattr(flash, "convert", lambda *a, **k: pytest.fail("converted twice"))
    assert flash.converted_unet_dir(source, config, tmp_path) == first


def test_missing_flash_weights_name_model_and_path(tiny_models_dir, tmp_path):
    from generation.diffusers_backend import DiffusersBackend

    models = tmp_path / "models"
    shutil.copytree(tiny_models_dir / "kandinsky-3", models / "kandinsky-3")
    (models / "Kandinsky3.1" / "weights").mkdir(parents=True)
    backend = DiffusersBackend(GenerationConfig(models_dir=models, device="cpu", cache_dir=tmp_path / "cache"))
    with pytest.raises(ModelUnavailable) as info:
        backend.load(ModelId.K31_FLASH)
    assert "Flash" in info.value.detail and str(models / "Kandinsky3.1") in info.value.detail


def test_corrupt_checkpoint_names_model_and_path(tiny_models_dir, tmp_path):
    from generation.diffusers_backend import DiffusersBackend

    models = tmp_path / "models"
    shutil.copytree(tiny_models_dir / "kandinsky-3", models / "kandinsky-3")
    weights = next((models / "kandinsky-3" / "unet").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:1000])
    backend = DiffusersBackend(GenerationConfig(models_dir=models, device="cpu", cache_dir=tmp_path / "cache"))
    with pytest.raises(ModelUnavailable) as info:
        backend.load(ModelId.K31)
    assert "Kandinsky 3.1 UNet" in info.value.detail and str(models / "kandinsky-3") in info.value.detail
    assert info.value.code == "model_unavailable"


def test_checkpoint_without_fp16_variant_loads(tiny_models_dir, tmp_path):
    from diffusers import Kandinsky3Pipeline

    from generation.manager import ModelManager

    models = tmp_path / "models"
    pipe = Kandinsky3Pipeline.from_pretrained(tiny_models_dir / "kandinsky-3", variant="fp16")
    pipe.save_pretrained(models / "kandinsky-3")  # plain file names, as a local copy may have
    assert not list((models / "kandinsky-3" / "unet").glob("*.fp16.*"))
    manager = ModelManager(GenerationConfig(models_dir=models, device="cpu", cache_dir=tmp_path / "cache"))
    manager.load(ModelId.K31)
    assert manager.loaded(ModelId.K31)
