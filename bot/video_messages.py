"""The chat side of /animate and /video jobs: their progress lines, captions, buttons and delivery
with ``sendVideo`` (H.264 MP4, the first frame as the thumbnail, the prompts in the caption)."""

from __future__ import annotations

import html
from enum import StrEnum
from pathlib import Path

from aiogram import Bot
from aiogram.filters.callback_data import CallbackData
from aiogram.types import BufferedInputFile, FSInputFile, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.i18n import Translator
from bot.keyboards import model_name
from generation.backend import Mode, ModelId
from generation.motion import SCENE_SECONDS
from generation.video_specs import VIDEO_SECONDS
from jobs.params import AnimateParams, read_params
from storage.models import Job

CAPTION_LIMIT = 1024
VIDEO_KINDS = frozenset({Mode.ANIMATE, Mode.VIDEO})


class VideoStep(StrEnum):
    AGAIN = "again"  # the same job, a new seed
    LONG = "long"  # a 5-second /video as a 10-second one


class VideoAction(CallbackData, prefix="vid"):
    action: VideoStep
    job_id: int


def is_video_job(job: Job) -> bool:
    return job.kind in VIDEO_KINDS


def video_keyboard(t: Translator, locale: str, job: Job) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=t("btn-video-again", locale), callback_data=VideoAction(action=VideoStep.AGAIN, job_id=job.id))
    if job.kind == Mode.VIDEO and job.model == ModelId.K5_VIDEO_5S:
        builder.button(text=t("btn-video-10s", locale), callback_data=VideoAction(action=VideoStep.LONG, job_id=job.id))
    return builder.as_markup()


def scenes_of(job: Job) -> list[dict]:
    params = read_params(job)
    return [scene.model_dump(mode="json") for scene in params.scenes] if isinstance(params, AnimateParams) else []


def progress_text(t: Translator, job: Job, locale: str, step: int, total: int, bar: str) -> str:
    """Animation: the scene and frame being drawn (step 0: the first frame); video: the denoising
    step (step 0: the model is being loaded)."""
    if job.kind == Mode.ANIMATE:
        scenes = max(1, len(scenes_of(job)))
        if step <= 0:
            return t("anim-progress-first", locale)
        per_scene = max(1, total // scenes)
        scene = min(scenes, (step - 1) // per_scene + 1)
        return t("anim-progress", locale, scene=scene, scenes=scenes, frame=step, total=total, bar=bar)
    if step <= 0:
        return t("video-loading", locale)
    return t("video-progress", locale, step=step, total=total, bar=bar)


def _shorten(text: str, room: int) -> str:
    return text if len(text) <= room else text[: max(room - 1, 0)] + "…"


def video_caption(t: Translator, job: Job, locale: str) -> str:
    """The prompts (every scene's, with its camera move) shortened to fit Telegram's 1024 characters."""
    params = read_params(job)
    fields = dict(model=model_name(t, job.model, locale), seed=str(params.seed))
    if job.kind == Mode.ANIMATE:
        scenes = scenes_of(job)
        seconds = int(len(scenes) * SCENE_SECONDS)
        empty = t("anim-caption", locale, scenes="", seconds=seconds, **fields)
        room = (CAPTION_LIMIT - len(empty)) // max(1, len(scenes)) - 24
        lines = "\n".join(
            t(
                "anim-scene-line",
                locale,
                number=i + 1,
                move=t(f"cam-{scene['move']}", locale),
                prompt=html.escape(_shorten(scene["prompt"], room)),
            )
            for i, scene in enumerate(scenes)
        )
        return t("anim-caption", locale, scenes=lines, seconds=seconds, **fields)[:CAPTION_LIMIT]
    seconds = VIDEO_SECONDS.get(ModelId(job.model), 5)
    empty = t("video-caption", locale, prompt="", seconds=seconds, **fields)
    prompt = html.escape(_shorten(params.prompt, CAPTION_LIMIT - len(empty) - 16))
    return t("video-caption", locale, prompt=prompt, seconds=seconds, **fields)[:CAPTION_LIMIT]


async def send_video(bot: Bot, t: Translator, job: Job, locale: str, path: Path, thumbnail: Path | None) -> Message:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        duration = float(stream.duration * stream.time_base) if stream.duration else 0.0
    return await bot.send_video(
        chat_id=job.chat_id,
        video=FSInputFile(path, filename=f"kandinsky-{job.id}.mp4"),
        duration=max(1, round(duration)),
        width=width,
        height=height,
        thumbnail=BufferedInputFile(thumbnail.read_bytes(), "thumbnail.jpg") if thumbnail and thumbnail.is_file() else None,
        caption=video_caption(t, job, locale),
        supports_streaming=True,
        reply_markup=video_keyboard(t, locale, job),
    )
