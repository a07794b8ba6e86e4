"""/cancel and the cancel button on status messages."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram_i18n import I18nContext

from bot.keyboards import CancelJobCb
from bot.notifier import TelegramNotifier
from handlers.common import button, own_job
from jobs.service import JobService
from storage.models import User
from storage.repositories import Repositories


async def cancel(
    message: Message,
    i18n: I18nContext,
    user: User,
    repos: Repositories,
    jobs: JobService,
    notifier: TelegramNotifier,
    state: FSMContext,
) -> None:
    if await state.get_state() is not None:  # leave the current multi-step flow first
        await state.clear()
        await message.answer(i18n.get("cancel-flow"))
        return
    result = await jobs.cancel_all(repos, user.id)
    if not result.queued and not result.running:
        await message.answer(i18n.get("cancel-nothing"))
        return
    for job in result.queued:
        await notifier.withdrawn(job, i18n.locale)
    await message.answer(i18n.get("cancel-done", queued=len(result.queued), running=len(result.running)))


async def cancel_job(
    query: CallbackQuery,
    callback_data: CancelJobCb,
    i18n: I18nContext,
    user: User,
    repos: Repositories,
    jobs: JobService,
    notifier: TelegramNotifier,
) -> None:
    job = await own_job(query, callback_data.job_id, user, repos, i18n)
    if job is None:
        return
    if not await jobs.cancel_one(repos, job):
        await query.answer(i18n.get("cancel-nothing"))
        return
    await query.answer(i18n.get("job-cancelled"))
    if job.status == "queued":
        await notifier.withdrawn(job, i18n.locale)


def create_router() -> Router:
    router = Router(name="cancel")
    router.message(Command("cancel"))(cancel)
    router.message(button("btn-cancel"))(cancel)
    router.callback_query(CancelJobCb.filter())(cancel_job)
    return router
