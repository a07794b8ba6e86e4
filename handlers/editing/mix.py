"""/mix: a photo and a text, with a weight for each (Kandinsky 2.2 prior ``interpolate([image, text])``)."""

from __future__ import annotations

import html

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram_i18n import I18nContext

from generation.backend import Mode
from generation.jobs import JobService
from handlers.common import PromptError, validate_prompt
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
from handlers.editing.inputs import InputPhoto, accept_inputs, caption_of, has_media
from handlers.editing.submit import submit_edit
from storage.models import User
from storage.repositories import Repositories


PLAIN_TEXT = F.text & ~F.text.startswith("/")


async def mix_command(message: Message, state: FSMContext, i18n: I18nContext) -> None:
    await start_flow(state, MixFlow.photo)
    await message.answer(step_text(i18n, MixFlow.photo.state, {}))


async def _take_text(
    message: Message, text: str, state: FSMContext, i18n: I18nContext, user: User, bot: Bot, repos: Repositories,
    jobs: JobService, max_image_side: int,
) -> None:
    try:
        prompt = validate_prompt(text)
    except PromptError as exc:
        await message.answer(i18n.get(exc.code, **exc.kwargs))
        return
    await state.update_data(prompt=prompt)
    remembered = user.settings.mix_weight
    if remembered in PAIR_WEIGHTS:  # the last question was answered before: no need to ask again
        photo = InputPhoto.from_dict((await state.get_data())["photo"])
        await finish_flow(state)
        await _submit(message.chat.id, photo, prompt, remembered, bot, i18n, user, repos, jobs, max_image_side)
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
    await state.update_data(photo=photos[0].to_dict())
    caption = caption_of(messages)
    data = await state.get_data()
    if not data.get("prompt"):
        await state.set_state(MixFlow.text)  # a caption that is no usable text leaves us asking for one
    more = (user, bot, repos, jobs, max_image_side)
    if caption:
        await _take_text(message, caption, state, i18n, *more)
    elif data.get("prompt"):  # a new photo for the text already given
        await _take_text(message, data["prompt"], state, i18n, *more)
    else:
        await state.set_state(MixFlow.text)
        await message.answer(step_text(i18n, MixFlow.text.state, data))


async def mix_text(
    message: Message, bot: Bot, state: FSMContext, i18n: I18nContext, user: User, repos: Repositories,
    jobs: JobService, max_image_side: int,
) -> None:
    await _take_text(message, message.text or "", state, i18n, user, bot, repos, jobs, max_image_side)


async def mix_go(
    query: CallbackQuery,
    callback_data: EditCb,
    bot: Bot,
    state: FSMContext,
    i18n: I18nContext,
    user: User,
    repos: Repositories,
    jobs: JobService,
    max_image_side: int,
) -> None:
    image_weight = await chosen_weight(query, callback_data.value, PAIR_WEIGHTS, i18n)
    if image_weight is None or not isinstance(query.message, Message):
        return
    data = await state.get_data()
    await query.answer()
    await finish_flow(state, query.message)
    percent = round(image_weight * 100)
    user.settings.mix_weight = percent  # remembered: the next /mix does not ask
    await _submit(
        query.message.chat.id, InputPhoto.from_dict(data["photo"]), data["prompt"], percent, bot, i18n, user, repos,
        jobs, max_image_side, remembered=False,
    )


async def _submit(
    chat_id: int, photo: InputPhoto, prompt: str, percent: int, bot: Bot, i18n: I18nContext, user: User,
    repos: Repositories, jobs: JobService, max_image_side: int, remembered: bool = True,
) -> None:
    note = i18n.get("edit-note-mix-remembered", image=percent, text=100 - percent) if remembered else None
    await submit_edit(
        bot=bot, chat_id=chat_id, repos=repos, user=user, jobs=jobs, i18n=i18n, max_side=max_image_side,
        mode=Mode.MIX, photos=[photo], prompt=prompt, weights=[percent / 100, 1.0 - percent / 100], note=note,
    )


def create_router() -> Router:
    router = Router(name="editing-mix")
    router.message(Command("mix"))(mix_command)
    router.message(MixFlow.photo, F.func(has_media))(mix_photo)
    router.message(MixFlow.text, F.func(has_media))(mix_photo)
    router.message(MixFlow.weight, F.func(has_media))(mix_photo)
    router.message(MixFlow.text, PLAIN_TEXT)(mix_text)
    router.message(MixFlow.weight, PLAIN_TEXT)(mix_text)
    router.callback_query(MixFlow.weight, EditCb.filter(F.action == "mix"))(mix_go)
    return router
