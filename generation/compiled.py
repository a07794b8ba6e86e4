"""``torch.compile`` for the UNets, compiled once per image size and then kept.

What changes from one request to the next, and what the compiler is told about it:

- **the prompt**: the Kandinsky 3.1 context always has ``CONTEXT_ROWS`` rows (:func:`generation.k31.pad_text`),
  so its shape never changes;
- **the batch** (images per request, doubled by classifier-free guidance, jobs batched together): dim 0
  of every input is marked dynamic, so one graph serves every batch of two or more (dynamo always
  specialises a size of 1, so a single unguided image has a graph of its own);
- **the image size**: marked static, one graph per size, and only for the known sizes
  (:func:`compile_sizes`: the aspect-ratio presets, the animation frames' presets and photos of those
  ratios scaled to fit). Any other size (an unusual photo) runs the eager module: odd sizes never pile up
  compilations nor exhaust dynamo's recompile limit, which would silently drop the UNet back to eager.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import torch

from generation.styles import ASPECT_RATIOS, fit_size, image_size

log = logging.getLogger(__name__)

LATENT_SCALE = 8  # MoVQ: one latent cell per 8x8 pixels
# Graphs each compiled UNet may keep per size: batch 1 and batch >= 2 (dynamic), and a spare for a
# graph break's second frame.
GRAPHS_PER_SIZE = 3


def compile_sizes(max_side: int, animation_side: int | None = None) -> tuple[tuple[int, int], ...]:
    """The (width, height) sizes worth a compiled graph: the presets of every aspect ratio at
    ``max_side`` (text-to-image), at ``animation_side`` (the animation's frames), and photos of those
    ratios scaled to fit ``max_side`` (restyles of a phone photo: 4:3 -> 1024x768, 3:2 -> 1024x704)."""
    from generation.motion import ANIMATION_MAX_SIDE

    sides = {max_side, min(max_side, animation_side or ANIMATION_MAX_SIDE)}
    sizes = {image_size(ratio, side) for ratio in ASPECT_RATIOS for side in sides}
    for ratio in ASPECT_RATIOS:
        a, b = (int(x) for x in ratio.split(":"))
        sizes.add(fit_size(a * 1000, b * 1000, max_side))
    return tuple(sorted(sizes))


def _mark_batch(value: Any, batch: int) -> None:
    if torch.is_tensor(value) and value.dim() >= 1 and value.shape[0] == batch and batch >= 2:
        torch._dynamo.mark_dynamic(value, 0)


class CompiledForward:
    """A module's ``forward``: the compiled one for samples of a known size, the eager one otherwise."""

    def __init__(self, eager: Callable[..., Any], sizes: Iterable[tuple[int, int]], **compile_options: Any) -> None:
        self.eager = eager
        self.latent_sizes = frozenset((h // LATENT_SCALE, w // LATENT_SCALE) for w, h in sizes)
        self.compiled = torch.compile(eager, **compile_options)

    def __call__(self, sample: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if tuple(sample.shape[-2:]) not in self.latent_sizes:
            return self.eager(sample, *args, **kwargs)
        batch = sample.shape[0]
        for value in (sample, *args, *kwargs.values()):
            _mark_batch(value, batch)
        for dim in range(1, sample.dim()):
            torch._dynamo.mark_static(sample, dim)  # channels, height, width: one graph per size
        return self.compiled(sample, *args, **kwargs)


def compile_unet(module: torch.nn.Module, sizes: Iterable[tuple[int, int]], **compile_options: Any) -> torch.nn.Module:
    """Compile ``module``'s forward for ``sizes`` (pixels, width x height); ``compile_options`` go to
    ``torch.compile`` (``backend=``, ``mode=``). Returns ``module``, whose ``forward`` is replaced."""
    sizes = tuple(sizes)
    if isinstance(module.forward, CompiledForward):
        return module
    module.forward = CompiledForward(module.forward, sizes, **compile_options)
    # Every compiled UNet shares its class's forward code object, and dynamo's recompile limit counts
    # per code object: leave room for each size of every UNet a worker may hold.
    wanted = GRAPHS_PER_SIZE * len(sizes) * 4
    config = torch._dynamo.config
    if config.recompile_limit < wanted:
        config.recompile_limit = wanted
    if config.accumulated_recompile_limit < 4 * wanted:
        config.accumulated_recompile_limit = 4 * wanted
    log.info("torch.compile %s for %d sizes: %s", type(module).__name__, len(sizes),
             ", ".join(f"{w}x{h}" for w, h in sizes))
    return module
