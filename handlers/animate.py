"""/animate: up to four scenes, each a text and a camera move, made into one video.

The flow: /animate -> the scene's text -> camera buttons -> "Add a scene" (back to the text) or "Make
the video". Every step message says where the user is (scene n of up to 4, step k of 2) and how to
leave (/cancel, handled by the cancel router before this one). The scenes live in the FSM storage,
which is the database (or Redis) and not memory, so a restart in the middle of a flow loses nothing;
stale buttons after /cancel are answered, never acted on.
"""

from __future__ import annotations

import html
from enum import StrEnum
from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from aiogram_i18n import I18nContext

from generation.backend import Mode
from generation.motion import ANIMATION_MAX_SIDE, MAX_SCENES, SCENE_SECONDS, CameraMove
from generation.styles import image_size
from handlers.common import PromptError, validate_prompt
from handlers.context import RequestContext
from jobs.service import PromptBlocked

PLAIN_TEXT = F.text & ~F.text.startswith("/")
# The order of the camera buttons: zooms, pans, rolls, drift.
CAMERA_ROWS: tuple[tuple[CameraMove, ...], ...] = (
    (CameraMove.ZOOM_IN, CameraMove.ZOOM_OUT),
    (CameraMove.PAN_LEFT, CameraMove.PAN_RIGHT),
    (CameraMove.PAN_UP, CameraMove.PAN_DOWN),
    (CameraMove.ROTATE_CW, CameraMove.ROTATE_CCW),
    (CameraMove.DRIFT,),
)


class AnimateFlow(StatesGroup):
    text = State()  # step 1 of 2 of a scene: its text
    camera = State()  # step 2 of 2: the camera buttons are shown
    ready = State()  # "Add a scene" / "Make the video"


class AnimateStep(StrEnum):
    MOVE = "move"  # a camera button (``move`` says which)
    ADD = "add"  # "Add a scene"
    MAKE = "make"  # "Make the video"


class AnimateAction(CallbackData, prefix="anim"):
    action: AnimateStep
    move: CameraMove | None = None


def camera_keyboard(i18n: I18nContext) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for row in CAMERA_ROWS:
        for move in row:
            builder.button(text=i18n.get(f"cam-{move.value}"), callback_data=AnimateAction(action=AnimateStep.MOVE, move=move))
    builder.adjust(*[len(row) for row in CAMERA_ROWS])
    return builder.as_markup()


