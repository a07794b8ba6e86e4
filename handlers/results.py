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

from bot.i18n import translator
from bot.keyboards import ImageCb, ResultCb, model_name
from generation import inline_params
from generation.backend import Mode
from generation.jobs import JobService
from generation.styles import DEFAULT_STYLE, EDIT_STRENGTHS
from handlers.common import PromptError, own_job, submit_job, validate_prompt
from handlers.editing.flow import PAIR_WEIGHTS, STRENGTHS
from handlers.editing.inputs import InputPhoto
from handlers.editing.submit import edit_model, edit_params, submit_edit
from storage.models import Job, User
from storage.repositories import Repositories

VARIATION_STRENGTH = STRENGTHS["light"]  # close to the picture: its composition stays
# What a remix does not carry over from the old job: what the worker wrote about the old prompt.
_RUN_OUTPUTS = ("used_prompt", "beautify_outcome", "display_prompt", "censored", "inline", "status_note")


class RemixFlow(StatesGroup):
    text = State()


def result_paths(results_dir: str, job: Job) -> list[Path]:
    """The stored PNGs of a job in album order; "{i}.png" was drawn with seed + i."""
    folder = Path(results_dir) / str(job.id)
    return sorted(folder.glob("*.png"), key=lambda p: int(p.stem))


def image_seed(job: Job, paths: list[Path], index: int) -> int:
    seed = int(job.params["seed"])
    if 1 <= index <= len(paths):
        return seed + int(paths[index - 1].stem)
    return seed + index - 1


async def image_original(
    query: CallbackQuery, callback_data: ImageCb, bot: Bot, i18n: I18nContext, user: User, repos: Repositories,
    results_dir: str,
) -> None:
    job = await own_job(query, callback_data.job_id, user, repos, i18n)
    if job is None:
        return
    paths = result_paths(results_dir, job)
    if not 1 <= callback_data.index <= len(paths):
        await query.answer(i18n.get("original-missing"), show_alert=True)
        return
    await query.answer()
    path = paths[callback_data.index - 1]
    seed = image_seed(job, paths, callback_data.index)
    await bot.send_document(job.chat_id, FSInputFile(path, filename=f"kandinsky-{job.id}-{seed}.png"))


async def image_seed_button(
    query: CallbackQuery, callback_data: ImageCb, i18n: I18nContext, user: User, repos: Repositories, results_dir: str
) -> None:
    job = await own_job(query, callback_data.job_id, user, repos, i18n)
    if job is None:
        return
    seed = image_seed(job, result_paths(results_dir, job), callback_data.index)
    user.settings.fixed_seed = seed
    await query.answer(i18n.get("seed-reused", seed=str(seed)), show_alert=True)


async def variations_of(
    job: Job, index: int, bot: Bot, i18n: I18nContext, user: User, repos: Repositories, jobs: JobService,
    max_image_side: int,
) -> Job | None:
    """Variations of image ``index`` (from 1) of ``job``: its model, style and prompt where possible."""
    file_ids = [f for f in job.result_file_ids or [] if f]
    photo = InputPhoto(file_ids[index - 1], int(job.params["width"]), int(job.params["height"]))
    caption = i18n.get("variations-caption", n=index)
    prompt = job.params.get("used_prompt") or job.params.get("prompt") or ""
    if job.kind == Mode.TEXT2IMG and prompt:
        model, fell_back = edit_model(Mode.IMG2IMG, job.model)
        params = edit_params(jobs, user, Mode.IMG2IMG, [photo], max_image_side, prompt, strength=VARIATION_STRENGTH, display_prompt=caption)
        params.update(
            style=job.params.get("style", DEFAULT_STYLE),
            negative_prompt=job.params.get("negative_prompt"),
            beautify=False,  # the picture's own (possibly beautified) prompt, as it was drawn
        )  # the seed: a new one, or the user's fixed seed (📌), as for any new picture
        note = i18n.get("variations-note-model", model=model_name(translator(), model, i18n.locale)) if fell_back else None
        return await submit_job(
            bot=bot, chat_id=job.chat_id, repos=repos, user=user, jobs=jobs, i18n=i18n,
            params=params, kind=Mode.IMG2IMG, model=model, note=note,
        )
    note = None
    if job.params.get("style", DEFAULT_STYLE) != DEFAULT_STYLE:
        note = i18n.get("variations-note-style")
    return await submit_edit(
        bot=bot, chat_id=job.chat_id, repos=repos, user=user, jobs=jobs, i18n=i18n, max_side=max_image_side,
        mode=Mode.VARIATIONS, photos=[photo], display_prompt=caption, note=note,
    )


