"""/stats, /queue (with cancel buttons), /pause, /resume, /limits, /models."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from aiogram import F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from aiogram_i18n import I18nContext

from bot.notifier import TelegramNotifier
from generation.backend import Backend, ModelId
from jobs.service import JobService
from handlers.admin.common import (
    AdminCb,
    admin_repos,
    age,
    back_button,
    esc,
    fmt_bytes,
    fmt_duration,
    user_label,
)
from storage.admin_repositories import JobCounts, Limits, day_start
from storage.models import JobStatus, User, utcnow
from storage.repositories import Repositories

log = logging.getLogger(__name__)

MAX_PAUSE_REASON = 200


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{esc(k)} {v}" for k, v in sorted(counts.items())) or "—"


def _job_counts(i18n: I18nContext, title: str, counts: JobCounts) -> str:
    return i18n.get(
        "admin-stats-jobs",
        title=title,
        total=counts.total,
        models=_counts(counts.by_model),
        modes=_counts(counts.by_mode),
        statuses=_counts(counts.by_status),
        failed=counts.by_status.get(JobStatus.FAILED, 0),
        censored=counts.by_status.get(JobStatus.CENSORED, 0),
    )


# -- /stats ----------------------------------------------------------------------------------
async def stats_view(i18n: I18nContext, repos: Repositories) -> tuple[str, InlineKeyboardMarkup]:
    stats = await admin_repos(repos).stats.collect()
    pause = await admin_repos(repos).control.pause_state()
    lines = [
        i18n.get(
            "admin-stats-users",
            total=stats.users_total,
            today=stats.users_today,
            week=stats.users_week,
            banned=stats.users_banned,
            blocked=stats.users_blocked,
        ),
        _job_counts(i18n, i18n.get("admin-stats-today"), stats.today),
        _job_counts(i18n, i18n.get("admin-stats-week"), stats.week),
    ]
    timing = [i18n.get("admin-stats-timing-title")]
    for model, t in stats.timing.items():
        timing.append(
            i18n.get(
                "admin-stats-timing",
                model=esc(model),
                jobs=t.jobs,
                wait=fmt_duration(i18n, t.median_wait),
                generation=fmt_duration(i18n, t.median_generation),
            )
        )
    if not stats.timing:
        timing.append("—")
    lines.append("\n".join(timing))
    now = utcnow()
    lines.append(
        i18n.get(
            "admin-stats-moderation",
            today=_counts(await repos.moderation.counts(since=day_start(now))),
            week=_counts(await repos.moderation.counts(since=now - timedelta(days=7))),
        )
    )
    lines.append(i18n.get("admin-stats-queue", queued=stats.queued, running=stats.running))
    if pause.paused:
        lines.append(i18n.get("admin-state-paused", reason=esc(pause.reason or "—")))
    builder = InlineKeyboardBuilder()
    builder.button(text=i18n.get("admin-btn-refresh"), callback_data=AdminCb(action="stats"))
    builder.row(back_button(i18n))
    return "\n\n".join(lines), builder.as_markup()


async def stats_command(message: Message, i18n: I18nContext, repos: Repositories) -> None:
    text, markup = await stats_view(i18n, repos)
    await message.answer(text, reply_markup=markup)


# -- /queue, cancel, /pause, /resume ---------------------------------------------------------
async def queue_view(i18n: I18nContext, repos: Repositories) -> tuple[str, InlineKeyboardMarkup]:
    ar = admin_repos(repos)
    jobs = await ar.stats.pending_jobs(limit=30)
    pause = await ar.control.pause_state()
    total = await repos.jobs.count_pending()
    lines = [i18n.get("admin-queue-title", count=total)]
    if pause.paused:
        lines.append(i18n.get("admin-state-paused", reason=esc(pause.reason or "—")))
    if not jobs:
        lines.append(i18n.get("admin-queue-empty"))
    builder = InlineKeyboardBuilder()
    for job in jobs:
        owner = await repos.users.get(job.user_id)
        lines.append(
            i18n.get(
                "admin-queue-job",
                id=job.id,
                status=esc(job.status),
                user=user_label(owner, job.user_id),
                mode=esc(job.kind),
                model=esc(job.model),
                age=fmt_duration(i18n, age(job.created_at)),
            )
        )
        builder.button(
            text=i18n.get("admin-btn-cancel-job", id=job.id), callback_data=AdminCb(action="qcancel", arg=str(job.id))
        )
    builder.adjust(3)
    if pause.paused:
        builder.row()
        builder.button(text=i18n.get("admin-btn-resume"), callback_data=AdminCb(action="resume"))
    else:
        builder.row()
        builder.button(text=i18n.get("admin-btn-pause"), callback_data=AdminCb(action="pause"))
    builder.button(text=i18n.get("admin-btn-refresh"), callback_data=AdminCb(action="queue"))
    builder.row(back_button(i18n))
    return "\n".join(lines), builder.as_markup()


async def queue_command(message: Message, i18n: I18nContext, repos: Repositories) -> None:
    text, markup = await queue_view(i18n, repos)
    await message.answer(text, reply_markup=markup)


async def cancel_job(
    query: CallbackQuery,
    callback_data: AdminCb,
    i18n: I18nContext,
    user: User,
    repos: Repositories,
    jobs: JobService,
    notifier: TelegramNotifier,
) -> None:
    job = await repos.jobs.get(int(callback_data.arg)) if callback_data.arg.isdigit() else None
    if job is None or not await jobs.cancel_one(repos, job):
        await query.answer(i18n.get("admin-job-not-pending"), show_alert=True)
    else:
        await admin_repos(repos).admins.audit(user.id, "cancel_job", job.id, f"user {job.user_id}")
        await query.answer(i18n.get("admin-job-cancelled", id=job.id))
        if job.status == JobStatus.QUEUED:
            owner = await repos.users.get(job.user_id)
            await notifier.withdrawn(job, owner.language if owner else "en", "admin-job-cancelled-owner")
    await _refresh(query, *(await queue_view(i18n, repos)))


async def _refresh(query: CallbackQuery, text: str, markup: InlineKeyboardMarkup) -> None:
    if isinstance(query.message, Message):
        try:
            await query.message.edit_text(text, reply_markup=markup)
        except TelegramAPIError:  # "message is not modified", or too old to edit
            pass


async def pause(repos: Repositories, admin: User, reason: str | None) -> tuple[str, dict[str, object]]:
    # Pausing again only replaces the reason.
    await admin_repos(repos).control.set_pause(True, reason, admin.id)
    await admin_repos(repos).admins.audit(admin.id, "pause", None, reason)
    await repos.commit()  # the worker and the admission check read it from the database
    queued = await repos.jobs.count_pending()
    return "admin-paused", {"reason": esc(reason or "—"), "queued": queued}


async def resume(repos: Repositories, jobs: JobService, admin: User) -> tuple[str, dict[str, object]]:
    control = admin_repos(repos).control
    if not (await control.pause_state()).paused:
        return "admin-not-paused", {}
    await control.set_pause(False, None, admin.id)
    await admin_repos(repos).admins.audit(admin.id, "resume")
    await repos.commit()
    await jobs.queue.wake()
    return "admin-resumed", {"queued": await repos.jobs.count_pending()}


async def pause_command(
    message: Message, command: CommandObject, i18n: I18nContext, user: User, repos: Repositories
) -> None:
    reason = (command.args or "").strip()[:MAX_PAUSE_REASON] or None
    key, kwargs = await pause(repos, user, reason)
    await message.answer(i18n.get(key, **kwargs))


async def resume_command(
    message: Message, i18n: I18nContext, user: User, repos: Repositories, jobs: JobService
) -> None:
    key, kwargs = await resume(repos, jobs, user)
    await message.answer(i18n.get(key, **kwargs))


async def pause_button(
    query: CallbackQuery, callback_data: AdminCb, i18n: I18nContext, user: User, repos: Repositories, jobs: JobService
) -> None:
    if callback_data.action == "pause":
        key, kwargs = await pause(repos, user, None)
    else:
        key, kwargs = await resume(repos, jobs, user)
    await query.answer(i18n.get(key, **kwargs), show_alert=True)
    await _refresh(query, *(await queue_view(i18n, repos)))


# -- /limits ---------------------------------------------------------------------------------
# The name admins type (and the buttons carry) -> the stored key, and the allowed range.
LIMIT_NAMES = {
    "user": ("max_pending_per_user", 1, 100),
    "daily": ("daily_quota", 1, 100_000),
    "queue": ("max_pending_total", 1, 100_000),
}
PRESETS = {"user": ("1", "2", "3", "5"), "daily": ("off", "10", "50", "200"), "queue": ("50", "100", "200", "500")}


def parse_limit(name: str, raw: str) -> tuple[str, int | None] | None:
    """(key, value) for a valid setting; None otherwise. Only ``daily`` can be ``off`` (unlimited)."""
    if name not in LIMIT_NAMES:
        return None
    key, low, high = LIMIT_NAMES[name]
    raw = raw.strip().lower()
    if name == "daily" and raw in ("off", "0", "none", "unlimited"):
        return key, None
    if not raw.isdigit() or not low <= int(raw) <= high:
        return None
    return key, int(raw)


async def limits_view(i18n: I18nContext, repos: Repositories, jobs: JobService) -> tuple[str, InlineKeyboardMarkup]:
    limits: Limits = await admin_repos(repos).control.limits(jobs.default_limits)
    text = i18n.get(
        "admin-limits",
        user=limits.max_pending_per_user,
        daily=limits.daily_quota if limits.daily_quota is not None else i18n.get("admin-unlimited"),
        queue=limits.max_pending_total,
    )
    builder = InlineKeyboardBuilder()
    for name, values in PRESETS.items():
        for value in values:
            builder.button(
                text=i18n.get(f"admin-btn-limit-{name}", value=value),
                callback_data=AdminCb(action="limit", arg=f"{name}={value}"),
            )
    builder.adjust(4)
    builder.row(back_button(i18n))
    return text, builder.as_markup()


async def set_limit(repos: Repositories, admin: User, name: str, raw: str) -> tuple[str, dict[str, object]]:
    parsed = parse_limit(name, raw)
    if parsed is None:
        return "admin-limits-usage", {}
    key, value = parsed
    await admin_repos(repos).control.set_limit(key, value, admin.id)
    await admin_repos(repos).admins.audit(admin.id, "limit", key, str(value))
    await repos.commit()
    return "admin-limit-set", {"name": name, "value": str(value) if value is not None else "off"}


async def limits_command(
    message: Message, command: CommandObject, i18n: I18nContext, user: User, repos: Repositories, jobs: JobService
) -> None:
    args = (command.args or "").split()
    if args:
        if len(args) != 2:
            await message.answer(i18n.get("admin-limits-usage"))
            return
        key, kwargs = await set_limit(repos, user, args[0].lower(), args[1])
        await message.answer(i18n.get(key, **kwargs))
        if key == "admin-limits-usage":
            return
    text, markup = await limits_view(i18n, repos, jobs)
    await message.answer(text, reply_markup=markup)


async def limit_button(
    query: CallbackQuery, callback_data: AdminCb, i18n: I18nContext, user: User, repos: Repositories, jobs: JobService
) -> None:
    name, _, raw = callback_data.arg.partition("=")
    key, kwargs = await set_limit(repos, user, name, raw)
    if key == "admin-limits-usage":  # forged data: no button carries it
        await query.answer(i18n.get("callback-unknown"), show_alert=True)
        return
    await query.answer(i18n.get(key, **kwargs))
    await _refresh(query, *(await limits_view(i18n, repos, jobs)))


# -- /models ---------------------------------------------------------------------------------
async def models_view(i18n: I18nContext, backend: Backend | None) -> tuple[str, InlineKeyboardMarkup]:
    builder = InlineKeyboardBuilder()
    if backend is None:
        builder.row(back_button(i18n))
        return i18n.get("admin-models-unavailable"), builder.as_markup()
    lines = [i18n.get("admin-models-title")]
    for status in await asyncio.to_thread(backend.model_status):
        model, loaded = str(status.get("model")), bool(status.get("loaded"))
        lines.append(
            i18n.get(
                "admin-model-loaded" if loaded else "admin-model-unloaded",
                model=esc(model),
                device=esc(status.get("device") or "—"),
                memory=fmt_bytes(status.get("memory_bytes")),
            )
        )
        if loaded:
            builder.button(
                text=i18n.get("admin-btn-unload", model=model), callback_data=AdminCb(action="munload", arg=model)
            )
        else:
            builder.button(
                text=i18n.get("admin-btn-load", model=model), callback_data=AdminCb(action="mload", arg=model)
            )
    builder.adjust(1)
    builder.row()
    builder.button(text=i18n.get("admin-btn-refresh"), callback_data=AdminCb(action="models"))
    builder.row(back_button(i18n))
    return "\n".join(lines), builder.as_markup()


async def models_command(message: Message, i18n: I18nContext, generation_backend: Backend | None = None) -> None:
    text, markup = await models_view(i18n, generation_backend)
    await message.answer(text, reply_markup=markup)


async def model_button(
    query: CallbackQuery,
    callback_data: AdminCb,
    i18n: I18nContext,
    user: User,
    repos: Repositories,
    generation_backend: Backend | None = None,
) -> None:
    try:
        model = ModelId(callback_data.arg)
    except ValueError:
        model = None
    if model is None or generation_backend is None:
        await query.answer(i18n.get("callback-unknown"), show_alert=True)
        return
    loading = callback_data.action == "mload"
    # Loading takes a while: answer the button now (Telegram wants an answer within seconds).
    await query.answer(i18n.get("admin-model-loading" if loading else "admin-model-unloading", model=str(model)))
    action = generation_backend.load if loading else generation_backend.unload
    try:
        await asyncio.to_thread(action, model)
    except Exception as exc:  # a missing checkpoint, out of memory...: the admin wants to know
        log.warning("%s of %s failed", callback_data.action, model, exc_info=True)
        if isinstance(query.message, Message):
            await query.message.answer(i18n.get("admin-model-failed", model=str(model), error=esc(exc)))
        return
    await admin_repos(repos).admins.audit(user.id, "model_load" if loading else "model_unload", str(model))
    await _refresh(query, *(await models_view(i18n, generation_backend)))


def create_router() -> Router:
    router = Router(name="admin-control")
    router.message(Command("stats"))(stats_command)
    router.message(Command("queue"))(queue_command)
    router.callback_query(AdminCb.filter(F.action == "qcancel"))(cancel_job)
    router.message(Command("pause"))(pause_command)
    router.message(Command("resume"))(resume_command)
    router.callback_query(AdminCb.filter(F.action.in_({"pause", "resume"})))(pause_button)
    router.message(Command("limits"))(limits_command)
    router.callback_query(AdminCb.filter(F.action == "limit"))(limit_button)
    router.message(Command("models"))(models_command)
    router.callback_query(AdminCb.filter(F.action.in_({"mload", "munload"})))(model_button)
    return router
