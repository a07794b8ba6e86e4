"""/video <text>: a 5-second clip from Kandinsky 5.0 Video Lite; the buttons under a video (or an
animation) make it again with a new seed or, for /video, as a 10-second clip."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message
from aiogram_i18n import I18nContext

from bot.video_messages import VideoAction
from generation.backend import Mode, ModelId
from generation.jobs import JobService, new_seed
from generation.video_specs import video_size
from handlers.common import PromptError, own_job, submit_job, validate_prompt
from storage.models import User
from storage.repositories import Repositories


def video_params(jobs: JobService, user: User, prompt: str) -> dict:
    width, height = video_size(user.settings.aspect_ratio)
    return jobs.params_from_settings(user, prompt, width=width, height=height, num_images=1, beautify=False)


async def video_command(
    message: Message,
    command: CommandObject,
    bot: Bot,
    i18n: I18nContext,
    user: User,
    repos: Repositories,
    jobs: JobService,
) -> None:
    if not command.args:
        await message.answer(i18n.get("video-usage"))
        return
    try:
        prompt = validate_prompt(command.args)
    except PromptError as exc:
        await message.answer(i18n.get(exc.code, **exc.kwargs))
        return
    await submit_job(
        bot=bot,
        chat_id=message.chat.id,
        repos=repos,
        user=user,
        jobs=jobs,
        i18n=i18n,
        params=video_params(jobs, user, prompt),
        kind=Mode.VIDEO,
        model=ModelId.K5_VIDEO_5S,
    )


async def video_again(
    query: CallbackQuery,
    callback_data: VideoAction,
    bot: Bot,
    i18n: I18nContext,
    user: User,
    repos: Repositories,
    jobs: JobService,
) -> None:
    """The same video (or animation) with a new seed; "long": the 5-second clip as a 10-second one."""
    job = await own_job(query, callback_data.job_id, user, repos, i18n)
    if job is None:
        return
    if job.kind not in (Mode.VIDEO, Mode.ANIMATE) or (callback_data.action == "long" and job.kind != Mode.VIDEO):
        await query.answer(i18n.get("callback-unknown"), show_alert=True)
        return
    await query.answer()
    model = ModelId.K5_VIDEO_10S if callback_data.action == "long" else ModelId(job.model)
    await submit_job(
        bot=bot,
        chat_id=job.chat_id,
        repos=repos,
        user=user,
        jobs=jobs,
        i18n=i18n,
        params=dict(job.params, seed=new_seed()),
        kind=Mode(job.kind),
        model=model,
    )


def create_router() -> Router:
    router = Router(name="video")
    router.message(Command("video"))(video_command)
    router.callback_query(VideoAction.filter(F.action.in_({"again", "long"})))(video_again)
    return router