async def image_variations(
    query: CallbackQuery, callback_data: ImageCb, bot: Bot, i18n: I18nContext, user: User, repos: Repositories,
    jobs: JobService, max_image_side: int,
) -> None:
    job = await own_job(query, callback_data.job_id, user, repos, i18n)
    if job is None:
        return
    if not 1 <= callback_data.index <= len([f for f in job.result_file_ids or [] if f]):
        await query.answer(i18n.get("original-missing"), show_alert=True)
        return
    await query.answer()
    await variations_of(job, callback_data.index, bot, i18n, user, repos, jobs, max_image_side)


async def redo_restyle(
    query: CallbackQuery, callback_data: ResultCb, bot: Bot, i18n: I18nContext, user: User, repos: Repositories,
    jobs: JobService,
) -> None:
    """🔅 Lighter / 🔆 Stronger: the same restyle at the neighbouring strength (remembered for the next
    photo); 🧱 Keep the shapes: the same restyle with Kandinsky 2.2's depth ControlNet."""
    job = await own_job(query, callback_data.job_id, user, repos, i18n)
    if job is None:
        return
    current = job.params.get("strength")
    if job.kind not in (Mode.IMG2IMG, Mode.RESTYLE_DEPTH) or current is None:
        await query.answer(i18n.get("callback-unknown"), show_alert=True)
        return
    kind, model, level = Mode(job.kind), job.model, None
    levels = sorted(EDIT_STRENGTHS.items(), key=lambda item: item[1])
    if callback_data.action == "lighter":
        level = next((name for name, value in reversed(levels) if value < float(current) - 1e-6), None)
    elif callback_data.action == "stronger":
        level = next((name for name, value in levels if value > float(current) + 1e-6), None)
    else:  # shapes
        kind, model = Mode.RESTYLE_DEPTH, edit_model(Mode.RESTYLE_DEPTH, job.model)[0]
        level = next((name for name, value in levels if abs(value - float(current)) < 1e-6), None)
    if level is None:
        await query.answer(i18n.get("callback-unknown"), show_alert=True)
        return
    await query.answer()
    user.settings.edit_strength = level
    params = {k: v for k, v in job.params.items() if k not in _RUN_OUTPUTS}
    params.update(strength=EDIT_STRENGTHS[level])
    await submit_job(
        bot=bot, chat_id=job.chat_id, repos=repos, user=user, jobs=jobs, i18n=i18n, params=params, kind=kind,
        model=model, note=i18n.get("edit-note-strength", strength=i18n.get(f"edit-strength-{level}")),
    )


async def redo_weights(
    query: CallbackQuery, callback_data: ResultCb, bot: Bot, i18n: I18nContext, user: User, repos: Repositories,
    jobs: JobService,
) -> None:
    """More of the photo / the text (a mix), of photo 1 / photo 2 (a fusion of two): the same inputs
    and seed at the neighbouring weight, remembered for the next /mix or fusion."""
    from bot.notifier import first_weight_percent

    job = await own_job(query, callback_data.job_id, user, repos, i18n)
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
    old = list(job.params["weights"])
    pair = old[0] + old[1]
    weights = [pair * new / 100, pair * (100 - new) / 100] + old[2:]  # a caption's share stays
    if job.kind == Mode.MIX:
        user.settings.mix_weight = new
    else:
        user.settings.fuse_weight = new
    params = {k: v for k, v in job.params.items() if k not in _RUN_OUTPUTS or k == "display_prompt"}
    params.pop("status_note", None)
    params.update(weights=weights)
    await submit_job(
        bot=bot, chat_id=job.chat_id, repos=repos, user=user, jobs=jobs, i18n=i18n, params=params, kind=Mode(job.kind),
        model=job.model,
    )


async def remix(
    query: CallbackQuery, callback_data: ResultCb, i18n: I18nContext, user: User, repos: Repositories, state: FSMContext
) -> None:
    job = await own_job(query, callback_data.job_id, user, repos, i18n)
    if job is None:
        return
    await query.answer()
    await state.set_state(RemixFlow.text)
    await state.set_data({"job_id": job.id})
    await bot_answer(query, i18n.get("remix-ask", seed=str(job.params["seed"])))


async def bot_answer(query: CallbackQuery, text: str) -> None:
    if isinstance(query.message, Message):
        await query.message.answer(text)


async def remix_text(
    message: Message, bot: Bot, i18n: I18nContext, user: User, repos: Repositories, jobs: JobService, state: FSMContext
) -> None:
    job_id = (await state.get_data()).get("job_id")
    job = await repos.jobs.get(int(job_id)) if job_id else None
    if job is None or job.user_id != user.id:
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
    params = {k: v for k, v in job.params.items() if k not in _RUN_OUTPUTS}
    params.update(prompt=text, **inline_overrides(parsed, jobs.max_image_side))
    await submit_job(
        bot=bot, chat_id=message.chat.id, repos=repos, user=user, jobs=jobs, i18n=i18n,
        params=params, kind=Mode.TEXT2IMG, model=parsed.model or job.model,
    )


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
