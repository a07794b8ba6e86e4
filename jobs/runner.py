"""Running one job, given only its id: the same code serves the embedded worker and GPU workers.

The job row is the source of truth. Its status moves by conditional updates
(queued -> running -> generated -> done, or failed / cancelled), so a job is never generated twice
once it has finished, and a result is delivered once: images are stored on disk before delivery, so
a failed send is retried later without generating again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

from PIL import Image

from generation.backend import (
    Backend,
    GenerationCancelled,
    GenerationError,
    GenerationRequest,
    ModelId,
    Mode,
)
from generation.images import InputImageError, decode_user_image, prepare_input_image
from generation.styles import DEFAULT_STYLE, STYLES
from jobs.claims import lease
from jobs.delivery import Delivery, DeliveryRetry
from jobs.events import JobContext, JobEvents
from jobs.params import AnimateParams, EditParams, JobOutcome, read_outcome, read_params, with_outcome
from jobs.results import ResultStore
from prompting.guard import BlockStage, ContentGuard
from storage.models import Job, JobStatus, ModerationKind, User, utcnow
from storage.repositories import Database, Repositories

log = logging.getLogger(__name__)


VIDEO_MODES = frozenset({Mode.ANIMATE, Mode.VIDEO})


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
    | {Mode.ZOOM_OUT, Mode.EXPAND, Mode.ZOOM_IN, Mode.INPAINT}  # upscale takes the picture as it is
)




def build_request(job: Job, images: list[Image.Image] | None = None, prompt: str | None = None) -> GenerationRequest:
    """``prompt``: the prompt to use instead of the user's (the beautified one); the style applies to it."""
    params = read_params(job)
    style = STYLES.get(params.style or DEFAULT_STYLE, STYLES[DEFAULT_STYLE])
    request = GenerationRequest(
        mode=Mode(job.kind),
        model=ModelId(job.model),
        prompt=style.apply(params.prompt if prompt is None else prompt),
        negative_prompt=params.negative_prompt or None,
        width=params.width,
        height=params.height,
        num_images=params.num_images,
        seed=params.seed,
        steps=params.steps,
        guidance_scale=params.guidance_scale,
        images=images or [],
        extra=dict(params.extra),
        style_suffix=style.suffix,
    )
    if isinstance(params, EditParams):
        request.weights = list(params.weights)
        request.strength = params.strength
    if isinstance(params, AnimateParams):
        request.extra["scenes"] = [scene.model_dump(mode="json") for scene in params.scenes]
    return request


