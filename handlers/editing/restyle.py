"""Restyle a photo by text (a photo with a caption, or /restyle) and keeping the shapes (/restyle_shapes).

Photo + text, then the strength buttons: light / medium / strong start a restyle by text at that
strength (remembered in the user's settings); "keep the shapes" starts the depth-ControlNet restyle
at the remembered strength. After /restyle_shapes the three buttons start the depth restyle.
"""

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
    DEFAULT_STRENGTH,
    STRENGTHS,
    EditCb,
    RestyleFlow,
    finish_flow,
    photo_actions_keyboard,
    start_flow,
    step_text,
    strength_keyboard,
)
from handlers.editing.inputs import InputPhoto, PhotosFilter, caption_of, has_media
from handlers.editing.submit import strength_value
from storage.models import User


PLAIN_TEXT = F.text & ~F.text.startswith("/")


async def restyle_command(message: Message, state: FSMContext, i18n: I18nContext) -> None:
    await start_flow(state, RestyleFlow.photo, shapes=False)
    await message.answer(step_text(i18n, RestyleFlow.photo.state, {}))


async def restyle_shapes_command(message: Message, state: FSMContext, i18n: I18nContext) -> None:
    await start_flow(state, RestyleFlow.photo, shapes=True)
    await message.answer(step_text(i18n, RestyleFlow.photo.state, {"shapes": True}))


async def take_photo(
    message: Message,
    photo: InputPhoto,
    caption: str | None,
    state: FSMContext,
    i18n: I18nContext,
    user: User,
    request: RequestContext | None = None,
) -> None:
    """A photo for the restyle: with a caption it is restyled at once at the remembered strength
    (🔅 Lighter / 🔆 Stronger / 🧱 Keep the shapes under the result redo it); else ask for the text."""
    await state.update_data(photo=photo.to_dict())
    await state.set_state(RestyleFlow.text)  # a caption that is no usable prompt leaves us asking for one
    if caption and request is not None:
        try:
            prompt = validate_prompt(caption)
        except PromptError as exc:
            await message.answer(i18n.get(exc.code, **exc.kwargs))
            return
        shapes = bool((await state.get_data()).get("shapes"))
        await finish_flow(state)
        level = user.settings.edit_strength if user.settings.edit_strength in STRENGTHS else DEFAULT_STRENGTH
        await request.submit_edit(
            mode=Mode.RESTYLE_DEPTH if shapes else Mode.IMG2IMG, photos=[photo], prompt=prompt,
            strength=strength_value(level), remembered=True,
        )
        return
    if caption:
        await take_text(message, caption, state, i18n, user)
        return
    data = await state.get_data()
    # A photo alone may also be meant for variations: one button for that, instead of a text.
    markup = None if data.get("shapes") else photo_actions_keyboard(i18n)
    await message.answer(step_text(i18n, RestyleFlow.text.state, data), reply_markup=markup)


async def take_text(message: Message, text: str, state: FSMContext, i18n: I18nContext, user: User) -> None:
    try:
        prompt = validate_prompt(text)
    except PromptError as exc:
        await message.answer(i18n.get(exc.code, **exc.kwargs))
        return
    await state.update_data(prompt=prompt)
    await state.set_state(RestyleFlow.strength)
    data = await state.get_data()
    await message.answer(
        i18n.get(
            "edit-shapes-choose" if data.get("shapes") else "edit-restyle-choose",
            prompt=html.escape(prompt),
            step=step_text(i18n, RestyleFlow.strength.state, data),
        ),
        reply_markup=strength_keyboard(i18n, user.settings.edit_strength, shapes_only=bool(data.get("shapes"))),
    )


async def restyle_photo(
    message: Message,
    bot: Bot,
    state: FSMContext,
    i18n: I18nContext,
    user: User,
    max_image_side: int,
    photos: list[InputPhoto] | None,
    request: RequestContext,
    album: list[Message] | None = None,
) -> None:
    """The photo (a new one replaces the previous one at any step)."""
    messages = album or [message]
    if photos is None:
        return  # refused: answered by PhotosFilter
    await take_photo(message, photos[0], caption_of(messages), state, i18n, user, request)


async def restyle_text(message: Message, state: FSMContext, i18n: I18nContext, user: User) -> None:
    """The text (typed again at the buttons step, it replaces the previous one)."""
    await take_text(message, message.text or "", state, i18n, user)


async def restyle_go(
    query: CallbackQuery,
    callback_data: EditCb,
    bot: Bot,
    state: FSMContext,
    i18n: I18nContext,
    request: RequestContext,
    max_image_side: int,
) -> None:
    level = callback_data.value
    if level not in STRENGTHS or not isinstance(query.message, Message):
        await query.answer(i18n.get("callback-unknown"), show_alert=True)
        return
    data = await state.get_data()
    request.user.settings.edit_strength = level  # remembered for the next restyle
    await query.answer()
    await finish_flow(state, query.message)
    await request.submit_edit(
        mode=Mode.RESTYLE_DEPTH if callback_data.action == "shapes" else Mode.IMG2IMG,
        photos=[InputPhoto.from_dict(data["photo"])],
        prompt=data["prompt"],
        strength=strength_value(level),
    )


def create_router() -> Router:
    router = Router(name="editing-restyle")
    router.message(Command("restyle"))(restyle_command)
    router.message(Command("restyle_shapes"))(restyle_shapes_command)
    router.message(RestyleFlow.photo, F.func(has_media), PhotosFilter(at_most=1))(restyle_photo)
    router.message(RestyleFlow.text, F.func(has_media), PhotosFilter(at_most=1))(restyle_photo)
    router.message(RestyleFlow.strength, F.func(has_media), PhotosFilter(at_most=1))(restyle_photo)
    router.message(RestyleFlow.text, PLAIN_TEXT)(restyle_text)
    router.message(RestyleFlow.strength, PLAIN_TEXT)(restyle_text)
    router.callback_query(RestyleFlow.strength, EditCb.filter(F.action.in_({"restyle", "shapes"})))(restyle_go)
    return router
