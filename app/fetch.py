"""``python -m app.fetch`` (``kandinsky-bot fetch``): download and convert every model the
configuration needs, before the first user arrives.

1. The plan: which hub repositories the configured models need (``WORKER_MODELS`` or all of them,
   the local beautifier LLM when ``BEAUTIFY_BACKEND=local``, OmniFusion when the face describer is on)
   and which of their files the loaders read (the fp16 variant of Kandinsky 3, safetensors over
   pickles, no README or sample images); sizes come from the hub's file listing, in advance.
2. A disk-space check: what is still missing (plus the Flash conversion) against the free space.
3. The downloads, one progress bar per file, resumable: an interrupted file continues where it
   stopped on the next run (huggingface_hub's ``.incomplete`` files and HTTP ranges), and files already
   there are skipped.
4. The Kandinsky 3.1 Flash conversion into a diffusers UNet (``generation.flash``), cached like the
   bot caches it; and, for KandiSuperRes, its refiner's fixed text context, which the authors keep in
   their GitHub repository rather than on the hub (``generation.superres.ensure_context``: a pinned
   commit, checked against its SHA-256).
5. A summary per model: download size, disk, and the GPU memory its weights take at the bot's dtype,
   from the parameter counts in the safetensors headers.

With ``KANDINSKY_MODELS_DIR`` set, every repository goes to ``$KANDINSKY_MODELS_DIR/<repository name>``
(the layout the bot reads); otherwise into the huggingface_hub cache, where ``from_pretrained`` looks.
``GENERATION_BACKEND=fake`` needs no model: the command says so and downloads nothing.
"""

from __future__ import annotations

import argparse
import fnmatch
import logging
import posixpath
import shutil
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from generation.backend import ModelId
from generation.sources import FOLDERS, HUB_IDS

if TYPE_CHECKING:
    from app.config import Settings

log = logging.getLogger(__name__)

GB = 1024**3
DISK_MARGIN = 1 * GB  # room left for logs, the database and results
WEIGHT_EXTENSIONS = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".msgpack", ".h5", ".onnx", ".gguf")
SMALL_EXTENSIONS = (".json", ".txt", ".model", ".tiktoken", ".py")  # configs, tokenizers, vocabularies
FLASH_FILES = ("weights/kandinsky3_flash.pt", "weights/flan_ul2_encoder/projection_flash.pt", "weights/projection_flash.pt")

