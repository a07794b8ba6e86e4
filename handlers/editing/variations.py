"""Variations: /variations then a photo, or the "Variations" button under any result.

N images (the user's images-per-request setting) from the photo's Kandinsky 2.2 image embedding, one
seed each. Under a result the input is the delivered picture itself, by the Telegram file id stored
on the job when it was delivered (the first one for an album).
"""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram_i18n import I18nContext

from bot.keyboards import ResultCb
from generation.backend import Mode
from generation.jobs import JobService
from handlers.common import own_job
from handlers.editing.flow import EditCb, RestyleFlow, VariationsFlow, finish_flow, start_flow, step_text
from handlers.editing.inputs import InputPhoto, accept_inputs, has_media
from handlers.editing.submit import submit_edit
from storage.models import User
from storage.repositories import Repositories


async def variations_command(message: Message, state: FSMContext, i18n: I18nContext) -> None:
    await start_flow(state, VariationsFlow.photo)
    await message.answer(step_text(i18n, VariationsFlow.photo.state, {}))


async def _submit(
    chat_id: int, photo: InputPhoto, bot: Bot, i18n: I18nContext, user: User, repos: Repositories,
    jobs: JobService, max_image_side: int,
) -> None:
    await submit_edit(
        bot=bot,
        chat_id=chat_id,
        repos=repos,
        user=user,
        jobs=jobs,
        i18n=i18n,
        max_side=max_image_side,
        mode=Mode.VARIATIONS,
        photos=[photo],
        display_prompt=i18n.get("edit-caption-variations"),
    )


async def variations_photo(
    message: Message,
    bot: Bot,
    state: FSMContext,
    i18n: I18nContext,
    user: User,
    repos: Repositories,
    jobs: JobService,
    max_image_side: int,
    album: list[Message] | None = None,
) -> None:
    messages = album or [message]
    photos = await accept_inputs(messages, bot, i18n, max_image_side, at_most=1)
    if photos is None:
        return
    await finish_flow(state)
    await _submit(message.chat.id, photos[0], bot, i18n, user, repos, jobs, max_image_side)


async def variations_of_result(
    query: CallbackQuery,
    callback_data: ResultCb,
    bot: Bot,
    i18n: I18nContext,
    user: User,
    repos: Repositories,
    jobs: JobService,
    max_image_side: int,
) -> None:
    job = await own_job(query, callback_data.job_id, user, repos, i18n)
    if job is None:
        return
    file_ids = [f for f in job.result_file_ids or [] if f]
    if not file_ids:
        await query.answer(i18n.get("original-missing"), show_alert=True)
        return
    await query.answer()
    from handlers.results import variations_of  # the same as 🎲 1 under an album

    await variations_of(job, 1, bot, i18n, user, repos, jobs, max_image_side)


async def variations_of_sent_photo(
    query: CallbackQuery,
    bot: Bot,
    state: FSMContext,
    i18n: I18nContext,
    user: User,
    repos: Repositories,
    jobs: JobService,
    max_image_side: int,
) -> None:
    """The "Variations" button under "send the text" after a photo sent alone."""
    if not isinstance(query.message, Message):
        await query.answer(i18n.get("callback-unknown"), show_alert=True)
        return
    photo = InputPhoto.from_dict((await state.get_data())["photo"])
    await query.answer()
    await finish_flow(state, query.message)
    await _submit(query.message.chat.id, photo, bot, i18n, user, repos, jobs, max_image_side)


def create_router() -> Router:
    router = Router(name="editing-variations")
    router.message(Command("variations"))(variations_command)
    router.message(VariationsFlow.photo, F.func(has_media))(variations_photo)
    router.callback_query(ResultCb.filter(F.action == "variations"))(variations_of_result)
    router.callback_query(RestyleFlow.text, EditCb.filter(F.action == "variations"))(variations_of_sent_photo)
    return router
