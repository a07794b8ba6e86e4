"""/cancel and the cancel button on status messages."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot.keyboards import CancelJobCb
from handlers.common import button
from handlers.context import RequestContext
from handlers.filters import OwnJobFilter
from storage.models import Job, JobStatus


async def cancel(message: Message, request: RequestContext, state: FSMContext) -> None:
    i18n = request.i18n
    if await state.get_state() is not None:  # leave the current multi-step flow first
        await state.clear()
        await message.answer(i18n.get("cancel-flow"))
        return
    result = await request.jobs.cancel_all(request.repos, request.user.id)
    if not result.queued and not result.running:
        await message.answer(i18n.get("cancel-nothing"))
        return
    for job in result.queued:
        await request.notifier.withdrawn(job, i18n.locale)
    await message.answer(i18n.get("cancel-done", queued=len(result.queued), running=len(result.running)))


async def cancel_job(query: CallbackQuery, job: Job | None, request: RequestContext) -> None:
    if job is None:
        return  # answered by OwnJobFilter
    if not await request.jobs.cancel_one(request.repos, job):
        await query.answer(request.i18n.get("cancel-nothing"))
        return
    await query.answer(request.i18n.get("job-cancelled"))
    if job.status == JobStatus.QUEUED:
        await request.notifier.withdrawn(job, request.i18n.locale)


def create_router() -> Router:
    router = Router(name="cancel")
    router.message(Command("cancel"))(cancel)
    router.message(button("btn-cancel"))(cancel)
    router.callback_query(CancelJobCb.filter(), OwnJobFilter())(cancel_job)
    return router
