"""Variations: /variations then a photo, or the "Variations" button under any result.

N images (the user's images-per-request setting) from the photo's Kandinsky 2.2 image embedding, one
seed each. Under a result the input is the delivered picture itself, by the Telegram file id stored
on the job when it was delivered (the first one for an album).
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram_i18n import I18nContext

from bot.keyboards import ResultCb
from generation.backend import Mode
from handlers.common import own_job
from handlers.context import EditInputs, RequestContext
from handlers.editing.flow import EditAction, EditCb, RestyleFlow, VariationsFlow, finish_flow, start_flow, step_text
from handlers.editing.inputs import InputPhoto, PhotosFilter, has_media


async def variations_command(message: Message, state: FSMContext, i18n: I18nContext) -> None:
    await start_flow(state, VariationsFlow.photo)
    await message.answer(step_text(i18n, VariationsFlow.photo.state, {}))


async def _submit(request: RequestContext, photo: InputPhoto) -> None:
    caption = request.i18n.get("edit-caption-variations")
    await request.submit_edit(EditInputs(Mode.VARIATIONS, [photo], display_prompt=caption))


async def variations_photo(
    message: Message,
    state: FSMContext,
    request: RequestContext,
    photos: list[InputPhoto] | None,
) -> None:
    if photos is None:
        return  # refused: answered by PhotosFilter
    await finish_flow(state)
    await _submit(request, photos[0])


async def variations_of_result(
    query: CallbackQuery,
    callback_data: ResultCb,
    i18n: I18nContext,
    request: RequestContext,
) -> None:
    job = await own_job(query, callback_data.job_id, request.user, request.repos, i18n)
    if job is None:
        return
    file_ids = [f for f in job.result_file_ids or [] if f]
    if not file_ids:
        await query.answer(i18n.get("original-missing"), show_alert=True)
        return
    await query.answer()
    from handlers.results import variations_of  # the same as 🎲 1 under an album

    await variations_of(job, 1, request)


async def variations_of_sent_photo(
    query: CallbackQuery,
    state: FSMContext,
    i18n: I18nContext,
    request: RequestContext,
) -> None:
    """The "Variations" button under "send the text" after a photo sent alone."""
    if not isinstance(query.message, Message):
        await query.answer(i18n.get("callback-unknown"), show_alert=True)
        return
    photo = InputPhoto.from_dict((await state.get_data())["photo"])
    await query.answer()
    await finish_flow(state, query.message)
    await _submit(request, photo)


def create_router() -> Router:
    router = Router(name="editing-variations")
    router.message(Command("variations"))(variations_command)
    router.message(VariationsFlow.photo, F.func(has_media), PhotosFilter(at_most=1))(variations_photo)
    router.callback_query(ResultCb.filter(F.action == "variations"))(variations_of_result)
    router.callback_query(RestyleFlow.text, EditCb.filter(F.action == EditAction.VARIATIONS))(variations_of_sent_photo)
    return router
