"""Kandinsky 3.1 against the authors' own code: golden outputs of ai-forever/Kandinsky-3 (and KandiSuperRes'
refiner) on tiny seeded weights, reproduced by our converter, pipelines and scheduler.

The data in tests/reference/kandinsky3/ was made by running the authors' modules outside this repository
(tests/reference/README.md says which commit, functions and seeds). Here the weights are laid out as in
``ai-forever/Kandinsky3.1`` (their key format, ``torch.save``d dicts) and go through the real loading code
(:class:`ModelManager` -> strict converter -> diffusers modules).

Tolerance: both sides run fp32 on CPU with the same weights, but different kernels (SDPA vs. einsum +
softmax, an additive -1e4 mask vs. ``masked_fill``, diffusers' GroupNorm / Timesteps vs. theirs), which
agree to ~1e-6 per UNet call. The samplers amplify it: Flash divides by sqrt(a_t) (30x at t=979), and the
guided loop multiplies the difference of two predictions by g + 1 at every step through UNets whose
random weights (and random time conditioning) make them far more sensitive than a trained model.
Measured step by step against the authors' loop, the difference is 1e-6 to 1e-5 after the first step
and grows to at most 4.2e-3 after the last (the single-image restyle case, 5 steps from t=499). So
latents are compared with rtol 1e-3 and an absolute tolerance of 5e-3 of the largest golden value, and
8-bit images to within 2 levels; single UNet calls and MoVQ passes, which nothing amplifies, to 1e-5.
A wrong key, order, mask, null embedding, negative-prompt rule or
threshold moves the outputs by more than 5x that (the tests that break one of them on purpose check it).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from generation.backend import GenerationRequest, Mode, ModelId
from generation.k31 import REFINER_TIMESTEPS, authors_timesteps, encode_text
from generation.k31_weights import ENCODER_FOLDER, MOVQ_CONFIG_FILE, MOVQ_FILE, UNET_CONFIG_FILE, UNET_FILES

REFERENCE = Path(__file__).resolve().parents[1] / "reference" / "kandinsky3"
CONFIGS = json.loads((REFERENCE / "authors_configs.json").read_text())
PROMPT = CONFIGS["prompt"]
ATOL = 5e-3  # of the largest golden value, after a sampling loop (see above)
ONE_CALL_ATOL = 1e-5  # one UNet call, one MoVQ pass: no loop to amplify the kernels' differences
BROKEN = 5 * ATOL  # how far a deliberately broken rule must move the outputs


def close(ours: torch.Tensor, theirs: torch.Tensor, atol: float = ATOL) -> None:
    ours, theirs = ours.detach().float().cpu(), theirs.float()
    torch.testing.assert_close(ours, theirs, rtol=min(1e-3, 10 * atol), atol=atol * float(theirs.abs().max()))


def diffusers_unet_config() -> dict:
    """The authors' tiny UNet arguments in diffusers' terms (what an operator's config file would say)."""
    u = CONFIGS["unet"]
    return dict(
        _class_name="Kandinsky3UNet",
        in_channels=u["num_channels"],
        time_embedding_dim=u["time_embed_dim"],
        groups=u["groups"],
        attention_head_dim=u["head_dim"],
        layers_per_block=u["num_blocks"][0],
        block_out_channels=[u["model_channels"] * m for m in u["dim_mult"]],
        cross_attention_dim=u["context_dim"],
        encoder_hid_dim=CONFIGS["t5"]["d_model"],
    )


def diffusers_movq_config() -> dict:
    m = CONFIGS["movq"]
    levels = len(m["ch_mult"])
    return dict(
        _class_name="VQModel",
        in_channels=m["in_channels"],
        out_channels=m["out_ch"],
        down_block_types=["DownEncoderBlock2D"] * (levels - 1) + ["AttnDownEncoderBlock2D"],
        up_block_types=["AttnUpDecoderBlock2D"] + ["UpDecoderBlock2D"] * (levels - 1),
        block_out_channels=[m["ch"] * c for c in m["ch_mult"]],
        layers_per_block=m["num_res_blocks"],
        latent_channels=m["z_channels"],
        norm_num_groups=32,
        norm_type="spatial",
        num_vq_embeddings=16,
        vq_embed_dim=m["z_channels"],
    )


def write_authors_layout(root: Path) -> Path:
    """The reference weights as ai-forever/Kandinsky3.1 ships them (their keys, torch.save dicts)."""
    from transformers import T5Config, T5EncoderModel

    from generation.tiny import t5_tokenizer

    out = root / "Kandinsky3.1"
    (out / ENCODER_FOLDER).mkdir(parents=True)
    for which, name in (("base", "kandinsky3_tiny"), ("flash", "kandinsky3_flash_tiny")):
        flat = {k: v.float() for k, v in load_file(REFERENCE / f"{name}.safetensors").items()}
        unet = {k.removeprefix("unet."): v for k, v in flat.items() if k.startswith("unet.")}
        unet_file, projection_file = UNET_FILES[which]
        torch.save({"unet": unet, "null_embedding": flat["null_embedding"]}, out / unet_file)
        projection = {k: v.float() for k, v in load_file(REFERENCE / f"projection{'' if which == 'base' else '_flash'}_tiny.safetensors").items()}
        torch.save(projection, out / projection_file)
    torch.save({k: v.float() for k, v in load_file(REFERENCE / "movq_tiny.safetensors").items()}, out / MOVQ_FILE)
    t5 = T5EncoderModel(T5Config(**CONFIGS["t5"]))
    t5.load_state_dict({k: v.float() for k, v in load_file(REFERENCE / "t5_encoder_tiny.safetensors").items()}, strict=False)
    t5.save_pretrained(out / ENCODER_FOLDER)
    t5_tokenizer().save_pretrained(out / ENCODER_FOLDER)
    (out / UNET_CONFIG_FILE).write_text(json.dumps(diffusers_unet_config()))
    (out / MOVQ_CONFIG_FILE).write_text(json.dumps(diffusers_movq_config()))
    return root


@pytest.fixture(scope="module")
def golden() -> dict[str, torch.Tensor]:
    return load_file(REFERENCE / "golden.safetensors")


@pytest.fixture(scope="module")
def manager(tmp_path_factory):
    from generation.manager import ModelManager
    from generation.sources import GenerationConfig

    root = write_authors_layout(tmp_path_factory.mktemp("authors"))
    config = GenerationConfig(models_dir=root, device="cpu", cache_dir=tmp_path_factory.mktemp("converted"))
    manager = ModelManager(config)
    manager.load(ModelId.K31_REFINER)
    return manager


@pytest.fixture(scope="module")
def pipes(manager):
    return manager.k3_pipelines(ModelId.K31_REFINER)


def generator(seed: int) -> torch.Generator:
    return torch.Generator("cpu").manual_seed(seed)


def picture(golden) -> Image.Image:
    return Image.fromarray(golden["movq.picture"].numpy())


# -- one UNet call, the text path and the null embedding --------------------------------------------
def test_tokens_are_the_ones_the_authors_encoded(pipes, golden):
    tokens = pipes.base.tokenizer(PROMPT, max_length=128, truncation=True)["input_ids"]
    ids = golden["unet_call.input_ids"][0]
    assert ids[: len(tokens)].tolist() == tokens and not ids[len(tokens):].any()


def test_one_unet_call(pipes, golden):
    base = pipes.base
    text = encode_text(base, PROMPT, None, "cpu")
    x, t = golden["unet_call.sample"], golden["unet_call.timesteps"]
    with torch.no_grad():
        out = base.unet(x, t, encoder_hidden_states=text.context.repeat(2, 1, 1), encoder_attention_mask=text.mask.repeat(2, 1)).sample
        null = base.unet(x, t, encoder_hidden_states=text.uncond_context.repeat(2, 1, 1), encoder_attention_mask=text.uncond_mask.repeat(2, 1)).sample
        projected = base.unet.encoder_hid_proj(text.context)
    assert text.context.shape[1] == golden["unet_call.context"].shape[1]  # cut to the prompt's length + 1
    close(projected, golden["unet_call.context"], ONE_CALL_ATOL)  # padded rows zero after the projection
    close(out, golden["unet_call.out"], ONE_CALL_ATOL)
    close(null, golden["unet_call.out_null"], ONE_CALL_ATOL)


def one_call(unet, context: torch.Tensor, mask: torch.Tensor, golden) -> torch.Tensor:
    """The golden UNet call (two copies of the sample) on a context."""
    with torch.no_grad():
        return unet(golden["unet_call.sample"], golden["unet_call.timesteps"],
                    encoder_hidden_states=context.repeat(2, 1, 1), encoder_attention_mask=mask.repeat(2, 1)).sample


@contextlib.contextmanager
def swapped(module: torch.nn.Module, name: str, replacement: torch.nn.Module) -> Iterator[None]:
    original = getattr(module, name)
    setattr(module, name, replacement)
    try:
        yield
    finally:
        setattr(module, name, original)


def far_from_golden(out: torch.Tensor, golden) -> bool:
    return bool((out - golden["unet_call.out"]).abs().max() > 100 * ONE_CALL_ATOL * float(golden["unet_call.out"].abs().max()))


def test_context_padded_to_one_shape_gives_the_authors_output(pipes, golden):
    """The pipelines pad every context to CONTEXT_ROWS (one shape for torch.compile): the same numbers
    as the authors' context cut to the prompt's length + 1, for the prompt and the null branch."""
    from diffusers.models.unets.unet_kandinsky3 import Kandinsky3AttentionPooling

    from generation.k31 import CONTEXT_ROWS, pad_text

    unet = pipes.base.unet
    text = pad_text(encode_text(pipes.base, PROMPT, None, "cpu"))
    assert text.context.shape[1] == CONTEXT_ROWS > golden["unet_call.context"].shape[1]
    close(one_call(unet, text.context, text.mask, golden), golden["unet_call.out"], ONE_CALL_ATOL)
    close(one_call(unet, text.uncond_context, text.uncond_mask, golden), golden["unet_call.out_null"], ONE_CALL_ATOL)
    # It can disagree: diffusers' pooling averages over all CONTEXT_ROWS rows and moves the output.
    theirs = Kandinsky3AttentionPooling(1, CONFIGS["unet"]["context_dim"])
    theirs.attention = unet.add_time_condition.attention  # the same weights
    with swapped(unet, "add_time_condition", theirs):
        assert far_from_golden(one_call(unet, text.context, text.mask, golden), golden)


def test_padding_rows_projected_by_diffusers_would_differ(pipes, golden):
    """The check above can disagree: diffusers' own order (zero, then project) gives other numbers."""
    from diffusers.models.unets.unet_kandinsky3 import Kandinsky3EncoderProj

    base = pipes.base
    ours = base.unet.encoder_hid_proj
    theirs = Kandinsky3EncoderProj(ours.projection_linear.in_features, ours.projection_linear.out_features)
    theirs.load_state_dict({k: v for k, v in ours.state_dict().items()})
    text = encode_text(base, PROMPT, None, "cpu")
    with swapped(base.unet, "encoder_hid_proj", theirs):
        assert far_from_golden(one_call(base.unet, text.context, text.mask, golden), golden)


# -- the guided Kandinsky 3.1 loop -----------------------------------------------------------------
CASES = {
    "k3_guided": dict(prompt=PROMPT, negative_prompt=None, num_inference_steps=10, guidance_scale=3.0, seed=10),
    "k3_negative_short": dict(prompt=PROMPT, negative_prompt="blurry, dark", num_inference_steps=10, guidance_scale=3.0, seed=11),
    "k3_negative_long": dict(prompt="a cat", negative_prompt="blurry low quality picture, watermark, text", num_inference_steps=10, guidance_scale=5.0, seed=12),
    "k3_default_steps": dict(prompt=PROMPT, negative_prompt=None, seed=13),  # the pipeline's defaults: 50 steps, guidance 3
}


@pytest.mark.parametrize("case", list(CASES))
def test_guided_loop(pipes, golden, case):
    args = dict(CASES[case])
    seed = args.pop("seed")
    from generation.k31 import decode_latents

    latents = pipes.base(**args, num_images_per_prompt=2, height=64, width=64, generator=generator(seed), output_type="latent").images
    close(latents, golden[f"{case}.latents"])
    close(decode_latents(pipes.base, latents, "pt"), ((golden[f"{case}.images"] + 1) / 2).clamp(0, 1))


def test_guided_loop_without_thresholding_differs(pipes, golden, monkeypatch):
    monkeypatch.setattr(pipes.base.scheduler, "threshold", lambda x0: x0.clamp(-1, 1))
    args = dict(CASES["k3_guided"])
    seed = args.pop("seed")
    latents = pipes.base(**args, num_images_per_prompt=2, height=64, width=64, generator=generator(seed), output_type="latent").images
    assert (latents - golden["k3_guided.latents"]).abs().max() > BROKEN


def test_negative_prompt_with_its_own_mask_differs(pipes, golden):
    """The authors give the negative prompt the prompt's mask, cut to the prompt's tokens (diffusers does not)."""
    from generation.k31 import TextConditions

    args = dict(CASES["k3_negative_short"])
    seed = args.pop("seed")
    base = pipes.base
    text = encode_text(base, PROMPT, None, "cpu")
    tokens = base.tokenizer(args["negative_prompt"], padding="max_length", max_length=128, return_tensors="pt")
    with torch.no_grad():
        states = base.text_encoder(tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state
    length = text.context.shape[1]
    states = (states * tokens.attention_mask[..., None])[:, :length]
    naive = TextConditions(text.context, text.mask, states, tokens.attention_mask[:, :length])
    latents = base(text=naive, num_inference_steps=10, guidance_scale=3.0, num_images_per_prompt=2, height=64, width=64, generator=generator(seed), output_type="latent").images
    assert (latents - golden["k3_negative_short.latents"]).abs().max() > BROKEN


def test_default_schedule_is_the_authors():
    assert authors_timesteps(50) == list(range(999, 0, -20))
    assert authors_timesteps(10)[-1] == 99 and len(authors_timesteps(30)) == 31


# -- Flash, the refiner, image-to-image, MoVQ ------------------------------------------------------
def test_flash_four_steps(pipes, golden):
    latents = pipes.flash(PROMPT, num_images_per_prompt=2, height=64, width=64, generator=generator(20), output_type="latent").images
    close(latents, golden["flash.latents"])


def test_refiner_one_flash_step_at_229(pipes, golden):
    gen = generator(30)
    text = encode_text(pipes.base, PROMPT, None, "cpu")
    first = pipes.base(text=text, num_inference_steps=10, guidance_scale=3.0, num_images_per_prompt=2, height=64, width=64, generator=gen, output_type="latent").images
    close(first, golden["refiner.first_stage"])
    assert REFINER_TIMESTEPS == (229,)
    refined = pipes.flash(text=text, timesteps=REFINER_TIMESTEPS, num_images_per_prompt=2, generator=gen, image_latents=first, output_type="latent").images
    close(refined, golden["refiner.latents"])


def test_movq_encode_decode(pipes, golden):
    from generation.k31 import encode_image

    movq = pipes.base.movq
    latent = encode_image(pipes.base, picture(golden), 1)
    close(latent, golden["movq.latent"], ONE_CALL_ATOL)
    with torch.no_grad():
        decoded = movq.decode(golden["movq.latent"], force_not_quantize=True).sample
    close(decoded, golden["movq.decoded"], ONE_CALL_ATOL)


def test_flash_image_to_image(pipes, golden):
    from generation.k3 import flash_img2img_timesteps

    strength = float(golden["img2img_flash.strength"])
    timesteps = flash_img2img_timesteps(strength)
    assert timesteps == (479, 229)
    out = pipes.flash(PROMPT, timesteps=timesteps, num_images_per_prompt=2, image=picture(golden), generator=generator(40), output_type="latent").images
    close(out, golden["img2img_flash.latents"])


def test_kandinsky31_image_to_image(pipes, golden):
    strength = float(golden["img2img_k3.strength"])
    out = pipes.base(PROMPT, num_inference_steps=10, guidance_scale=3.0, num_images_per_prompt=2, image=picture(golden), strength=strength, generator=generator(50), output_type="latent").images
    close(out, golden["img2img_k3.latents"])


# -- what the bot runs: one request, one image per seed -------------------------------------------
@pytest.mark.parametrize(
    "model,case,seed", [(ModelId.K31, "request_k31", 14), (ModelId.K31_FLASH, "request_flash", 21), (ModelId.K31_REFINER, "request_refiner", 31)]
)
def test_requests_reproduce_the_authors(manager, golden, model, case, seed):
    from generation import k3

    request = GenerationRequest(
        mode=Mode.TEXT2IMG, model=model, prompt=PROMPT, negative_prompt="blurry", width=64, height=64,
        num_images=1, seed=seed, steps=10, guidance_scale=3.0,
    )
    images = k3.generate(manager.k3_pipelines(model), request, lambda step, total: None)
    expected = ((golden[f"{case}.images"] + 1) / 2).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    assert np.abs(np.asarray(images[0]).astype(int) - np.round(expected * 255).astype(int)).max() <= 2


@pytest.mark.parametrize(
    "model,case,seed,strength", [(ModelId.K31_FLASH, "request_img2img_flash", 41, 0.6), (ModelId.K31, "request_img2img_k31", 51, 0.5)]
)
def test_restyle_requests_reproduce_the_authors(manager, golden, model, case, seed, strength):
    from generation import k3

    request = GenerationRequest(
        mode=Mode.IMG2IMG, model=model, prompt=PROMPT, negative_prompt=None, width=32, height=32,
        num_images=1, seed=seed, steps=10, guidance_scale=3.0, images=[picture(golden)], strength=strength,
    )
    images = k3.generate(manager.k3_pipelines(model), request, lambda step, total: None)
    expected = ((golden[f"{case}.images"] + 1) / 2).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    assert np.abs(np.asarray(images[0]).astype(int) - np.round(expected * 255).astype(int)).max() <= 2
