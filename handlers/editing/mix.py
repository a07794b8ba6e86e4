"""/mix: a photo and a text, with a weight for each (Kandinsky 2.2 prior ``interpolate([image, text])``)."""

from __future__ import annotations

import html

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram_i18n import I18nContext

from generation.backend import Mode
from handlers.common import PromptError, validate_prompt
from handlers.context import RequestContext
from handlers.editing.flow import (
    PAIR_WEIGHTS,
    chosen_weight,
    EditCb,
    MixFlow,
    finish_flow,
    pair_weight_keyboard,
    start_flow,
    step_text,
)
from handlers.editing.inputs import InputPhoto, PhotosFilter, caption_of, has_media


PLAIN_TEXT = F.text & ~F.text.startswith("/")


async def mix_command(message: Message, state: FSMContext, i18n: I18nContext) -> None:
    await start_flow(state, MixFlow.photo)
    await message.answer(step_text(i18n, MixFlow.photo.state, {}))


async def _take_text(
    message: Message, text: str, state: FSMContext, i18n: I18nContext, request: RequestContext | None = None
) -> None:
    try:
        prompt = validate_prompt(text)
    except PromptError as exc:
        await message.answer(i18n.get(exc.code, **exc.kwargs))
        return
    await state.update_data(prompt=prompt)
    remembered = request.user.settings.mix_weight if request is not None else None
    if request is not None and remembered in PAIR_WEIGHTS:  # answered before: not asked again
        photo = InputPhoto.from_dict((await state.get_data())["photo"])
        await finish_flow(state)
        await request.submit_edit(
            mode=Mode.MIX, photos=[photo], prompt=prompt, weights=[remembered / 100, 1.0 - remembered / 100],
            remembered=True,
        )
        return
    await state.set_state(MixFlow.weight)
    await message.answer(
        i18n.get("edit-mix-choose", prompt=html.escape(prompt), step=step_text(i18n, MixFlow.weight.state, {})),
        reply_markup=pair_weight_keyboard(i18n, "mix"),
    )


async def mix_photo(
    message: Message,
    bot: Bot,
    state: FSMContext,
    i18n: I18nContext,
    max_image_side: int,
    photos: list[InputPhoto] | None,
    request: RequestContext,
    album: list[Message] | None = None,
) -> None:
    messages = album or [message]
    if photos is None:
        return  # refused: answered by PhotosFilter
    await state.update_data(photo=photos[0].to_dict())
    caption = caption_of(messages)
    data = await state.get_data()
    if not data.get("prompt"):
        await state.set_state(MixFlow.text)  # a caption that is no usable text leaves us asking for one
    if caption:
        await _take_text(message, caption, state, i18n, request)
    elif data.get("prompt"):  # a new photo for the text already given
        await _take_text(message, data["prompt"], state, i18n, request)
    else:
        await state.set_state(MixFlow.text)
        await message.answer(step_text(i18n, MixFlow.text.state, data))


async def mix_text(message: Message, state: FSMContext, i18n: I18nContext, request: RequestContext) -> None:
    await _take_text(message, message.text or "", state, i18n, request)


async def mix_go(
    query: CallbackQuery,
    callback_data: EditCb,
    bot: Bot,
    state: FSMContext,
    i18n: I18nContext,
    request: RequestContext,
    max_image_side: int,
) -> None:
    image_weight = await chosen_weight(query, callback_data.value, PAIR_WEIGHTS, i18n)
    if image_weight is None or not isinstance(query.message, Message):
        return
    data = await state.get_data()
    request.user.settings.mix_weight = round(image_weight * 100)  # remembered: the next /mix does not ask
    await query.answer()
    await finish_flow(state, query.message)
    await request.submit_edit(
        mode=Mode.MIX,
        photos=[InputPhoto.from_dict(data["photo"])],
        prompt=data["prompt"],
        weights=[image_weight, 1.0 - image_weight],
    )


def create_router() -> Router:
    router = Router(name="editing-mix")
    router.message(Command("mix"))(mix_command)
    router.message(MixFlow.photo, F.func(has_media), PhotosFilter(at_most=1))(mix_photo)
    router.message(MixFlow.text, F.func(has_media), PhotosFilter(at_most=1))(mix_photo)
    router.message(MixFlow.weight, F.func(has_media), PhotosFilter(at_most=1))(mix_photo)
    router.message(MixFlow.text, PLAIN_TEXT)(mix_text)
    router.message(MixFlow.weight, PLAIN_TEXT)(mix_text)
    router.callback_query(MixFlow.weight, EditCb.filter(F.action == "mix"))(mix_go)
    return router
