"""TORCH_COMPILE compiles each UNet once per image size, not once per prompt (generation.compiled).

The compiler in the first test is dynamo itself with a backend that records each graph it is handed
and runs it eagerly: what it counts is what would make Inductor compile on a GPU (one compilation per
graph dynamo captures), on the CPU. It proves the shapes and guards: ten prompts of different lengths,
with and without a negative prompt, through Kandinsky 3.1 (guided: batch 2 to 8) and Flash (batch 2 to
4), reuse one graph. It does not prove Inductor's kernels (the GPU check runs those). Dynamo's tracing
is the slow part (seconds per graph), so that test traces once, on a UNet of the tiny architecture
narrowed to two levels; the cheaper tests check where each size goes.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from generation.backend import ModelId
from generation.compiled import CompiledForward, compile_sizes, compile_unet

BACKEND = "kandinsky_test_counting"
GRAPHS: list[torch.fx.GraphModule] = []


def _counting(gm: torch.fx.GraphModule, example_inputs: list) -> object:
    GRAPHS.append(gm)
    return gm.forward


if BACKEND not in torch._dynamo.list_backends(exclude_tags=()):
    torch._dynamo.register_backend(_counting, name=BACKEND)

PROMPTS = [
    "a cat",
    "a red fox in the snow, morning light",
    "an old lighthouse on a cliff above a stormy sea, oil painting, dramatic clouds, seagulls",
    "tea",
    "a bowl of ramen, steam, chopsticks, wooden table, close-up photo",
    "portrait of an astronaut, studio lighting",
    "isometric city block at night with neon signs, rain and reflections, people with umbrellas, cars, 4k",
    "two dogs",
    "watercolour of a mountain lake",
    "a robot reading a book in a library, warm light, dust in the air, highly detailed, cinematic",
]


def small_unet() -> torch.nn.Module:
    """The tiny test UNet (generation.tiny) with two levels of two blocks: fewer layers to trace."""
    from diffusers import Kandinsky3UNet

    from generation.k31 import install_text_projection
    from generation.tiny import TINY_K3_UNET, _randomize_zero_inits

    torch.manual_seed(0)
    unet = Kandinsky3UNet(**dict(TINY_K3_UNET, layers_per_block=2, block_out_channels=(16, 16))).eval()
    _randomize_zero_inits(unet)  # else the time conditioning, text pooling included, has no effect
    return install_text_projection(unet, torch.randn(TINY_K3_UNET["cross_attention_dim"]))


@pytest.fixture(scope="module")
def shared(tiny_config):
    """The tiny text encoder, tokenizer, MoVQ and scheduler (loaded by the real manager)."""
    from generation.manager import ModelManager

    pipes = ModelManager(tiny_config).k3_pipelines(ModelId.K31_REFINER)
    base = pipes.base
    return dict(tokenizer=base.tokenizer, text_encoder=base.text_encoder, movq=base.movq, scheduler=base.scheduler)


def pipelines(shared, unet):
    from generation.k31 import Kandinsky3FlashPipeline, Kandinsky31Pipeline

    base, flash = Kandinsky31Pipeline(unet=unet, **shared), Kandinsky3FlashPipeline(unet=unet, **shared)
    for pipe in (base, flash):
        pipe.set_progress_bar_config(disable=True)
    return base, flash


def generate(base, flash, prompt: str, n: int, guided: bool, negative: str | None = None, size: int = 128):
    generator = [torch.Generator().manual_seed(i) for i in range(n)]
    if guided:
        return base(prompt, negative_prompt=negative, num_inference_steps=2, num_images_per_prompt=n,
                    height=size, width=size, generator=generator, output_type="latent").images
    return flash(prompt, num_images_per_prompt=n, height=size, width=size, generator=generator, output_type="latent").images


def test_ten_prompts_and_their_batches_compile_once(shared):
    lengths = {len(shared["tokenizer"](p)["input_ids"]) for p in PROMPTS}
    assert len(lengths) >= 8  # the prompts really differ in length
    torch._dynamo.reset()
    GRAPHS.clear()
    eager_unet = small_unet()
    unet = compile_unet(small_unet(), [(128, 128)], backend=BACKEND)
    with torch._dynamo.config.patch(recompile_limit=8):
        base, flash = pipelines(shared, unet)
        eager = pipelines(shared, eager_unet)
        first = generate(base, flash, PROMPTS[0], n=1, guided=True)  # batch 2 (guidance)
        compiled_graphs = len(GRAPHS)
        assert compiled_graphs >= 1  # the UNet went through the compiler
        torch.testing.assert_close(first, generate(*eager, PROMPTS[0], n=1, guided=True))
        for i, prompt in enumerate(PROMPTS[1:], 1):
            guided = i % 2 == 0
            n = 1 + i % 4 if guided else 2 + i % 3  # guided batches 2..8, Flash batches 2..4
            negative = "blurry, low quality" if i % 3 == 0 and guided else None
            generate(base, flash, prompt, n=n, guided=guided, negative=negative)
        assert len(GRAPHS) == compiled_graphs, f"{len(GRAPHS) - compiled_graphs} more graphs over ten prompts"
    torch._dynamo.reset()


class Recorder:
    """Stands in for the compiled forward: records the inputs' shapes sent to it, runs eagerly."""

    def __init__(self, eager) -> None:
        self.eager, self.sizes, self.contexts = eager, [], []

    def __call__(self, sample, *args, **kwargs):
        self.sizes.append(tuple(sample.shape[-2:]))
        self.contexts.append(tuple(kwargs["encoder_hidden_states"].shape[1:]))
        return self.eager(sample, *args, **kwargs)


