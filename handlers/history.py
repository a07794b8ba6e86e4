"""/history: the user's last jobs (prompt, model, date), a page at a time, with buttons to see the
result again or run the job again. Only the user's own jobs are listed or acted on."""

from __future__ import annotations

import html
import math
from enum import StrEnum

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, InputMediaPhoto, Message
from aiogram_i18n import I18nContext

from bot.i18n import translator
from bot.keyboards import model_name
from bot.notifier import result_caption
from generation.backend import Mode
from handlers.common import own_job
from handlers.context import RequestContext
from jobs.params import read_params
from jobs.service import new_seed
from storage.history import HistoryRepository
from storage.models import Job, JobStatus, User
from storage.repositories import Repositories

PAGE_SIZE = 5
PROMPT_CHARS = 60
STATUS_ICONS = {
    JobStatus.DONE: "✅",
    JobStatus.FAILED: "❌",
    JobStatus.CANCELLED: "✖️",
    JobStatus.QUEUED: "⏳",
    JobStatus.RUNNING: "🎨",
    JobStatus.GENERATED: "📤",
}


class HistoryAction(StrEnum):
    PAGE = "page"  # another page of the list
    SHOW = "show"  # the job's pictures again
    AGAIN = "again"  # the job again, as a new job


class HistoryCb(CallbackData, prefix="hist"):
    action: HistoryAction
    page: int = 0
    job_id: int = 0


def _line(i: int, job: Job, locale: str) -> str:
    params = read_params(job)
    prompt = params.display_prompt or params.prompt or translator()(f"history-kind-{job.kind}", locale)
    if len(prompt) > PROMPT_CHARS:
        prompt = prompt[: PROMPT_CHARS - 1] + "…"
    when = job.created_at.strftime("%d.%m %H:%M")
    icon = STATUS_ICONS.get(job.status, "")
    return f"{i}. {icon} {html.escape(prompt, quote=False)}\n    <i>{model_name(translator(), job.model, locale)} · {when} UTC</i>"


async def render(repos: Repositories, user: User, page: int, i18n: I18nContext) -> tuple[str, InlineKeyboardMarkup | None]:
    history = HistoryRepository(repos.session)
    total = await history.count(user.id)
    if total == 0:
        return i18n.get("history-empty"), None
    pages = math.ceil(total / PAGE_SIZE)
    page = min(max(page, 0), pages - 1)
    jobs = await history.page(user.id, page, PAGE_SIZE)
    first = page * PAGE_SIZE + 1
    lines = [_line(first + i, job, i18n.locale) for i, job in enumerate(jobs)]
    text = i18n.get("history-title", page=page + 1, pages=pages) + "\n\n" + "\n".join(lines)
    rows: list[list[InlineKeyboardButton]] = []
    for i, job in enumerate(jobs):
        n = first + i
        row = []
        if job.result_file_ids:
            row.append(_button(i18n.get("history-btn-show", n=n), HistoryCb(action=HistoryAction.SHOW, page=page, job_id=job.id)))
        row.append(_button(i18n.get("history-btn-again", n=n), HistoryCb(action=HistoryAction.AGAIN, page=page, job_id=job.id)))
        rows.append(row)
    nav = []
    if page > 0:
        nav.append(_button(i18n.get("history-btn-newer"), HistoryCb(action=HistoryAction.PAGE, page=page - 1)))
    if page < pages - 1:
        nav.append(_button(i18n.get("history-btn-older"), HistoryCb(action=HistoryAction.PAGE, page=page + 1)))
    if nav:
        rows.append(nav)
    return text, InlineKeyboardMarkup(inline_keyboard=rows)


def _button(text: str, data: HistoryCb) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data.pack())


async def history(message: Message, i18n: I18nContext, user: User, repos: Repositories) -> None:
    text, markup = await render(repos, user, 0, i18n)
    await message.answer(text, reply_markup=markup)


async def turn_page(query: CallbackQuery, callback_data: HistoryCb, i18n: I18nContext, user: User, repos: Repositories) -> None:
    text, markup = await render(repos, user, callback_data.page, i18n)
    await query.answer()
    if query.message is not None:
        await query.message.edit_text(text, reply_markup=markup)  # type: ignore[union-attr]


async def show(query: CallbackQuery, callback_data: HistoryCb, bot: Bot, i18n: I18nContext, user: User, repos: Repositories) -> None:
    """The job's pictures again, as Telegram keeps them (by file id: nothing is uploaded twice)."""
    job = await own_job(query, callback_data.job_id, user, repos, i18n)
    if job is None:
        return
    if not job.result_file_ids:
        await query.answer(i18n.get("history-nothing-to-show"), show_alert=True)
        return
    await query.answer()
    seed = read_params(job).seed
    files = list(job.result_file_ids)
    if len(files) == 1:
        await bot.send_photo(job.chat_id, files[0], caption=result_caption(translator(), job, i18n.locale))
        return
    media = [
        InputMediaPhoto(media=file_id, caption=result_caption(translator(), job, i18n.locale, seed + i) if i == 0 else None)
        for i, file_id in enumerate(files)
    ]
    await bot.send_media_group(job.chat_id, media)


async def again(query: CallbackQuery, callback_data: HistoryCb, i18n: I18nContext, request: RequestContext) -> None:
    """The job again with a new seed, the same model and parameters (like Again under a result)."""
    job = await own_job(query, callback_data.job_id, request.user, request.repos, i18n)
    if job is None:
        return
    await query.answer()
    await request.resubmit(job, seed=new_seed())


def create_router() -> Router:
    router = Router(name="history")
    router.message(Command("history"))(history)
    router.callback_query(HistoryCb.filter(F.action == HistoryAction.PAGE))(turn_page)
    router.callback_query(HistoryCb.filter(F.action == HistoryAction.SHOW))(show)
    router.callback_query(HistoryCb.filter(F.action == HistoryAction.AGAIN))(again)
    return router
