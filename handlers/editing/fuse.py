"""/fuse: two to four photos, as one album or one by one followed by "Done".

Equal weights by default; with two photos the user picks 25 / 50 / 75 % for the first. Kandinsky 2.2:
the prior's ``interpolate`` over the photos' CLIP embeddings, then the decoder. An album sent outside
any flow is taken as a fusion request too.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram_i18n import I18nContext

from bot.i18n import translator
from generation.backend import Mode
from handlers.context import RequestContext
from handlers.editing.flow import (
    MAX_FUSE_PHOTOS,
    MIN_FUSE_PHOTOS,
    PAIR_WEIGHTS,
    chosen_weight,
    EditCb,
    FuseFlow,
    finish_flow,
    fuse_done_keyboard,
    pair_weight_keyboard,
    start_flow,
    step_text,
)
from handlers.common import PromptError, validate_prompt
from handlers.editing.inputs import InputPhoto, accept_inputs, caption_of, has_media, rejection_text


async def fuse_command(message: Message, state: FSMContext, i18n: I18nContext) -> None:
    await start_flow(state, FuseFlow.photos, photos=[])
    await message.answer(step_text(i18n, FuseFlow.photos.state, {"photos": []}))


async def add_photos(
    message: Message,
    messages: Sequence[Message],
    bot: Bot,
    state: FSMContext,
    i18n: I18nContext,
    request: RequestContext,
    max_image_side: int,
) -> None:
    """Photos for the fusion (in the FuseFlow.photos state). An album sent first needs no "Done"."""
    data = await state.get_data()
    collected = [InputPhoto.from_dict(p) for p in data.get("photos") or []]
    if len(collected) + len(messages) > MAX_FUSE_PHOTOS:
        await message.answer(rejection_text(i18n, "too_many"))
        return
    caption = caption_of(messages)
    if caption:  # an album's caption is the fusion's text (validated like any prompt)
        try:
            caption = validate_prompt(caption)
        except PromptError as exc:
            await message.answer(i18n.get(exc.code, **exc.kwargs))
            return
    photos = await accept_inputs(messages, bot, i18n, max_image_side)
    if photos is None:
        return
    if caption:
        await state.update_data(prompt=caption)
    first_is_album = not collected and len(photos) >= MIN_FUSE_PHOTOS
    collected += photos
    await state.update_data(photos=[p.to_dict() for p in collected])
    if first_is_album or len(collected) == MAX_FUSE_PHOTOS:
        await fuse_done(message, state, i18n, request, max_image_side, bot)
        return
    if len(collected) < MIN_FUSE_PHOTOS:  # no "Done" yet: the text does not mention it either
        await message.answer(i18n.get("edit-fuse-got-more", count=len(collected), max=MAX_FUSE_PHOTOS))
        return
    await message.answer(
        i18n.get("edit-fuse-got", count=len(collected), max=MAX_FUSE_PHOTOS), reply_markup=fuse_done_keyboard(i18n)
    )


async def fuse_done(
    message: Message,
    state: FSMContext,
    i18n: I18nContext,
    request: RequestContext,
    max_image_side: int,
    bot: Bot,
) -> None:
    data = await state.get_data()
    photos = [InputPhoto.from_dict(p) for p in data.get("photos") or []]
    prompt = data.get("prompt") or ""
    if len(photos) < MIN_FUSE_PHOTOS:
        await message.answer(i18n.get("edit-fuse-need-more", count=len(photos), min=MIN_FUSE_PHOTOS))
        return
    remembered = request.user.settings.fuse_weight
    if len(photos) == 2 and remembered in PAIR_WEIGHTS:  # answered before: not asked again
        await finish_flow(state)
        await _submit(request, photos, [remembered / 100, 1.0 - remembered / 100], prompt, remembered=True)
        return
    if len(photos) == 2:
        await state.set_state(FuseFlow.weight)
        await message.answer(
            step_text(i18n, FuseFlow.weight.state, await state.get_data()),
            reply_markup=pair_weight_keyboard(i18n, "fuse"),
        )
        return
    await finish_flow(state)
    await _submit(request, photos, [1.0] * len(photos), prompt)


async def _submit(
    request: RequestContext, photos: list[InputPhoto], weights: list[float], prompt: str = "", remembered: bool = False
) -> None:
    """``prompt``: an album's caption, fused in as one more part, as much as one photo on average."""
    total = sum(weights)
    weights = [w / total for w in weights]
    display = request.i18n.get("edit-caption-fuse", count=len(photos))
    if prompt:
        n = len(photos)
        weights = [w * n / (n + 1) for w in weights] + [1.0 / (n + 1)]
        display = request.i18n.get("edit-caption-fuse-text", count=len(photos), prompt=prompt)
    await request.submit_edit(
        mode=Mode.FUSE,
        photos=photos,
        prompt=prompt,
        weights=weights,
        display_prompt=display,
        remembered=remembered,
    )


async def fuse_photo(
    message: Message,
    bot: Bot,
    state: FSMContext,
    i18n: I18nContext,
    request: RequestContext,
    max_image_side: int,
    album: list[Message] | None = None,
) -> None:
    await add_photos(message, album or [message], bot, state, i18n, request, max_image_side)


async def fuse_done_command(
    message: Message,
    bot: Bot,
    state: FSMContext,
    i18n: I18nContext,
    request: RequestContext,
    max_image_side: int,
) -> None:
    await fuse_done(message, state, i18n, request, max_image_side, bot)


async def fuse_done_button(
    query: CallbackQuery,
    bot: Bot,
    state: FSMContext,
    i18n: I18nContext,
    request: RequestContext,
    max_image_side: int,
) -> None:
    if not isinstance(query.message, Message):
        await query.answer(i18n.get("callback-unknown"), show_alert=True)
        return
    await query.answer()
    await fuse_done(query.message, state, i18n, request, max_image_side, bot)


async def fuse_weight(
    query: CallbackQuery,
    callback_data: EditCb,
    state: FSMContext,
    i18n: I18nContext,
    request: RequestContext,
) -> None:
    first = await chosen_weight(query, callback_data.value, PAIR_WEIGHTS, i18n)
    if first is None or not isinstance(query.message, Message):
        return
    data = await state.get_data()
    photos = [InputPhoto.from_dict(p) for p in data["photos"]]
    request.user.settings.fuse_weight = round(first * 100)  # remembered: the next fusion of two does not ask
    await query.answer()
    await finish_flow(state, query.message)
    await _submit(request, photos, [first, 1.0 - first], data.get("prompt") or "")


def create_router() -> Router:
    router = Router(name="editing-fuse")
    router.message(Command("fuse"))(fuse_command)
    router.message(FuseFlow.photos, F.func(has_media))(fuse_photo)
    router.message(FuseFlow.photos, Command("done"))(fuse_done_command)
    # "Done" typed instead of pressed, in any of the bot's languages ("done", "готово").
    done_words = {word.lower() for word in translator().all_locales("edit-word-done")}
    router.message(FuseFlow.photos, F.text.lower().in_(done_words))(fuse_done_command)
    router.callback_query(FuseFlow.photos, EditCb.filter(F.action == "fuse_done"))(fuse_done_button)
    router.callback_query(FuseFlow.weight, EditCb.filter(F.action == "fuse"))(fuse_weight)
    return router
