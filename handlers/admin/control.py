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

from generation.backend import Backend, Mode, ModelId
from generation.registry import MODELS, spec
from jobs.service import JobService
from handlers.admin.common import (
    AdminAction,
    AdminCb,
    AdminContext,
    JobCb,
    LimitCb,
    LimitName,
    ModelAction,
    ModelCb,
    admin_repos,
    age,
    back_button,
    esc,
    fmt_bytes,
    fmt_duration,
    parse_int,
    user_label,
)
from storage.admin_repositories import JobCounts, Limits, day_start
from storage.models import JobStatus, utcnow
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
    builder.button(text=i18n.get("admin-btn-refresh"), callback_data=AdminCb(action=AdminAction.STATS))
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
        builder.button(text=i18n.get("admin-btn-cancel-job", id=job.id), callback_data=JobCb(job_id=job.id))
    builder.adjust(3)
    if pause.paused:
        builder.row()
        builder.button(text=i18n.get("admin-btn-resume"), callback_data=AdminCb(action=AdminAction.RESUME))
    else:
        builder.row()
        builder.button(text=i18n.get("admin-btn-pause"), callback_data=AdminCb(action=AdminAction.PAUSE))
    builder.button(text=i18n.get("admin-btn-refresh"), callback_data=AdminCb(action=AdminAction.QUEUE))
    builder.row(back_button(i18n))
    return "\n".join(lines), builder.as_markup()


async def queue_command(message: Message, i18n: I18nContext, repos: Repositories) -> None:
    text, markup = await queue_view(i18n, repos)
    await message.answer(text, reply_markup=markup)


async def cancel_job(query: CallbackQuery, callback_data: JobCb, admin: AdminContext) -> None:
    i18n, repos, request = admin.i18n, admin.repos, admin.request
    job = await repos.jobs.get(callback_data.job_id)
    if job is None or not await request.jobs.cancel_one(repos, job):
        await query.answer(i18n.get("admin-job-not-pending"), show_alert=True)
    else:
        await admin.audit("cancel_job", job.id, f"user {job.user_id}")
        await query.answer(i18n.get("admin-job-cancelled", id=job.id))
        if job.status == JobStatus.QUEUED:
            owner = await repos.users.get(job.user_id)
            await request.notifier.withdrawn(job, owner.language if owner else "en", "admin-job-cancelled-owner")
    await _refresh(query, *(await queue_view(i18n, repos)))


async def _refresh(query: CallbackQuery, text: str, markup: InlineKeyboardMarkup) -> None:
    if isinstance(query.message, Message):
        try:
            await query.message.edit_text(text, reply_markup=markup)
        except TelegramAPIError:  # "message is not modified", or too old to edit
            pass


async def pause(admin: AdminContext, reason: str | None) -> tuple[str, dict[str, object]]:
    # Pausing again only replaces the reason.
    await admin.store.control.set_pause(True, reason, admin.user.id)
    await admin.audit("pause", None, reason)
    await admin.repos.commit()  # the worker and the admission check read it from the database
    queued = await admin.repos.jobs.count_pending()
    return "admin-paused", {"reason": esc(reason or "—"), "queued": queued}


async def resume(admin: AdminContext) -> tuple[str, dict[str, object]]:
    control = admin.store.control
    if not (await control.pause_state()).paused:
        return "admin-not-paused", {}
    await control.set_pause(False, None, admin.user.id)
    await admin.audit("resume")
    await admin.repos.commit()
    await admin.request.jobs.queue.wake()
    return "admin-resumed", {"queued": await admin.repos.jobs.count_pending()}


async def pause_command(message: Message, command: CommandObject, admin: AdminContext) -> None:
    reason = (command.args or "").strip()[:MAX_PAUSE_REASON] or None
    key, kwargs = await pause(admin, reason)
    await message.answer(admin.i18n.get(key, **kwargs))


