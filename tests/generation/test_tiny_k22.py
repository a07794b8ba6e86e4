"""The tiny Kandinsky 2.2 checkpoints are laid out like the hub repositories and load with the
real classes."""

from __future__ import annotations

import json
from pathlib import Path

from generation.sources import FOLDERS
from tests.fixtures_k22 import k22_models_dir  # noqa: F401  (fixture)


def _index(folder: Path) -> dict:
    return json.loads((folder / "model_index.json").read_text())


def test_pipeline_folders_match_the_hub_layout(k22_models_dir):
    prior = k22_models_dir / FOLDERS["k22-prior"]
    assert _index(prior)["_class_name"] == "KandinskyV22PriorPipeline"
    assert _index(prior)["image_processor"] == ["transformers", "CLIPImageProcessor"]
    for sub in ("prior", "text_encoder", "image_encoder", "scheduler", "image_processor", "tokenizer"):
        assert (prior / sub).is_dir()
    assert (prior / "prior" / "diffusion_pytorch_model.safetensors").is_file()
    assert (prior / "text_encoder" / "model.safetensors").is_file()
    # The hub's tokenizer folder: BPE files, no tokenizer.json.
    tokenizer_files = {p.name for p in (prior / "tokenizer").iterdir()}
    assert tokenizer_files >= {"vocab.json", "merges.txt", "tokenizer_config.json"}

    decoders = {"k22-decoder": "KandinskyV22Pipeline", "k22-controlnet-depth": "KandinskyV22ControlnetPipeline"}
    for name, cls in decoders.items():
        folder = k22_models_dir / FOLDERS[name]
        assert _index(folder)["_class_name"] == cls
        for sub in ("unet", "movq"):
            assert (folder / sub / "diffusion_pytorch_model.safetensors").is_file()
        scheduler = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
        assert scheduler["_class_name"] == "DDPMScheduler"

    depth = k22_models_dir / FOLDERS["depth-estimator"]
    assert json.loads((depth / "config.json").read_text())["architectures"] == ["DPTForDepthEstimation"]
    assert (depth / "model.safetensors").is_file() and (depth / "preprocessor_config.json").is_file()


def test_components_load_with_the_real_classes(k22_models_dir):
    from diffusers import UNet2DConditionModel, VQModel
    from transformers import AutoModelForDepthEstimation, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(k22_models_dir / FOLDERS["k22-prior"] / "tokenizer")
    assert tokenizer.model_max_length == 77
    ids = tokenizer("a red cat").input_ids
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id and len(ids) == 5

    movq = VQModel.from_pretrained(k22_models_dir / FOLDERS["k22-decoder"], subfolder="movq")
    assert len(movq.config.block_out_channels) == 4  # 8x downsampling, like the real MoVQ
    unet = UNet2DConditionModel.from_pretrained(k22_models_dir / FOLDERS["k22-controlnet-depth"], subfolder="unet")
    assert unet.config.addition_embed_type == "image_hint" and unet.config.in_channels == 8
    depth = AutoModelForDepthEstimation.from_pretrained(k22_models_dir / FOLDERS["depth-estimator"])
    assert type(depth).__name__ == "DPTForDepthEstimation"


def test_writing_is_deterministic(tmp_path, k22_models_dir):
    from generation.tiny_k22 import write_k22

    write_k22(tmp_path)
    for name, sub in (("k22-decoder", "unet"), ("k22-prior", "prior"), ("k22-controlnet-depth", "unet")):
        weights = Path(FOLDERS[name]) / sub / "diffusion_pytorch_model.safetensors"
        assert (tmp_path / weights).read_bytes() == (k22_models_dir / weights).read_bytes()
