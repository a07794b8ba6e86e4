"""Restyle a photo by text (a photo with a caption, or /restyle) and keeping the shapes (/restyle_shapes).

Photo + text, then the strength buttons: light / medium / strong start a restyle by text at that
strength (remembered in the user's settings); "keep the shapes" starts the depth-ControlNet restyle
at the remembered strength. After /restyle_shapes the three buttons start the depth restyle.
"""

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
    PLAIN_TEXT,
    STRENGTHS,
    ChoiceFilter,
    StrengthAction,
    StrengthCb,
    RestyleFlow,
    close_step,
    finish_flow,
    photo_actions_keyboard,
    start_flow,
    step_text,
    strength_keyboard,
)
from handlers.editing.inputs import InputPhoto, PhotosFilter, has_media
from handlers.editing.submit import strength_value


async def restyle_command(message: Message, state: FSMContext, i18n: I18nContext) -> None:
    await start_flow(state, RestyleFlow.photo, shapes=False)
    await message.answer(step_text(i18n, RestyleFlow.photo.state, {}))


async def restyle_shapes_command(message: Message, state: FSMContext, i18n: I18nContext) -> None:
    await start_flow(state, RestyleFlow.photo, shapes=True)
    await message.answer(step_text(i18n, RestyleFlow.photo.state, {"shapes": True}))


def _mode(shapes: bool) -> Mode:
    return Mode.RESTYLE_DEPTH if shapes else Mode.IMG2IMG


async def take_photo(
    message: Message, state: FSMContext, request: RequestContext, photo: InputPhoto, caption: str | None
) -> None:
    """A photo for the restyle: with a caption it is restyled at once at the remembered strength
    (🔅 Lighter / 🔆 Stronger / 🧱 Keep the shapes under the result redo it); else ask for the text."""
    await state.update_data(photo=photo.to_dict())
    await state.set_state(RestyleFlow.text)  # a caption that is no usable prompt leaves us asking for one
    if caption:
        prompt = await checked_prompt(message, caption, request.i18n)
        if prompt is None:
            return
        shapes = bool((await state.get_data()).get("shapes"))
        await finish_flow(state)
        strength = strength_value(request.user.settings.edit_strength)
        await request.submit_edit(EditInputs(_mode(shapes), [photo], prompt, strength=strength, remembered=True))
        return
    data = await state.get_data()
    # A photo alone may also be meant for variations: one button for that, instead of a text.
    markup = None if data.get("shapes") else photo_actions_keyboard(request.i18n)
    await message.answer(step_text(request.i18n, RestyleFlow.text.state, data), reply_markup=markup)


async def restyle_photo(
    message: Message, state: FSMContext, request: RequestContext, photos: list[InputPhoto] | None, caption: str | None
) -> None:
    """The photo (a new one replaces the previous one at any step)."""
    if photos is None:
        return  # refused: answered by PhotosFilter
    await take_photo(message, state, request, photos[0], caption)


async def restyle_text(message: Message, state: FSMContext, request: RequestContext) -> None:
    """The text (typed again at the buttons step, it replaces the previous one)."""
    prompt = await checked_prompt(message, message.text, request.i18n)
    if prompt is None:
        return
    await state.update_data(prompt=prompt)
    await state.set_state(RestyleFlow.strength)
    data = await state.get_data()
    shapes = bool(data.get("shapes"))
    await message.answer(
        request.i18n.get(
            "edit-shapes-choose" if shapes else "edit-restyle-choose",
            prompt=html.escape(prompt),
            step=step_text(request.i18n, RestyleFlow.strength.state, data),
        ),
        reply_markup=strength_keyboard(request.i18n, request.user.settings.edit_strength, shapes_only=shapes),
    )


async def restyle_go(
    query: CallbackQuery, callback_data: StrengthCb, state: FSMContext, request: RequestContext, choice: str | None
) -> None:
    """A strength button: the restyle (by text, or keeping the shapes) at that strength."""
    if choice is None:
        return  # refused: answered by ChoiceFilter
    request.user.settings.edit_strength = choice  # remembered for the next restyle
    data = await close_step(query, state)
    photo = InputPhoto.from_dict(data["photo"])
    shapes = callback_data.action is StrengthAction.SHAPES
    await request.submit_edit(EditInputs(_mode(shapes), [photo], data["prompt"], strength=strength_value(choice)))


def create_router() -> Router:
    router = Router(name="editing-restyle")
    router.message(Command("restyle"))(restyle_command)
    router.message(Command("restyle_shapes"))(restyle_shapes_command)
    router.message(StateFilter(RestyleFlow), F.func(has_media), PhotosFilter(at_most=1))(restyle_photo)
    router.message(StateFilter(RestyleFlow.text, RestyleFlow.strength), PLAIN_TEXT)(restyle_text)
    choice = ChoiceFilter(STRENGTHS)
    router.callback_query(RestyleFlow.strength, StrengthCb.filter(), choice)(restyle_go)
    return router
