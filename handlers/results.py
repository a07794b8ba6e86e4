"""Buttons under results that act on one image of an album (🎲 N, 📄 N, 📌 N) and "Edit prompt".

Variations keep the picture's own model, style and prompt where the model can redraw a picture
(image-to-image at a light strength, new seeds); pictures without a prompt (edits) get Kandinsky 2.2's
embedding variations, and the status message says what changed and why.
"Edit prompt" (remix) asks for a new text and draws it with the job's model, settings and seed.
"""

from __future__ import annotations

from pathlib import Path

from aiogram import Bot, F, Router
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, FSInputFile, Message
from aiogram_i18n import I18nContext

from bot.keyboards import ImageCb, ResultCb
from generation import inline_params
from generation.backend import Mode
from generation.styles import DEFAULT_STYLE, EDIT_STRENGTHS
from handlers.common import PromptError, own_job, validate_prompt
from handlers.context import EditInputs, RequestContext, edit_model
from handlers.editing.flow import PAIR_WEIGHTS, STRENGTHS
from handlers.editing.inputs import InputPhoto
from jobs.params import read_outcome, read_params
from jobs.results import ResultStore
from storage.models import Job

VARIATION_STRENGTH = STRENGTHS["light"]  # close to the picture: its composition stays


class RemixFlow(StatesGroup):
    text = State()


def image_seed(job: Job, paths: list[Path], index: int) -> int:
    seed = read_params(job).seed
    if 1 <= index <= len(paths):
        return seed + ResultStore.index(paths[index - 1])
    return seed + index - 1


async def image_original(
    query: CallbackQuery, callback_data: ImageCb, bot: Bot, i18n: I18nContext, request: RequestContext,
    results: ResultStore,
) -> None:
    job = await own_job(query, callback_data.job_id, request.user, request.repos, i18n)
    if job is None:
        return
    paths = results.paths(job.id)
    if not 1 <= callback_data.index <= len(paths):
        await query.answer(i18n.get("original-missing"), show_alert=True)
        return
    await query.answer()
    path = paths[callback_data.index - 1]
    seed = image_seed(job, paths, callback_data.index)
    await bot.send_document(job.chat_id, FSInputFile(path, filename=f"kandinsky-{job.id}-{seed}.png"))


async def image_seed_button(
    query: CallbackQuery, callback_data: ImageCb, i18n: I18nContext, request: RequestContext, results: ResultStore
) -> None:
    job = await own_job(query, callback_data.job_id, request.user, request.repos, i18n)
    if job is None:
        return
    seed = image_seed(job, results.paths(job.id), callback_data.index)
    request.user.settings.fixed_seed = seed
    await query.answer(i18n.get("seed-reused", seed=str(seed)), show_alert=True)


async def variations_of(job: Job, index: int, request: RequestContext) -> Job | None:
    """Variations of image ``index`` (from 1) of ``job``: its model, style and prompt where the
    model redraws pictures; otherwise Kandinsky 2.2's embedding variations (the status says so)."""
    params = read_params(job)
    file_ids = [f for f in job.result_file_ids or [] if f]
    photo = InputPhoto(file_ids[index - 1], params.width, params.height)
    caption = request.i18n.get("variations-caption", n=index)
    prompt = read_outcome(job).used_prompt or params.prompt
    if job.kind in (Mode.TEXT2IMG, Mode.IMG2IMG) and prompt:
        model, moved = edit_model(Mode.IMG2IMG, job.model)
        edit = request.edit_params(
            EditInputs(Mode.IMG2IMG, [photo], prompt, strength=VARIATION_STRENGTH, display_prompt=caption),
            requested_model=job.model if moved else None,
        )
        edit = edit.model_copy(update={"style": params.style, "negative_prompt": params.negative_prompt, "beautify": False})
        return await request.submit(edit, Mode.IMG2IMG, model, chat_id=job.chat_id)
    if params.style != DEFAULT_STYLE:
        await request.bot.send_message(job.chat_id, request.i18n.get("variations-note-style"))
    model, _ = edit_model(Mode.VARIATIONS, request.user.settings.model, request.user.settings.editing_model)
    edit = request.edit_params(EditInputs(Mode.VARIATIONS, [photo], display_prompt=caption))
    return await request.submit(edit, Mode.VARIATIONS, model, chat_id=job.chat_id)


async def image_variations(
    query: CallbackQuery, callback_data: ImageCb, i18n: I18nContext, request: RequestContext
) -> None:
    job = await own_job(query, callback_data.job_id, request.user, request.repos, i18n)
    if job is None:
        return
    if not 1 <= callback_data.index <= len([f for f in job.result_file_ids or [] if f]):
        await query.answer(i18n.get("original-missing"), show_alert=True)
        return
    await query.answer()
    await variations_of(job, callback_data.index, request)


