"""/style: a content photo, then a style photo, then how much of the style to take (buttons).

Kandinsky 2.2: image-to-image from the content photo, guided by the prior's weighted mix of both
photos' CLIP embeddings; the image-to-image strength is the user's remembered restyle strength.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram_i18n import I18nContext

from generation.backend import Mode
from handlers.context import EditInputs, RequestContext
from handlers.editing.flow import (
    STYLE_WEIGHTS,
    ChoiceFilter,
    WeightAction,
    WeightCb,
    StyleFlow,
    close_step,
    start_flow,
    step_text,
    style_weight_keyboard,
)
from handlers.editing.inputs import InputPhoto, PhotosFilter, has_media
from handlers.editing.submit import strength_value


async def style_command(message: Message, state: FSMContext, i18n: I18nContext) -> None:
    await start_flow(state, StyleFlow.content)
    await message.answer(step_text(i18n, StyleFlow.content.state, {}))


async def content_photo(
    message: Message, state: FSMContext, i18n: I18nContext, photos: list[InputPhoto] | None
) -> None:
    """The content photo; an album of two is taken as content and style at once."""
    if photos is None:
        return  # refused: answered by PhotosFilter
    await state.update_data(content=photos[0].to_dict())
    if len(photos) == 2:
        await style_photo(message, state, i18n, photos[1:])
        return
    await state.set_state(StyleFlow.style)
    await message.answer(step_text(i18n, StyleFlow.style.state, {}))


async def style_photo(message: Message, state: FSMContext, i18n: I18nContext, photos: list[InputPhoto] | None) -> None:
    """The style photo; then how much of its style to take (buttons)."""
    if photos is None:
        return  # refused: answered by PhotosFilter
    await state.update_data(style=photos[0].to_dict())
    await state.set_state(StyleFlow.weight)
    await message.answer(
        step_text(i18n, StyleFlow.weight.state, await state.get_data()), reply_markup=style_weight_keyboard(i18n)
    )


async def style_go(query: CallbackQuery, state: FSMContext, request: RequestContext, choice: str | None) -> None:
    if choice is None:
        return  # refused: answered by ChoiceFilter
    data = await close_step(query, state)
    style_weight = int(choice) / 100
    await request.submit_edit(
        EditInputs(
            Mode.STYLE,
            [InputPhoto.from_dict(data["content"]), InputPhoto.from_dict(data["style"])],
            weights=[1.0 - style_weight, style_weight],
            strength=strength_value(request.user.settings.edit_strength),
            display_prompt=request.i18n.get("edit-caption-style", percent=int(choice)),
        )
    )


def create_router() -> Router:
    router = Router(name="editing-style")
    router.message(Command("style"))(style_command)
    router.message(StyleFlow.content, F.func(has_media), PhotosFilter(at_most=2))(content_photo)
    router.message(StyleFlow.style, F.func(has_media), PhotosFilter(at_most=1))(style_photo)
    router.callback_query(StyleFlow.weight, WeightCb.filter(F.action == WeightAction.STYLE), ChoiceFilter(STYLE_WEIGHTS))(style_go)
    return router
