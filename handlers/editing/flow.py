"""The editing flows' states, their 10-minute timeout, the step messages and the inline buttons."""

from __future__ import annotations

import time
from enum import StrEnum
from collections.abc import Callable, Iterable
from typing import Any

from aiogram import BaseMiddleware, F
from aiogram.dispatcher.event.bases import NextMiddlewareType
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Filter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message, TelegramObject
from aiogram.utils.keyboard import InlineKeyboardBuilder
from aiogram_i18n import I18nContext

from bot.best_effort import best_effort
from generation.styles import DEFAULT_EDIT_STRENGTH, EDIT_STRENGTHS

FLOW_TIMEOUT_SECONDS = 600.0  # a flow left alone this long starts over

# Restyle strength: how much of the photo is redrawn (diffusers' img2img ``strength``).
STRENGTHS = EDIT_STRENGTHS  # generation.styles: the result's Lighter / Stronger buttons use them too
DEFAULT_STRENGTH = DEFAULT_EDIT_STRENGTH
STYLE_WEIGHTS = (30, 50, 70)  # percent of the style photo in the mix (the content photo has the rest)
PAIR_WEIGHTS = (25, 50, 75)  # percent of the first photo (fusion of two) or of the photo (photo + text)
MAX_FUSE_PHOTOS = 4
MIN_FUSE_PHOTOS = 2


PLAIN_TEXT = F.text & ~F.text.startswith("/")  # a flow's text step: anything typed but a command


def pair_weights(percent: int) -> list[float]:
    """A pair weight button's value: the first part's share, and the second's."""
    return [percent / 100, 1.0 - percent / 100]


class RestyleFlow(StatesGroup):
    photo = State()  # step 1 of 2: the photo
    text = State()  # step 2 of 2: what it should become
    strength = State()  # the strength buttons are shown


class StyleFlow(StatesGroup):
    content = State()  # step 1 of 3
    style = State()  # step 2 of 3
    weight = State()  # step 3 of 3: buttons


class FuseFlow(StatesGroup):
    photos = State()  # step 1 of 2: 2-4 photos, then Done
    weight = State()  # step 2 of 2 (two photos only): buttons


class MixFlow(StatesGroup):
    photo = State()  # step 1 of 3
    text = State()  # step 2 of 3
    weight = State()  # step 3 of 3: buttons


class VariationsFlow(StatesGroup):
    photo = State()


FLOWS = (RestyleFlow, StyleFlow, FuseFlow, MixFlow, VariationsFlow)
EDIT_STATES: frozenset[str] = frozenset(s.state for group in FLOWS for s in group.__states__)


class EditAction(StrEnum):
    """Buttons of the flows that carry nothing else."""

    FUSE_DONE = "fuse_done"
    VARIATIONS = "variations"


class StrengthAction(StrEnum):
    RESTYLE = "restyle"
    SHAPES = "shapes"  # restyle keeping the shapes


class WeightAction(StrEnum):
    STYLE = "style"
    FUSE = "fuse"
    MIX = "mix"


# The strength levels of generation.styles.EDIT_STRENGTHS, as the type of a button's field.
Strength = StrEnum("Strength", {level.upper(): level for level in EDIT_STRENGTHS})

# Three factories share the "edit" prefix, each with its own actions, so that exactly one parses a
# button and aiogram refuses a malformed one before any handler runs.


class EditCb(CallbackData, prefix="edit"):
    action: EditAction


class StrengthCb(CallbackData, prefix="edit"):
    action: StrengthAction
    level: Strength

    @property
    def choice(self) -> str:
        return str(self.level)


class WeightCb(CallbackData, prefix="edit"):
    action: WeightAction
    percent: int  # the weight of the first input, in percent

    @property
    def choice(self) -> int:
        return self.percent


def is_edit_button(query: CallbackQuery) -> bool:
    return (query.data or "").startswith(f"{EditCb.__prefix__}:")


class ChoiceFilter(Filter):
    """Adds ``choice``: the pressed strength or weight button's value when it is one of ``offered``,
    or None after refusing it: a value no keyboard offers (forged or stale callback data), or a
    message too old to answer under (see :mod:`handlers.filters`)."""

    def __init__(self, offered: Iterable[object]) -> None:
        self.offered = frozenset(offered)

    async def __call__(
        self, query: CallbackQuery, callback_data: StrengthCb | WeightCb, i18n: I18nContext
    ) -> dict[str, Any]:
        if callback_data.choice in self.offered and isinstance(query.message, Message):
            return {"choice": callback_data.choice}
        await query.answer(i18n.get("callback-unknown"), show_alert=True)
        return {"choice": None}


async def start_flow(state: FSMContext, step: State, **data: Any) -> None:
    """Enter a flow afresh (whatever flow the user was in is dropped)."""
    await state.set_state(step)
    await state.set_data({"touched": time.time(), **data})


async def finish_flow(state: FSMContext, buttons_message: Message | None = None) -> None:
    await state.clear()
    if buttons_message is not None:
        await drop_buttons(buttons_message)


async def close_step(query: CallbackQuery, state: FSMContext) -> dict[str, Any]:
    """The last button of a flow was pressed: the flow's data, once the press is acknowledged, the
    flow over and the step's buttons gone."""
    data = await state.get_data()
    await query.answer()
    await finish_flow(state, query.message if isinstance(query.message, Message) else None)
    return data