def next_keyboard(i18n: I18nContext, scenes: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    if scenes < MAX_SCENES:
        builder.button(text=i18n.get("anim-btn-add"), callback_data=AnimateAction(action=AnimateStep.ADD))
    builder.button(text=i18n.get("anim-btn-make"), callback_data=AnimateAction(action=AnimateStep.MAKE))
    builder.adjust(1)
    return builder.as_markup()


def scenes_text(i18n: I18nContext, scenes: list[dict[str, Any]]) -> str:
    return "\n".join(
        i18n.get(
            "anim-scene-line", number=i + 1, move=i18n.get(f"cam-{scene['move']}"), prompt=html.escape(scene["prompt"])
        )
        for i, scene in enumerate(scenes)
    )


async def _ask_text(message: Message, i18n: I18nContext, state: FSMContext, scene: int) -> None:
    await state.set_state(AnimateFlow.text)
    await message.answer(i18n.get("anim-step-prompt", scene=scene, max=MAX_SCENES, seconds=int(SCENE_SECONDS)))


async def _take_text(
    message: Message, text: str | None, state: FSMContext, i18n: I18nContext, request: RequestContext
) -> None:
    try:
        prompt = validate_prompt(text)
        await request.jobs.check_prompt(request.repos, request.user, request.params(prompt))  # blocklist, per scene
    except PromptError as exc:
        await message.answer(i18n.get(exc.code, **exc.kwargs))
        return
    except PromptBlocked:
        await message.answer(i18n.get("prompt-blocked"))
        return
    data = await state.get_data()
    scenes = list(data.get("scenes") or [])
    await state.update_data(pending=prompt)
    await state.set_state(AnimateFlow.camera)
    await message.answer(
        i18n.get("anim-step-camera", scene=len(scenes) + 1, max=MAX_SCENES), reply_markup=camera_keyboard(i18n)
    )


async def animate_command(
    message: Message, command: CommandObject, state: FSMContext, i18n: I18nContext, request: RequestContext
) -> None:
    """Start afresh (any flow the user was in is dropped); text after the command is scene 1."""
    await state.clear()
    await state.set_data({"scenes": []})
    if command.args:
        await _take_text(message, command.args, state, i18n, request)
        return
    await _ask_text(message, i18n, state, 1)


async def scene_text(message: Message, state: FSMContext, i18n: I18nContext, request: RequestContext) -> None:
    await _take_text(message, message.text, state, i18n, request)


async def text_expected(message: Message, i18n: I18nContext) -> None:
    await message.answer(i18n.get("anim-text-expected"))


async def camera_expected(message: Message, i18n: I18nContext) -> None:
    await message.answer(i18n.get("anim-camera-expected"))


async def next_scene_text(message: Message, state: FSMContext, i18n: I18nContext, request: RequestContext) -> None:
    """A text where "Add a scene" / "Make the video" are offered: the next scene, if there is room."""
    scenes = (await state.get_data()).get("scenes") or []
    if len(scenes) >= MAX_SCENES:
        await message.answer(i18n.get("anim-full", max=MAX_SCENES), reply_markup=next_keyboard(i18n, len(scenes)))
        return
    await _take_text(message, message.text, state, i18n, request)


async def _drop_buttons(query: CallbackQuery) -> None:
    if isinstance(query.message, Message):
        try:
            await query.message.edit_reply_markup(reply_markup=None)
        except Exception:  # noqa: BLE001 - an old message keeps its buttons; they are answered as stale
            pass


async def choose_move(
    query: CallbackQuery, callback_data: AnimateAction, state: FSMContext, i18n: I18nContext
) -> None:
    data = await state.get_data()
    if await state.get_state() != AnimateFlow.camera.state or not data.get("pending") or callback_data.move is None:
        await query.answer(i18n.get("anim-expired"), show_alert=True)
        return
    scenes = list(data.get("scenes") or []) + [{"prompt": data["pending"], "move": callback_data.move.value}]
    await state.update_data(scenes=scenes, pending=None)
    await state.set_state(AnimateFlow.ready)
    await query.answer(i18n.get(f"cam-{callback_data.move.value}"))
    await _drop_buttons(query)
    if isinstance(query.message, Message):
        await query.message.answer(
            i18n.get(
                "anim-step-next",
                count=len(scenes),
                max=MAX_SCENES,
                seconds=int(len(scenes) * SCENE_SECONDS),
                scenes=scenes_text(i18n, scenes),
            ),
            reply_markup=next_keyboard(i18n, len(scenes)),
        )


async def add_scene(query: CallbackQuery, state: FSMContext, i18n: I18nContext) -> None:
    scenes = (await state.get_data()).get("scenes") or []
    if await state.get_state() != AnimateFlow.ready.state:
        await query.answer(i18n.get("anim-expired"), show_alert=True)
        return
    if len(scenes) >= MAX_SCENES:
        await query.answer(i18n.get("anim-full", max=MAX_SCENES), show_alert=True)
        return
    await query.answer()
    await _drop_buttons(query)
    if isinstance(query.message, Message):
        await _ask_text(query.message, i18n, state, len(scenes) + 1)


async def make_video(query: CallbackQuery, state: FSMContext, i18n: I18nContext, request: RequestContext) -> None:
    scenes = (await state.get_data()).get("scenes") or []
    if await state.get_state() != AnimateFlow.ready.state or not scenes:
        await query.answer(i18n.get("anim-expired"), show_alert=True)
        return
    await query.answer()
    await _drop_buttons(query)
    width, height = image_size(request.user.settings.aspect_ratio, min(request.max_side, ANIMATION_MAX_SIDE))
    params = request.params(
        scenes[0]["prompt"],
        Mode.ANIMATE,
        width=width,
        height=height,
        num_images=1,
        beautify=False,  # every scene is drawn as written (beautifying one of four would jar)
        scenes=scenes,
    )
    job = await request.submit(params, Mode.ANIMATE)
    if job is not None:
        await state.clear()  # refused (a limit): the scenes stay, so "Make the video" works later


async def stale(query: CallbackQuery, i18n: I18nContext) -> None:
    await query.answer(i18n.get("anim-expired"), show_alert=True)


def create_router() -> Router:
    router = Router(name="animate")
    router.message(Command("animate"))(animate_command)
    router.message(AnimateFlow.text, PLAIN_TEXT)(scene_text)
    router.message(AnimateFlow.text, ~F.text.startswith("/"))(text_expected)
    router.message(AnimateFlow.camera, ~F.text.startswith("/"))(camera_expected)
    router.message(AnimateFlow.ready, PLAIN_TEXT)(next_scene_text)
    router.callback_query(AnimateAction.filter(F.action == AnimateStep.MOVE))(choose_move)
    router.callback_query(AnimateAction.filter(F.action == AnimateStep.ADD))(add_scene)
    router.callback_query(AnimateAction.filter(F.action == AnimateStep.MAKE))(make_video)
    router.callback_query(AnimateAction.filter())(stale)
    return router
