"""Where each model's weights come from, and the generation settings the worker runs with.

Hub ids are the defaults (downloaded on the operator's machine on first use). When
``KANDINSKY_MODELS_DIR`` is set, it holds one folder per entry of :data:`FOLDERS`, laid out like the
hub repository, and the same loading code reads from there. ``python -m generation.tiny DIR`` writes
random-weight tiny checkpoints in exactly that layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from generation.motion import AnimationSettings

# name -> hub id
HUB_IDS: dict[str, str] = {
    "k22-prior": "kandinsky-community/kandinsky-2-2-prior",
    "k22-decoder": "kandinsky-community/kandinsky-2-2-decoder",
    "k22-decoder-inpaint": "kandinsky-community/kandinsky-2-2-decoder-inpaint",
    "k22-controlnet-depth": "kandinsky-community/kandinsky-2-2-controlnet-depth",
    "depth-estimator": "Intel/dpt-hybrid-midas",
    # The whole Kandinsky 3 family, in the authors' own format: weights/kandinsky3.pt (base UNet),
    # weights/kandinsky3_flash.pt, weights/movq.pt, weights/flan_ul2_encoder/ (encoder, tokenizer, projections).
    "k31": "ai-forever/Kandinsky3.1",
    "beautifier-llm": "Intel/neural-chat-7b-v3-1",
    # KandiSuperRes.ckpt (x4), KandiSuperRes_flash_x2.pt: plain state dicts of ai-forever's SR UNet
    "superres": "ai-forever/KandiSuperRes",
    # Kandinsky 5.0 Video Lite: {variant} is GenerationConfig.video_variant (distilled16steps by default)
    "k5-video-5s": "kandinskylab/Kandinsky-5.0-T2V-Lite-{variant}-5s-Diffusers",
    "k5-video-10s": "kandinskylab/Kandinsky-5.0-T2V-Lite-{variant}-10s-Diffusers",
    # Kandinsky 3.1 image prompts (ai-forever's diffusers-style folders; their own UNet classes,
    # read by generation.k3_image) and the HED annotator weights (ControlNetHED.pth).
    "k31-ip-adapter": "ai-forever/kandinsky3_ip_adapter",
    "k31-controlnet-hed": "ai-forever/kandinsky3_controlnet_hed",
    "hed-annotator": "lllyasviel/Annotators",
}

# name -> folder under KANDINSKY_MODELS_DIR (the hub repository's own name)
FOLDERS: dict[str, str] = {name: hub_id.split("/", 1)[1] for name, hub_id in HUB_IDS.items()}
DEFAULT_VIDEO_VARIANT = "distilled16steps"


@dataclass
class GenerationConfig:
    models_dir: Path | None = None
    device: str = "auto"  # auto | cuda | cpu
    dtype: str = "fp16"  # fp16 | bf16 on CUDA; always fp32 on CPU
    offload: str = "none"  # none | model | sequential (diffusers' CPU offload, for small GPUs)
    vram_budget_gb: float | None = None  # None: what the GPU has
    compile: bool = False  # torch.compile the UNets (generation.compiled: once per known image size)
    compile_backend: str = "inductor"  # torch.compile's backend (tests register a counting one)
    compile_mode: str = "default"  # torch.compile's mode: default | reduce-overhead (CUDA graphs) | max-autotune...
    fp8_unets: bool = False  # FP8 weights and matmuls in the Kandinsky 3.1 UNets (torchao; GPUs of sm 8.9+)
    # Bound of the text-encoder output cache (generation.text_cache), kept on the GPU; 0 turns it off.
    text_cache_mb: int = 256
    tf32: bool = True  # TF32 for fp32 matrix products on CUDA (the encoder's fp32 wo layers, fp32 serving)
    max_image_side: int = 1024
    # Where converted checkpoints (the Kandinsky 3.1 UNets and MoVQ in diffusers format, in the serving
    # dtype) are cached.
    cache_dir: Path = Path("data/models")
    video_variant: str = DEFAULT_VIDEO_VARIANT  # Kandinsky 5.0 Video Lite: distilled16steps | nocfg | sft | pretrain
    video_fps: int = 24  # the frame rate the video model was trained at (tests use fewer frames)
    video_short_side: int = 512  # Kandinsky 5.0 Video Lite: 512x512, 768x512, 512x768
    animation_frame_model: str = "kandinsky-3.1-flash"  # the image-to-image of /animate's frames
    animation: AnimationSettings = field(default_factory=AnimationSettings)

    def source(self, name: str) -> str:
        """A hub id, or the folder under ``models_dir`` when that is set."""
        if self.models_dir is not None:
            return str(Path(self.models_dir) / FOLDERS[name].format(variant=self.video_variant))
        return HUB_IDS[name].format(variant=self.video_variant)
