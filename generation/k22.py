"""Kandinsky 2.2 on diffusers: text-to-image and every image-editing mode it powers.

Kandinsky 2.2 is two models. The *prior* (CLIP text and image encoders + a diffusion prior) turns a
prompt, a photo or a weighted mix of both into a CLIP image embedding; the *decoder* (a UNet and the
MoVQ) draws a picture from that embedding. All modes are "some embedding" + "some decoder":

============== ======================================================== =============================
mode           embedding                                                decoder
============== ======================================================== =============================
TEXT2IMG       prior(prompt)                                            KandinskyV22Pipeline
IMG2IMG        prior(prompt)                                            KandinskyV22Img2ImgPipeline
RESTYLE_DEPTH  PriorEmb2Emb(prompt, photo)                              ControlnetImg2Img + depth hint
STYLE          interpolate([content, style], weights)                   KandinskyV22Img2ImgPipeline
FUSE           interpolate(2-4 photos [+ a text], weights)              KandinskyV22Pipeline
MIX            interpolate([photo, prompt], [image w, text w])          KandinskyV22Pipeline
VARIATIONS     interpolate([photo], [1.0]) (the photo's CLIP embedding) KandinskyV22Pipeline
============== ======================================================== =============================

The decoders are built from one set of loaded components (``KandinskyV22Img2ImgPipeline(**
text2img.components)``), the ControlNet pipeline reuses the decoder's MoVQ, and the Emb2Emb prior
reuses the prior's components, so nothing is loaded twice. The ControlNet UNet and the depth
estimator are loaded on first use.

Conventions:

* One batched call per request; image ``i`` uses its own CPU ``torch.Generator`` seeded ``seed + i``
  (separate generators, same seeds, for the prior and the decoder), so any image can be redone alone.
* ``progress(step, total)`` counts **decoder** denoising steps only, ``step`` from 1 to ``total``:
  the prior's 25 steps take a fraction of a second, and diffusers' ``interpolate`` and Emb2Emb
  prior have no step callback. For the image-to-image decoders ``total`` is the number of steps
  that actually run: ``int(steps * strength)``. A ``GenerationCancelled`` raised by ``progress``
  leaves the pipeline at once, so no further step runs.
* Fusion weights are relative: they are divided by their sum before they reach the prior.
* ``request.extra`` overrides: ``prior_steps`` (default 25), ``prior_guidance_scale`` (4.0),
  ``prior_strength`` (RESTYLE_DEPTH's Emb2Emb strength, 0.85 as in diffusers' example).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from generation.backend import (
    GenerationRequest,
    Mode,
    ModelId,
    ModelUnavailable,
    ProgressFn,
    batch_key,
    per_request,
)
from generation.prompts import fit_to_context
from generation.registry import CANVAS_MODES, WRAPPED_MODES, spec
from generation.sources import GenerationConfig

log = logging.getLogger(__name__)

PRIOR_STEPS = 25
PRIOR_GUIDANCE = 4.0
DECODER_STEPS = spec(ModelId.K22).default_steps  # the registry's defaults (50, 4.0)
DECODER_GUIDANCE = spec(ModelId.K22).default_guidance or 4.0
EMB2EMB_STRENGTH = 0.85  # how far the Emb2Emb prior moves the photo's embedding towards the prompt
# Default weights when the request carries none: STYLE [content, style], MIX [image, text].
DEFAULT_WEIGHTS: dict[Mode, tuple[float, ...]] = {Mode.STYLE: (0.3, 0.7), Mode.MIX: (0.5, 0.5)}
# The modes this pipeline runs itself: the registry's, less those a wrapper serves (face swap).
MODES = tuple(
    m for m in Mode if spec(ModelId.K22).supports(m) and m not in WRAPPED_MODES and m not in CANVAS_MODES
)

_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}

Embeddings = tuple[torch.Tensor, torch.Tensor]  # (image_embeds, negative_image_embeds), batch N each


def _load(name: str, source: str, loader: Callable[..., Any], **kwargs: Any) -> Any:
    """``loader(source, **kwargs)``, with failures turned into the backend's errors."""
    try:
        return loader(source, **kwargs)
    except torch.OutOfMemoryError:
        raise  # the backend frees the memory and reports OutOfMemory
    except Exception as exc:  # diffusers/transformers raise OSError, ValueError, safetensors errors...
        raise ModelUnavailable(f"{name} could not be loaded from {source}: {exc}") from exc


