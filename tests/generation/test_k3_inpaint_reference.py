"""Kandinsky 3.1 inpainting against ai-forever's own code (golden data, see tests/reference/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from generation import k3_inpaint

GOLDEN = Path(__file__).parents[1] / "reference" / "k3_inpaint_golden.safetensors"
# The authors' UNet above, in diffusers' terms.
UNET_CONFIG = dict(
    in_channels=4, time_embedding_dim=4, groups=2, attention_head_dim=4, layers_per_block=2,
    block_out_channels=(16, 16, 16, 16), cross_attention_dim=4, encoder_hid_dim=32,
)


def _converted(tmp_path: Path) -> tuple[k3_inpaint.Kandinsky3InpaintUNet, dict]:
    data = load_file(GOLDEN)
    source = tmp_path / "Kandinsky3.1"
    (source / "weights" / "flan_ul2_encoder").mkdir(parents=True)
    unet = {k.removeprefix("unet."): v.float() for k, v in data.items() if k.startswith("unet.")}
    projection = {k.removeprefix("projection."): v.float() for k, v in data.items() if k.startswith("projection.")}
    torch.save({"unet": unet, "null_embedding": data["null_embedding"].float()}, source / k3_inpaint.INPAINT_UNET_FILE)
    torch.save(projection, source / k3_inpaint.INPAINT_PROJECTION_FILES[0])
    (source / "weights" / "unet_config.json").write_text(json.dumps(UNET_CONFIG))  # a local copy's own config
    folder = k3_inpaint.converted_unet_dir(str(source), tmp_path / "cache")
    model = k3_inpaint.Kandinsky3InpaintUNet.from_pretrained(folder).eval()
    return model, data


def test_converted_inpainting_unet_samples_as_the_authors_pipeline(tmp_path):
    unet, data = _converted(tmp_path)
    assert unet.conv_in.in_channels == 9 and unet.conv_out.out_channels == 4
    assert torch.equal(unet.null_embedding, data["null_embedding"].float())
    with torch.no_grad():
        context, mask = k3_inpaint.project_context(unet, data["hidden"], data["attention_mask"])
        torch.testing.assert_close(context, data["context"], atol=1e-5, rtol=1e-4)
        assert torch.equal(mask, data["context_mask"])
        uncond, uncond_mask = k3_inpaint.null_context(unet, context, mask)

        steps, seed = (int(v) for v in data["config"])
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn(data["output"].shape, generator=generator)
        out = k3_inpaint.sample(
            unet, k3_inpaint.flash_alphas(), noise, k3_inpaint.inpaint_timesteps(steps), context, mask,
            uncond, uncond_mask, data["keep_mask"], data["masked_latent"], float(data["guidance"]), generator,
        )
    assert k3_inpaint.inpaint_timesteps(steps)[:3] == [999, 959, 919]
    torch.testing.assert_close(out, data["output"], atol=1e-4, rtol=1e-4)


def test_a_wrong_checkpoint_is_refused(tmp_path):
    unet, data = _converted(tmp_path)
    # One weight too many: the strict load names it instead of silently dropping it.
    state = {k.removeprefix("unet."): v.float() for k, v in data.items() if k.startswith("unet.")}
    state["in_layer.extra"] = torch.zeros(1)
    bad = tmp_path / "bad"
    (bad / "weights" / "flan_ul2_encoder").mkdir(parents=True)
    torch.save({"unet": state, "null_embedding": data["null_embedding"].float()}, bad / k3_inpaint.INPAINT_UNET_FILE)
    projection = {k.removeprefix("projection."): v.float() for k, v in data.items() if k.startswith("projection.")}
    torch.save(projection, bad / k3_inpaint.INPAINT_PROJECTION_FILES[0])
    import pytest

    with pytest.raises(RuntimeError, match="extra"):
        (bad / "weights" / "unet_config.json").write_text(json.dumps(UNET_CONFIG))
        k3_inpaint.converted_unet_dir(str(bad), tmp_path / "cache2")