async def resume_command(message: Message, admin: AdminContext) -> None:
    key, kwargs = await resume(admin)
    await message.answer(admin.i18n.get(key, **kwargs))


async def pause_button(query: CallbackQuery, callback_data: AdminCb, admin: AdminContext) -> None:
    key, kwargs = await (pause(admin, None) if callback_data.action == AdminAction.PAUSE else resume(admin))
    await query.answer(admin.i18n.get(key, **kwargs), show_alert=True)
    await _refresh(query, *(await queue_view(admin.i18n, admin.repos)))


# -- /limits ---------------------------------------------------------------------------------
# Each limit's stored key and allowed range; only the daily quota can be off (unlimited, None).
LIMITS: dict[LimitName, tuple[str, int, int]] = {
    LimitName.USER: ("max_pending_per_user", 1, 100),
    LimitName.DAILY: ("daily_quota", 1, 100_000),
    LimitName.QUEUE: ("max_pending_total", 1, 100_000),
}
PRESETS: dict[LimitName, tuple[int | None, ...]] = {
    LimitName.USER: (1, 2, 3, 5),
    LimitName.DAILY: (None, 10, 50, 200),
    LimitName.QUEUE: (50, 100, 200, 500),
}


def valid_limit(name: LimitName, value: int | None) -> bool:
    _, low, high = LIMITS[name]
    return name == LimitName.DAILY if value is None else low <= value <= high


def parse_limit(name: str, raw: str) -> tuple[LimitName, int | None] | None:
    """``/limits <name> <value>`` as typed: the limit and its value, or None when either is wrong."""
    try:
        limit = LimitName(name.lower())
    except ValueError:
        return None
    raw = raw.strip().lower()
    if limit == LimitName.DAILY and raw in ("off", "0", "none", "unlimited"):
        return limit, None
    value = parse_int(raw, *LIMITS[limit][1:])
    return None if value is None else (limit, value)


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
                text=i18n.get(f"admin-btn-limit-{name}", value=str(value) if value is not None else "off"),
                callback_data=LimitCb(name=name, value=value),
            )
    builder.adjust(4)
    builder.row(back_button(i18n))
    return text, builder.as_markup()


async def set_limit(admin: AdminContext, name: LimitName, value: int | None) -> tuple[str, dict[str, object]]:
    key = LIMITS[name][0]
    await admin.store.control.set_limit(key, value, admin.user.id)
    await admin.audit("limit", key, str(value))
    await admin.repos.commit()
    return "admin-limit-set", {"name": str(name), "value": str(value) if value is not None else "off"}


async def limits_command(message: Message, command: CommandObject, admin: AdminContext) -> None:
    i18n = admin.i18n
    args = (command.args or "").split()
    if args:
        parsed = parse_limit(args[0], args[1]) if len(args) == 2 else None
        if parsed is None:
            await message.answer(i18n.get("admin-limits-usage"))
            return
        key, kwargs = await set_limit(admin, *parsed)
        await message.answer(i18n.get(key, **kwargs))
    text, markup = await limits_view(i18n, admin.repos, admin.request.jobs)
    await message.answer(text, reply_markup=markup)


async def limit_button(query: CallbackQuery, callback_data: LimitCb, admin: AdminContext) -> None:
    i18n = admin.i18n
    if not valid_limit(callback_data.name, callback_data.value):  # forged data: no button carries it
        await query.answer(i18n.get("callback-unknown"), show_alert=True)
        return
    key, kwargs = await set_limit(admin, callback_data.name, callback_data.value)
    await query.answer(i18n.get(key, **kwargs))
    await _refresh(query, *(await limits_view(i18n, admin.repos, admin.request.jobs)))