# Which repositories each model loads (generation.manager, generation.k22, generation.k31_weights).
MODEL_REPOS: dict[ModelId, tuple[str, ...]] = {
    ModelId.K22: ("k22-prior", "k22-decoder", "k22-controlnet-depth", "depth-estimator", "k22-decoder-inpaint"),
    ModelId.K31: ("k31",),
    ModelId.K31_FLASH: ("k31",),
    ModelId.K31_REFINER: ("k31",),
    ModelId.K31_INPAINT: ("k31",),
    ModelId.SUPERRES: ("superres", "k31"),  # Flash x2 is refined by the Kandinsky 3.1 Flash UNet
    ModelId.K5_VIDEO_5S: ("k5-video-5s",),
    ModelId.K5_VIDEO_10S: ("k5-video-10s",),
    # Kandinsky 3.1's image prompts share its text encoder and MoVQ.
    ModelId.K31_IP_ADAPTER: ("k31", "k31-ip-adapter"),
    ModelId.K31_CONTROLNET_HED: ("k31", "k31-controlnet-hed", "hed-annotator"),
}
# The files (path prefixes) of each model that end up on the GPU.
ENCODER = "k31/weights/flan_ul2_encoder/"
MOVQ = "k31/weights/movq.pt"
MODEL_PARTS: dict[ModelId, tuple[str, ...]] = {
    ModelId.K22: ("k22-prior/", "k22-decoder/", "k22-controlnet-depth/unet/", "depth-estimator/"),
    ModelId.K31: (ENCODER, "k31/weights/kandinsky3.pt", MOVQ),
    ModelId.K31_FLASH: (ENCODER, "k31/weights/kandinsky3_flash.pt", MOVQ),
    ModelId.K31_REFINER: (ENCODER, "k31/weights/kandinsky3.pt", "k31/weights/kandinsky3_flash.pt", MOVQ),
    ModelId.K31_INPAINT: (ENCODER, "k31/weights/kandinsky3_inpainting.pt", MOVQ),
    ModelId.SUPERRES: ("superres/KandiSuperRes_flash_x2.pt", "superres/KandiSuperRes.ckpt", "k31/weights/kandinsky3_flash.pt", MOVQ),
    ModelId.K5_VIDEO_5S: ("k5-video-5s/",),
    ModelId.K5_VIDEO_10S: ("k5-video-10s/",),
    # The image-prompt models' own UNets are not counted yet (their safetensors headers would be read
    # before the disk-space check): the table shows the shared encoder and MoVQ only.
    ModelId.K31_IP_ADAPTER: (ENCODER, MOVQ),
    ModelId.K31_CONTROLNET_HED: (ENCODER, MOVQ),
}
# The UNet checkpoints of the Kandinsky 3 family each model needs (ai-forever's format).
K31_UNETS: dict[ModelId, tuple[str, ...]] = {
    ModelId.K31: ("weights/kandinsky3.pt",),
    ModelId.K31_FLASH: ("weights/kandinsky3_flash.pt",),
    ModelId.K31_REFINER: ("weights/kandinsky3.pt", "weights/kandinsky3_flash.pt"),
    ModelId.K31_INPAINT: ("weights/kandinsky3_inpainting.pt",),
    ModelId.SUPERRES: ("weights/kandinsky3_flash.pt",),
}
MODEL_LABELS = {
    ModelId.K22: "Kandinsky 2.2 (+ depth ControlNet)",
    ModelId.K31: "Kandinsky 3.1",
    ModelId.K31_FLASH: "Kandinsky 3.1 Flash",
    ModelId.K31_REFINER: "Kandinsky 3.1 + Flash refiner",
    ModelId.K31_INPAINT: "Kandinsky 3.1 inpainting (zoom out, expand, inpaint)",
    ModelId.SUPERRES: "KandiSuperRes (upscale x2, 4K)",
    ModelId.K5_VIDEO_5S: "Kandinsky 5.0 Video Lite, 5 s",
    ModelId.K5_VIDEO_10S: "Kandinsky 5.0 Video Lite, 10 s",
    ModelId.K31_IP_ADAPTER: "Kandinsky 3.1 IP-Adapter (editing)",
    ModelId.K31_CONTROLNET_HED: "Kandinsky 3.1 HED ControlNet (editing)",
}
# The folders of ai-forever's image-prompt repositories the bot reads (not their 35 GB text encoder).
IMAGE_PROMPT_FOLDERS = ("unet/", "unet_controlnet/", "image_encoder/", "image_processor/", "scheduler/")
FP16_VARIANT_REPOS: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RepoFile:
    path: str
    size: int


@dataclass
class RepoPlan:
    """One hub repository and the files of it the bot loads."""

    key: str  # the name in generation.sources (or "omnifusion", "omnifusion-clip")
    repo_id: str
    local_dir: Path | None  # None: the huggingface_hub cache
    files: list[RepoFile] = field(default_factory=list)
    missing: list[RepoFile] = field(default_factory=list)
    params: dict[str, int] = field(default_factory=dict)  # file path -> parameters

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def missing_size(self) -> int:
        return sum(f.size for f in self.missing)