def _generators(seeds: Sequence[int]) -> list[torch.Generator]:
    # CPU generators: the same seed gives the same noise on any device.
    return [torch.Generator("cpu").manual_seed(int(seed)) for seed in seeds]


def img2img_steps(steps: int, strength: float) -> tuple[int, int]:
    """(num_inference_steps to pass, denoising steps that run) for diffusers' img2img pipelines.

    They run ``int(steps * strength)`` of ``steps``; ``steps`` is raised when that would be zero.
    """
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must be in (0, 1], got {strength}")
    steps = max(steps, math.ceil(1.0 / strength - 1e-9))
    return steps, min(int(steps * strength), steps)


def normalized_weights(weights: Sequence[float], count: int) -> list[float]:
    """Relative fusion weights -> weights summing to 1 (equal weights when none are given)."""
    if not weights:
        return [1.0 / count] * count
    if len(weights) != count:
        raise ValueError(f"{count} inputs need {count} weights, got {len(weights)}")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"weights must be non-negative with a positive sum, got {list(weights)}")
    total = float(sum(weights))
    return [float(w) / total for w in weights]


class Kandinsky22:
    """The loaded Kandinsky 2.2 pipelines (see the module doc)."""

    def __init__(self, config: GenerationConfig, prior: Any, decoder: Any, device: str, dtype: torch.dtype):
        from diffusers import KandinskyV22Img2ImgPipeline, KandinskyV22PriorEmb2EmbPipeline

        self.config = config
        self.device = device
        self.dtype = dtype
        self.prior = prior
        self.prior_emb2emb = KandinskyV22PriorEmb2EmbPipeline(**prior.components)
        self.text2img = decoder
        self.img2img = KandinskyV22Img2ImgPipeline(**decoder.components)
        self._fix_image_preprocessing(self.img2img)
        self._controlnet: Any | None = None  # KandinskyV22ControlnetImg2ImgPipeline, on first use
        self._inpaint: Any | None = None  # KandinskyV22InpaintPipeline (zoom out, expand, inpaint), on first use
        self._depth: tuple[Any, Any] | None = None  # (DPTForDepthEstimation, its image processor)
        self._offload: str | None = None
        self._offload_device: str | None = None
        for pipe in self._pipelines():
            pipe.set_progress_bar_config(disable=True)

    @staticmethod
    def _fix_image_preprocessing(pipe: Any) -> None:
        """Work around diffusers 0.42's Kandinsky 2.2 image-to-image pipelines, which call
        ``image_processor.preprocess(image, width, height)`` against the signature
        ``preprocess(image, height, width)`` and so transpose the latents of non-square images
        (a 128x64 request comes out 64x128). Their processor is told not to resize, and
        :meth:`_input_photo` resizes the photo to the requested size with the same processor
        settings (bicubic) beforehand, which is what diffusers does for square sizes."""
        from diffusers.image_processor import VaeImageProcessor

        pipe.image_processor = VaeImageProcessor.from_config(pipe.image_processor.config, do_resize=False)

    @staticmethod
    def _input_photo(pipe: Any, photo: Image.Image, width: int, height: int) -> Image.Image:
        return pipe.image_processor.resize(photo, height=height, width=width)

    # -- loading and placement ---------------------------------------------------------------

    @classmethod
    def load(cls, config: GenerationConfig, device: str, dtype: torch.dtype | str) -> Kandinsky22:
        """Load the prior and the decoder from ``config.source(...)`` onto ``device`` (or under
        ``config.offload`` when that is "model" or "sequential" and ``device`` is an accelerator).
        ``dtype``: a torch dtype or "fp16" / "bf16" / "fp32". Raises ModelUnavailable."""
        from diffusers import KandinskyV22Pipeline, KandinskyV22PriorPipeline

        dtype = _DTYPES[dtype] if isinstance(dtype, str) else dtype
        prior = _load("k22-prior", config.source("k22-prior"), KandinskyV22PriorPipeline.from_pretrained, dtype=dtype)
        decoder = _load("k22-decoder", config.source("k22-decoder"), KandinskyV22Pipeline.from_pretrained, dtype=dtype)
        model = cls(config, prior, decoder, device, dtype)
        if config.offload in ("model", "sequential") and torch.device(device).type != "cpu":
            # Straight to offloaded placement: never the whole model on a small GPU at once.
            model.enable_offload(config.offload, device=device)
        else:
            model.to(device)
        return model

    def _pipelines(self) -> list[Any]:
        pipes = [self.prior, self.prior_emb2emb, self.text2img, self.img2img]
        pipes += [self._controlnet] if self._controlnet is not None else []
        return pipes + ([self._inpaint] if self._inpaint is not None else [])

    def _place(self, pipe: Any) -> None:
        """Put a pipeline where the others are: on the device, or under the same offload mode."""
        if self._offload == "model":
            pipe.enable_model_cpu_offload(device=self._offload_device)
        elif self._offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=self._offload_device)
        else:
            pipe.to(self.device)

    def to(self, device: str) -> None:
        """Move every loaded model to ``device`` (this turns CPU offload off)."""
        for pipe in self._pipelines():
            pipe.remove_all_hooks()  # offload hooks put weights back on the CPU when removed
        self._offload = self._offload_device = None
        self.device = device
        for pipe in self._pipelines():
            pipe.to(device)
        if self._depth is not None:
            self._depth[0].to(device)

    def enable_offload(self, mode: str, device: str | None = None) -> None:
        """diffusers' CPU offload on every pipeline: "model" (one model at a time on the
        accelerator) or "sequential" (layer by layer). ``device``: the accelerator, found by
        diffusers when None."""
        if mode not in ("model", "sequential"):
            raise ValueError(f"offload mode must be 'model' or 'sequential', got {mode!r}")
        self._offload, self._offload_device = mode, device
        for pipe in self._pipelines():
            self._place(pipe)
        if self._depth is not None:
            self._depth[0].to("cpu")  # moved to the accelerator only while it runs

    def _execution_device(self) -> torch.device:
        return self.text2img._execution_device

    def memory_bytes(self) -> int:
        """Bytes of all loaded weights and buffers (shared components counted once)."""
        seen: set[int] = set()
        total = 0
        modules = [c for pipe in self._pipelines() for c in pipe.components.values() if isinstance(c, torch.nn.Module)]
        if self._depth is not None:
            modules.append(self._depth[0])
        for module in modules:
            for tensor in [*module.parameters(), *module.buffers()]:
                if id(tensor) not in seen:
                    seen.add(id(tensor))
                    total += tensor.numel() * tensor.element_size()
        return total

    def controlnet(self) -> Any:
        """The depth ControlNet image-to-image pipeline, loaded on first use with the decoder's MoVQ."""
        if self._controlnet is None:
            from diffusers import KandinskyV22ControlnetImg2ImgPipeline

            log.info("loading the Kandinsky 2.2 depth ControlNet from %s", self.config.source("k22-controlnet-depth"))
            pipe = _load(
                "k22-controlnet-depth",
                self.config.source("k22-controlnet-depth"),
                KandinskyV22ControlnetImg2ImgPipeline.from_pretrained,
                movq=self.text2img.movq,
                dtype=self.dtype,
            )
            pipe.set_progress_bar_config(disable=True)
            self._fix_image_preprocessing(pipe)
            self._place(pipe)
            self._controlnet = pipe
        return self._controlnet

    def inpaint_pipeline(self) -> Any:
        """The inpainting decoder (``kandinsky-2-2-decoder-inpaint``: a 9-channel UNet), loaded on first
        use with the decoder's MoVQ."""
        if self._inpaint is None:
            from diffusers import KandinskyV22InpaintPipeline

            source = self.config.source("k22-decoder-inpaint")
            log.info("loading the Kandinsky 2.2 inpainting decoder from %s", source)
            pipe = _load(
                "k22-decoder-inpaint", source, KandinskyV22InpaintPipeline.from_pretrained,
                movq=self.text2img.movq, dtype=self.dtype,
            )
            pipe.set_progress_bar_config(disable=True)
            self._place(pipe)
            self._inpaint = pipe
        return self._inpaint

    def inpaint(
        self, request: GenerationRequest, image: Image.Image, mask: Image.Image, progress: ProgressFn
    ) -> list[Image.Image]:
        """Repaint the white area of ``mask`` in ``image`` from the prompt's image embedding."""
        seeds = [request.seed + i for i in range(request.num_images)]
        negative = (request.negative_prompt or "").strip() or None
        embeds = self.text_embeddings(request.prompt, negative, seeds)
        steps = request.steps or DECODER_STEPS
        return self._run(
            self.inpaint_pipeline(),
            image=image,
            mask_image=mask,  # diffusers: white repaints
            num_inference_steps=steps,
            callback_on_step_end=_step_end_callback(progress, steps),
            **self._decoder_args(request, embeds, seeds),
        )

    def depth_estimator(self) -> tuple[Any, Any]:
        """(model, image processor) of the depth estimator (DPT), loaded on first use."""
        if self._depth is None:
            from transformers import AutoImageProcessor, AutoModelForDepthEstimation

            source = self.config.source("depth-estimator")
            log.info("loading the depth estimator from %s", source)
            processor = _load("depth-estimator", source, AutoImageProcessor.from_pretrained)
            model = _load("depth-estimator", source, AutoModelForDepthEstimation.from_pretrained, dtype=self.dtype)
            model.eval()
            model.to("cpu" if self._offload else self.device)
            self._depth = (model, processor)
        return self._depth

    # -- embeddings ----------------------------------------------------------------------------

    def text_embeddings(
        self,
        prompt: str,
        negative_prompt: str | None,
        seeds: Sequence[int],
        steps: int = PRIOR_STEPS,
        guidance_scale: float = PRIOR_GUIDANCE,
    ) -> Embeddings:
        """The prior's image embedding of ``prompt``, one per seed; the negative embedding is the
        prior's embedding of ``negative_prompt``, or of an empty picture when there is none."""
        # With a negative prompt the prior denoises [prompt x N, negative x N] in one batch.
        generators = _generators(seeds) + (_generators(seeds) if negative_prompt else [])
        out = self.prior(
            prompt,
            negative_prompt=negative_prompt,
            num_images_per_prompt=len(seeds),
            num_inference_steps=steps,
            guidance_scale=guidance_scale,
            generator=generators,
        )
        return out.image_embeds, out.negative_image_embeds

    def mixed_embeddings(
        self,
        items: Sequence[str | Image.Image],
        weights: Sequence[float],
        negative_prompt: str | None,
        seeds: Sequence[int],
        steps: int = PRIOR_STEPS,
        guidance_scale: float = PRIOR_GUIDANCE,
    ) -> Embeddings:
        """``prior.interpolate``: the weighted sum of the CLIP image embeddings of photos and of the
        prior's embeddings of texts. ``weights`` are relative (normalised to sum to 1)."""
        out = self.prior.interpolate(
            list(items),
            normalized_weights(weights, len(items)),
            num_images_per_prompt=len(seeds),
            num_inference_steps=steps,
            guidance_scale=guidance_scale,
            generator=_generators(seeds),
            negative_prompt=negative_prompt or "",
            device=self.prior._execution_device,
        )
        return out.image_embeds, out.negative_image_embeds

    def restyle_embeddings(
        self,
        prompt: str,
        image: Image.Image,
        negative_prompt: str | None,
        seeds: Sequence[int],
        strength: float = EMB2EMB_STRENGTH,
        steps: int = PRIOR_STEPS,
        guidance_scale: float = PRIOR_GUIDANCE,
    ) -> Embeddings:
        """Emb2Emb prior: the photo's CLIP embedding moved towards ``prompt`` (``strength``)."""
        generators = _generators(seeds) + (_generators(seeds) if negative_prompt else [])
        out = self.prior_emb2emb(
            prompt,
            image=image,
            strength=strength,
            negative_prompt=negative_prompt,
            num_images_per_prompt=len(seeds),
            num_inference_steps=steps,
            guidance_scale=guidance_scale,
            generator=generators,
        )
        return out.image_embeds, out.negative_image_embeds

    @torch.no_grad()
    def depth_hint(self, image: Image.Image, width: int, height: int) -> torch.Tensor:
        """The ControlNet hint: the estimated depth of ``image`` at width x height, divided by its
        maximum and repeated over 3 channels (what diffusers' example builds from the depth
        pipeline's 8-bit map / 255). Shape (1, 3, height, width), values in [0, 1]."""
        model, processor = self.depth_estimator()
        device = self._execution_device()
        pixel_values = processor(images=image, return_tensors="pt")["pixel_values"]
        if self._offload:
            model.to(device)
        try:
            depth = model(pixel_values=pixel_values.to(device=device, dtype=model.dtype)).predicted_depth
        finally:
            if self._offload:
                model.to("cpu")
        depth = F.interpolate(depth[:, None].float(), size=(height, width), mode="bicubic", align_corners=False)
        depth = depth.clamp(min=0)
        depth = depth / depth.amax().clamp(min=1e-6)
        return depth.clamp(max=1.0).repeat(1, 3, 1, 1)

    # -- generation ----------------------------------------------------------------------------

    def generate(self, request: GenerationRequest, progress: ProgressFn) -> list[Image.Image]:
        """Run ``request`` (one of :data:`MODES`); ``request.num_images`` images of exactly
        ``request.width`` x ``request.height``.

        Raises ValueError for a malformed request (image count, size, strength, mode),
        GenerationCancelled from ``progress``, ModelUnavailable when the ControlNet or the depth
        estimator cannot be loaded; ``torch.OutOfMemoryError`` propagates unchanged, for the
        backend to free the memory before it reports OutOfMemory."""
        # The decoders work on 1/8-size latents that the UNet halves again: multiples of 64 come out exact.
        if request.width % 64 or request.height % 64 or min(request.width, request.height) <= 0:
            raise ValueError(f"width and height must be positive multiples of 64, got {request.width}x{request.height}")
        return self._generate(request, progress)

    def _generate(self, request: GenerationRequest, progress: ProgressFn) -> list[Image.Image]:
        mode = Mode(request.mode)
        seeds = [request.seed + i for i in range(request.num_images)]
        negative = (request.negative_prompt or "").strip() or None
        prior = {
            "steps": int(request.extra.get("prior_steps", PRIOR_STEPS)),
            "guidance_scale": float(request.extra.get("prior_guidance_scale", PRIOR_GUIDANCE)),
        }
        photos = [im.convert("RGB") for im in request.images]
        _check_inputs(mode, photos)
        # CLIP reads 77 tokens: a long (beautified) prompt is shortened before its style, not the style.
        tokenizer = self.prior.tokenizer
        request = replace(
            request, prompt=fit_to_context(tokenizer, request.prompt, request.style_suffix, tokenizer.model_max_length)
        )

        if mode is Mode.TEXT2IMG:
            return self.generate_batch([request], progress)[0]
        if mode is Mode.IMG2IMG:
            embeds = self.text_embeddings(request.prompt, negative, seeds, **prior)
            return self._img2img(request, embeds, photos[0], seeds, progress)
        if mode is Mode.RESTYLE_DEPTH:
            strength = float(request.extra.get("prior_strength", EMB2EMB_STRENGTH))
            embeds = self.restyle_embeddings(request.prompt, photos[0], negative, seeds, strength, **prior)
            hint = self.depth_hint(photos[0], request.width, request.height)
            return self._controlnet_img2img(request, embeds, photos[0], hint, seeds, progress)
        if mode is Mode.STYLE:
            weights = request.weights or DEFAULT_WEIGHTS[Mode.STYLE]
            embeds = self.mixed_embeddings(photos[:2], weights, negative, seeds, **prior)
            return self._img2img(request, embeds, photos[0], seeds, progress)
        if mode is Mode.FUSE:
            # One weight more than photos: the prompt (an album's caption) is fused in with the last one.
            items: list[str | Image.Image] = list(photos)
            if request.prompt and len(request.weights) == len(photos) + 1:
                items.append(request.prompt)
            embeds = self.mixed_embeddings(items, request.weights, negative, seeds, **prior)
            return self._text2img(request, embeds, seeds, progress)
        if mode is Mode.MIX:
            weights = request.weights or DEFAULT_WEIGHTS[Mode.MIX]
            embeds = self.mixed_embeddings([photos[0], request.prompt], weights, negative, seeds, **prior)
            return self._text2img(request, embeds, seeds, progress)
        if mode is Mode.VARIATIONS:
            embeds = self.mixed_embeddings(photos[:1], [1.0], negative, seeds, **prior)
            return self._text2img(request, embeds, seeds, progress)
        raise ValueError(f"Kandinsky 2.2 does not run {mode}")

    def generate_batch(
        self, requests: list[GenerationRequest], progress: ProgressFn, output_type: str = "pil"
    ) -> list[Any]:
        """Text-to-image requests of one size, step count, guidance and prior settings, all with or all
        without a negative prompt, as one prior call and one decoder call: image ``j`` of request ``r``
        is its prompt (fitted to CLIP's context with its style) with generators seeded ``seed_r + j``,
        so result ``r`` equals ``generate(requests[r])`` (up to a larger batch's float rounding).

        Requests with and without a negative prompt never share a call: diffusers' prior takes the
        negative prompts of a whole batch as extra prompts and returns the zero embedding for all when
        there are none, so the two kinds cannot be told apart inside one call."""
        first = requests[0]
        keys = {batch_key(r) for r in requests}
        if len(requests) > 1 and (None in keys or len(keys) > 1):
            raise ValueError("the requests of one batch must be text-to-image and share one batch_key")
        if first.width % 64 or first.height % 64 or min(first.width, first.height) <= 0:
            raise ValueError(f"width and height must be positive multiples of 64, got {first.width}x{first.height}")
        negatives = [(r.negative_prompt or "").strip() or None for r in requests]
        prior_steps = int(first.extra.get("prior_steps", PRIOR_STEPS))
        prior_guidance = float(first.extra.get("prior_guidance_scale", PRIOR_GUIDANCE))
        tokenizer = self.prior.tokenizer
        prompts, negative_rows, seeds = [], [], []
        for request, negative in zip(requests, negatives):
            fitted = fit_to_context(tokenizer, request.prompt, request.style_suffix, tokenizer.model_max_length)
            prompts += [fitted] * request.num_images
            negative_rows += [negative] * request.num_images
            seeds += [request.seed + j for j in range(request.num_images)]
        # With negative prompts the prior denoises [prompts, negatives] in one batch (see text_embeddings).
        with_negative = negatives[0] is not None
        out = self.prior(
            prompts,
            negative_prompt=negative_rows if with_negative else None,
            num_images_per_prompt=1,
            num_inference_steps=prior_steps,
            guidance_scale=prior_guidance,
            generator=_generators(seeds) + (_generators(seeds) if with_negative else []),
        )
        steps = first.steps or DECODER_STEPS
        images = self._run(
            self.text2img,
            num_inference_steps=steps,
            callback_on_step_end=_step_end_callback(progress, steps),
            **{
                **self._decoder_args(first, (out.image_embeds, out.negative_image_embeds), seeds),
                "output_type": output_type,
            },
        )
        return per_request(images, requests)

    @staticmethod
    def _decoder_args(request: GenerationRequest, embeds: Embeddings, seeds: Sequence[int]) -> dict[str, Any]:
        image_embeds, negative_image_embeds = embeds
        return {
            "image_embeds": image_embeds,
            "negative_image_embeds": negative_image_embeds,
            "width": request.width,
            "height": request.height,
            "guidance_scale": DECODER_GUIDANCE if request.guidance_scale is None else request.guidance_scale,
            "generator": _generators(seeds),
            "output_type": "pil",
        }

    @staticmethod
    def _run(pipe: Any, **kwargs: Any) -> list[Image.Image]:
        try:
            return pipe(**kwargs).images
        except BaseException:
            # A cancelled or failed run skips the pipeline's own clean-up: put offloaded models back.
            pipe.maybe_free_model_hooks()
            raise

    def _text2img(
        self, request: GenerationRequest, embeds: Embeddings, seeds: Sequence[int], progress: ProgressFn
    ) -> list[Image.Image]:
        steps = request.steps or DECODER_STEPS
        return self._run(
            self.text2img,
            num_inference_steps=steps,
            callback_on_step_end=_step_end_callback(progress, steps),
            **self._decoder_args(request, embeds, seeds),
        )

    def _img2img(
        self,
        request: GenerationRequest,
        embeds: Embeddings,
        photo: Image.Image,
        seeds: Sequence[int],
        progress: ProgressFn,
    ) -> list[Image.Image]:
        steps, total = img2img_steps(request.steps or DECODER_STEPS, request.strength)
        photo = self._input_photo(self.img2img, photo, request.width, request.height)
        return self._run(
            self.img2img,
            image=[photo] * len(seeds),
            strength=request.strength,
            num_inference_steps=steps,
            callback_on_step_end=_step_end_callback(progress, total),
            **self._decoder_args(request, embeds, seeds),
        )

    def _controlnet_img2img(
        self,
        request: GenerationRequest,
        embeds: Embeddings,
        photo: Image.Image,
        hint: torch.Tensor,
        seeds: Sequence[int],
        progress: ProgressFn,
    ) -> list[Image.Image]:
        steps, total = img2img_steps(request.steps or DECODER_STEPS, request.strength)
        pipe = self.controlnet()
        photo = self._input_photo(pipe, photo, request.width, request.height)
        # This pipeline only has the older per-step ``callback(step, timestep, latents)``.
        return self._run(
            pipe,
            image=[photo] * len(seeds),
            hint=hint.repeat(len(seeds), 1, 1, 1).to(device=self._execution_device(), dtype=self.dtype),
            strength=request.strength,
            num_inference_steps=steps,
            callback=lambda i, t, latents: progress(i + 1, total),
            callback_steps=1,
            **self._decoder_args(request, embeds, seeds),
        )


def _step_end_callback(progress: ProgressFn, total: int) -> Callable[..., dict[str, Any]]:
    def on_step_end(pipe: Any, i: int, t: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
        progress(i + 1, total)  # may raise GenerationCancelled: the pipeline stops right here
        return callback_kwargs

    return on_step_end


def _check_inputs(mode: Mode, photos: list[Image.Image]) -> None:
    needed = {Mode.TEXT2IMG: (0, 0), Mode.STYLE: (2, 2), Mode.FUSE: (2, 4)}.get(mode, (1, 1))
    low, high = needed
    if not low <= len(photos) <= high:
        expected = str(low) if low == high else f"{low}-{high}"
        raise ValueError(f"{mode} takes {expected} input images, got {len(photos)}")


__all__ = ["Kandinsky22", "MODES", "img2img_steps", "normalized_weights"]
