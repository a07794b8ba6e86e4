"""Text-to-image: any plain text is a prompt; the buttons under a result."""

from __future__ import annotations

import re

from aiogram import F, Router
from aiogram.filters import Filter
from aiogram.types import CallbackQuery, FSInputFile, Message
from aiogram_i18n import I18nContext

from bot.keyboards import ResultAction, ResultCb
from handlers.context import RequestContext
from handlers.filters import OwnJobFilter, PromptFilter
from jobs.params import read_params
from jobs.results import ResultStore
from jobs.service import new_seed
from generation import inline_params
from generation.styles import image_size
from bot.i18n import translator
from handlers.common import ME_PATTERN, MENU_BUTTON_KEYS, PromptError, validate_prompt
from storage.models import Job


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


async def again(query: CallbackQuery, job: Job | None, request: RequestContext) -> None:
    """The same job with a new seed."""
    if job is not None:  # else answered by OwnJobFilter
        await query.answer()
        await request.resubmit(job, seed=new_seed())


async def without_beautification(query: CallbackQuery, job: Job | None, request: RequestContext) -> None:
    """A beautified job again in the user's own words, with the same seed to compare."""
    if job is not None:
        await query.answer()
        await request.resubmit(job, beautify=False)


async def original(query: CallbackQuery, job: Job | None, request: RequestContext, results: ResultStore) -> None:
    """The lossless PNGs as documents (Telegram recompresses photos)."""
    if job is None:
        return
    paths = results.paths(job.id)
    if not paths:
        await query.answer(request.i18n.get("original-missing"), show_alert=True)
        return
    await query.answer()
    seed = read_params(job).seed
    for path in paths:  # image i was generated with seed + i
        await request.bot.send_document(
            job.chat_id, FSInputFile(path, filename=f"kandinsky-{job.id}-{seed + results.index(path)}.png")
        )


async def reuse_seed(query: CallbackQuery, job: Job | None, request: RequestContext) -> None:
    """Keep this seed for the next pictures (to change the prompt and keep the composition)."""
    if job is None:
        return
    seed = read_params(job).seed
    request.user.settings.fixed_seed = seed
    await query.answer(request.i18n.get("seed-reused", seed=str(seed)), show_alert=True)


class PlainPrompt(Filter):
    """A text that no router before this one would take: not a command, no flow under way (every
    flow sets an FSM state), not a reply-keyboard button, no "@me". Such a text is a prompt, and
    :func:`create_plain_prompt_router` takes it before the feature routers' few dozen filters run."""

    def __init__(self) -> None:
        self.menu = frozenset(label for key in MENU_BUTTON_KEYS for label in translator().all_locales(key))
        self.me = re.compile(ME_PATTERN)

    async def __call__(self, message: Message, raw_state: str | None = None) -> bool:
        text = message.text
        return (
            text is not None
            and raw_state is None
            and not text.startswith("/")
            and text not in self.menu
            and self.me.search(text) is None
        )


def create_plain_prompt_router() -> Router:
    """The prompt handler again, first in line for plain prompts (nearly every message). Build it
    after the other routers: it reads the reply-keyboard buttons they registered."""
    router = Router(name="plain-prompt")
    router.message(PlainPrompt(), PromptFilter())(prompt)
    return router


def create_router() -> Router:
    router = Router(name="generate")
    router.message(F.text.startswith("/"))(unknown_command)
    router.message(F.text, PromptFilter())(prompt)
    router.callback_query(ResultCb.filter(F.action == ResultAction.AGAIN), OwnJobFilter())(again)
    router.callback_query(ResultCb.filter(F.action == ResultAction.PLAIN), OwnJobFilter())(without_beautification)
    router.callback_query(ResultCb.filter(F.action == ResultAction.ORIGINAL), OwnJobFilter())(original)
    router.callback_query(ResultCb.filter(F.action == ResultAction.SEED), OwnJobFilter())(reuse_seed)
    return router
