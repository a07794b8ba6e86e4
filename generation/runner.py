"""Running one job, given only its id: the same code serves the embedded worker and GPU workers.

The job row is the source of truth. Its status moves by conditional updates
(queued -> running -> generated -> done, or failed / cancelled), so a job is never generated twice
once it has finished, and a result is delivered once: images are stored on disk before delivery, so
a failed send is retried later without generating again.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
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
from generation.moderation import BlockStage, ContentGuard
from generation.styles import DEFAULT_STYLE, STYLES
from storage.claims import JobClaims, lease
from storage.models import Job, JobStatus, ModerationKind, User, utcnow
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

    async def beautifying(self, ctx: JobContext) -> None:
        """The prompt is with the LLM (status message)."""
        ...

    async def censored(self, ctx: JobContext, previews: list[Path], upload: bool = False) -> None:
        """Nothing is sent: every image (or the user's photo, ``upload``) failed the NSFW check.
        ``previews``: heavily blurred stand-ins, when the operator allows them."""
        ...

    async def fetch_file(self, file_id: str) -> bytes: ...


class JobCensored(Exception):
    """The NSFW check stopped the job: ``code`` is "image_censored" or "upload_censored"."""

    def __init__(self, code: str, previews: list[Path] | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.previews = previews or []


# The editing modes get their input photos prepared: upright, RGB, scaled to the output's largest
# side in multiples of 64. Other modes get them as sent: face swap keeps the face's landmarks measured
# on the original photo, so that photo must reach it unchanged.
PREPARED_INPUT_MODES = frozenset(
    {Mode.IMG2IMG, Mode.RESTYLE_DEPTH, Mode.STYLE, Mode.FUSE, Mode.MIX, Mode.VARIATIONS}
)


def _decode_rgb(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


# Hooks that later stages plug in (beautification, safety) without the runner knowing them.
RequestHook = Callable[[JobContext, GenerationRequest], Awaitable[GenerationRequest]]


def build_request(job: Job, images: list[Image.Image] | None = None, prompt: str | None = None) -> GenerationRequest:
    """``prompt``: the prompt to use instead of the user's (the beautified one); the style applies to it."""
    params = job.params
    style = STYLES.get(params.get("style") or DEFAULT_STYLE, STYLES[DEFAULT_STYLE])
    return GenerationRequest(
        mode=Mode(job.kind),
        model=ModelId(job.model),
        prompt=style.apply(params.get("prompt", "") if prompt is None else prompt),
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
        guard: ContentGuard | None = None,
        worker_id: str = "embedded",
        lease_seconds: float = 60.0,
        delivery_lease_seconds: float = 300.0,
    ) -> None:
        self.db = db
        self.guard = guard  # beautification and the safety checks; None: neither
        # Claims let several worker processes share one database (storage.claims): a running job is
        # claimed for ``lease_seconds`` (renewed by its worker), one delivery attempt for
        # ``delivery_lease_seconds`` (longer than a send can take, flood-control waits included).
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.delivery_lease_seconds = delivery_lease_seconds
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

    async def _update_params(self, ctx: JobContext, **values: Any) -> None:
        params = dict(ctx.job.params, **values)
        async with self.db.session() as session:
            await Repositories(session).jobs.set_values(ctx.job.id, params=params)
            await session.commit()
        ctx.job.params = params

    async def _record(self, ctx: JobContext, kind: ModerationKind, detail: str | None = None) -> None:
        async with self.db.session() as session:
            await Repositories(session).moderation.add(ctx.job.user_id, kind, detail, job_id=ctx.job.id)
            await session.commit()

    async def run(self, job_id: int) -> None:
        """Generate (if still queued) and deliver one job."""
        cancel_event = threading.Event()
        self._cancel_events[job_id] = cancel_event
        try:
            if await self._transition(
                job_id,
                [JobStatus.QUEUED],
                JobStatus.RUNNING,
                started_at=utcnow(),
                attempts=Job.attempts + 1,
                claimed_by=self.worker_id,
                claim_expires_at=lease(self.lease_seconds),
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
            prepare = Mode(ctx.job.kind) in PREPARED_INPUT_MODES
            images = [
                await self._open_input(file_id, max_side if prepare else None)
                for file_id in ctx.job.params.get("input_file_ids") or []
            ]
            await self._check_inputs(ctx, images)
            request = build_request(ctx.job, images, await self._prepare_prompt(ctx))
            for hook in self.request_hooks:
                request = await hook(ctx, request)
            await self.events.started(ctx)
            async with self.events.working(ctx):
                results = await asyncio.to_thread(self.backend.generate, request, progress)
            if cancel_event.is_set():
                raise GenerationCancelled()
            notes = sorted({str(image.info["note"]) for image in results if "note" in image.info})
            if notes or ctx.job.params.get("notes"):  # e.g. "edges-canny": the caption says how it was made
                await self._update_params(ctx, notes=notes)
            await self._store_checked(ctx, results)
        except JobCensored as exc:
            if await self._transition(
                job_id, [JobStatus.RUNNING], JobStatus.CENSORED, error=exc.code, finished_at=utcnow()
            ):
                await self.events.censored(ctx, exc.previews, upload=exc.code == "upload_censored")
            return
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

    # -- beautification and safety ------------------------------------------------------------
    async def _check_inputs(self, ctx: JobContext, images: list[Image.Image]) -> None:
        """The NSFW check on the user's photos (editing, face swap) before they reach a model."""
        if self.guard is None or not images:
            return
        flagged = [v for v in await self.guard.check_images(images) or [] if v.nsfw]
        if flagged:
            await self._record(ctx, ModerationKind.UPLOAD_CENSORED, f"{max(v.score for v in flagged):.3f}")
            raise JobCensored("upload_censored")

    async def _prepare_prompt(self, ctx: JobContext) -> str | None:
        """The prompt to generate from: beautified when the user asked for it; None: the user's own.

        The text filter runs again here, on the LLM's prompt too; a blocked prompt fails the job with
        the "prompt_blocked" message.
        """
        params = ctx.job.params
        if self.guard is None or not params.get("prompt"):
            return None
        wants = bool(params.get("beautify")) and self.guard.beautification_available
        if wants:
            await self.events.beautifying(ctx)
        prepared = await self.guard.prepare_prompt(params["prompt"], beautify=wants)
        if prepared.blocked:
            beautified = prepared.blocked_stage is BlockStage.BEAUTIFIED
            kind = ModerationKind.BEAUTIFIED_BLOCKED if beautified else ModerationKind.PROMPT_BLOCKED
            await self._record(ctx, kind, prepared.blocked_entry)
            raise GenerationError("prompt_blocked")
        # Stored for the caption and the "Without beautification" button; every run rewrites them
        # (a job resubmitted by "Again" carries the old values).
        outcome = "beautified" if prepared.beautified else "fell_back" if prepared.fell_back else None
        await self._update_params(
            ctx, used_prompt=prepared.prompt if prepared.beautified else None, beautify_outcome=outcome
        )
        return prepared.prompt

    async def _store_checked(self, ctx: JobContext, results: list[Image.Image]) -> None:
        """Store the images that pass the NSFW check; raise JobCensored when none did."""
        if self.guard is None:
            await asyncio.to_thread(self._store, ctx.job.id, results)
            return
        verdicts = await self.guard.check_images(results) or []
        censored = [i for i, verdict in enumerate(verdicts) if verdict.nsfw]
        for i in censored:
            await self._record(ctx, ModerationKind.IMAGE_CENSORED, f"{verdicts[i].score:.3f}")
        await self._update_params(ctx, censored=censored)
        kept = {i: image for i, image in enumerate(results) if i not in censored}
        if kept:
            await asyncio.to_thread(self._store, ctx.job.id, kept)
            return
        # One heavily blurred stand-in for the notice (if the operator allows it).
        preview = await asyncio.to_thread(self.guard.blurred_preview, results[0]) if results else None
        paths = await asyncio.to_thread(self._store_previews, ctx.job.id, [preview] if preview else [])
        raise JobCensored("image_censored", paths)

    def _store_previews(self, job_id: int, previews: list[Image.Image]) -> list[Path]:
        folder = self.results_dir / str(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for index, preview in enumerate(previews):
            path = folder / f"preview-{index}.jpg"  # not *.png: never taken for a result
            preview.save(path, format="JPEG", quality=70)
            paths.append(path)
        return paths

    async def _open_input(self, file_id: str, max_side: int | None) -> Image.Image:
        """Download an input photo by its Telegram file id: upright RGB fitted to ``max_side`` in
        multiples of 64 (:func:`prepare_input_image`), or, with ``max_side=None``, RGB as sent.

        Inputs are stored as file ids, never bytes, so a job (or "Again") works after a restart; a
        file Telegram no longer serves, or one that is no longer a usable image, fails the job.
        """
        try:
            data = await self.events.fetch_file(file_id)
        except Exception as exc:
            raise GenerationError("input_missing", f"{file_id}: {exc}") from exc
        try:
            if max_side is None:
                return await asyncio.to_thread(_decode_rgb, data)
            return await asyncio.to_thread(prepare_input_image, data, max_side)
        except (InputImageError, OSError, ValueError) as exc:  # OSError: what Pillow raises on bad data
            raise GenerationError("input_invalid", f"{file_id}: {exc}") from exc

    def _store(self, job_id: int, images: list[Image.Image] | dict[int, Image.Image]) -> None:
        """Images as ``{index}.png``; a dict keeps the indices of images the safety check left out,
        so image ``i`` keeps its seed ``seed + i``."""
        folder = self.results_dir / str(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        items = images.items() if isinstance(images, dict) else enumerate(images)
        for index, image in items:
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

    async def _claim_delivery(self, job_id: int) -> bool:
        # The in-process guard above is not enough when several processes deliver: claim the
        # delivery in the database, so that only one of them sends the result.
        async with self.db.session() as session:
            claimed = await JobClaims(session).claim_delivery(job_id, self.worker_id, self.delivery_lease_seconds)
            await session.commit()
            return claimed

    async def _release_delivery(self, job_id: int) -> None:
        async with self.db.session() as session:
            await JobClaims(session).release(job_id, self.worker_id)
            await session.commit()

    async def _deliver(self, job_id: int) -> bool:
        ctx = await self._load(job_id)
        if ctx is None or ctx.job.status != JobStatus.GENERATED:
            return False
        if not await self._claim_delivery(job_id):
            return False
        paths = self.result_paths(job_id)
        try:
            file_ids = await self.events.deliver(ctx, paths)
        except Exception:
            log.warning("delivery of job %s failed; it will be retried", job_id, exc_info=True)
            await self._release_delivery(job_id)
            return False
        return await self._transition(
            job_id,
            [JobStatus.GENERATED],
            JobStatus.DONE,
            result_file_ids=file_ids,
            finished_at=utcnow(),
            claimed_by=None,
            claim_expires_at=None,
        )

