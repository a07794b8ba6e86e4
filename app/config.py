"""Configuration from environment variables and an optional ``.env`` file (pydantic-settings)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from faceswap.config import OMNIFUSION_REVISION, FaceSwapConfig
from generation.motion import AnimationSettings
from generation.sources import GenerationConfig
from prompting.beautify import BeautifierSettings
from prompting.safety import DEFAULT_NSFW_THRESHOLD, SafetySettings

# Telegram tokens look like "123456789:AAH...": a numeric bot id, a colon and a 35-character secret.
_TOKEN_RE = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{30,}$")
_WEBHOOK_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
# What a newcomer needs when the token is missing or wrong (Telegram's own documentation example token).
TOKEN_HELP = (
    "a token looks like 110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw (the bot's id, a colon, 35 letters, "
    "digits, - or _); get one from @BotFather in Telegram (/newbot) and put it in .env as BOT_TOKEN=...; "
    "to try the bot without a token, run scripts/try.sh (the playground)"
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    bot_token: SecretStr
    telegram_api_url: str | None = None  # a self-hosted Bot API server or the tests' emulator
    data_dir: Path = Path("data")
    database_url: str = ""  # default: sqlite+aiosqlite:///{data_dir}/bot.db
    # Connections a bot process keeps open (SQLAlchemy's pool_size; up to 10 more for a moment). A
    # burst of updates needs about 20 at once: a pool of 5 opened and closed one or two connections
    # per prompt (a thread each on SQLite, a server process each on PostgreSQL). GPU workers, with
    # little at once, keep SQLAlchemy's default.
    db_pool_size: int = Field(default=20, ge=1)
    admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    # Private-bot mode (bot.access): only these users (ids or @usernames), the owners and admins, and
    # whoever redeemed an owner's /invite link may use the bot. PRIVATE_BOT=true with an empty list:
    # invites only.
    allowed_users: Annotated[list[str], NoDecode] = Field(default_factory=list)
    private_bot: bool = False
    log_level: str = "INFO"

    generation_backend: Literal["diffusers", "fake"] = "diffusers"
    fake_step_seconds: float = 0.05  # the fake backend's time per denoising step
    max_image_side: int = Field(default=1024, ge=64, le=4096)
    max_pending_per_user: int = Field(default=2, ge=1)
    max_pending_total: int = Field(default=200, ge=1)
    daily_quota: int | None = Field(default=None, ge=1)  # jobs per user per UTC day; admins change it with /limits
    broadcast_rate: float = Field(default=25.0, gt=0)  # broadcast messages a second (Telegram allows ~30)

    # The diffusers backend (generation/).
    kandinsky_models_dir: Path | None = None
    generation_device: Literal["auto", "cuda", "cpu"] = "auto"
    generation_dtype: Literal["fp16", "bf16"] = "fp16"
    offload: Literal["none", "model", "sequential"] = "none"
    vram_budget_gb: float | None = None
    torch_compile: bool = False
    # torch.compile's mode for TORCH_COMPILE. "reduce-overhead" adds CUDA graphs: on an H200 a Kandinsky 3
    # UNet step of one image spent 109 ms launching kernels that replay as a graph in 44 ms
    # (benchmarks/RESULTS.md); each batch size then keeps its own graph and its memory.
    torch_compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = "default"
    # FP8 (torchao, the [fp8] extra) for the Kandinsky 3.1 UNets' linear layers, on GPUs that have FP8
    # (compute capability 8.9+: L4, L40S, H100, H200); elsewhere the UNets stay in GENERATION_DTYPE.
    fp8_unets: bool = False
    tf32: bool = True  # TF32 for fp32 matrix products on CUDA
    text_cache_mb: int = Field(default=256, ge=0)  # cached text-encoder outputs (generation.text_cache); 0: off

    # /animate and /video (generation.animate, generation.k5video).
    max_pending_videos_per_user: int = Field(default=1, ge=1)  # videos are expensive: their own limit
    animation_fps: int = Field(default=12, ge=1, le=30)
    animation_cadence: int = Field(default=2, ge=1, le=12)  # image-to-image on every k-th frame
    animation_strength: float = Field(default=0.35, gt=0.0, le=1.0)
    animation_frame_model: Literal["kandinsky-3.1-flash", "kandinsky-3.1"] = "kandinsky-3.1-flash"
    video_variant: Literal["distilled16steps", "nocfg", "sft", "pretrain"] = "distilled16steps"
    video_fps: int = Field(default=24, ge=1, le=60)  # the model's own; tests lower it
    video_short_side: int = Field(default=512, ge=32)

    # Face swap (/face and @me prompts, faceswap/). Without GHOST files the classical swap is used;
    # without GFPGAN weights restoring is skipped; without OmniFusion "@me" becomes "a person".
    faceswap_describer: bool = True
    omnifusion_source: str = "AIRI-Institute/OmniFusion"  # hub id or a local copy of the repository
    omnifusion_revision: str = OMNIFUSION_REVISION  # the hub commit its files are downloaded at
    omnifusion_clip_source: str = "openai/clip-vit-large-patch14-336"
    ghost_generator_path: Path | None = None  # GHOST's G_unet_2blocks.pth (its releases, sber-swap-v2.0)
    ghost_arcface_path: Path | None = None  # GHOST's arcface_model/backbone.pth (never glintr100.onnx)
    faceswap_restore: bool = True
    gfpgan_path: Path | None = None  # GFPGANv1.4.pth

    # Result files (DATA_DIR/results) are deleted this long after their job finished; undelivered
    # results are kept. 0: kept forever.
    results_retention_days: float = Field(default=3.0, ge=0)
    # A delivery Telegram refused for a passing reason is tried again after DELIVERY_RETRY_SECONDS,
    # doubling up to DELIVERY_RETRY_MAX_SECONDS; after DELIVERY_MAX_ATTEMPTS failures the job fails.
    delivery_retry_seconds: float = 30.0
    delivery_retry_max_seconds: float = Field(default=3600.0, gt=0)
    delivery_max_attempts: int = Field(default=10, ge=1)
    progress_edit_interval: float = 2.0  # at most one status edit per chat this often
    # Queued jobs that share the model, size and step count (any users') run as one batch of up to
    # this many jobs on the embedded worker; 1: every job runs alone.
    batch_max_jobs: int = Field(default=4, ge=1, le=16)

    # Prompt beautification with an LLM (prompting.beautify); users switch it on in /settings.
    beautify_backend: Literal["local", "openai", "off"] = "local"
    beautify_timeout: float = Field(default=30.0, gt=0)  # seconds for the answer (not the model load)
    beautify_local_model: str | None = None  # hub id or folder; default Intel/neural-chat-7b-v3-1
    beautify_max_new_tokens: int = Field(default=256, ge=16)
    beautify_openai_url: str = "http://127.0.0.1:8000/v1"  # vLLM, llama.cpp server, Ollama (.../v1)
    beautify_openai_model: str = "Intel/neural-chat-7b-v3-1"
    beautify_openai_api_key: SecretStr | None = None
    # Content safety (prompting.safety): the prompt blocklist and the OpenNSFW image check.
    safety_text_filter: bool = True
    safety_blocklist_path: Path | None = None  # default: prompting/data/blocklist.txt
    safety_image_filter: bool = True
    safety_nsfw_threshold: float = Field(default=DEFAULT_NSFW_THRESHOLD, ge=0.0, le=1.0)
    safety_nsfw_threads: int = Field(default=0, ge=0)  # onnxruntime threads per check; 0: a thread per core
    safety_blurred_preview: bool = True  # send a heavily blurred preview with the notice

    # Image editing: how long an album's first photo waits for the rest of the album.
    album_wait_seconds: float = Field(default=1.0, gt=0, le=10)

    # -- Scaling out (README "Scaling out"): Redis-backed queue and FSM, webhook replicas, metrics. --
    # REDIS_URL switches the distributed mode on: jobs go to GPU worker processes
    # (`python -m app.worker`) through taskiq Redis streams, FSM state lives in Redis.
    redis_url: str | None = None
    redis_prefix: str = "kandinsky"  # namespace of every Redis key (streams, FSM, control channel)
    # Users' rows and settings kept in memory between updates (storage.user_cache), forgotten at once
    # when this process changes them. Unset: 300 s, or 0 (off) in the distributed mode, where another
    # webhook replica may take a user's next update right after this one changed their settings;
    # 0: read the row on every update.
    user_cache_seconds: float | None = Field(default=None, ge=0)
    # The processes' event loop (app/event_loop.py): uvloop, or asyncio's own.
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    webhook_url: str | None = None  # public HTTPS URL Telegram posts updates to; unset: long polling
    # Checked against X-Telegram-Bot-Api-Secret-Token; unset: derived from the bot token (app.web).
    webhook_secret: SecretStr | None = None
    webhook_listen: str = "0.0.0.0:8080"  # host:port the webhook listens on (the webhook only)
    metrics_port: int | None = None  # /healthz and /metrics on this port (bot in either mode, workers)
    metrics_host: str = "127.0.0.1"  # ... on this interface: not reachable from outside unless asked
    metrics_token: SecretStr | None = None  # set: /healthz and /metrics want "Authorization: Bearer <it>"
    # The inpainting Mini App (handlers.webapp): its public HTTPS base URL (Telegram opens Mini Apps over
    # HTTPS only; http:// is accepted for 127.0.0.1 in tests). Unset: no Inpaint button. In webhook
    # mode the pages share the webhook's server; in polling mode they listen on WEBAPP_LISTEN.
    webapp_url: str | None = None
    webapp_listen: str = "0.0.0.0:8081"
    worker_models: Annotated[list[str], NoDecode] = Field(default_factory=list)  # empty: all models
    worker_name: str | None = None  # default: <hostname>-<pid>
    # A message whose worker died is redelivered after this idle time; longer than the longest job.
    worker_idle_timeout: float = Field(default=900.0, gt=0)
    job_lease_seconds: float = Field(default=60.0, gt=0)  # a silent worker loses its running job after this
    worker_heartbeat_seconds: float = Field(default=2.0, gt=0)  # claim renewal and cancel check
    max_job_attempts: int = Field(default=3, ge=1)  # workers that died on a job this often: it fails

    @field_validator("worker_models", mode="before")
    @classmethod
    def _split_models(cls, value: object) -> object:
        if isinstance(value, str):
            return [part for part in re.split(r"[,\s]+", value.strip()) if part]
        return value

    @model_validator(mode="after")
    def _heartbeat_within_lease(self) -> Settings:
        # A claim renewed less often than it lasts would expire under a live worker.
        if self.worker_heartbeat_seconds * 2 > self.job_lease_seconds:
            raise ValueError("WORKER_HEARTBEAT_SECONDS must be at most half of JOB_LEASE_SECONDS")
        return self

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret_format(cls, value: SecretStr | None) -> SecretStr | None:
        # What Telegram accepts as secret_token; anything else would fail setWebhook at start-up.
        if value is not None and not _WEBHOOK_SECRET_RE.match(value.get_secret_value()):
            raise ValueError("WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator("webapp_url")
    @classmethod
    def _webapp_url_https(cls, value: str | None) -> str | None:
        # Telegram opens Mini Apps over HTTPS only; plain HTTP is fine on this machine (tests, a tunnel).
        from urllib.parse import urlsplit

        if not value:
            return None
        url = urlsplit(value)
        local = url.hostname in ("127.0.0.1", "localhost", "::1")
        if url.scheme != "https" and not (url.scheme == "http" and local):
            raise ValueError("WEBAPP_URL must be an https:// URL (Telegram opens Mini Apps over HTTPS only)")
        return value.rstrip("/")

    @field_validator("bot_token")
    @classmethod
    def _token_format(cls, value: SecretStr) -> SecretStr:
        if not _TOKEN_RE.match(value.get_secret_value()):
            raise ValueError("BOT_TOKEN is malformed")
        return value

    @field_validator("allowed_users", mode="before")
    @classmethod
    def _split_allowed(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part for part in re.split(r"[,\s]+", value.strip()) if part]
        if isinstance(value, list):
            for entry in value:
                if not re.fullmatch(r"\d{1,20}|@?[A-Za-z][A-Za-z0-9_]{3,31}", str(entry)):
                    raise ValueError(f"ALLOWED_USERS: {entry!r} is neither a numeric user id nor a @username")
        return value

    @property
    def private(self) -> bool:
        return self.private_bot or bool(self.allowed_users)

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(part) for part in re.split(r"[,\s]+", value.strip()) if part]
        if isinstance(value, int):
            return [value]
        return value

    @property
    def user_cache_ttl(self) -> float:
        """Seconds a user's row is kept between updates (``user_cache_seconds``, or its default)."""
        if self.user_cache_seconds is not None:
            return self.user_cache_seconds
        return 0.0 if self.redis_url else 300.0

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'bot.db'}"

    @property
    def results_dir(self) -> Path:
        return self.data_dir / "results"

    @property
    def results_retention(self) -> timedelta | None:
        return timedelta(days=self.results_retention_days) if self.results_retention_days > 0 else None

    def generation_config(self) -> GenerationConfig:
        return GenerationConfig(
            models_dir=self.kandinsky_models_dir,
            device=self.generation_device,
            dtype=self.generation_dtype,
            offload=self.offload,
            vram_budget_gb=self.vram_budget_gb,
            compile=self.torch_compile,
            compile_mode=self.torch_compile_mode,
            fp8_unets=self.fp8_unets,
            tf32=self.tf32,
            text_cache_mb=self.text_cache_mb,
            max_image_side=self.max_image_side,
            cache_dir=self.data_dir / "models",
            video_variant=self.video_variant,
            video_fps=self.video_fps,
            video_short_side=self.video_short_side,
            animation_frame_model=self.animation_frame_model,
            animation=AnimationSettings(
                fps=self.animation_fps, cadence=self.animation_cadence, strength=self.animation_strength
            ),
        )

    def faceswap_config(self) -> FaceSwapConfig:
        return FaceSwapConfig(
            describer_enabled=self.faceswap_describer,
            describer_fake=self.generation_backend == "fake",
            omnifusion_source=self.omnifusion_source,
            omnifusion_revision=self.omnifusion_revision,
            clip_source=self.omnifusion_clip_source,
            ghost_generator_path=self.ghost_generator_path,
            ghost_arcface_path=self.ghost_arcface_path,
            restore_enabled=self.faceswap_restore,
            gfpgan_path=self.gfpgan_path,
            device=self.generation_device,
        )

    def secrets(self) -> list[str]:
        """Every secret value in the settings, for the log filter (bot.logging_setup)."""
        token = self.bot_token.get_secret_value()
        values = [token, token.partition(":")[2]]
        for secret in (self.webhook_secret, self.metrics_token, self.beautify_openai_api_key):
            if secret is not None:
                values.append(secret.get_secret_value())
        password = urlsplit(self.db_url).password if "://" in self.db_url else None
        if password:
            values.append(password)
        return values

    def beautifier_settings(self) -> BeautifierSettings:
        key = self.beautify_openai_api_key
        # The fake backend downloads nothing: the local LLM (a hub download) is replaced by a stand-in.
        fake = self.generation_backend == "fake" and self.beautify_backend == "local"
        return BeautifierSettings(
            backend="fake" if fake else self.beautify_backend,
            timeout_s=self.beautify_timeout,
            local_model=self.beautify_local_model,
            local_max_new_tokens=self.beautify_max_new_tokens,
            openai_base_url=self.beautify_openai_url,
            openai_model=self.beautify_openai_model,
            openai_api_key=key.get_secret_value() if key is not None else None,
        )

    def safety_settings(self) -> SafetySettings:
        return SafetySettings(
            text_filter=self.safety_text_filter,
            blocklist_path=self.safety_blocklist_path,
            image_filter=self.safety_image_filter,
            nsfw_threshold=self.safety_nsfw_threshold,
            nsfw_threads=self.safety_nsfw_threads,
            blurred_preview=self.safety_blurred_preview,
        )


def describe_error(exc: Exception) -> str:
    """One line for a settings error, without echoing secret values."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        parts = []
        for err in errors():
            name = ".".join(str(p) for p in err.get("loc", ())).upper() or "settings"
            msg = "is not set" if err.get("type") == "missing" else err.get("msg", "is invalid")
            msg = msg.removeprefix("Value error, ")
            if name == "BOT_TOKEN":
                msg = f"{msg}: {TOKEN_HELP}"
            parts.append(msg if msg.startswith(name) else f"{name} {msg}")
        return "Configuration error: " + "; ".join(parts)
    return f"Configuration error: {exc}"
