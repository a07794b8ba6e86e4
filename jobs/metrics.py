"""Prometheus metrics and the ``/healthz`` + ``/metrics`` HTTP endpoints of the bot and the workers.

Every process has its own :class:`Metrics` (its own registry): the bot, each bot replica and each GPU
worker are scraped separately. Job counts come from the database at scrape time, so any replica
reports the same queue; generation times and Telegram errors are per process.
"""

from __future__ import annotations

import hmac
import logging
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError, TelegramRetryAfter
from aiogram.methods.base import TelegramType
from aiohttp import web
from PIL import Image
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from generation.backend import Backend, GenerationRequest, ModelId, ProgressFn
from generation.styles import MODELS
from jobs.claims import JobClaims
from storage.repositories import Database

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.methods import Response, TelegramMethod

log = logging.getLogger(__name__)

# Generation takes from a fraction of a second (Flash, small sizes) to minutes (K3.1 with offload).
GENERATION_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)

HealthFn = Callable[[], Awaitable[dict[str, Any]]]


class Metrics:
    def __init__(self, role: str) -> None:
        self.role = role
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.queue_length = Gauge(
            "kandinsky_queue_length", "Jobs waiting for a worker, by model", ["model"], registry=r
        )
        self.jobs = Gauge("kandinsky_jobs", "Jobs in the database by status and model", ["status", "model"], registry=r)
        self.generation_seconds = Histogram(
            "kandinsky_generation_seconds",
            "Time the model took for a request (all its images), by model",
            ["model"],
            buckets=GENERATION_BUCKETS,
            registry=r,
        )
        self.jobs_processed = Counter(
            "kandinsky_worker_jobs", "Jobs this process handled, by model and final status", ["model", "status"], registry=r
        )
        self.telegram_requests = Counter(
            "kandinsky_telegram_requests", "Bot API calls sent (every attempt)", ["method"], registry=r
        )
        self.telegram_errors = Counter(
            "kandinsky_telegram_errors", "Bot API calls that failed, by method and error", ["method", "error"], registry=r
        )
        self.telegram_retries = Counter(
            "kandinsky_telegram_retries", "Bot API calls sent again after a failure (flood control, 5xx)", ["method"], registry=r
        )
        self.gpu_memory = Gauge(
            "kandinsky_gpu_memory_bytes", "GPU memory allocated by this process (torch.cuda), by device", ["device"], registry=r
        )
        self.up = Gauge("kandinsky_up", "1 while the process runs", ["role"], registry=r)
        self.up.labels(role).set(1)
        self._known_job_labels: set[tuple[str, str]] = set()
        self._known_models: set[str] = {str(m) for m in MODELS}  # an empty queue reads 0

    async def refresh_jobs(self, db: Database) -> None:
        """Read the job counts from the database (at scrape time)."""
        async with db.session() as session:
            counts = await JobClaims(session).counts()
        seen: set[tuple[str, str]] = set()
        queued: dict[str, int] = {m: 0 for m in self._known_models}
        for status, model, n in counts:
            self.jobs.labels(status, model).set(n)
            seen.add((status, model))
            if status == "queued":
                queued[model] = queued.get(model, 0) + n
        for status, model in self._known_job_labels - seen:  # a status that emptied reads 0, not stale
            self.jobs.labels(status, model).set(0)
        self._known_job_labels |= seen
        for model, n in queued.items():
            self.queue_length.labels(model).set(n)
        self._known_models |= set(queued)

    def set_gpu_memory(self, per_device: Iterable[tuple[str, int]]) -> None:
        for device, used in per_device:
            self.gpu_memory.labels(device).set(used)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def gpu_memory() -> list[tuple[str, int]]:
    """Bytes allocated by this process on each CUDA device; 0 without CUDA.

    torch is only looked at if the backend imported it: a process that never imported torch holds
    no GPU memory, and importing it just to say so would cost seconds and hundreds of megabytes
    (the bot process of the distributed mode never imports it).
    """
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return [("none", 0)]
    return [(f"cuda:{i}", int(torch.cuda.memory_allocated(i))) for i in range(torch.cuda.device_count())]