# -- /models ---------------------------------------------------------------------------------
def model_facts(i18n: I18nContext, model: ModelId) -> str:
    """What the registry says about ``model``: family, memory, default steps and guidance, the
    negative prompt, the modes it serves."""
    facts = spec(model)
    steps = i18n.get("admin-model-steps", steps=facts.default_steps)
    if not facts.steps_configurable:
        steps = i18n.get("admin-model-steps-fixed", steps=steps)
    guidance = i18n.get("admin-model-no-guidance") if facts.default_guidance is None else f"{facts.default_guidance:g}"
    return i18n.get(
        "admin-model-facts",
        family=esc(facts.family),
        memory=i18n.get(f"admin-memory-{facts.memory_class}"),
        steps=steps,
        guidance=guidance,
        negative=i18n.get("admin-yes" if facts.negative_prompt else "admin-no"),
        modes=", ".join(mode.value for mode in Mode if facts.supports(mode)),  # in the enum's order
    )


async def models_view(i18n: I18nContext, backend: Backend | None) -> tuple[str, InlineKeyboardMarkup]:
    builder = InlineKeyboardBuilder()
    if backend is None:
        builder.row(back_button(i18n))
        return i18n.get("admin-models-unavailable"), builder.as_markup()
    lines = [i18n.get("admin-models-title")]
    for status in await asyncio.to_thread(backend.model_status):
        name, loaded = str(status.get("model")), bool(status.get("loaded"))
        lines.append(
            i18n.get(
                "admin-model-loaded" if loaded else "admin-model-unloaded",
                model=esc(name),
                device=esc(status.get("device") or "—"),
                memory=fmt_bytes(status.get("memory_bytes")),
            )
        )
        model = ModelId(name) if name in MODELS else None
        if model is None:  # a backend's own model that the registry does not know: no facts, no buttons
            continue
        lines.append(model_facts(i18n, model))
        action = ModelAction.UNLOAD if loaded else ModelAction.LOAD
        builder.button(
            text=i18n.get("admin-btn-unload" if loaded else "admin-btn-load", model=name),
            callback_data=ModelCb(action=action, model=model),
        )
    builder.adjust(1)
    builder.row()
    builder.button(text=i18n.get("admin-btn-refresh"), callback_data=AdminCb(action=AdminAction.MODELS))
    builder.row(back_button(i18n))
    return "\n".join(lines), builder.as_markup()


async def models_command(message: Message, admin: AdminContext) -> None:
    text, markup = await models_view(admin.i18n, admin.backend)
    await message.answer(text, reply_markup=markup)


async def model_button(query: CallbackQuery, callback_data: ModelCb, admin: AdminContext) -> None:
    i18n, backend, model = admin.i18n, admin.backend, callback_data.model
    if backend is None:
        await query.answer(i18n.get("callback-unknown"), show_alert=True)
        return
    loading = callback_data.action == ModelAction.LOAD
    # Loading takes a while: answer the button now (Telegram wants an answer within seconds).
    await query.answer(i18n.get("admin-model-loading" if loading else "admin-model-unloading", model=str(model)))
    action = backend.load if loading else backend.unload
    try:
        await asyncio.to_thread(action, model)
    except Exception as exc:  # a missing checkpoint, out of memory...: the admin wants to know
        log.warning("%s of %s failed", callback_data.action, model, exc_info=True)
        if isinstance(query.message, Message):
            await query.message.answer(i18n.get("admin-model-failed", model=str(model), error=esc(exc)))
        return
    await admin.audit("model_load" if loading else "model_unload", str(model))
    await _refresh(query, *(await models_view(i18n, backend)))


def create_router() -> Router:
    router = Router(name="admin-control")
    router.message(Command("stats"))(stats_command)
    router.message(Command("queue"))(queue_command)
    router.callback_query(JobCb.filter())(cancel_job)
    router.message(Command("pause"))(pause_command)
    router.message(Command("resume"))(resume_command)
    router.callback_query(AdminCb.filter(F.action.in_({AdminAction.PAUSE, AdminAction.RESUME})))(pause_button)
    router.message(Command("limits"))(limits_command)
    router.callback_query(LimitCb.filter())(limit_button)
    router.message(Command("models"))(models_command)
    router.callback_query(ModelCb.filter())(model_button)
    return router
