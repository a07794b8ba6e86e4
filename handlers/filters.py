"""Filters that add context to a handler's arguments (aiogram's context-from-filter pattern):
:class:`PromptFilter` and :class:`OwnJobFilter` here, :class:`handlers.editing.inputs.PhotosFilter`
next to the photo checks, :class:`handlers.admin.common.TargetFilter` for admin commands.

Each returns a dict that aiogram merges into the handler's data, and answers a refusal itself: the
handler then gets ``None`` and only returns (the user already has the reason). Never returning
False on a refusal keeps the update from falling through to another router that would answer again.

    router.message(F.text, PromptFilter())(prompt)
    router.message(RestyleFlow.photo, F.func(has_media), PhotosFilter(at_most=1))(restyle_photo)

    async def prompt(message: Message, prompt: str | None, request: RequestContext) -> None:
        if prompt is None:
            return  # refused: answered by PromptFilter
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import Router
from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Message
from aiogram_i18n import I18nContext

from handlers.common import PromptError, own_job, validate_prompt
from handlers.context import RequestContext


class PromptFilter(Filter):
    """Adds ``prompt``: the message's text, validated (:func:`handlers.common.validate_prompt`)."""

    async def __call__(self, message: Message, i18n: I18nContext) -> dict[str, Any]:
        try:
            return {"prompt": validate_prompt(message.text)}
        except PromptError as exc:
            await message.answer(i18n.get(exc.code, **exc.kwargs))
            return {"prompt": None}


class OwnJobFilter(Filter):
    """Adds ``job``: the user's own job that the button points at (its callback data's ``job_id``);
    for a job that is gone or someone else's, the button is answered as no longer valid and ``job``
    is None. Goes after the callback data filter:

        router.callback_query(CancelJobCb.filter(), OwnJobFilter())(cancel_job)
    """

    async def __call__(
        self, query: CallbackQuery, callback_data: Any, request: RequestContext | None = None
    ) -> bool | dict[str, Any]:
        if request is None:  # no chat to act in: answered like any unknown button
            return False
        return {"job": await own_job(query, callback_data.job_id, request.user, request.repos, request.i18n)}


def run_sync_filters_inline(router: Router) -> Router:
    """Evaluate the synchronous filters of ``router`` and its sub-routers on the event loop.

    aiogram runs a filter that is not a coroutine function (every magic filter such as ``F.text``,
    a ``State`` used as a filter, a plain function) through ``asyncio.to_thread``: a hop to the
    default thread pool and back for each check. A plain-text prompt passes a few dozen such checks
    on its way to the prompt handler, and under a burst of prompts those hops (and the threads'
    contention for the interpreter lock) were a large part of the bot's CPU per update. Our
    synchronous filters only read the update and the handler data, so they are run where they are
    checked instead. Call once, after every router is included.
    """
    for observer in router.observers.values():
        for handler in (observer._handler, *observer.handlers):  # the router-level filters live in _handler
            for filter_ in handler.filters or ():
                if not filter_.awaitable:
                    filter_.callback = _inline(filter_.callback)
                    filter_.awaitable = True
    for sub_router in router.sub_routers:
        run_sync_filters_inline(sub_router)
    return router


def _inline(check: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    async def inline(*args: Any, **kwargs: Any) -> Any:
        return check(*args, **kwargs)

    return inline
