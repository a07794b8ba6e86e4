"""Zoom out, expand, zoom in and upscale buttons under a result; /inpaint with a photo.

Each button queues a job on the delivered picture (its Telegram file id, like Variations), so it
works after a restart, counts against the user's limits and is cancelled like any job. The prompt is
the one the picture was made with (the beautified one, if it was), in its style; the border of a
zoom-out or expansion is painted to match it. Inpainting happens in the Mini App (handlers.webapp): the
Inpaint button opens it for a result, /inpaint for a photo the user sends.
"""

from __future__ import annotations

from typing import Any

from aiogram import Bot, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, WebAppInfo
from aiogram_i18n import I18nContext

from bot.canvas_keyboard import CanvasCb, CanvasOp, inpaint_url, sign_source
from generation import canvas
from generation.backend import Mode, ModelId
from generation.registry import model_for, spec
from handlers.context import RequestContext
from handlers.filters import OwnJobFilter
from handlers.editing.inputs import InputPhoto, accept_inputs
from jobs.params import JobParams, read_params
from storage.models import Job, JobStatus, User

MAX_UPSCALED_SIDE = 4096

# op -> (mode, extra options)
OPS: dict[CanvasOp, tuple[Mode, dict[str, Any]]] = {
    CanvasOp.ZOOM_OUT_15: (Mode.ZOOM_OUT, {"factor": 1.5}),
    CanvasOp.ZOOM_OUT_2: (Mode.ZOOM_OUT, {"factor": 2.0}),
    CanvasOp.EXPAND_16X9: (Mode.EXPAND, {"ratio": "16:9"}),
    CanvasOp.EXPAND_9X16: (Mode.EXPAND, {"ratio": "9:16"}),
    CanvasOp.EXPAND_1X1: (Mode.EXPAND, {"ratio": "1:1"}),
    CanvasOp.ZOOM_IN: (Mode.ZOOM_IN, {}),
    CanvasOp.UPSCALE_2: (Mode.UPSCALE, {"scale": 2}),
    CanvasOp.UPSCALE_4: (Mode.UPSCALE, {"scale": 4}),
}


def source_prompt(job: Job) -> str:
    """The words the picture was made from: the beautified prompt when there was one."""
    from jobs.params import read_outcome

    return str(read_outcome(job).used_prompt or read_params(job).prompt or "")


def canvas_params(
    request: RequestContext, source: Job, file_id: str, mode: Mode, extra: dict[str, Any], prompt: str | None = None
) -> JobParams:
    """Job parameters of an edit of ``source``'s picture (``file_id``): with the words the picture was
    made from, or ``prompt`` (inpainting's own words, "" to erase); the caption says what was done."""
    params = read_params(source)
    width, height = params.width, params.height
    if mode == Mode.EXPAND:
        width, height = canvas.expand(width, height, extra["ratio"], request.max_side).size
    elif mode == Mode.UPSCALE:
        width, height = width * extra["scale"], height * extra["scale"]
    words = source_prompt(source) if prompt is None else prompt
    return request.params(
        words,
        mode,
        width=width,
        height=height,
        aspect_ratio=f"{width}:{height}",
        num_images=1,
        input_file_ids=[file_id],
        extra=extra,
        beautify=False,  # already the words the picture was made from
        style=params.style,
        negative_prompt=params.negative_prompt,
        display_prompt=caption_for(request.i18n, mode, extra, words),
    )


def job_model(mode: Mode, source: Job, user: User) -> ModelId:
    """The registry's model for ``mode``: zoom in redraws with the model that drew the picture."""
    if mode == Mode.ZOOM_IN and spec(source.model).supports(Mode.ZOOM_IN):
        return ModelId(source.model)
    return model_for(mode, user.settings.model)[0]


def inpaint_model(user: User) -> ModelId:
    """Kandinsky 2.2 users paint with its inpainting decoder, everyone else with Kandinsky 3.1's."""
    return model_for(Mode.INPAINT, user.settings.model)[0]