def test_without_padding_each_prompt_length_is_a_new_shape(shared, monkeypatch):
    """What the count above would see without padding: a context shape per prompt length, each one a
    recompilation (dynamo guards on shapes). With padding: one shape."""
    from generation import k31

    unet = compile_unet(small_unet(), [(128, 128)], backend=BACKEND)
    unet.forward.compiled = recorder = Recorder(unet.forward.eager)
    base, flash = pipelines(shared, unet)
    for prompt in PROMPTS[:4]:
        generate(base, flash, prompt, n=2, guided=False)
    assert set(recorder.contexts) == {(k31.CONTEXT_ROWS, 32)}
    recorder.contexts.clear()
    monkeypatch.setattr(k31, "pad_text", lambda text: text)
    for prompt in PROMPTS[:4]:
        generate(base, flash, prompt, n=2, guided=False)
    assert len(set(recorder.contexts)) == 4


def test_only_known_sizes_go_to_the_compiled_graph(shared):
    unet = compile_unet(small_unet(), compile_sizes(128), backend=BACKEND)
    forward = unet.forward
    assert isinstance(forward, CompiledForward)
    forward.compiled = recorder = Recorder(forward.eager)
    base, flash = pipelines(shared, unet)
    generate(base, flash, "a cat", n=1, guided=False, size=128)  # a preset at max side 128
    generate(base, flash, "a cat", n=2, guided=True, size=128)
    assert set(recorder.sizes) == {(16, 16)}
    generate(base, flash, "a cat", n=1, guided=False, size=64)  # 64x64 is no preset there: eager
    assert set(recorder.sizes) == {(16, 16)}


def test_known_sizes_are_the_presets_and_common_photos():
    from generation.styles import ASPECT_RATIOS, fit_size, image_size

    sizes = set(compile_sizes(1024))
    assert {image_size(r, 1024) for r in ASPECT_RATIOS} <= sizes  # text-to-image
    assert {image_size(r, 768) for r in ASPECT_RATIOS} <= sizes  # animation frames
    assert {(1024, 768), (768, 1024), (1024, 704), (1024, 576)} <= sizes  # phone photos scaled to fit
    assert fit_size(4032, 3024, 1024) in sizes
    assert len(sizes) <= 20  # a bounded number of graphs per UNet


