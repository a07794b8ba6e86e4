"""Running one job, given only its id: the same code serves the embedded worker and GPU workers.

The job row is the source of truth. Its status moves by conditional updates
(queued -> running -> generated -> done, or failed / cancelled), so a job is never generated twice
once it has finished, and a result is delivered once: images are stored on disk before delivery, so
a failed send is retried later without generating again.

A job runs in three phases, so that the GPU never waits for the rest of the bot:
:meth:`JobRunner.prepare` (the claim, input photos, beautification, the input safety check: async
I/O), :meth:`JobRunner.generate` (the pipeline in a worker thread; jobs of one
:func:`generation.backend.batch_key` as one batch) and :meth:`JobRunner.finish` (the output safety
check, PNG encoding, storing, running -> generated). :meth:`JobRunner.run` does them one after the
other (benchmarks); the embedded queue builds the next job's request (:meth:`JobRunner.build`, before
its claim) and finishes the previous job while the GPU works, and a distributed worker finishes and
delivers a job while it generates the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy.ext.asyncio import AsyncSession

from generation.backend import (
    Backend,
    GenerationCancelled,
    GenerationError,
    GenerationRequest,
    ModelId,
    Mode,
    ProgressFn,
    batch_key,
    generate_each,
)
from generation.images import InputImageError, decode_user_image, prepare_input_image
from generation.styles import DEFAULT_STYLE, STYLES
from jobs.claims import lease
from jobs.delivery import Delivery, DeliveryRetry
from jobs.events import JobContext, JobEvents
from jobs.params import (
    OUTCOME_KEY,
    AnimateParams,
    EditParams,
    JobOutcome,
    read_outcome,
    read_params,
    with_outcome,
)
from jobs.results import ResultStore
from prompting.guard import BlockStage, ContentGuard
from storage.models import Job, JobStatus, ModerationKind, User, utcnow
from storage.repositories import Database, Repositories

log = logging.getLogger(__name__)


VIDEO_MODES = frozenset({Mode.ANIMATE, Mode.VIDEO})


@dataclass
class PreparedJob:
    """A claimed job ready for the GPU (:meth:`JobRunner.prepare`)."""

    ctx: JobContext
    request: GenerationRequest
    cancel: threading.Event  # set by a cancel or a shutdown: the job stops at its next step
    # The "starting" status edit, sent while the GPU starts; the finishing phase's edits wait for it.
    announced: asyncio.Future[Any] | None = None

    @property
    def job_id(self) -> int:
        return self.ctx.job.id


@dataclass
class BuiltRequest:
    """A queued job's request built ahead of its turn (:meth:`JobRunner.build`), or what stopped it."""

    ctx: JobContext
    request: GenerationRequest | None
    error: Exception | None = None


@dataclass
class RenderedVideo:
    """An ANIMATE / VIDEO job's MP4, written but not yet checked nor stored."""

    video: Any  # generation.video_io.VideoFile


# What the GPU phase hands the finishing phase for one job: its images, its video, or what ended it.
Outcome = list[Image.Image] | RenderedVideo | Exception


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