async def drop_buttons(message: Message) -> None:
    """Remove the inline buttons of a flow's step message (best effort: it may be too old)."""
    try:
        with best_effort():
            await message.edit_reply_markup(reply_markup=None)
    except TelegramAPIError:  # a stale or deleted message is no reason to fail the request
        pass


class FlowTimeoutMiddleware(BaseMiddleware):
    """A flow untouched for ten minutes is over: the next message is handled as if there were none.

    The flow's last activity is ``touched`` in the FSM data (a timestamp, so it survives restarts
    with a persistent FSM storage); it is refreshed after every update the editing router sees.
    """

    def __init__(self, timeout: float = FLOW_TIMEOUT_SECONDS, clock: Callable[[], float] = time.time) -> None:
        self.timeout = timeout
        self.clock = clock

    async def __call__(
        self,
        handler: NextMiddlewareType[TelegramObject],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        state: FSMContext | None = data.get("state")
        if state is None or data.get("raw_state") not in EDIT_STATES:
            return await handler(event, data)
        touched = float((await state.get_data()).get("touched", 0.0))
        if self.clock() - touched > self.timeout:
            await state.clear()
            data["raw_state"] = None
            i18n: I18nContext = data["i18n"]
            if isinstance(event, CallbackQuery) and is_edit_button(event):
                # A button of the expired flow: say so (other buttons, e.g. "Again", still work).
                await event.answer(i18n.get("edit-flow-expired"), show_alert=True)
                if isinstance(event.message, Message):
                    await drop_buttons(event.message)
                return None
            if isinstance(event, Message):
                await event.answer(i18n.get("edit-flow-expired"))
            return await handler(event, data)
        try:
            return await handler(event, data)
        finally:
            if await state.get_state() in EDIT_STATES:
                await state.update_data(touched=self.clock())


def strength_keyboard(i18n: I18nContext, current: str, shapes_only: bool) -> InlineKeyboardMarkup:
    """Light / medium / strong (the remembered one marked); "keep the shapes" below for a plain restyle."""
    builder = InlineKeyboardBuilder()
    current = current if current in STRENGTHS else DEFAULT_STRENGTH
    action = StrengthAction.SHAPES if shapes_only else StrengthAction.RESTYLE
    for level in STRENGTHS:
        text = i18n.get(f"edit-strength-{level}")
        builder.button(
            text=f"✅ {text}" if level == current else text, callback_data=StrengthCb(action=action, level=Strength(level))
        )
    if not shapes_only:
        builder.button(
            text=i18n.get("edit-btn-keep-shapes"),
            callback_data=StrengthCb(action=StrengthAction.SHAPES, level=Strength(current)),
        )
    builder.adjust(3, 1)
    return builder.as_markup()


def photo_actions_keyboard(i18n: I18nContext) -> InlineKeyboardMarkup:
    """Under "send the text" for a photo sent alone: variations of it need no text."""
    builder = InlineKeyboardBuilder()
    builder.button(text=i18n.get("edit-btn-variations-of-photo"), callback_data=EditCb(action=EditAction.VARIATIONS))
    return builder.as_markup()


def style_weight_keyboard(i18n: I18nContext) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for percent in STYLE_WEIGHTS:
        builder.button(
            text=i18n.get("edit-btn-style-weight", percent=percent),
            callback_data=WeightCb(action=WeightAction.STYLE, percent=percent),
        )
    builder.adjust(3)
    return builder.as_markup()


def fuse_done_keyboard(i18n: I18nContext) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=i18n.get("edit-btn-done"), callback_data=EditCb(action=EditAction.FUSE_DONE))
    return builder.as_markup()


def pair_weight_keyboard(i18n: I18nContext, action: str) -> InlineKeyboardMarkup:
    """Fusion of two photos (first / second) or photo + text: 25 / 50 / 75 percent for the first."""
    builder = InlineKeyboardBuilder()
    for percent in PAIR_WEIGHTS:
        builder.button(
            text=i18n.get(f"edit-btn-{action}-weight", first=percent, second=100 - percent),
            callback_data=WeightCb(action=WeightAction(action), percent=percent),
        )
    builder.adjust(1)
    return builder.as_markup()


# Where the user is: the step message of each state (also repeated when something unexpected arrives).
STEP_KEYS: dict[str | None, str] = {
    RestyleFlow.photo.state: "edit-restyle-step-photo",
    RestyleFlow.text.state: "edit-restyle-step-text",
    RestyleFlow.strength.state: "edit-restyle-step-strength",
    StyleFlow.content.state: "edit-style-step-content",
    StyleFlow.style.state: "edit-style-step-style",
    StyleFlow.weight.state: "edit-style-step-weight",
    FuseFlow.photos.state: "edit-fuse-step-photos",
    FuseFlow.weight.state: "edit-fuse-step-weight",
    MixFlow.photo.state: "edit-mix-step-photo",
    MixFlow.text.state: "edit-mix-step-text",
    MixFlow.weight.state: "edit-mix-step-weight",
    VariationsFlow.photo.state: "edit-variations-step-photo",
}


def step_text(i18n: I18nContext, raw_state: str | None, data: dict[str, Any]) -> str:
    key = STEP_KEYS[raw_state]
    if data.get("shapes") and key.startswith("edit-restyle-"):
        key = key.replace("edit-restyle-", "edit-shapes-")
    return i18n.get(key, count=len(data.get("photos") or []), max=MAX_FUSE_PHOTOS)
