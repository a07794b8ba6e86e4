"""/mix: a photo and a text, with a weight for each (Kandinsky 2.2 prior ``interpolate([image, text])``)."""

from __future__ import annotations

import html

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram_i18n import I18nContext

from generation.backend import Mode
from handlers.common import checked_prompt
from handlers.context import EditInputs, RequestContext
from handlers.editing.flow import (
    PAIR_WEIGHTS,
    PLAIN_TEXT,
    ChoiceFilter,
    WeightAction,
    WeightCb,
    MixFlow,
    close_step,
    finish_flow,
    pair_weight_keyboard,
    pair_weights,
    start_flow,
    step_text,
)
from handlers.editing.inputs import InputPhoto, PhotosFilter, has_media


async def mix_command(message: Message, state: FSMContext, i18n: I18nContext) -> None:
    await start_flow(state, MixFlow.photo)
    await message.answer(step_text(i18n, MixFlow.photo.state, {}))


async def _take_text(message: Message, text: str, state: FSMContext, request: RequestContext) -> None:
    prompt = await checked_prompt(message, text, request.i18n)
    if prompt is None:
        return
    await state.update_data(prompt=prompt)
    remembered = request.user.settings.mix_weight
    if remembered in PAIR_WEIGHTS:  # answered before: not asked again
        photo = InputPhoto.from_dict((await state.get_data())["photo"])
        await finish_flow(state)
        await request.submit_edit(
            EditInputs(Mode.MIX, [photo], prompt, weights=pair_weights(remembered), remembered=True)
        )
        return
    await state.set_state(MixFlow.weight)
    await message.answer(
        request.i18n.get(
            "edit-mix-choose", prompt=html.escape(prompt), step=step_text(request.i18n, MixFlow.weight.state, {})
        ),
        reply_markup=pair_weight_keyboard(request.i18n, "mix"),
    )


async def mix_photo(
    message: Message, state: FSMContext, request: RequestContext, photos: list[InputPhoto] | None, caption: str | None
) -> None:
    """The photo (a new one replaces the previous one at any step); its caption is the text."""
    if photos is None:
        return  # refused: answered by PhotosFilter
    await state.update_data(photo=photos[0].to_dict())
    data = await state.get_data()
    if not data.get("prompt"):
        await state.set_state(MixFlow.text)  # a caption that is no usable text leaves us asking for one
    text = caption or data.get("prompt")  # or a new photo for the text already given
    if text:
        await _take_text(message, text, state, request)
    else:
        await message.answer(step_text(request.i18n, MixFlow.text.state, data))


async def mix_text(message: Message, state: FSMContext, request: RequestContext) -> None:
    await _take_text(message, message.text or "", state, request)


async def mix_go(query: CallbackQuery, state: FSMContext, request: RequestContext, choice: str | None) -> None:
    if choice is None:
        return  # refused: answered by ChoiceFilter
    request.user.settings.mix_weight = int(choice)  # remembered: the next /mix does not ask
    data = await close_step(query, state)
    photo = InputPhoto.from_dict(data["photo"])
    await request.submit_edit(EditInputs(Mode.MIX, [photo], data["prompt"], weights=pair_weights(int(choice))))


def create_router() -> Router:
    router = Router(name="editing-mix")
    router.message(Command("mix"))(mix_command)
    router.message(StateFilter(MixFlow), F.func(has_media), PhotosFilter(at_most=1))(mix_photo)
    router.message(StateFilter(MixFlow.text, MixFlow.weight), PLAIN_TEXT)(mix_text)
    router.callback_query(MixFlow.weight, WeightCb.filter(F.action == WeightAction.MIX), ChoiceFilter(PAIR_WEIGHTS))(mix_go)
    return router