def job_batch_key(job: Job) -> tuple[Any, ...] | None:
    """The :func:`generation.backend.batch_key` of a queued job's request (None: it runs alone)."""
    try:
        return batch_key(build_request(job))
    except Exception:  # noqa: BLE001 - a row that does not parse runs alone (and fails there, told)
        return None


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
        self._cancel_events: dict[int, threading.Event] = {}  # every job held, in any phase
        self._requeue_on_cancel: set[int] = set()
        self._finishing: set[int] = set()  # past the GPU: checked, encoded and stored
        # Called when a job left the queue here (queued -> running): the positions behind it move up.
        self.on_dequeued: Callable[[int], None] | None = None

    # -- control --------------------------------------------------------------------------
    def cancel(self, job_id: int) -> bool:
        """Stop a job this runner holds: at its next denoising step, or, past the GPU, before it is
        marked generated (its stored images are deleted). False: the job is not held here."""
        event = self._cancel_events.get(job_id)
        if event is None:
            return False
        event.set()
        return True

    def interrupt_all(self) -> None:
        """On shutdown: stop the jobs being prepared or generated at their next step and put them
        back in the queue. Jobs past the GPU are left to finish (their images are made)."""
        self.interrupt([job_id for job_id in self._cancel_events if job_id not in self._finishing])

    def interrupt(self, job_ids: list[int]) -> None:
        """Stop these jobs at their next step and put them back in the queue."""
        for job_id in job_ids:
            event = self._cancel_events.get(job_id)
            if event is not None:
                self._requeue_on_cancel.add(job_id)
                event.set()

    @property
    def running_ids(self) -> list[int]:
        """The jobs this runner holds, in any phase (being prepared, generated or finished)."""
        return list(self._cancel_events)

    def result_paths(self, job_id: int) -> list[Path]:
        return self.results.paths(job_id)

    async def _render_video(self, prepared: PreparedJob, progress: ProgressFn) -> RenderedVideo:
        """ANIMATE / VIDEO on the GPU: the backend writes the MP4 beside the results (its safety
        check and storing are :meth:`_store_video`, in the finishing phase)."""
        partial = self.results.partial_video(prepared.job_id)
        async with self.events.working(prepared.ctx):
            video = await asyncio.to_thread(self.backend.render_video, prepared.request, progress, partial)
        if prepared.cancel.is_set():
            partial.unlink(missing_ok=True)
            raise GenerationCancelled()
        return RenderedVideo(video)

    async def _store_video(self, ctx: JobContext, rendered: RenderedVideo) -> None:
        """The safety check looks at the video's sampled frames (the first, one a second, the last);
        one flagged frame withholds the video."""
        partial = self.results.partial_video(ctx.job.id)
        frames = [image for _, image in rendered.video.samples]
        verdicts = (await self.guard.check_images(frames) if self.guard is not None and frames else None) or []
        flagged = [v for v in verdicts if v.nsfw]
        if flagged:
            partial.unlink(missing_ok=True)
            await self._record(ctx, ModerationKind.IMAGE_CENSORED, f"{max(v.score for v in flagged):.3f}")
            worst = max(range(len(verdicts)), key=lambda i: verdicts[i].score)
            preview = await asyncio.to_thread(self.guard.blurred_preview, frames[worst])
            paths = await asyncio.to_thread(self._store_previews, ctx.job.id, [preview] if preview else [])
            raise JobCensored("image_censored", paths)
        await asyncio.to_thread(self.results.save_video, ctx.job.id, partial, rendered.video.thumbnail)

    # -- the job ----------------------------------------------------------------------------
    async def _load(self, job_id: int) -> JobContext | None:
        async with self.db.session() as session:
            return await self._context(session, job_id)

    @staticmethod
    async def _context(session: AsyncSession, job_id: int) -> JobContext | None:
        job = await Repositories(session).jobs.get(job_id)
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
        current = read_outcome(ctx.job)
        outcome = JobOutcome.model_validate(current.model_copy(update=values).model_dump())
        if outcome == current and OUTCOME_KEY in (ctx.job.params or {}):  # nothing new: no write
            return
        async with self.db.session() as session:
            row = await Repositories(session).jobs.rewrite_params(
                ctx.job.id, lambda current: with_outcome(ctx.job.kind, current, outcome)
            )
            await session.commit()
        if row is not None:
            ctx.job.params = row

    async def _face_inputs(self, ctx: JobContext) -> tuple[list[str], dict[str, Any]]:
        """A face-swap job's photo and face, looked up by user when it runs (the job never stores
        them): "Again" after a new /face uses the new face, and after /forgetface there is none."""
        async with self.db.session() as session:
            face = await Repositories(session).faces.get(ctx.job.user_id)
        if face is None:
            raise GenerationError("no_face", "the user has no face stored")
        return [face.file_id], {"face": face.profile}  # faceswap.backend.FACE_KEY

    async def _record(self, ctx: JobContext, kind: ModerationKind, detail: str | None = None) -> None:
        async with self.db.session() as session:
            await Repositories(session).moderation.add(ctx.job.user_id, kind, detail, job_id=ctx.job.id)
            await session.commit()

    # -- the job, in three phases -------------------------------------------------------------
    async def run(self, job_id: int, deliver: bool = True) -> None:
        """Prepare, generate and finish one job, one phase after the other, then deliver it
        (``deliver=False``: the caller delivers). The embedded queue overlaps the phases of
        consecutive jobs instead (:class:`jobs.queue.EmbeddedQueue`)."""
        prepared = await self.prepare(job_id)
        if prepared is not None:
            outcomes = await self.generate([prepared])
            await self.finish(prepared, outcomes[0])
        if deliver:
            await self.deliver(job_id)

    async def build(self, job_id: int) -> BuiltRequest | None:
        """Build a queued job's request ahead of its turn, while the GPU works on others: input
        photos downloaded and checked, prompt beautified and checked. Nothing is claimed and the
        chat is not told (the job may still be cancelled, or passed by a fairer pick): a failure is
        kept for :meth:`prepare` to end the job with. None: the job is not queued, or is a face
        swap (its face is looked up when it starts: none after /forgetface, the new one after /face)."""
        ctx = await self._load(job_id)
        if ctx is None or ctx.job.status != JobStatus.QUEUED or ctx.job.kind == Mode.FACESWAP:
            return None
        try:
            return BuiltRequest(ctx, await self._build(ctx, announce=False))
        except Exception as exc:
            return BuiltRequest(ctx, None, exc)

    async def still_building(self, job_id: int) -> None:
        """A job's turn came before :meth:`build` finished: when it is the prompt that is with the
        LLM, the status message says so (best effort: the wait is the same either way)."""
        ctx = await self._load(job_id)
        if ctx is None or self.guard is None or not self.guard.beautification_available:
            return
        params = read_params(ctx.job)
        if params.prompt and params.beautify:
            try:
                await self.events.beautifying(ctx)
            except Exception:
                log.warning("could not tell job %s's chat that its prompt is being improved", job_id, exc_info=True)

    async def prepare_built(self, job_id: int, ahead: asyncio.Task[BuiltRequest | None] | None) -> PreparedJob | None:
        """:meth:`prepare` with what :meth:`build` made ahead (``ahead``: its task, None if nothing
        was built); a build still under way is waited for, and its chat told when the LLM has it."""
        built = None
        if ahead is not None:
            if not ahead.done():  # its turn came while the LLM still works on its prompt: say so
                await self.still_building(job_id)
            await asyncio.wait({ahead})
            if not ahead.cancelled() and ahead.exception() is None:
                built = ahead.result()
        return await self.prepare(job_id, built)

    async def prepare(self, job_id: int, built: BuiltRequest | None = None) -> PreparedJob | None:
        """Claim a queued job (queued -> running) and make it ready for the GPU: its input photos
        downloaded and checked, its prompt beautified and checked, its request built (or, when given,
        ``built``: what :meth:`build` made while it waited).

        None: nothing is left for the GPU: the job was no longer queued, or it ended here (failed,
        censored, cancelled, or returned to the queue on shutdown; its chat is told)."""
        cancel = threading.Event()
        self._cancel_events[job_id] = cancel  # registered first: a cancel during the claim is seen
        prepared: PreparedJob | None = None
        try:
            ctx = await self._claim(job_id)
            if ctx is None:
                return None
            if built is not None:
                built.ctx.job = ctx.job  # the row as claimed (the request's callbacks hold built.ctx)
                ctx = built.ctx
            if ctx.job.cancel_requested:
                cancel.set()
            try:
                if built is None:
                    request = await self._build(ctx)
                elif built.request is None:
                    raise built.error or GenerationError("internal", "no request was built")
                else:
                    request = built.request
                if cancel.is_set():  # cancelled (or interrupted) while it was being prepared
                    raise GenerationCancelled()
            except Exception as exc:
                await self._ended(ctx, exc)
                return None
            prepared = PreparedJob(ctx, request, cancel)
            return prepared
        finally:
            if prepared is None:
                self._release(job_id)

    async def _claim(self, job_id: int) -> JobContext | None:
        """queued -> running, claimed by this worker; the job as claimed (None: it was not queued)."""
        async with self.db.session() as session:
            repos = Repositories(session)
            if not await repos.jobs.transition(
                job_id,
                [JobStatus.QUEUED],
                JobStatus.RUNNING,
                started_at=utcnow(),
                attempts=Job.attempts + 1,
                claimed_by=self.worker_id,
                claim_expires_at=lease(self.lease_seconds),
            ):
                return None
            await session.commit()
            if self.on_dequeued is not None:  # after the commit: a refresh now no longer counts this job
                self.on_dequeued(job_id)
            return await self._context(session, job_id)

    async def _build(self, ctx: JobContext, announce: bool = True) -> GenerationRequest:
        params = read_params(ctx.job)
        max_side = max(params.width, params.height)
        prepare = Mode(ctx.job.kind) in PREPARED_INPUT_MODES
        file_ids, face_extra = list(getattr(params, "input_file_ids", [])), {}
        if Mode(ctx.job.kind) == Mode.FACESWAP:
            file_ids, face_extra = await self._face_inputs(ctx)
        images = [await self._open_input(file_id, max_side if prepare else None) for file_id in file_ids]
        await self._check_inputs(ctx, images)
        request = build_request(ctx.job, images, await self._prepare_prompt(ctx, announce))
        request.extra.update(face_extra)
        loop = asyncio.get_running_loop()

        def on_stage(stage: str) -> None:  # runs in the worker thread
            asyncio.run_coroutine_threadsafe(self.events.stage(ctx, stage), loop)

        request.on_stage = on_stage
        return request

    async def generate(
        self,
        batch: list[PreparedJob],
        near_end: Callable[[], None] | None = None,
        started: Callable[[], None] | None = None,
    ) -> list[Outcome]:
        """Run prepared jobs on the GPU: one job, or jobs sharing one :func:`batch_key` as one
        ``generate_batch`` call. Returns each job's outcome for :meth:`finish`: its images, its
        rendered video, or the exception that ends it. ``near_end`` is called (on the event loop)
        as the last step begins, so that the caller can claim what comes next meanwhile; ``started``
        once the pipeline has been handed to its thread.

        A member cancelled before or during the run gets GenerationCancelled and its images are
        dropped; the run itself stops only once every member is cancelled. When a batch fails, its
        members run again one at a time, so one bad request (or a batch too large for the GPU's
        memory) fails only its own job."""
        live = [p for p in batch if not p.cancel.is_set()]
        outcomes: dict[int, Outcome] = {}
        keys = {batch_key(p.request) for p in live}
        if len(live) > 1 and (len(keys) != 1 or None in keys):
            log.error("jobs %s do not share a batch key; running them one at a time", [p.job_id for p in live])
            for p in live:
                outcomes[p.job_id] = (await self.generate([p], started=started))[0]
        elif live:
            try:
                results = await self._on_gpu(live, near_end, started)
            except GenerationCancelled:
                results = [GenerationCancelled() for _ in live]
            except Exception as exc:
                if len(live) == 1:
                    results = [exc]
                else:
                    log.warning("a batch of jobs %s failed (%s); running them one at a time", [p.job_id for p in live], exc)
                    results = [(await self.generate([p], started=started))[0] for p in live]
            outcomes.update((p.job_id, result) for p, result in zip(live, results))
        ended: list[Outcome] = []
        for p in batch:
            outcome = outcomes.get(p.job_id)
            if outcome is None or (p.cancel.is_set() and not isinstance(outcome, BaseException)):
                outcome = GenerationCancelled()  # its images (if any) are dropped
            ended.append(outcome)
            self._finishing.add(p.job_id)  # from here on a shutdown lets it finish
        return ended

    async def _on_gpu(
        self, live: list[PreparedJob], near_end: Callable[[], None] | None, started: Callable[[], None] | None
    ) -> list[Outcome]:
        loop = asyncio.get_running_loop()
        model = str(live[0].request.model)
        loading: dict[str, float] = {}  # model -> when its load began, while it loads
        cold = await asyncio.to_thread(self._is_cold, model)
        if cold:
            loading[model] = time.monotonic()
        # "Starting" (or "loading the model", a silent wait otherwise) goes out while the GPU
        # starts: the GPU does not wait for Telegram. Progress edits follow it, never overtake it.
        announced = asyncio.gather(
            *(self.events.loading(p.ctx, self.load_seconds.get(model)) if cold else self.events.started(p.ctx) for p in live),
            return_exceptions=True,
        )

        def log_failures(done: asyncio.Future[Any]) -> None:
            if done.cancelled():
                return
            for p, result in zip(live, done.result()):
                if isinstance(result, Exception):
                    log.warning("could not tell job %s's chat that it started: %s", p.job_id, result)

        announced.add_done_callback(log_failures)
        for p in live:
            p.announced = announced

        async def tell(p: PreparedJob, step: int, total: int) -> None:
            await announced
            await self.events.progress(p.ctx, step, total)

        def progress(step: int, total: int) -> None:  # runs in the worker thread
            if all(p.cancel.is_set() for p in live):
                raise GenerationCancelled()
            for name, began in list(loading.items()):  # the first step: the model is in memory
                self.load_seconds[name] = time.monotonic() - began
                loading.pop(name, None)
            for p in live:
                if not p.cancel.is_set():
                    asyncio.run_coroutine_threadsafe(tell(p, step, total), loop)
            if near_end is not None and step == total - 1:
                loop.call_soon_threadsafe(near_end)

        if len(live) == 1 and live[0].request.mode in VIDEO_MODES:
            if started is not None:
                loop.call_soon(started)
            return [await self._render_video(live[0], progress)]
        async with contextlib.AsyncExitStack() as stack:
            for p in live:
                await stack.enter_async_context(self.events.working(p.ctx))
            if started is not None:
                # Runs at this task's next wait: the thread below has been handed its call by then.
                loop.call_soon(started)
            if len(live) == 1:
                return [await asyncio.to_thread(self.backend.generate, live[0].request, progress)]
            return list(await asyncio.to_thread(self._generate_batch, [p.request for p in live], progress))

    def _generate_batch(self, requests: list[GenerationRequest], progress: ProgressFn) -> list[list[Image.Image]]:
        batched = getattr(self.backend, "generate_batch", None)  # a backend without it runs one at a time
        results = batched(requests, progress) if batched is not None else generate_each(self.backend, requests, progress)
        if len(results) != len(requests):
            raise GenerationError("internal", f"{len(results)} results for a batch of {len(requests)}")
        return results

    async def finish(self, prepared: PreparedJob, outcome: Outcome) -> None:
        """After the GPU: one job's safety check, PNG encoding and storing, then running ->
        generated (the caller delivers). An exception as ``outcome`` ends the job the way
        :meth:`generate` found it (failed, cancelled, returned to the queue on shutdown)."""
        ctx = prepared.ctx
        try:
            if prepared.announced is not None:  # "starting" first, then what comes of the job
                await prepared.announced
            try:
                if isinstance(outcome, BaseException):
                    raise outcome
                if isinstance(outcome, RenderedVideo):
                    await self._store_video(ctx, outcome)
                else:
                    # e.g. "edges-canny": the caption says how the images were made (rewritten on every run)
                    notes = sorted({str(image.info["note"]) for image in outcome if "note" in image.info})
                    if notes or read_outcome(ctx.job).notes:
                        await self._update_outcome(ctx, notes=notes)
                    await self._store_checked(ctx, outcome)
                if prepared.cancel.is_set() and prepared.job_id not in self._requeue_on_cancel:
                    # Cancelled while its images were checked and stored: they go.
                    await asyncio.to_thread(self.results.delete, [prepared.job_id])
                    raise GenerationCancelled()
            except Exception as exc:
                await self._ended(ctx, exc)
                return
            await self._transition(prepared.job_id, [JobStatus.RUNNING], JobStatus.GENERATED, generated_at=utcnow())
        finally:
            self._release(prepared.job_id)

    async def _ended(self, ctx: JobContext, exc: BaseException) -> None:
        """A running job ended without images: censored, cancelled, returned to the queue (shutdown)
        or failed; its chat is told (except when it goes back to the queue)."""
        job_id = ctx.job.id
        if isinstance(exc, JobCensored):
            if await self._transition(
                job_id, [JobStatus.RUNNING], JobStatus.CENSORED, error=exc.code, finished_at=utcnow()
            ):
                await self.events.censored(ctx, exc.previews, upload=exc.code == "upload_censored")
        elif isinstance(exc, GenerationCancelled):
            if job_id in self._requeue_on_cancel:
                await self._transition(job_id, [JobStatus.RUNNING], JobStatus.QUEUED, started_at=None)
                log.info("job %s returned to the queue on shutdown", job_id)
            elif await self._transition(job_id, [JobStatus.RUNNING], JobStatus.CANCELLED, finished_at=utcnow()):
                await self.events.cancelled(ctx)
        elif isinstance(exc, GenerationError):
            log.warning("job %s failed: %s", job_id, exc)
            await self._transition(
                job_id, [JobStatus.RUNNING], JobStatus.FAILED, error=exc.code, finished_at=utcnow()
            )
            await self.events.failed(ctx, exc.code)
        else:
            log.error("job %s (%s, %s) failed", job_id, ctx.job.kind, ctx.job.model, exc_info=exc)
            await self._transition(
                job_id, [JobStatus.RUNNING], JobStatus.FAILED, error="internal", finished_at=utcnow()
            )
            await self.events.failed(ctx, "internal")

    def _release(self, job_id: int) -> None:
        self._cancel_events.pop(job_id, None)
        self._requeue_on_cancel.discard(job_id)
        self._finishing.discard(job_id)

    # -- beautification and safety ------------------------------------------------------------
    async def _check_inputs(self, ctx: JobContext, images: list[Image.Image]) -> None:
        """The NSFW check on the user's photos (editing, face swap) before they reach a model."""
        if self.guard is None or not images:
            return
        flagged = [v for v in await self.guard.check_images(images) or [] if v.nsfw]
        if flagged:
            await self._record(ctx, ModerationKind.UPLOAD_CENSORED, f"{max(v.score for v in flagged):.3f}")
            raise JobCensored("upload_censored")

    async def _prepare_prompt(self, ctx: JobContext, announce: bool = True) -> str | None:
        """The prompt to generate from: beautified when the user asked for it; None: the user's own.
        ``announce``: the status message says the prompt is with the LLM.

        The text filter runs again here, on the LLM's prompt too; a blocked prompt fails the job with
        the "prompt_blocked" message.
        """
        params = read_params(ctx.job)
        if self.guard is None or not params.prompt:
            return None
        wants = params.beautify and self.guard.beautification_available
        if wants and announce:
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
        """Store the images that pass the NSFW check; raise JobCensored when none did.

        PNG encoding (for a 1024 px picture, longer than the check) runs beside the check, in its own
        thread; the encoded files become results only for the images that passed."""
        job_id = ctx.job.id
        if self.guard is None:
            await asyncio.to_thread(self._store, job_id, results)
            return
        staging = asyncio.ensure_future(asyncio.to_thread(self.results.stage, job_id, dict(enumerate(results))))
        try:
            verdicts = await self.guard.check_images(results) or []
            await asyncio.shield(staging)  # a cancel here still waits below for the thread's files
        except BaseException:
            await asyncio.wait([staging])  # a thread cannot be stopped: let it end, then drop its files
            if not staging.cancelled():
                staging.exception()  # retrieved: the error raised is the one that came first
            await asyncio.to_thread(self.results.discard_staged, job_id)
            raise
        censored = [i for i, verdict in enumerate(verdicts) if verdict.nsfw]
        for i in censored:
            await self._record(ctx, ModerationKind.IMAGE_CENSORED, f"{verdicts[i].score:.3f}")
        await self._update_outcome(ctx, censored=censored)
        kept = [i for i in range(len(results)) if i not in censored]
        await asyncio.to_thread(self.results.publish, job_id, kept)  # the others' files go
        if kept:
            return
        # One heavily blurred stand-in for the notice (if the operator allows it).
        preview = await asyncio.to_thread(self.guard.blurred_preview, results[0]) if results else None
        paths = await asyncio.to_thread(self._store_previews, job_id, [preview] if preview else [])
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
