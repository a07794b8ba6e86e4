"""/fuse: two to four photos, as one album or one by one followed by "Done".

Equal weights by default; with two photos the user picks 25 / 50 / 75 % for the first. Kandinsky 2.2:
the prior's ``interpolate`` over the photos' CLIP embeddings, then the decoder. An album sent outside
any flow is taken as a fusion request too.
"""

from __future__ import annotations

from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, Filter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram_i18n import I18nContext

from bot.i18n import translator
from generation.backend import Mode
from handlers.common import checked_prompt
from handlers.context import EditInputs, RequestContext
from handlers.editing.flow import (
    MAX_FUSE_PHOTOS,
    MIN_FUSE_PHOTOS,
    PAIR_WEIGHTS,
    ChoiceFilter,
    EditAction,
    EditCb,
    FuseFlow,
    WeightAction,
    WeightCb,
    close_step,
    finish_flow,
    fuse_done_keyboard,
    pair_weight_keyboard,
    pair_weights,
    start_flow,
    step_text,
)
from handlers.editing.inputs import InputPhoto, accept_inputs, caption_of, has_media, rejection_text


class FusePhotosFilter(Filter):
    """:class:`handlers.editing.inputs.PhotosFilter` for the fusion: more photos than it takes (with
    those sent before in the flow) are refused before any is read, and ``caption`` is the fusion's
    text, validated like any prompt (a refusal is answered; ``photos`` is then None)."""

    async def __call__(
        self, message: Message, state: FSMContext, request: RequestContext, album: list[Message] | None = None
    ) -> dict[str, Any]:
        i18n = request.i18n
        refused = {"photos": None, "caption": None}
        messages = album or [message]
        in_flow = await state.get_state() == FuseFlow.photos.state  # outside any flow an album starts one
        collected = ((await state.get_data()).get("photos") or []) if in_flow else []
        if len(collected) + len(messages) > MAX_FUSE_PHOTOS:
            await message.answer(rejection_text(i18n, "too_many"))
            return refused
        caption = caption_of(messages)
        if caption:
            caption = await checked_prompt(message, caption, i18n)
            if caption is None:
                return refused
        return {"photos": await accept_inputs(messages, request.bot, i18n, request.max_side), "caption": caption}


async def fuse_command(message: Message, state: FSMContext, i18n: I18nContext) -> None:
    await start_flow(state, FuseFlow.photos, photos=[])
    await message.answer(step_text(i18n, FuseFlow.photos.state, {"photos": []}))


async def fuse_photos(
    message: Message, state: FSMContext, request: RequestContext, photos: list[InputPhoto] | None, caption: str | None
) -> None:
    """Photos for the fusion (in the FuseFlow.photos state). An album sent first needs no "Done"."""
    if photos is None:
        return  # refused: answered by FusePhotosFilter
    if caption:
        await state.update_data(prompt=caption)
    collected = [InputPhoto.from_dict(p) for p in (await state.get_data()).get("photos") or []]
    first_is_album = not collected and len(photos) >= MIN_FUSE_PHOTOS
    collected += photos
    await state.update_data(photos=[p.to_dict() for p in collected])
    if first_is_album or len(collected) == MAX_FUSE_PHOTOS:
        await fuse_done(message, state, request)
        return
    i18n = request.i18n
    if len(collected) < MIN_FUSE_PHOTOS:  # no "Done" yet: the text does not mention it either
        await message.answer(i18n.get("edit-fuse-got-more", count=len(collected), max=MAX_FUSE_PHOTOS))
        return
    await message.answer(
        i18n.get("edit-fuse-got", count=len(collected), max=MAX_FUSE_PHOTOS), reply_markup=fuse_done_keyboard(i18n)
    )


async def fuse_done(message: Message, state: FSMContext, request: RequestContext) -> None:
    """/done, "done" typed, or the photos are all there: fuse them (two: ask the weights first)."""
    data = await state.get_data()
    photos = [InputPhoto.from_dict(p) for p in data.get("photos") or []]
    prompt = data.get("prompt") or ""
    if len(photos) < MIN_FUSE_PHOTOS:
        await message.answer(request.i18n.get("edit-fuse-need-more", count=len(photos), min=MIN_FUSE_PHOTOS))
        return
    remembered = request.user.settings.fuse_weight
    if len(photos) == 2 and remembered in PAIR_WEIGHTS:  # answered before: not asked again
        await finish_flow(state)
        await _submit(request, photos, pair_weights(remembered), prompt, remembered=True)
        return
    if len(photos) == 2:
        await state.set_state(FuseFlow.weight)
        await message.answer(
            step_text(request.i18n, FuseFlow.weight.state, await state.get_data()),
            reply_markup=pair_weight_keyboard(request.i18n, "fuse"),
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
        EditInputs(Mode.FUSE, photos, prompt, weights=weights, display_prompt=display, remembered=remembered)
    )


async def fuse_done_button(query: CallbackQuery, state: FSMContext, request: RequestContext) -> None:
    if not isinstance(query.message, Message):
        await query.answer(request.i18n.get("callback-unknown"), show_alert=True)
        return
    await query.answer()
    await fuse_done(query.message, state, request)


async def fuse_weight(query: CallbackQuery, state: FSMContext, request: RequestContext, choice: str | None) -> None:
    if choice is None:
        return  # refused: answered by ChoiceFilter
    request.user.settings.fuse_weight = int(choice)  # remembered: the next fusion of two does not ask
    data = await close_step(query, state)
    photos = [InputPhoto.from_dict(p) for p in data["photos"]]
    await _submit(request, photos, pair_weights(int(choice)), data.get("prompt") or "")


def create_router() -> Router:
    router = Router(name="editing-fuse")
    router.message(Command("fuse"))(fuse_command)
    router.message(FuseFlow.photos, F.func(has_media), FusePhotosFilter())(fuse_photos)
    router.message(FuseFlow.photos, Command("done"))(fuse_done)
    # "Done" typed instead of pressed, in any of the bot's languages ("done", "готово").
    done_words = {word.lower() for word in translator().all_locales("edit-word-done")}
    router.message(FuseFlow.photos, F.text.lower().in_(done_words))(fuse_done)
    router.callback_query(FuseFlow.photos, EditCb.filter(F.action == EditAction.FUSE_DONE))(fuse_done_button)
    router.callback_query(FuseFlow.weight, WeightCb.filter(F.action == WeightAction.FUSE), ChoiceFilter(PAIR_WEIGHTS))(fuse_weight)
    return router