def caption_for(i18n: I18nContext, mode: Mode, extra: dict[str, Any], prompt: str) -> str:
    short = prompt if len(prompt) <= 200 else prompt[:199] + "…"
    if mode == Mode.ZOOM_OUT:
        return i18n.get("canvas-caption-zoom-out", factor=f"{extra['factor']:g}", prompt=short)
    if mode == Mode.EXPAND:
        return i18n.get("canvas-caption-expand", ratio=extra["ratio"], prompt=short)
    if mode == Mode.ZOOM_IN:
        return i18n.get("canvas-caption-zoom-in", prompt=short)
    if mode == Mode.INPAINT:
        return i18n.get("canvas-caption-inpaint", prompt=short) if prompt else i18n.get("canvas-caption-erase")
    return short


async def canvas_button(query: CallbackQuery, callback_data: CanvasCb, job: Job | None, request: RequestContext) -> None:
    if job is None:
        return  # answered by OwnJobFilter
    i18n, source = request.i18n, job
    file_ids = [f for f in source.result_file_ids or [] if f]
    if not file_ids:
        # Pressed while the picture is still being sent (its file id comes with Telegram's answer).
        key = "canvas-not-ready" if source.status == JobStatus.GENERATED else "canvas-no-picture"
        await query.answer(i18n.get(key), show_alert=True)
        return
    mode, extra = OPS[callback_data.op]
    if source.kind == Mode.UPSCALE and mode != Mode.UPSCALE:  # an upscale has no such buttons (forged)
        await query.answer(i18n.get("callback-unknown"), show_alert=True)
        return
    params = read_params(source)
    width, height = params.width, params.height
    if mode == Mode.UPSCALE and max(width, height) * extra["scale"] > MAX_UPSCALED_SIDE:
        await query.answer(
            i18n.get("canvas-too-large", width=str(width), height=str(height), scale=str(extra["scale"]),
                     limit=str(MAX_UPSCALED_SIDE)),
            show_alert=True,
        )
        return
    await query.answer()
    job_params = canvas_params(request, source, file_ids[0], mode, dict(extra))
    await request.submit(job_params, mode, job_model(mode, source, request.user), chat_id=source.chat_id)


def photo_source(secret: str, user_id: int, photo: InputPhoto) -> str:
    """A signed reference to a photo the user sent, for the Mini App URL: only this user can use it."""
    payload = f"{photo.file_id}.{photo.width}.{photo.height}"
    return f"{payload}.{sign_source(secret, f'{user_id}:{payload}')}"


def parse_photo_source(secret: str, user_id: int, source: str) -> InputPhoto | None:
    import hmac

    try:
        file_id, width, height, signature = source.rsplit(".", 3)
        expected = sign_source(secret, f"{user_id}:{file_id}.{width}.{height}")
        if not hmac.compare_digest(signature, expected):
            return None
        return InputPhoto(file_id, int(width), int(height))
    except ValueError:
        return None


async def inpaint_command(
    message: Message, bot: Bot, i18n: I18nContext, user: User, max_image_side: int, webapp_url: str | None = None,
) -> None:
    target = message if message.photo or message.document else message.reply_to_message
    if target is None or not (target.photo or target.document):
        await message.answer(i18n.get("inpaint-command-help"))
        return
    if not webapp_url:
        await message.answer(i18n.get("inpaint-unavailable"))
        return
    photos = await accept_inputs([target], bot, i18n, max_image_side, at_most=1)
    if photos is None:
        return
    url = inpaint_url(webapp_url, i18n.locale, source=photo_source(bot.token, user.id, photos[0]))
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=i18n.get("btn-inpaint"), web_app=WebAppInfo(url=url))]]
    )
    await message.answer(i18n.get("inpaint-open"), reply_markup=keyboard)


def create_router() -> Router:
    router = Router(name="canvas-edit")
    router.callback_query(CanvasCb.filter(), OwnJobFilter())(canvas_button)
    router.message(Command("inpaint"))(inpaint_command)
    return router