async def redo_restyle(
    query: CallbackQuery, callback_data: ResultCb, i18n: I18nContext, request: RequestContext
) -> None:
    """🔅 Lighter / 🔆 Stronger: the same restyle at the neighbouring strength (remembered for the next
    photo); 🧱 Keep the shapes: the same restyle on the user's editing model (Kandinsky 2.2's depth
    ControlNet or Kandinsky 3.1's HED ControlNet)."""
    job = await own_job(query, callback_data.job_id, request.user, request.repos, i18n)
    if job is None:
        return
    current = getattr(read_params(job), "strength", None)
    if job.kind not in (Mode.IMG2IMG, Mode.RESTYLE_DEPTH) or current is None:
        await query.answer(i18n.get("callback-unknown"), show_alert=True)
        return
    levels = sorted(EDIT_STRENGTHS.items(), key=lambda item: item[1])
    if callback_data.action == "lighter":
        level = next((name for name, value in reversed(levels) if value < current - 1e-6), None)
    elif callback_data.action == "stronger":
        level = next((name for name, value in levels if value > current + 1e-6), None)
    else:  # shapes
        level = next((name for name, value in levels if abs(value - current) < 1e-6), None)
    if level is None:
        await query.answer(i18n.get("callback-unknown"), show_alert=True)
        return
    await query.answer()
    request.user.settings.edit_strength = level
    params = read_params(job).model_copy(update={"strength": EDIT_STRENGTHS[level]})
    if callback_data.action == "shapes":
        model, _ = edit_model(Mode.RESTYLE_DEPTH, job.model, request.user.settings.editing_model)
        await request.submit(params, Mode.RESTYLE_DEPTH, model, chat_id=job.chat_id)
    else:
        await request.submit(params, Mode(job.kind), job.model, chat_id=job.chat_id)


async def redo_weights(
    query: CallbackQuery, callback_data: ResultCb, i18n: I18nContext, request: RequestContext
) -> None:
    """More of the photo / the text (a mix), of photo 1 / photo 2 (a fusion of two): the same inputs
    and seed at the neighbouring weight."""
    from bot.notifier import first_weight_percent

    job = await own_job(query, callback_data.job_id, request.user, request.repos, i18n)
    if job is None:
        return
    current = first_weight_percent(job)
    steps = sorted(PAIR_WEIGHTS)
    new = None
    if current is not None and callback_data.action == "wmore":
        new = next((p for p in steps if p > current), None)
    elif current is not None:
        new = next((p for p in reversed(steps) if p < current), None)
    if new is None:
        await query.answer(i18n.get("callback-unknown"), show_alert=True)
        return
    await query.answer()
    old = list(read_params(job).weights)
    pair = old[0] + old[1]
    weights = [pair * new / 100, pair * (100 - new) / 100] + old[2:]
    await request.resubmit(job, weights=weights)


async def remix(
    query: CallbackQuery, callback_data: ResultCb, i18n: I18nContext, request: RequestContext, state: FSMContext
) -> None:
    job = await own_job(query, callback_data.job_id, request.user, request.repos, i18n)
    if job is None:
        return
    await query.answer()
    await state.set_state(RemixFlow.text)
    await state.set_data({"job_id": job.id})
    if isinstance(query.message, Message):
        await query.message.answer(i18n.get("remix-ask", seed=str(read_params(job).seed)))


async def remix_text(message: Message, i18n: I18nContext, request: RequestContext, state: FSMContext) -> None:
    job_id = (await state.get_data()).get("job_id")
    job = await request.repos.jobs.get(int(job_id)) if job_id else None
    if job is None or job.user_id != request.user.id:
        await state.clear()
        await message.answer(i18n.get("remix-expired"))
        return
    try:
        parsed = inline_params.parse(validate_prompt(message.text))
        text = validate_prompt(parsed.prompt) if parsed.any else parsed.prompt
    except (PromptError, inline_params.InlineParamError) as exc:
        await message.answer(i18n.get(exc.code, **exc.kwargs))  # the flow stays: the user sends it again
        return
    from handlers.generate import inline_overrides

    await state.clear()
    changes = {"prompt": text, "display_prompt": None, "inline": None, **inline_overrides(parsed, request.max_side)}
    params = read_params(job).model_copy(update=changes)
    await request.submit(params, Mode.TEXT2IMG, str(parsed.model or job.model), chat_id=message.chat.id)


def create_router() -> Router:
    router = Router(name="results")
    router.callback_query(ImageCb.filter(F.action == "original"))(image_original)
    router.callback_query(ImageCb.filter(F.action == "seed"))(image_seed_button)
    router.callback_query(ImageCb.filter(F.action == "variations"))(image_variations)
    router.callback_query(ResultCb.filter(F.action == "remix"))(remix)
    router.callback_query(ResultCb.filter(F.action.in_({"lighter", "stronger", "shapes"})))(redo_restyle)
    router.callback_query(ResultCb.filter(F.action.in_({"wmore", "wless"})))(redo_weights)
    router.message(RemixFlow.text, F.text, ~F.text.startswith("/"))(remix_text)
    return router