def test_padded_batch_rows_equal_each_prompt_alone(shared):
    """Prompts of different lengths in one batch (padded to one shape) give each its own result."""
    from generation.k31 import encode_text, pad_text

    unet = small_unet()
    base, _ = pipelines(shared, unet)
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([500])
    texts = [pad_text(encode_text(base, p, None, "cpu")) for p in (PROMPTS[0], PROMPTS[6])]
    with torch.no_grad():
        alone = [unet(x, t, encoder_hidden_states=tx.context, encoder_attention_mask=tx.mask).sample for tx in texts]
        both = unet(x.repeat(2, 1, 1, 1), t.repeat(2), encoder_hidden_states=torch.cat([tx.context for tx in texts]),
                    encoder_attention_mask=torch.cat([tx.mask for tx in texts])).sample
    torch.testing.assert_close(both, torch.cat(alone), rtol=1e-4, atol=1e-5)  # batched kernels: float noise
    # Counted over every row, as diffusers' pooling does, the shorter prompt's result would move.
    from diffusers.models.unets.unet_kandinsky3 import Kandinsky3AttentionPooling

    from generation.tiny import TINY_K3_UNET

    theirs = Kandinsky3AttentionPooling(1, TINY_K3_UNET["cross_attention_dim"])
    theirs.attention = unet.add_time_condition.attention  # the same weights
    unet.add_time_condition = theirs
    with torch.no_grad():
        moved = unet(x, t, encoder_hidden_states=texts[0].context, encoder_attention_mask=texts[0].mask).sample
    assert (moved - alone[0]).abs().max() > 1e-3


def test_manager_compiles_the_unets_for_the_known_sizes(tiny_config):
    from generation.manager import ModelManager

    config = dataclasses.replace(tiny_config, compile=True, compile_backend=BACKEND, max_image_side=128)
    manager = ModelManager(config)
    pipes = manager.k3_pipelines(ModelId.K31_REFINER)
    for unet in (pipes.base.unet, pipes.flash.unet):
        assert isinstance(unet.forward, CompiledForward)
        assert unet.forward.latent_sizes == {(h // 8, w // 8) for w, h in compile_sizes(128)}
    assert not isinstance(pipes.base.movq.forward, CompiledForward)  # only UNets


def test_uncompiled_by_default(tiny_config):
    from generation.manager import ModelManager

    pipes = ModelManager(tiny_config).k3_pipelines(ModelId.K31_FLASH)
    assert not isinstance(pipes.flash.unet.forward, CompiledForward)


RECORDING = "kandinsky_test_recording"
COMPILED_WITH: list[dict] = []


def _recording(gm: torch.fx.GraphModule, example_inputs: list, **kwargs: object) -> object:
    COMPILED_WITH.append(kwargs)
    return gm.forward


if RECORDING not in torch._dynamo.list_backends(exclude_tags=()):
    torch._dynamo.register_backend(_recording, name=RECORDING)


def test_the_compile_mode_reaches_the_compiler(tiny_config):
    # TORCH_COMPILE_MODE: torch.compile hands a mode other than "default" to its backend (with "default"
    # it hands none: the counting backend above takes no mode).
    mode = "reduce-overhead"
    from generation.manager import ModelManager

    config = dataclasses.replace(tiny_config, compile=True, compile_backend=RECORDING, compile_mode=mode,
                                 max_image_side=128)
    unet = ModelManager(config).k3_pipelines(ModelId.K31_FLASH).flash.unet
    COMPILED_WITH.clear()
    torch._dynamo.reset()
    width = unet.config.encoder_hid_dim  # the text encoder's
    with torch.no_grad():
        unet(torch.randn(2, 4, 16, 16), torch.tensor([10, 10]), encoder_hidden_states=torch.randn(2, 8, width),
             encoder_attention_mask=torch.ones(2, 8, dtype=torch.long))
    assert COMPILED_WITH and all(kwargs == {"mode": mode} for kwargs in COMPILED_WITH)
