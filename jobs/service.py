"""The job service: what handlers call to create and cancel jobs (no torch, no Telegram)."""

from __future__ import annotations

import asyncio
import secrets
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
from storage.control import Limits, QueueControlRepository, day_start
from storage.models import Job, JobStatus, ModerationKind, User, utcnow
from storage.repositories import Repositories

MAX_PROMPT_LENGTH = 1000
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


def new_seed() -> int:
    return secrets.randbelow(MAX_SEED)


class JobService:
    def __init__(
        self,
        queue: JobQueue,
        max_image_side: int,
        max_pending_per_user: int,
        max_pending_total: int,
        daily_quota: int | None = None,
        guard: ContentGuard | None = None,
    ) -> None:
        self.queue = queue
        self.guard = guard
        self.max_image_side = max_image_side
        # Defaults from the environment; admins override them from the chat (stored in bot_settings).
        self.default_limits = Limits(max_pending_per_user, max_pending_total, daily_quota)
        self._user_locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def check_admission(self, repos: Repositories, user_id: int) -> None:
        # Read from the database on every request, so a change from the chat applies at once,
        # in every process.
        control = QueueControlRepository(repos.session)
        pause = await control.pause_state()
        if pause.paused:
            raise AdmissionError("queue-paused-reason" if pause.reason else "queue-paused", 0, reason=pause.reason or "")
        limits = await control.limits(self.default_limits)
        if await repos.jobs.count_pending(user_id) >= limits.max_pending_per_user:
            raise AdmissionError("limit-user", limits.max_pending_per_user)
        if await repos.jobs.count_pending() >= limits.max_pending_total:
            raise AdmissionError("limit-total", limits.max_pending_total)
        if limits.daily_quota is not None:
            now = utcnow()
            since = day_start(now)
            if await control.jobs_since(user_id, since) >= limits.daily_quota:
                left = int((since + timedelta(days=1) - now).total_seconds()) // 60
                raise AdmissionError("limit-daily", limits.daily_quota, hours=left // 60, minutes=left % 60)

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
        One user's requests are admitted one at a time, so simultaneous messages cannot slip past
        the per-user limit.
        """
        async with self._user_locks[user.id]:
            await self.check_prompt(repos, user, params)
            await self.check_admission(repos, user.id)
            job = await repos.jobs.add(
                Job(
                    user_id=user.id,
                    chat_id=chat_id,
                    kind=str(kind),
                    model=str(ModelId(model or user.settings.model)),
                    params=params_class(kind).model_validate(params.model_dump()).to_row(),
                    status=JobStatus.QUEUED,
                )
            )
            position = await repos.jobs.queue_position(job)
            job.status_message_id = await announce(job, position)
            await repos.commit()
        await self.queue.submit(job.id)
        return job

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
