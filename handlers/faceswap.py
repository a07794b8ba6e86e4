"""/face, /forgetface and ``@me`` prompts: the user's own face in a generated scene.

``/face`` asks for a photo; the face found on it is remembered (the photo's Telegram file id and
the face's box and landmarks) until ``/forgetface``. A prompt containing ``@me`` (or ``/face``
followed by a prompt) then runs a face-swap job. Face photos and descriptions are never logged.
"""

from __future__ import annotations

import asyncio
import io
import logging

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import Message
from aiogram_i18n import I18nContext
from PIL import UnidentifiedImageError

from faceswap.profile import FaceSwapError, has_me
from faceswap.service import FaceService
from generation.backend import Mode
from generation.images import InputImageError
from handlers.common import ME_PATTERN, checked_prompt
from handlers.context import RequestContext
from handlers.filters import PromptFilter
from jobs.results import ResultStore
from prompting.guard import ContentGuard
from storage.models import PENDING_STATUSES, JobStatus, ModerationKind, UserFace, utcnow

log = logging.getLogger(__name__)



# What is wrong with a /face photo (faceswap.pipeline.prepare_face) -> what to send instead.
PHOTO_PROBLEMS = {
    "no_face": "face-none",
    "several_faces": "face-several",
    "face_too_small": "face-small",
    "face_turned": "face-turned",
}


class FaceFlow(StatesGroup):
    photo = State()  # waiting for a photo with a face


def scene_prompt(text: str) -> str:
    """``/face <prompt>``: the user is the subject unless the prompt places ``@me`` itself."""
    return text if has_me(text) else f"@me, {text}"


async def _submit(request: RequestContext, face: UserFace, prompt: str) -> None:
    # The job carries no copy of the face: the runner looks it up by user when the job runs, so
    # "Again" uses the face the user has then, and /forgetface leaves nothing behind in the row.
    params = request.params(prompt, Mode.FACESWAP)
    await request.submit(params, Mode.FACESWAP)


async def face_command(message: Message, command: CommandObject, state: FSMContext, request: RequestContext) -> None:
    if command.args and command.args.strip():
        prompt = await checked_prompt(message, command.args, request.i18n)
        if prompt is None:
            return
        prompt = scene_prompt(prompt)
        face = await request.repos.faces.get(request.user.id)
        if face is not None:
            await _submit(request, face, prompt)
            return
        # No face yet: ask for it, and draw the prompt once it is there.
        await state.set_state(FaceFlow.photo)
        await state.update_data(prompt=prompt)
        await message.answer(request.i18n.get("face-send-photo"))
        return
    await state.set_state(FaceFlow.photo)
    await state.set_data({})
    await message.answer(request.i18n.get("face-send-photo"))


async def face_photo(
    message: Message, state: FSMContext, request: RequestContext, faces: FaceService, guard: ContentGuard | None = None
) -> None:
    i18n, repos, user = request.i18n, request.repos, request.user
    photo = message.photo[-1]  # the largest size Telegram made
    buffer = io.BytesIO()
    await request.bot.download(photo.file_id, destination=buffer)
    try:
        verdict = await guard.check_upload(buffer.getvalue()) if guard is not None else None
        if verdict is not None and verdict.nsfw:
            await repos.moderation.add(user.id, ModerationKind.UPLOAD_CENSORED, f"{verdict.score:.3f}")
            await message.answer(i18n.get("upload-censored"))  # still waiting for a photo
            return
        profile = await asyncio.to_thread(faces.prepare, buffer.getvalue())
    except FaceSwapError as exc:
        await message.answer(i18n.get(PHOTO_PROBLEMS.get(exc.code, "face-none")))  # still waiting for a photo
        return
    except (UnidentifiedImageError, InputImageError):  # only PNG, JPEG, WebP of sane size
        await message.answer(i18n.get("face-bad-photo"))
        return
    face = await repos.faces.set(user.id, photo.file_id, photo.file_unique_id, profile.to_dict())
    await repos.commit()
    pending = (await state.get_data()).get("prompt")
    await state.clear()
    await message.answer(i18n.get("face-saved"))
    if pending:
        await _submit(request, face, pending)


async def face_waiting(message: Message, i18n: I18nContext) -> None:
    """Anything but a photo while a photo is expected."""
    await message.answer(i18n.get("face-send-photo-again"))


async def me_prompt(message: Message, request: RequestContext, prompt: str | None) -> None:
    if prompt is None:
        return  # refused: answered by PromptFilter
    face = await request.repos.faces.get(request.user.id)
    if face is None:
        await message.answer(request.i18n.get("face-needed"))
        return
    await _submit(request, face, prompt)


async def forget_face(message: Message, state: FSMContext, request: RequestContext, results: ResultStore) -> None:
    """Delete everything stored about the face: the face row; from the face-swap jobs and the
    Variations made from their pictures, the photo's file id, the face data and the result file ids;
    their pictures on disk; pending ones are stopped, generated but undelivered ones withdrawn."""
    repos, jobs = request.repos, request.jobs
    if await state.get_state() == FaceFlow.photo.state:
        await state.clear()
    deleted, face_jobs = await repos.faces.forget(request.user.id, str(Mode.FACESWAP), derived_kinds=[str(Mode.VARIATIONS)])
    for job in face_jobs:
        if job.status == JobStatus.GENERATED:  # not delivered yet: it never will be
            await repos.jobs.transition(job.id, [JobStatus.GENERATED], JobStatus.CANCELLED, finished_at=utcnow())
    await repos.commit()
    for job in face_jobs:
        if job.status in PENDING_STATUSES:
            await jobs.cancel_one(repos, job)
    job_ids = [job.id for job in face_jobs]
    await asyncio.to_thread(results.delete, job_ids)  # this process's copies
    await jobs.forget_results(job_ids)  # and the GPU workers' (distributed mode)
    await message.answer(request.i18n.get("face-forgotten" if deleted else "face-nothing-to-forget"))


def create_router() -> Router:
    router = Router(name="faceswap")
    router.message(Command("face"))(face_command)
    router.message(Command("forgetface"))(forget_face)
    router.message(FaceFlow.photo, F.photo)(face_photo)
    router.message(FaceFlow.photo, ~F.text.startswith("/"))(face_waiting)
    router.message(F.text.regexp(ME_PATTERN), ~F.text.startswith("/"), PromptFilter())(me_prompt)
    return router
