"""The job service: what handlers call to create and cancel jobs (no torch, no Telegram)."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from generation.backend import Mode, ModelId
from generation.styles import image_size
from jobs.params import JobParams, params_class
from jobs.queue import JobQueue
from prompting.guard import ContentGuard
from storage.control import Limits, PauseState, QueueControlRepository, day_start
from storage.estimates import RunTimeEstimates
from storage.models import Job, JobStatus, ModerationKind, User, utcnow
from storage.repositories import Repositories

MAX_PROMPT_LENGTH = 1000
VIDEO_KINDS = frozenset({Mode.ANIMATE, Mode.VIDEO})
MAX_SEED = 2**31 - 1


class AdmissionError(Exception):
    """The request is refused before a job exists. ``code`` names the message; ``details`` fill it."""

    def __init__(self, code: str, limit: int, **details: Any) -> None:
        super().__init__(code)
        self.code = code
        self.limit = limit
        self.details = details


class PromptBlocked(AdmissionError):
    """The prompt matched the blocklist: refused with a neutral message, counted, no job created."""

    def __init__(self, entry: str) -> None:
        super().__init__("prompt-blocked", 0)
        self.entry = entry


@dataclass
class CancelResult:
    queued: list[Job]
    running: list[Job]


# Sends the "queued, position N" status message; returns its message id.
Announce = Callable[[Job, int], Awaitable[int | None]]


@dataclass
class _Request:
    """A job waiting for admission: its row (transient: the batch inserts it), and where its outcome goes."""

    repos: Repositories
    job: Job
    kind: Mode
    outcome: asyncio.Future[Any]


@dataclass
class _StatusId:
    """A status message's id waiting to be written, and the future that says it was."""

    job_id: int
    message_id: int
    written: asyncio.Future[Any]


_LEAD = object()  # the outcome that tells a waiting request to admit (or write) the next batch


def _hand_over(waiting: list[tuple[Any, asyncio.Future[Any]]]) -> list[Any]:
    """The turn to write the next batch: the entries still waiting, the first of them told it leads."""
    still = [(entry, future) for entry, future in waiting if not future.done()]
    if still:
        still[0][1].set_result(_LEAD)
    return [entry for entry, _ in still]


# Seeds need to differ, not to be secret: one generator seeded from the OS at start, instead of a
# system call for every job.
_seeds = random.Random()


def new_seed() -> int:
    return _seeds.randrange(MAX_SEED)