def _ext(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    for ext in WEIGHT_EXTENSIONS + SMALL_EXTENSIONS:
        if name.endswith(ext) or name.endswith(ext + ".index.json"):
            return ext
    return ""


def select_files(key: str, files: Iterable[RepoFile], models: Iterable[ModelId] = tuple(ModelId)) -> list[RepoFile]:
    """The files of a repository that the loaders read.

    Configs and tokenizers always; weights: for the fp16-variant repositories only ``*.fp16.*``
    weights, elsewhere no variant files; in each folder safetensors when there are any, otherwise
    PyTorch pickles (never Flax / TF / ONNX copies). Kandinsky3.1 (ai-forever's format): the Flash
    UNet and its projection only.
    """
    files = list(files)
    if key == "hed-annotator":
        return [f for f in files if f.path == "ControlNetHED.pth"]
    if key == "superres":  # the two networks the bot loads (generation.superres), nothing else
        return [f for f in files if f.path in ("KandiSuperRes_flash_x2.pt", "KandiSuperRes.ckpt")]
    if key in ("k31-ip-adapter", "k31-controlnet-hed"):
        files = [f for f in files if f.path.startswith(IMAGE_PROMPT_FOLDERS) or f.path == "model_index.json"]
    if key == "k31":  # ai-forever's format: the encoder folder, the MoVQ, configs, the UNets needed
        from generation.k31_weights import UNET_FILES
        from generation.registry import MODELS, TEXT_ENCODER

        models = list(models)
        unets = {u for m in models for u in K31_UNETS.get(m, ())}
        # Without a model that encodes prompts (KandiSuperRes' refiner has a fixed context), only the
        # needed UNets' projections: the converter reads them.
        encoder = any(TEXT_ENCODER in MODELS[m].parts for m in models)
        projections = {projection for unet, projection in UNET_FILES.values() if unet in unets}
        return sorted(
            (
                f for f in files
                if (f.path.startswith("weights/flan_ul2_encoder/") and (encoder or f.path in projections))
                or f.path == "weights/movq.pt"
                or (f.path.startswith("weights/") and f.path.endswith("_config.json")) or f.path in unets
            ),
            key=lambda f: f.path,
        )
    by_folder: defaultdict[str, list[RepoFile]] = defaultdict(list)
    chosen: list[RepoFile] = []
    for f in files:
        ext = _ext(f.path)
        if ext in SMALL_EXTENSIONS and not f.path.endswith(".index.json"):
            chosen.append(f)
        elif ext in WEIGHT_EXTENSIONS:
            by_folder[posixpath.dirname(f.path)].append(f)
    variant = key in FP16_VARIANT_REPOS
    for folder_files in by_folder.values():
        wanted = [f for f in folder_files if (".fp16." in f.path) == variant]
        safetensors = [f for f in wanted if _ext(f.path) == ".safetensors"]
        pickles = [f for f in wanted if _ext(f.path) in (".bin", ".pt", ".pth")]
        chosen.extend(safetensors or pickles)
    return sorted(chosen, key=lambda f: f.path)


def plan_repos(settings: Settings, models: Iterable[ModelId] | None = None) -> list[RepoPlan]:
    """The repositories the configuration needs, without their file lists yet."""
    models = list(models) if models is not None else _configured_models(settings)
    keys: list[str] = []
    for model in models:
        keys.extend(k for k in MODEL_REPOS[model] if k not in keys)
    if settings.beautify_backend == "local" and settings.beautify_local_model is None:
        keys.append("beautifier-llm")
    models_dir = settings.kandinsky_models_dir
    plans = [
        RepoPlan(
            key,
            HUB_IDS[key].format(variant=settings.video_variant),  # the video repositories name their variant
            Path(models_dir) / FOLDERS[key].format(variant=settings.video_variant) if models_dir else None,
        )
        for key in keys
    ]
    if settings.faceswap_describer and "/" in settings.omnifusion_source and not Path(settings.omnifusion_source).exists():
        plans.append(RepoPlan("omnifusion", settings.omnifusion_source, None))
        plans.append(RepoPlan("omnifusion-clip", settings.omnifusion_clip_source, None))
    return plans


def _configured_models(settings: Settings) -> list[ModelId]:
    if not settings.worker_models:
        # The image models; the video models (about 25 GB each) only when named (WORKER_MODELS, --models),
        # else /video downloads its checkpoint on first use. The image-prompt models (the "Kandinsky 3.1"
        # editing model) only when asked for by name: their headers are not inspected the way the
        # others' are yet.
        from generation.video_specs import VIDEO_MODELS

        skipped = set(VIDEO_MODELS) | {ModelId.K31_IP_ADAPTER, ModelId.K31_CONTROLNET_HED}
        return [m for m in ModelId if m not in skipped]
    from app.worker import parse_models  # the same short forms as the workers

    return list(parse_models(settings.worker_models))


class Hub:
    """The hub calls fetch makes (huggingface_hub's own client, so tokens, mirrors and proxies work)."""

    def __init__(self, endpoint: str | None = None, cache_dir: Path | None = None) -> None:
        from huggingface_hub import HfApi

        self.endpoint = endpoint
        self.cache_dir = cache_dir
        self.api = HfApi(endpoint=endpoint)

    def list_files(self, repo_id: str) -> list[RepoFile]:
        from huggingface_hub.hf_api import RepoFile as HubFile

        entries = self.api.list_repo_tree(repo_id, recursive=True)
        return [RepoFile(e.path, int(e.size)) for e in entries if isinstance(e, HubFile)]

    def parameters(self, repo_id: str, path: str) -> int:
        """Parameters in a safetensors file, from its header alone (a ranged request)."""
        meta = self.api.parse_safetensors_file_metadata(repo_id, path)
        return sum(meta.parameter_count.values())

    def is_present(self, plan: RepoPlan, f: RepoFile) -> bool:
        if plan.local_dir is not None:
            target = plan.local_dir / f.path
            return target.is_file() and target.stat().st_size == f.size
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(plan.repo_id, f.path, cache_dir=self.cache_dir)
        return isinstance(cached, str) and Path(cached).stat().st_size == f.size

    def download(self, plan: RepoPlan, f: RepoFile) -> Path:
        from huggingface_hub import hf_hub_download

        kwargs = {"local_dir": plan.local_dir} if plan.local_dir is not None else {"cache_dir": self.cache_dir}
        return Path(hf_hub_download(plan.repo_id, f.path, endpoint=self.endpoint, **kwargs))


def _top_folder(path: str) -> str:
    return path.split("/", 1)[0] if "/" in path else ""


def inspect(plans: list[RepoPlan], hub: Hub, models: Iterable[ModelId] = tuple(ModelId)) -> None:
    """Fill in each plan's files, what is missing, and parameter counts per file."""
    models = list(models)
    for plan in plans:
        plan.files = select_files(plan.key, hub.list_files(plan.repo_id), models)
        plan.missing = [f for f in plan.files if not hub.is_present(plan, f)]
        for f in plan.files:
            if f.path.endswith(".safetensors"):
                count = hub.parameters(plan.repo_id, f.path)
            elif _ext(f.path) in (".bin", ".pt", ".pth"):
                count = f.size // 4  # pickles of these repositories hold fp32 weights
            else:
                continue
            plan.params[f.path] = count


def conversion_size(plans: list[RepoPlan], cache_dir: Path) -> int:
    """Disk the conversions into diffusers folders will take (the UNets and the MoVQ), unless done."""
    k31 = next((p for p in plans if p.key == "k31"), None)
    if k31 is None or (cache_dir.is_dir() and any(cache_dir.iterdir())):
        return 0
    return sum(f.size for f in k31.files if f.path.endswith(".pt") and "flan_ul2_encoder" not in f.path)


def free_space(path: Path) -> int:
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def part_parameters(plans: list[RepoPlan], part: str) -> int:
    """Parameters of the files under ``part`` ("<repo key>/<path prefix>")."""
    key, _, prefix = part.partition("/")
    return sum(
        count for plan in plans if plan.key == key for path, count in plan.params.items() if path.startswith(prefix)
    )


def part_size(plans: list[RepoPlan], part: str) -> int:
    key, _, prefix = part.partition("/")
    return sum(f.size for plan in plans if plan.key == key for f in plan.files if f.path.startswith(prefix))


def summary_rows(plans: list[RepoPlan], models: Iterable[ModelId], bytes_per_param: int) -> list[tuple[str, float, float]]:
    """(model, disk GB, GPU memory GB) per model, plus the beautifier and describer when planned."""
    by_key = {p.key: p for p in plans}
    rows = []
    for model in models:
        disk = sum(part_size(plans, part) for part in MODEL_PARTS[model])
        vram = sum(part_parameters(plans, part) for part in MODEL_PARTS[model]) * bytes_per_param
        rows.append((MODEL_LABELS[model], disk / GB, vram / GB))
    extras = {"beautifier-llm": "Prompt beautifier LLM", "omnifusion": "Face describer (OmniFusion + CLIP)"}
    for key, label in extras.items():
        if key in by_key:
            keys = [key] + (["omnifusion-clip"] if key == "omnifusion" else [])
            disk = sum(by_key[k].size for k in keys if k in by_key)
            vram = sum(sum(by_key[k].params.values()) for k in keys if k in by_key) * bytes_per_param
            rows.append((label, disk / GB, vram / GB))
    return rows


def format_table(rows: list[tuple[str, float, float]]) -> str:
    width = max([len(r[0]) for r in rows] + [5])
    lines = [f"{'Model':<{width}}  {'Disk, GB':>9}  {'GPU memory, GB':>14}"]
    lines += [f"{name:<{width}}  {disk:>9.2f}  {vram:>14.2f}" for name, disk, vram in rows]
    return "\n".join(lines)


def run(settings: Settings, *, endpoint: str | None = None, hf_cache: Path | None = None, yes_disk: bool = False,
        convert: bool = True, out=sys.stdout, context_url: str | None = None,
        context_sha256: dict[str, str] | None = None) -> int:
    """The whole fetch; returns the exit status (0 ok, 1 not enough disk or a download failed)."""
    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    if settings.generation_backend == "fake":
        say("GENERATION_BACKEND=fake draws placeholder pictures: no model is needed, nothing to download.")
        return 0
    models = _configured_models(settings)
    plans = plan_repos(settings, models)
    hub = Hub(endpoint, hf_cache)
    say(f"Checking {len(plans)} repositories on the hub…")
    inspect(plans, hub, models)
    cache_dir = settings.data_dir / "models"
    download = sum(p.missing_size for p in plans)
    conversion = conversion_size(plans, cache_dir) if convert else 0
    target = plans[0].local_dir.parent if plans and plans[0].local_dir else (hf_cache or _hf_cache_root())
    free = free_space(Path(target))
    say(f"To download: {download / GB:.2f} GB in {sum(len(p.missing) for p in plans)} files"
        f" (of {sum(p.size for p in plans) / GB:.2f} GB); Flash conversion: {conversion / GB:.2f} GB;"
        f" free in {target}: {free / GB:.2f} GB")
    if download + conversion + DISK_MARGIN > free and not yes_disk:
        say(f"Not enough disk space: {(download + conversion + DISK_MARGIN) / GB:.2f} GB needed "
            f"(with a {DISK_MARGIN / GB:.0f} GB margin). Free some space, or point KANDINSKY_MODELS_DIR / HF_HOME elsewhere.")
        return 1
    todo = [(p, f) for p in plans for f in p.missing]
    for i, (plan, f) in enumerate(todo, 1):
        say(f"[{i}/{len(todo)}] {plan.repo_id}/{f.path} ({f.size / 1024**2:.1f} MB)")
        try:
            hub.download(plan, f)
        except Exception as exc:  # noqa: BLE001 - one line, and the next run resumes
            say(f"Download failed: {plan.repo_id}/{f.path}: {type(exc).__name__}: {exc}. "
                "Run the command again: it continues where it stopped.")
            return 1
    if any(p.key == "superres" for p in plans):
        from generation import superres

        config = settings.generation_config()
        say("Downloading the KandiSuperRes refiner's context (from the authors' GitHub repository)…")
        try:
            superres.ensure_context(
                config.source("superres"), config.cache_dir, url=context_url or superres.CONTEXT_URL,
                sha256=context_sha256 or superres.CONTEXT_SHA256,
            )
        except (OSError, ValueError) as exc:
            say(f"Download failed: the KandiSuperRes context: {type(exc).__name__}: {exc}. Run the command again.")
            return 1
    if convert and any(p.key == "k31" for p in plans):
        say("Converting the Kandinsky 3.1 checkpoints into diffusers folders (once)…")
        _convert_flash(settings, models)
    say("")
    say(format_table(summary_rows(plans, models, 2 if settings.generation_dtype in ("fp16", "bf16") else 4)))
    say("")
    say("GPU memory: the weights at the bot's dtype (fp16/bf16 on CUDA); models that share parts "
        "(the Kandinsky 3 text encoder and MoVQ) hold them once. Everything is in place.")
    return 0


def _hf_cache_root() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _convert_flash(settings: Settings, models: Iterable[ModelId]) -> None:
    """The Kandinsky 3 family's UNets and MoVQ converted into diffusers folders, as the bot caches them."""
    import torch

    from generation import k31_weights

    config = settings.generation_config()
    dtype = torch.float32 if settings.generation_device == "cpu" else (
        torch.bfloat16 if settings.generation_dtype == "bf16" else torch.float16
    )
    source, cache_dir = config.source("k31"), Path(config.cache_dir)
    unets = {u for m in models for u in K31_UNETS.get(m, ())}
    for which, (unet_file, _) in k31_weights.UNET_FILES.items():
        if unet_file in unets:
            k31_weights.converted_unet_dir(source, which, cache_dir, dtype)
    k31_weights.converted_movq_dir(source, cache_dir, dtype)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.fetch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", help="only these models (like WORKER_MODELS: 2.2, 3.1, 3.1-flash, 3.1-refiner)")
    parser.add_argument("--ignore-disk-space", action="store_true", help="download even when the check says no")
    parser.add_argument("--no-convert", action="store_true", help="skip the Kandinsky 3.1 Flash conversion")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from pydantic import ValidationError

    from app.config import Settings, describe_error

    try:
        # The token is not needed here: a placeholder of the right shape stands in when none is set.
        overrides = {"worker_models": args.models} if args.models else {}
        settings = Settings(bot_token="0:" + "x" * 35, **overrides)
    except ValidationError as exc:
        print(describe_error(exc), file=sys.stderr)
        raise SystemExit(2) from None
    raise SystemExit(run(settings, yes_disk=args.ignore_disk_space, convert=not args.no_convert))


if __name__ == "__main__":
    main()
