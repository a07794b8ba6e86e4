"""The converter of ai-forever/Kandinsky3.1's files: every full-size key, strictness, the cache, errors.

The full-size manifest (tests/reference/kandinsky3/full_size_keys.json) lists the names and shapes of the
authors' modules, built on the meta device from their own architecture code (tests/reference/README.md);
the file names are those their ``get_T2I_pipeline`` / ``get_T2I_Flash_pipeline`` download.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from generation import k31_weights as w
from generation.backend import ModelId, ModelUnavailable
from generation.sources import GenerationConfig

MANIFEST = json.loads((Path(__file__).resolve().parents[1] / "reference" / "kandinsky3" / "full_size_keys.json").read_text())
CONFIGS = Path(w.__file__).with_name("configs")


def meta(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    return {k: torch.empty(shape, device="meta") for k, shape in shapes.items()}


@pytest.mark.parametrize("which", ["base", "flash"])
def test_every_full_size_unet_key_maps_strictly(which):
    from diffusers import Kandinsky3UNet

    assert list(w.UNET_FILES[which]) == MANIFEST["files"][which]
    config = json.loads((CONFIGS / "kandinsky3_unet.json").read_text())
    with torch.device("meta"):
        unet = Kandinsky3UNet.from_config(config)
    state = w.unet_to_diffusers(meta(MANIFEST["unet"]), meta(MANIFEST["projection"]))
    assert len(MANIFEST["unet"]) + len(MANIFEST["projection"]) == len(state) == 1071
    ours = {k: list(v.shape) for k, v in unet.state_dict().items()}
    assert set(state) == set(ours)  # nothing missing, nothing extra
    assert {k: list(v.shape) for k, v in state.items()} == ours
    unet.load_state_dict(state, strict=True, assign=True)  # what convert_unet does


def test_every_full_size_movq_key_maps_strictly():
    from diffusers import VQModel

    assert w.MOVQ_FILE == MANIFEST["files"]["movq"] and w.ENCODER_FOLDER == MANIFEST["files"]["encoder"]
    config = json.loads((CONFIGS / "kandinsky3_movq.json").read_text())
    with torch.device("meta"):
        movq = VQModel.from_config(config)
    source = meta(MANIFEST["movq"])
    state = w.movq_to_diffusers(source, len(config["block_out_channels"]))
    ours = {k: list(v.shape) for k, v in movq.state_dict().items()}
    # The codebook is the one diffusers tensor the authors' MoVQ has no use for (it never quantises).
    assert set(ours) - set(state) == {"quantize.embedding.weight"} and set(state) <= set(ours)
    assert all(list(v.shape) == ours[k] for k, v in state.items())


def test_tiny_writer_round_trip_of_the_movq_layout():
    """The tiny checkpoints are written in the authors' MoVQ layout by searching the forward mapping."""
    from diffusers import VQModel

    from generation.tiny import TINY_MOVQ

    movq = VQModel(**TINY_MOVQ)
    levels = len(TINY_MOVQ["block_out_channels"])
    theirs = w.movq_to_ai_forever(movq.state_dict(), levels)
    back = w.movq_to_diffusers(theirs, levels)
    assert set(back) == set(movq.state_dict()) - {"quantize.embedding.weight"}
    assert all(torch.equal(back[k], movq.state_dict()[k]) for k in back)


def authors_folder(tiny_models_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "models"
    shutil.copytree(tiny_models_dir / "Kandinsky3.1", target / "Kandinsky3.1")
    return target


@pytest.mark.parametrize("broken", ["leftover", "missing"])
def test_a_leftover_or_missing_weight_fails(tiny_models_dir, tmp_path, broken):
    source = authors_folder(tiny_models_dir, tmp_path) / "Kandinsky3.1"
    unet_file = source / w.UNET_FILES["base"][0]
    checkpoint = torch.load(unet_file, weights_only=True)
    if broken == "leftover":
        checkpoint["unet"]["down_samples.0.unknown.weight"] = torch.zeros(1)
    else:
        del checkpoint["unet"]["in_layer.weight"]
    torch.save(checkpoint, unet_file)
    with pytest.raises(RuntimeError, match="Unexpected" if broken == "leftover" else "Missing"):
        w.converted_unet_dir(str(source), "base", tmp_path / "cache", torch.float32)


def test_conversion_is_cached_in_the_serving_dtype(tiny_models_dir, tmp_path, monkeypatch):
    from safetensors import safe_open

    source = str(authors_folder(tiny_models_dir, tmp_path) / "Kandinsky3.1")
    half = w.converted_unet_dir(source, "flash", tmp_path / "cache", torch.float16)
    with safe_open(str(next(half.glob("*.safetensors"))), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    assert (half / w.NULL_EMBEDDING_FILE).is_file()
    movq = w.converted_movq_dir(source, tmp_path / "cache", torch.float16)
    monkeypatch.setattr(w, "convert_unet", lambda *a, **k: pytest.fail("converted twice"))
    monkeypatch.setattr(w, "convert_movq", lambda *a, **k: pytest.fail("converted twice"))
    assert w.converted_unet_dir(source, "flash", tmp_path / "cache", torch.float16) == half
    assert w.converted_movq_dir(source, tmp_path / "cache", torch.float16) == movq
    # Another dtype is another cache entry (one per serving dtype, never a second fp32 copy by default).
    monkeypatch.undo()
    assert w.converted_unet_dir(source, "flash", tmp_path / "cache", torch.float32) != half


def test_missing_flash_weights_name_model_and_path(tiny_models_dir, tmp_path):
    from generation.diffusers_backend import DiffusersBackend

    models = authors_folder(tiny_models_dir, tmp_path)
    (models / "Kandinsky3.1" / w.UNET_FILES["flash"][0]).unlink()
    backend = DiffusersBackend(GenerationConfig(models_dir=models, device="cpu", cache_dir=tmp_path / "cache"))
    with pytest.raises(ModelUnavailable) as info:
        backend.load(ModelId.K31_FLASH)
    assert "Flash" in info.value.detail and str(models / "Kandinsky3.1") in info.value.detail


def test_corrupt_checkpoint_names_model_and_path(tiny_models_dir, tmp_path):
    from generation.diffusers_backend import DiffusersBackend

    models = authors_folder(tiny_models_dir, tmp_path)
    unet_file = models / "Kandinsky3.1" / w.UNET_FILES["base"][0]
    unet_file.write_bytes(unet_file.read_bytes()[:1000])
    backend = DiffusersBackend(GenerationConfig(models_dir=models, device="cpu", cache_dir=tmp_path / "cache"))
    with pytest.raises(ModelUnavailable) as info:
        backend.load(ModelId.K31)
    assert "Kandinsky 3.1 UNet" in info.value.detail and str(unet_file) in info.value.detail
    assert info.value.code == "model_unavailable"


def test_unet_mapping_agrees_with_the_diffusers_conversion_script():
    # diffusers converted Kandinsky 3 with its own script; on every full-size key our names are the same.
    from diffusers.pipelines.kandinsky3.convert_kandinsky3_unet import convert_state_dict

    source = meta(MANIFEST["unet"])
    assert {w.unet_key_to_diffusers(k) for k in source} == set(convert_state_dict(source))
