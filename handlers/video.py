"""/video <text>: a 5-second clip from Kandinsky 5.0 Video Lite; the buttons under a video (or an
animation) make it again with a new seed or, for /video, as a 10-second clip."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message
from aiogram_i18n import I18nContext

from bot.video_messages import VideoAction, VideoStep
from generation.backend import Mode, ModelId
from generation.video_specs import video_size
from handlers.common import PromptError, own_job, validate_prompt
from handlers.context import RequestContext
from jobs.params import read_params
from jobs.service import new_seed


async def video_command(message: Message, command: CommandObject, i18n: I18nContext, request: RequestContext) -> None:
    if not command.args:
        await message.answer(i18n.get("video-usage"))
        return
    try:
        prompt = validate_prompt(command.args)
    except PromptError as exc:
        await message.answer(i18n.get(exc.code, **exc.kwargs))
        return
    # The full-size frame of the user's orientation; the worker scales it to its VIDEO_SHORT_SIDE.
    width, height = video_size(request.user.settings.aspect_ratio)
    params = request.params(prompt, Mode.VIDEO, width=width, height=height, num_images=1, beautify=False)
    await request.submit(params, Mode.VIDEO, ModelId.K5_VIDEO_5S)


async def video_again(
    query: CallbackQuery, callback_data: VideoAction, i18n: I18nContext, request: RequestContext
) -> None:
    """The same video (or animation) with a new seed; LONG: the 5-second clip as a 10-second one."""
    job = await own_job(query, callback_data.job_id, request.user, request.repos, i18n)
    if job is None:
        return
    longer = callback_data.action == VideoStep.LONG
    if job.kind not in (Mode.VIDEO, Mode.ANIMATE) or (longer and job.kind != Mode.VIDEO):
        await query.answer(i18n.get("callback-unknown"), show_alert=True)
        return
    await query.answer()
    if longer:
        await request.submit(
            read_params(job).model_copy(update={"seed": new_seed()}), Mode.VIDEO, ModelId.K5_VIDEO_10S, job.chat_id
        )
    else:
        await request.resubmit(job, seed=new_seed())


def create_router() -> Router:
    router = Router(name="video")
    router.message(Command("video"))(video_command)
    router.callback_query(VideoAction.filter())(video_again)
    return router