class TimedBackend:
    """A backend that times every generation for ``kandinsky_generation_seconds{model}`` (wraps the
    real one; the bot's embedded worker and the GPU workers both use it)."""

    def __init__(self, inner: Backend, metrics: Metrics) -> None:
        self.inner = inner
        self.metrics = metrics

    def generate(self, request: GenerationRequest, progress: ProgressFn) -> list[Image.Image]:
        started = time.perf_counter()
        images = self.inner.generate(request, progress)
        # Only finished generations: a cancelled or failed one says nothing about the model's speed.
        self.metrics.generation_seconds.labels(str(request.model)).observe(time.perf_counter() - started)
        return images

    def generate_batch(self, requests: list[GenerationRequest], progress: ProgressFn) -> list[list[Image.Image]]:
        """Jobs of several users as one batch: each job waited the batch's time for its images."""
        started = time.perf_counter()
        results = self.inner.generate_batch(requests, progress)
        seconds = time.perf_counter() - started
        for request in requests:
            self.metrics.generation_seconds.labels(str(request.model)).observe(seconds)
        return results

    def render_video(self, request: GenerationRequest, progress: ProgressFn, path: Any) -> Any:
        """/animate and /video (timed like an image, under the job's model)."""
        started = time.perf_counter()
        video = self.inner.render_video(request, progress, path)  # type: ignore[attr-defined]
        self.metrics.generation_seconds.labels(str(request.model)).observe(time.perf_counter() - started)
        return video

    def model_status(self) -> list[dict[str, Any]]:
        return self.inner.model_status()

    def load(self, model: ModelId) -> None:
        self.inner.load(model)

    def unload(self, model: ModelId) -> None:
        self.inner.unload(model)


class MetricsRequestMiddleware(BaseRequestMiddleware):
    """Counts Bot API calls, their errors and their retries (install it after a retry middleware,
    so that it sees every attempt)."""

    def __init__(self, metrics: Metrics, remember: int = 512) -> None:
        self.metrics = metrics
        self.remember = remember
        # Method objects sent recently: a retry middleware sends the same object again. Holding them
        # keeps their ids from being reused while they are remembered.
        self._seen: OrderedDict[int, Any] = OrderedDict()

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        name = type(method).__name__
        if id(method) in self._seen:
            self.metrics.telegram_retries.labels(name).inc()
        else:
            self._seen[id(method)] = method
            while len(self._seen) > self.remember:
                self._seen.popitem(last=False)
        self.metrics.telegram_requests.labels(name).inc()
        try:
            return await make_request(bot, method)
        except TelegramRetryAfter:
            self.metrics.telegram_errors.labels(name, "retry_after").inc()
            raise
        except TelegramNetworkError:
            self.metrics.telegram_errors.labels(name, "network").inc()
            raise
        except TelegramAPIError as exc:
            self.metrics.telegram_errors.labels(name, type(exc).__name__).inc()
            raise


def bearer_guard(token: str | None) -> Any:
    """An aiohttp middleware: with ``token``, every request needs ``Authorization: Bearer <token>``."""

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if token is not None:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return web.json_response({"status": "unauthorized"}, status=401)
        return await handler(request)

    return guard


def add_routes(
    app: web.Application,
    metrics: Metrics,
    health: HealthFn,
    refresh: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """``GET /healthz`` (200 with JSON while healthy, 503 otherwise) and ``GET /metrics``.

    A failed check answers ``{"status": "error"}`` and nothing else: driver errors (host names,
    user names, paths) go to the log, not to whoever asks."""

    async def healthz(request: web.Request) -> web.Response:
        started = time.monotonic()
        try:
            body = await health()
        except Exception:
            log.warning("health check failed", exc_info=True)
            return web.json_response({"status": "error", "role": metrics.role}, status=503)
        body.setdefault("status", "ok")
        body.setdefault("role", metrics.role)
        body["check_seconds"] = round(time.monotonic() - started, 4)
        return web.json_response(body, status=200 if body["status"] == "ok" else 503)

    async def metrics_view(request: web.Request) -> web.Response:
        if refresh is not None:
            try:
                await refresh()
            except Exception:
                log.warning("could not refresh the metrics", exc_info=True)
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_view)


def monitoring_application(token: str | None = None) -> web.Application:
    """An empty application for :func:`add_routes`, behind the bearer token when one is set."""
    return web.Application(middlewares=[bearer_guard(token)])


async def start_server(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def parse_listen(value: str, default_port: int = 8080) -> tuple[str, int]:
    """``host:port``, ``:port`` or ``port`` -> (host, port)."""
    value = value.strip()
    if value.isdigit():
        return "0.0.0.0", int(value)
    if ":" not in value:
        return value or "0.0.0.0", default_port
    host, _, port = value.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port) if port else default_port