class JobRunner:
    def __init__(
        self,
        db: Database,
        backend: Backend,
        events: JobEvents,
        results_dir: Path,
        guard: ContentGuard | None = None,
        worker_id: str = "embedded",
        lease_seconds: float = 60.0,
        delivery_lease_seconds: float = 300.0,
        delivery_retry: DeliveryRetry | None = None,
    ) -> None:
        self.db = db
        self.guard = guard  # beautification and the safety checks; None: neither
        # Claims let several worker processes share one database (jobs.claims): a running job is
        # claimed for ``lease_seconds`` (renewed by its worker), one delivery attempt for
        # ``delivery_lease_seconds`` (longer than a send can take, flood-control waits included).
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.delivery_lease_seconds = delivery_lease_seconds
        self.backend = backend
        self.events = events
        self.load_seconds: dict[str, float] = {}  # model -> how long its last load took (estimates)
        self.results = ResultStore(results_dir)
        self.delivery = Delivery(db, events, self.results, worker_id, delivery_lease_seconds, delivery_retry)
        self._cancel_events: dict[int, threading.Event] = {}
        self._requeue_on_cancel: set[int] = set()
        # Called when a job left the queue here (queued -> running): the positions behind it move up.
        self.on_dequeued: Callable[[int], None] | None = None

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
        return self.results.paths(job_id)

    async def _render_video(
        self, ctx: JobContext, request: GenerationRequest, progress: Callable[[int, int], None], cancel: threading.Event
    ) -> None:
        """ANIMATE / VIDEO: the backend writes the MP4 beside the results; the safety check looks at
        its sampled frames (the first, one a second, the last); one flagged frame withholds the video."""
        partial = self.results.partial_video(ctx.job.id)
        async with self.events.working(ctx):
            video = await asyncio.to_thread(self.backend.render_video, request, progress, partial)
        if cancel.is_set():
            partial.unlink(missing_ok=True)
            raise GenerationCancelled()
        frames = [image for _, image in video.samples]
        verdicts = (await self.guard.check_images(frames) if self.guard is not None and frames else None) or []
        flagged = [v for v in verdicts if v.nsfw]
        if flagged:
            partial.unlink(missing_ok=True)
            await self._record(ctx, ModerationKind.IMAGE_CENSORED, f"{max(v.score for v in flagged):.3f}")
            worst = max(range(len(verdicts)), key=lambda i: verdicts[i].score)
            preview = await asyncio.to_thread(self.guard.blurred_preview, frames[worst])
            paths = await asyncio.to_thread(self._store_previews, ctx.job.id, [preview] if preview else [])
            raise JobCensored("image_censored", paths)
        await asyncio.to_thread(self.results.save_video, ctx.job.id, partial, video.thumbnail)

    # -- the job ----------------------------------------------------------------------------
    async def _load(self, job_id: int) -> JobContext | None:
        async with self.db.session() as session:
            repos = Repositories(session)
            job = await repos.jobs.get(job_id)
            if job is None:
                return None
            user = await session.get(User, job.user_id)
            return JobContext(job=job, locale=user.language if user else "en")

    async def notify_failed(self, job_id: int, code: str) -> None:
        """Tell a failed job's chat why (best effort: the job has failed whatever Telegram says)."""
        ctx = await self._load(job_id)
        if ctx is None:
            return
        try:
            await self.events.failed(ctx, code)
        except Exception:
            log.warning("could not tell job %s's chat that it failed", job_id, exc_info=True)

    async def _transition(self, job_id: int, from_: list[str], to: str, **values: Any) -> bool:
        async with self.db.session() as session:
            repos = Repositories(session)
            moved = await repos.jobs.transition(job_id, from_, to, **values)
            await session.commit()
            return moved

    async def _update_outcome(self, ctx: JobContext, **values: Any) -> None:
        """Write what this run learnt (:class:`jobs.params.JobOutcome`) next to the parameters, on
        the row as it is now: the copy read when the job started may hold what /forgetface has
        removed since."""
        outcome = JobOutcome.model_validate(read_outcome(ctx.job).model_copy(update=values).model_dump())
        async with self.db.session() as session:
            row = await Repositories(session).jobs.rewrite_params(
                ctx.job.id, lambda current: with_outcome(ctx.job.kind, current, outcome)
            )
            await session.commit()
        if row is not None:
            ctx.job.params = row

    async def _face_inputs(self, ctx: JobContext) -> tuple[list[str], dict[str, Any]]:
        """A face-swap job's photo and face, looked up by user when it runs (never copied into the
        job): "Again" after a new /face uses the new face, and after /forgetface there is none."""
        async with self.db.session() as session:
            face = await Repositories(session).faces.get(ctx.job.user_id)
        if face is None:
            raise GenerationError("no_face", "the user has no face stored")
        return [face.file_id], {"face": face.profile}  # faceswap.backend.FACE_KEY

    async def _record(self, ctx: JobContext, kind: ModerationKind, detail: str | None = None) -> None:
        async with self.db.session() as session:
            await Repositories(session).moderation.add(ctx.job.user_id, kind, detail, job_id=ctx.job.id)
            await session.commit()

    async def run(self, job_id: int, deliver: bool = True) -> None:
        """Generate (if still queued) and deliver one job (``deliver=False``: the caller delivers)."""
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
                if self.on_dequeued is not None:
                    self.on_dequeued(job_id)
                await self._generate(job_id, cancel_event)
        finally:
            self._cancel_events.pop(job_id, None)
            self._requeue_on_cancel.discard(job_id)
        if deliver:
            await self.deliver(job_id)

    async def _generate(self, job_id: int, cancel_event: threading.Event) -> None:
        ctx = await self._load(job_id)
        if ctx is None:
            return
        if ctx.job.cancel_requested:
            cancel_event.set()
        loop = asyncio.get_running_loop()
        loading: dict[str, float] = {}  # model -> when its load began, while it loads

        def progress(step: int, total: int) -> None:  # runs in the worker thread
            if cancel_event.is_set():
                raise GenerationCancelled()
            for model, began in list(loading.items()):  # the first step: the model is in memory
                self.load_seconds[model] = time.monotonic() - began
                loading.pop(model, None)
            asyncio.run_coroutine_threadsafe(self.events.progress(ctx, step, total), loop)

        try:
            params = read_params(ctx.job)
            max_side = max(params.width, params.height)
            prepare = Mode(ctx.job.kind) in PREPARED_INPUT_MODES
            file_ids, face_extra = list(getattr(params, "input_file_ids", [])), {}
            if Mode(ctx.job.kind) == Mode.FACESWAP:
                file_ids, face_extra = await self._face_inputs(ctx)
            images = [await self._open_input(file_id, max_side if prepare else None) for file_id in file_ids]
            await self._check_inputs(ctx, images)
            request = build_request(ctx.job, images, await self._prepare_prompt(ctx))
            request.extra.update(face_extra)

            def on_stage(stage: str) -> None:  # runs in the worker thread
                asyncio.run_coroutine_threadsafe(self.events.stage(ctx, stage), loop)

            request.on_stage = on_stage
            model = str(request.model)
            if await asyncio.to_thread(self._is_cold, model):
                # Say so instead of a silent wait: the first use loads gigabytes (estimate: the last load).
                loading[model] = time.monotonic()
                await self.events.loading(ctx, self.load_seconds.get(model))
            else:
                await self.events.started(ctx)
            if request.mode in VIDEO_MODES:
                await self._render_video(ctx, request, progress, cancel_event)
            else:
                async with self.events.working(ctx):
                    results = await asyncio.to_thread(self.backend.generate, request, progress)
                if cancel_event.is_set():
                    raise GenerationCancelled()
                # e.g. "edges-canny": the caption says how the images were made (rewritten on every run)
                notes = sorted({str(image.info["note"]) for image in results if "note" in image.info})
                if notes or read_outcome(ctx.job).notes:
                    await self._update_outcome(ctx, notes=notes)
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
        params = read_params(ctx.job)
        if self.guard is None or not params.prompt:
            return None
        wants = params.beautify and self.guard.beautification_available
        if wants:
            await self.events.beautifying(ctx)
        prepared = await self.guard.prepare_prompt(params.prompt, beautify=wants)
        if prepared.blocked:
            beautified = prepared.blocked_stage is BlockStage.BEAUTIFIED
            kind = ModerationKind.BEAUTIFIED_BLOCKED if beautified else ModerationKind.PROMPT_BLOCKED
            await self._record(ctx, kind, prepared.blocked_entry)
            raise GenerationError("prompt_blocked")
        # Stored for the caption and the "Without beautification" button; every run rewrites them.
        outcome = "beautified" if prepared.beautified else "fell_back" if prepared.fell_back else None
        await self._update_outcome(
            ctx, used_prompt=prepared.prompt if prepared.beautified else None, beautify_outcome=outcome
        )
        return prepared.prompt

    def _is_cold(self, model: str) -> bool:
        """True when the backend reports the model as not loaded (then its first step waits for it)."""
        try:
            status = self.backend.model_status()
        except Exception:  # noqa: BLE001 - a backend that cannot tell: no loading message
            return False
        return any(entry.get("model") == model and not entry.get("loaded", True) for entry in status)

    async def _store_checked(self, ctx: JobContext, results: list[Image.Image]) -> None:
        """Store the images that pass the NSFW check; raise JobCensored when none did."""
        if self.guard is None:
            await asyncio.to_thread(self._store, ctx.job.id, results)
            return
        verdicts = await self.guard.check_images(results) or []
        censored = [i for i, verdict in enumerate(verdicts) if verdict.nsfw]
        for i in censored:
            await self._record(ctx, ModerationKind.IMAGE_CENSORED, f"{verdicts[i].score:.3f}")
        await self._update_outcome(ctx, censored=censored)
        kept = {i: image for i, image in enumerate(results) if i not in censored}
        if kept:
            await asyncio.to_thread(self._store, ctx.job.id, kept)
            return
        # One heavily blurred stand-in for the notice (if the operator allows it).
        preview = await asyncio.to_thread(self.guard.blurred_preview, results[0]) if results else None
        paths = await asyncio.to_thread(self._store_previews, ctx.job.id, [preview] if preview else [])
        raise JobCensored("image_censored", paths)

    def _store_previews(self, job_id: int, previews: list[Image.Image]) -> list[Path]:
        return self.results.save_previews(job_id, previews)

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
                return await asyncio.to_thread(decode_user_image, data)
            return await asyncio.to_thread(prepare_input_image, data, max_side)
        except (InputImageError, OSError, ValueError) as exc:  # OSError: what Pillow raises on bad data
            raise GenerationError("input_invalid", f"{file_id}: {exc}") from exc

    def _store(self, job_id: int, images: list[Image.Image] | dict[int, Image.Image]) -> None:
        """A dict keeps the indices of images the safety check left out, so image ``i`` keeps its
        seed ``seed + i``."""
        self.results.save(job_id, images if isinstance(images, dict) else dict(enumerate(images)))

    async def deliver(self, job_id: int) -> bool:
        """Send a generated job's stored images (:class:`jobs.delivery.Delivery`)."""
        return await self.delivery.deliver(job_id)
