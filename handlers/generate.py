"""Text-to-image: any plain text is a prompt; the buttons under a result."""

from __future__ import annotations


from aiogram import Bot, F, Router
from aiogram.types import CallbackQuery, FSInputFile, Message
from aiogram_i18n import I18nContext

from bot.keyboards import ResultCb
from handlers.common import own_job
from handlers.context import RequestContext
from handlers.filters import PromptFilter
from jobs.params import read_params
from jobs.results import ResultStore
from jobs.service import new_seed
from generation import inline_params
from generation.styles import image_size
from handlers.common import PromptError, validate_prompt
from storage.models import User
from storage.repositories import Repositories


async def unknown_command(message: Message, i18n: I18nContext) -> None:
    await message.answer(i18n.get("command-unknown"))


async def prompt(message: Message, prompt: str | None, i18n: I18nContext, request: RequestContext) -> None:
    if prompt is None:
        return  # refused: answered by PromptFilter
    try:
        inline = inline_params.parse(prompt)
        if inline.any and not inline.prompt:
            raise PromptError("param-prompt-missing")
        text = validate_prompt(inline.prompt) if inline.any else prompt
    except (PromptError, inline_params.InlineParamError) as exc:
        await message.answer(i18n.get(exc.code, **exc.kwargs))
        return
    await request.submit(request.params(text, **inline_overrides(inline, request.max_side)), model=inline.model)


def inline_overrides(inline: inline_params.InlineParams, max_image_side: int) -> dict[str, object]:
    """The job parameters that the prompt's own ``--ar``, ``--seed``, ... set for this request."""
    overrides: dict[str, object] = {}
    if inline.aspect_ratio is not None:
        width, height = image_size(inline.aspect_ratio, max_image_side)
        overrides.update(aspect_ratio=inline.aspect_ratio, width=width, height=height)
    if inline.seed is not None:
        overrides["seed"] = inline.seed
    if inline.negative_prompt is not None:
        overrides["negative_prompt"] = inline.negative_prompt
    if inline.style is not None:
        overrides["style"] = inline.style
    if inline.count is not None:
        overrides["num_images"] = inline.count
    if inline.any:
        overrides["inline"] = inline.summary()  # shown in the caption
    return overrides


async def _resubmit(
    query: CallbackQuery, callback_data: ResultCb, i18n: I18nContext, request: RequestContext, **changes: object
) -> None:
    """The user's own job again, as a new job, with some parameters changed."""
    job = await own_job(query, callback_data.job_id, request.user, request.repos, i18n)
    if job is None:
        return
    await query.answer()
    await request.resubmit(job, **changes)


async def again(query: CallbackQuery, callback_data: ResultCb, i18n: I18nContext, request: RequestContext) -> None:
    """The same job with a new seed."""
    await _resubmit(query, callback_data, i18n, request, seed=new_seed())


async def without_beautification(
    query: CallbackQuery, callback_data: ResultCb, i18n: I18nContext, request: RequestContext
) -> None:
    """A beautified job again in the user's own words, with the same seed to compare."""
    await _resubmit(query, callback_data, i18n, request, beautify=False)


async def original(
    query: CallbackQuery,
    callback_data: ResultCb,
    bot: Bot,
    i18n: I18nContext,
    user: User,
    repos: Repositories,
    results: ResultStore,
) -> None:
    """The lossless PNGs as documents (Telegram recompresses photos)."""
    job = await own_job(query, callback_data.job_id, user, repos, i18n)
    if job is None:
        return
    paths = results.paths(job.id)
    if not paths:
        await query.answer(i18n.get("original-missing"), show_alert=True)
        return
    await query.answer()
    seed = read_params(job).seed
    for path in paths:  # image i was generated with seed + i
        await bot.send_document(
            job.chat_id, FSInputFile(path, filename=f"kandinsky-{job.id}-{seed + results.index(path)}.png")
        )


async def reuse_seed(
    query: CallbackQuery, callback_data: ResultCb, i18n: I18nContext, user: User, repos: Repositories
) -> None:
    """Keep this seed for the next pictures (to change the prompt and keep the composition)."""
    job = await own_job(query, callback_data.job_id, user, repos, i18n)
    if job is None:
        return
    seed = read_params(job).seed
    user.settings.fixed_seed = seed
    await query.answer(i18n.get("seed-reused", seed=str(seed)), show_alert=True)


def create_router() -> Router:
    router = Router(name="generate")
    router.message(F.text.startswith("/"))(unknown_command)
    router.message(F.text, PromptFilter())(prompt)
    router.callback_query(ResultCb.filter(F.action == "again"))(again)
    router.callback_query(ResultCb.filter(F.action == "plain"))(without_beautification)
    router.callback_query(ResultCb.filter(F.action == "original"))(original)
    router.callback_query(ResultCb.filter(F.action == "seed"))(reuse_seed)
    return router
