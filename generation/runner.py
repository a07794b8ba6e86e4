"""Running one job, given only its id: the same code serves the embedded worker and GPU workers.

The job row is the source of truth. Its status moves by conditional updates
(queued -> running -> generated -> done, or failed / cancelled), so a job is never generated twice
once it has finished, and a result is delivered once: images are stored on disk before delivery, so
a failed send is retried later without generating again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from generation.backend import (
    Backend,
    GenerationCancelled,
    GenerationError,
    GenerationRequest,
    ModelId,
    Mode,
)
from generation.images import InputImageError, prepare_input_image
from generation.styles import DEFAULT_STYLE, STYLES
from storage.models import Job, JobStatus, User, utcnow
from storage.repositories import Database, Repositories

log = logging.getLogger(__name__)


@dataclass
class JobContext:
    """What the notifier needs to talk to the job's chat."""

    job: Job
    locale: str


class JobEvents(Protocol):
    """The chat side of a job (implemented with aiogram in bot.notifier)."""

    async def started(self, ctx: JobContext) -> None: ...

    async def progress(self, ctx: JobContext, step: int, total: int) -> None: ...

    def working(self, ctx: JobContext) -> contextlib.AbstractAsyncContextManager[Any]: ...

    async def deliver(self, ctx: JobContext, paths: list[Path]) -> list[str]:
        """Send the stored images; return their Telegram file ids. Raises if Telegram refused."""
        ...

    async def failed(self, ctx: JobContext, code: str) -> None: ...

    async def cancelled(self, ctx: JobContext) -> None: ...

    async def fetch_file(self, file_id: str) -> bytes: ...


# Hooks that later stages plug in (beautification, safety) without the runner knowing them.
RequestHook = Callable[[JobContext, GenerationRequest], Awaitable[GenerationRequest]]


def build_request(job: Job, images: list[Image.Image] | None = None) -> GenerationRequest:
    params = job.params
    style = STYLES.get(params.get("style") or DEFAULT_STYLE, STYLES[DEFAULT_STYLE])
    return GenerationRequest(
        mode=Mode(job.kind),
        model=ModelId(job.model),
        prompt=style.apply(params.get("prompt", "")),
        negative_prompt=params.get("negative_prompt") or None,
        width=int(params["width"]),
        height=int(params["height"]),
        num_images=int(params.get("num_images", 1)),
        seed=int(params["seed"]),
        steps=params.get("steps"),
        guidance_scale=params.get("guidance_scale"),
        images=images or [],
        weights=list(params.get("weights") or []),
        strength=float(params.get("strength", 0.6)),
        extra=dict(params.get("extra") or {}),
    )