class JobService:
    def __init__(
        self,
        queue: JobQueue,
        max_image_side: int,
        max_pending_per_user: int,
        max_pending_total: int,
        daily_quota: int | None = None,
        guard: ContentGuard | None = None,
        max_pending_videos_per_user: int = 1,
        estimates: RunTimeEstimates | None = None,
    ) -> None:
        self.queue = queue
        # The models' recent run times, for the estimated waits (read at most every few seconds).
        self.estimates = estimates or RunTimeEstimates()
        self.max_pending_videos_per_user = max_pending_videos_per_user
        self.guard = guard
        self.max_image_side = max_image_side
        # Defaults from the environment; admins override them from the chat (stored in bot_settings).
        self.default_limits = Limits(max_pending_per_user, max_pending_total, daily_quota)
        self._user_locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        # Admission (the total limit is shared by all users): one batch at a time (:meth:`_admit`).
        self._admitting = False
        self._waiting: list[_Request] = []
        # Status message ids: written a batch at a time, like admission (:meth:`_record_status_message`).
        self._writing_status_ids = False
        self._status_ids: list[_StatusId] = []

    async def check_prompt(self, repos: Repositories, user: User, params: JobParams) -> None:
        """The text filter on the prompt before a job exists; a refusal is counted for admins."""
        if self.guard is None:
            return
        entry = self.guard.check_text(params.prompt)
        if entry is not None:
            await repos.moderation.add(user.id, ModerationKind.PROMPT_BLOCKED, entry)
            await repos.commit()
            raise PromptBlocked(entry)

    def params_from_settings(
        self, user: User, prompt: str, kind: Mode = Mode.TEXT2IMG, **overrides: Any
    ) -> JobParams:
        """The parameters of a ``kind`` job from the user's settings; ``overrides`` are fields of the
        kind's parameters class (:data:`jobs.params.PARAMS_BY_KIND`), validated here."""
        settings = user.settings
        width, height = image_size(settings.aspect_ratio, self.max_image_side)
        values: dict[str, Any] = {
            "prompt": prompt,
            "style": settings.style,
            "negative_prompt": settings.negative_prompt,
            "aspect_ratio": settings.aspect_ratio,
            "width": width,
            "height": height,
            "num_images": settings.num_images,
            "seed": settings.fixed_seed if settings.fixed_seed is not None else new_seed(),
            "beautify": settings.beautify,
        }
        values.update(overrides)
        return params_class(kind).model_validate(values)

    async def submit(
        self,
        repos: Repositories,
        user: User,
        chat_id: int,
        params: JobParams,
        announce: Announce,
        kind: Mode = Mode.TEXT2IMG,
        model: str | None = None,
    ) -> Job:
        """Admission control, a queued job row, its status message, then the queue.

        Raises AdmissionError (and creates nothing) when the user or the queue is over its limit, and
        PromptBlocked (an AdmissionError) when the prompt matches the blocklist.
        Requests are admitted one at a time (in this process by a lock, across processes on
        PostgreSQL by an advisory lock), so simultaneous messages cannot slip past the per-user or
        the total limit.
        """
        async with self._user_locks[user.id]:
            await self.check_prompt(repos, user, params)
            row = Job(
                user_id=user.id,
                chat_id=chat_id,
                kind=str(kind),
                model=str(ModelId(model or user.settings.model)),
                params=params_class(kind).model_validate(params.model_dump()).to_row(),
                status=JobStatus.QUEUED,
            )
            job, position = await self._admit(_Request(repos, row, Mode(kind), asyncio.get_running_loop().create_future()))
            message_id = await announce(job, position)
            # The row's one change after the status message, written with the others sent meanwhile.
            if message_id is not None:
                await self._record_status_message(repos, job.id, message_id)
            job.status_message_id = message_id
        await self.queue.submit(job.id)
        return job

    async def _admit(self, request: _Request) -> tuple[Job, int]:
        """Admit ``request`` together with those that arrive meanwhile (group commit).

        Admission is one short transaction under a lock (in this process, and on PostgreSQL across
        replicas by an advisory lock), committed before any status message goes out. Under a burst
        of prompts, one request at a time would make each wait for all the transactions before it;
        so whoever finds the lock free admits every request waiting at that moment in one
        transaction, checked one after another in arrival order exactly as if alone, and hands the
        lock to the first request that arrived meanwhile, which does the same.
        """
        self._waiting.append(request)
        if self._admitting:
            try:
                outcome = await request.outcome
            except asyncio.CancelledError:
                # Cancelled just as its turn to lead came: the turn goes to the next one.
                if request.outcome.done() and not request.outcome.cancelled() and request.outcome.result() is _LEAD:
                    self._waiting = [r for r in self._waiting if r is not request]
                    self._pass_lead()
                raise
            if outcome is not _LEAD:
                return outcome
            request.outcome = asyncio.get_running_loop().create_future()  # this one leads the next batch
        self._admitting = True
        batch, self._waiting = [r for r in self._waiting if not r.outcome.done()], []
        try:
            await self._admit_batch(request.repos, batch)
        finally:
            for waiting in batch:
                if not waiting.outcome.done():  # the transaction failed or was cancelled
                    waiting.outcome.set_exception(RuntimeError("admission did not finish"))
            if not request.outcome.cancelled():
                request.outcome.exception()  # this one's failure, if any, is raised as it is
            self._pass_lead()
        return request.outcome.result()

    async def _record_status_message(self, repos: Repositories, job_id: int, message_id: int) -> None:
        """Write a job's status message id, together with the ids that arrive meanwhile.

        Under a burst every prompt's status message goes out at about the same moment; one UPDATE
        (executemany) and one commit for all of them, instead of a write transaction each, queued on
        SQLite's write lock. Whoever finds no batch being written writes the waiting ones with its
        own session, then hands the turn to the first that arrived meanwhile (as :meth:`_admit`)."""
        entry = _StatusId(job_id, message_id, asyncio.get_running_loop().create_future())
        self._status_ids.append(entry)
        if self._writing_status_ids:
            try:
                if await entry.written is not _LEAD:
                    return
            except asyncio.CancelledError:
                if entry.written.done() and not entry.written.cancelled() and entry.written.result() is _LEAD:
                    self._status_ids = [e for e in self._status_ids if e is not entry]
                    self._pass_status_lead()
                raise
        self._writing_status_ids = True
        batch: list[_StatusId] = []
        try:
            await asyncio.sleep(0)  # the ids sent in this same moment join the batch
            batch, self._status_ids = [e for e in self._status_ids if not e.written.done() or e is entry], []
            await repos.jobs.set_status_message_ids({e.job_id: e.message_id for e in batch})
            await repos.commit()
        except BaseException as exc:
            failure = exc if isinstance(exc, Exception) else RuntimeError("the write was cancelled")
            for waiting in batch:
                if waiting is not entry and not waiting.written.done():
                    waiting.written.set_exception(failure)
            raise
        else:
            for waiting in batch:
                if waiting is not entry and not waiting.written.done():
                    waiting.written.set_result(None)
        finally:
            self._status_ids = [e for e in self._status_ids if e is not entry]  # cancelled before its batch
            self._pass_status_lead()

    def _pass_status_lead(self) -> None:
        self._status_ids = _hand_over([(e, e.written) for e in self._status_ids])
        self._writing_status_ids = bool(self._status_ids)

    def _pass_lead(self) -> None:
        """The next waiting request admits the next batch; none waiting: the lock is free."""
        self._waiting = _hand_over([(r, r.outcome) for r in self._waiting])
        self._admitting = bool(self._waiting)

    async def _admit_batch(self, repos: Repositories, batch: list[_Request]) -> None:
        """One transaction: the settings and the counts read once, each request checked in order
        (the jobs admitted before it in the batch count against it), the admitted rows inserted."""
        try:
            await repos.jobs.lock_admission()
            control = QueueControlRepository(repos.session)
            pause, limits = await control.admission(self.default_limits)
            users = {r.job.user_id for r in batch}
            per_user, pending, queued = await repos.jobs.admission_counts(users)
            admitted: list[_Request] = []
            for request in batch:
                try:
                    await self._check(repos, control, request, pause, limits, per_user.get(request.job.user_id, 0), pending)
                except AdmissionError as exc:
                    request.outcome.set_exception(exc)
                    continue
                per_user[request.job.user_id] = per_user.get(request.job.user_id, 0) + 1
                pending += 1
                admitted.append(request)
            created = await repos.jobs.insert_new([r.job for r in admitted])
            await repos.commit()
        except BaseException as exc:
            for request in batch:
                if not request.outcome.done():
                    request.outcome.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
            raise
        for position, (request, job) in enumerate(zip(admitted, created), start=queued + 1):
            # Every job queued before the batch was created before these (the lock is held).
            repos.session.expunge(job)  # the handler that asked owns it now, not this session
            request.outcome.set_result((job, position))

    async def _check(
        self,
        repos: Repositories,
        control: QueueControlRepository,
        request: _Request,
        pause: PauseState,
        limits: Limits,
        user_unfinished: int,
        pending: int,
    ) -> None:
        if pause.paused:
            raise AdmissionError("queue-paused-reason" if pause.reason else "queue-paused", 0, reason=pause.reason or "")
        user_id = request.job.user_id
        if user_unfinished >= limits.max_pending_per_user:
            raise AdmissionError("limit-user", limits.max_pending_per_user)
        if pending >= limits.max_pending_total:
            raise AdmissionError("limit-total", limits.max_pending_total)
        if limits.daily_quota is not None:
            now = utcnow()
            since = day_start(now)
            if await control.jobs_since(user_id, since) >= limits.daily_quota:
                left = int((since + timedelta(days=1) - now).total_seconds()) // 60
                raise AdmissionError("limit-daily", limits.daily_quota, hours=left // 60, minutes=left % 60)
        if request.kind in VIDEO_KINDS:
            # Videos hold the GPU for minutes: one (by default) at a time per user.
            if await repos.jobs.count_pending(user_id, kinds=VIDEO_KINDS) >= self.max_pending_videos_per_user:
                raise AdmissionError("limit-video", self.max_pending_videos_per_user)

    async def cancel_all(self, repos: Repositories, user_id: int) -> CancelResult:
        queued = await repos.jobs.cancel_queued(user_id)
        running = await repos.jobs.request_cancel_running(user_id)
        await repos.commit()
        for job in running:
            await self.queue.cancel(job.id)
        if queued:
            await self._queue_moved()
        return CancelResult(queued=queued, running=running)

    async def forget_results(self, job_ids: list[int]) -> None:
        """Delete these jobs' stored images wherever the queue's workers keep them."""
        await self.queue.forget_results(job_ids)

    async def _queue_moved(self) -> None:
        """Jobs left the queue: the status messages of those behind them show their new positions."""
        moved = getattr(self.queue, "queue_moved", None)
        if moved is not None:
            await moved()

    async def cancel_one(self, repos: Repositories, job: Job) -> bool:
        if await repos.jobs.transition(job.id, [JobStatus.QUEUED], JobStatus.CANCELLED):
            await repos.commit()
            await self._queue_moved()
            return True
        if job.status == JobStatus.RUNNING:
            await repos.jobs.set_values(job.id, cancel_requested=True)
            await repos.commit()
            await self.queue.cancel(job.id)
            return True
        return False