class JobRunner:
    def __init__(
        self,
        db: Database,
        backend: Backend,
        events: JobEvents,
        results_dir: Path,
        request_hooks: list[RequestHook] | None = None,
    ) -> None:
        self.db = db
        self.backend = backend
        self.events = events
        self.results_dir = results_dir
        self.request_hooks = request_hooks or []
        self._cancel_events: dict[int, threading.Event] = {}
        self._requeue_on_cancel: set[int] = set()
        self._delivering: set[int] = set()  # one delivery at a time per job in this process

    # -- control --------------------------------------------------------------------------
    def cancel(self, job_id: int) -> bool:
        """Stop a running job at its next denoising step."""
        event = self._cancel_events.get(job_id)
        if event is None:
            return False
        event.set()
        return True

    def interrupt_all(self) -> None:
        """On shutdown: stop running jobs at the next step and put them back in the queue."""
        for job_id, event in self._cancel_events.items():
            self._requeue_on_cancel.add(job_id)
            event.set()

    @property
    def running_ids(self) -> list[int]:
        return list(self._cancel_events)

    def result_paths(self, job_id: int) -> list[Path]:
        return sorted((self.results_dir / str(job_id)).glob("*.png"), key=lambda p: int(p.stem))

    # -- the job ----------------------------------------------------------------------------
    async def _load(self, job_id: int) -> JobContext | None:
        async with self.db.session() as session:
            repos = Repositories(session)
            job = await repos.jobs.get(job_id)
            if job is None:
                return None
            user = await session.get(User, job.user_id)
            return JobContext(job=job, locale=user.language if user else "en")

    async def _transition(self, job_id: int, from_: list[str], to: str, **values: Any) -> bool:
        async with self.db.session() as session:
            repos = Repositories(session)
            moved = await repos.jobs.transition(job_id, from_, to, **values)
            await session.commit()
            return moved

    async def run(self, job_id: int) -> None:
        """Generate (if still queued) and deliver one job."""
        cancel_event = threading.Event()
        self._cancel_events[job_id] = cancel_event
        try:
            if await self._transition(
                job_id, [JobStatus.QUEUED], JobStatus.RUNNING, started_at=utcnow(), attempts=Job.attempts + 1
            ):
                await self._generate(job_id, cancel_event)
        finally:
            self._cancel_events.pop(job_id, None)
            self._requeue_on_cancel.discard(job_id)
        await self.deliver(job_id)

    async def _generate(self, job_id: int, cancel_event: threading.Event) -> None:
        ctx = await self._load(job_id)
        if ctx is None:
            return
        if ctx.job.cancel_requested:
            cancel_event.set()
        loop = asyncio.get_running_loop()

        def progress(step: int, total: int) -> None:  # runs in the worker thread
            if cancel_event.is_set():
                raise GenerationCancelled()
            asyncio.run_coroutine_threadsafe(self.events.progress(ctx, step, total), loop)

        try:
            max_side = max(int(ctx.job.params["width"]), int(ctx.job.params["height"]))
            images = [
                await self._open_input(file_id, max_side) for file_id in ctx.job.params.get("input_file_ids") or []
            ]
            request = build_request(ctx.job, images)
            for hook in self.request_hooks:
                request = await hook(ctx, request)
            await self.events.started(ctx)
            async with self.events.working(ctx):
                results = await asyncio.to_thread(self.backend.generate, request, progress)
            if cancel_event.is_set():
                raise GenerationCancelled()
            await asyncio.to_thread(self._store, job_id, results)
        except GenerationCancelled:
            if job_id in self._requeue_on_cancel:
                await self._transition(job_id, [JobStatus.RUNNING], JobStatus.QUEUED, started_at=None)
                log.info("job %s returned to the queue on shutdown", job_id)
            elif await self._transition(job_id, [JobStatus.RUNNING], JobStatus.CANCELLED, finished_at=utcnow()):
                await self.events.cancelled(ctx)
            return
        except GenerationError as exc:
            log.warning("job %s failed: %s", job_id, exc)
            await self._transition(
                job_id, [JobStatus.RUNNING], JobStatus.FAILED, error=exc.code, finished_at=utcnow()
            )
            await self.events.failed(ctx, exc.code)
            return
        except Exception:
            log.exception("job %s (%s, %s) failed", job_id, ctx.job.kind, ctx.job.model)
            await self._transition(
                job_id, [JobStatus.RUNNING], JobStatus.FAILED, error="internal", finished_at=utcnow()
            )
            await self.events.failed(ctx, "internal")
            return
        await self._transition(job_id, [JobStatus.RUNNING], JobStatus.GENERATED, generated_at=utcnow())

    async def _open_input(self, file_id: str, max_side: int) -> Image.Image:
        """Download an input photo by its Telegram file id; upright RGB, fitted to ``max_side``.

        Inputs are stored as file ids, never bytes, so a job (or "Again") works after a restart; a
        file Telegram no longer serves, or one that is no longer a usable image, fails the job.
        """
        try:
            data = await self.events.fetch_file(file_id)
        except Exception as exc:
            raise GenerationError("input_missing", f"{file_id}: {exc}") from exc
        try:
            return await asyncio.to_thread(prepare_input_image, data, max_side)
        except InputImageError as exc:
            raise GenerationError("input_invalid", f"{file_id}: {exc}") from exc

    def _store(self, job_id: int, images: list[Image.Image]) -> None:
        folder = self.results_dir / str(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        for index, image in enumerate(images):
            tmp = folder / f"{index}.png.tmp"
            image.save(tmp, format="PNG")
            tmp.replace(folder / f"{index}.png")  # atomic: a crash never leaves half a file

    async def deliver(self, job_id: int) -> bool:
        """Send a generated job's stored images; on success mark it done. Safe to call again."""
        if job_id in self._delivering:
            return False
        self._delivering.add(job_id)
        try:
            return await self._deliver(job_id)
        finally:
            self._delivering.discard(job_id)

    async def _deliver(self, job_id: int) -> bool:
        ctx = await self._load(job_id)
        if ctx is None or ctx.job.status != JobStatus.GENERATED:
            return False
        paths = self.result_paths(job_id)
        try:
            file_ids = await self.events.deliver(ctx, paths)
        except Exception:
            log.warning("delivery of job %s failed; it will be retried", job_id, exc_info=True)
            return False
        return await self._transition(
            job_id, [JobStatus.GENERATED], JobStatus.DONE, result_file_ids=file_ids, finished_at=utcnow()
        )

