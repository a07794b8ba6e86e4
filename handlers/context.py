"""The request-scoped object handlers declare as ``request: RequestContext``.

:class:`RequestContextMiddleware` (installed by ``app.wiring``) builds one per update from what the
outer middlewares and the dispatcher already hold (bot, chat, user, repositories, job service,
notifier, translations), so a handler that submits a job names one argument instead of seven:

    async def prompt(message: Message, request: RequestContext) -> None:
        await request.submit(request.params(text))

Refusals (limits, pause, blocked prompt) are answered by :meth:`RequestContext.submit` itself.
"""

from __future__ import annotations

import html
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiogram import BaseMiddleware, Bot
from aiogram.types import TelegramObject
from aiogram_i18n import I18nContext

from bot.notifier import TelegramNotifier
from generation.backend import Mode
from generation.registry import editing_model_for, model_for
from generation.styles import DEFAULT_STYLE, fit_size
from jobs.params import EditParams, JobParams, read_params
from jobs.service import AdmissionError, JobService
from storage.estimates import wait_estimate
from storage.models import Job, User
from storage.repositories import Repositories

if TYPE_CHECKING:  # a runtime import would load handlers.editing, which imports this module
    from handlers.editing.inputs import InputPhoto

# Edit modes whose job carries the user's text (and style); the others are photos only.
TEXT_MODES = frozenset({Mode.IMG2IMG, Mode.RESTYLE_DEPTH, Mode.MIX})


def ratio_label(width: int, height: int) -> str:
    divisor = math.gcd(width, height)
    return f"{width // divisor}:{height // divisor}"


@dataclass(frozen=True)
class EditInputs:
    """What an edit job is made of besides the user's settings: its mode, the checked photos (the
    first one sets the output's aspect ratio) and what the user chose in the flow."""

    mode: Mode
    photos: Sequence[InputPhoto]
    prompt: str = ""  # the user's text (restyle, mix) or an album's caption (fusion)
    weights: Sequence[float] = ()  # one per photo, then the text's (mix, fusion with a caption)
    strength: float | None = None  # image-to-image strength; None: the settings' default
    display_prompt: str | None = None  # shown in the status and caption instead of the prompt
    # The strength or weights are the user's last choice, used without asking: the status and the
    # caption name them and the buttons that change them (bot.notifier.remembered_note).
    remembered: bool = False


@dataclass
class RequestContext:
    bot: Bot
    chat_id: int
    user: User
    repos: Repositories
    jobs: JobService
    notifier: TelegramNotifier
    i18n: I18nContext
    max_side: int

    def params(self, prompt: str, kind: Mode = Mode.TEXT2IMG, **overrides: Any) -> JobParams:
        """Parameters of a ``kind`` job from the user's settings (validated)."""
        return self.jobs.params_from_settings(self.user, prompt, kind, **overrides)

    async def submit(
        self, params: JobParams, kind: Mode = Mode.TEXT2IMG, model: str | None = None, chat_id: int | None = None
    ) -> Job | None:
        """Create the job and its status message, or answer why not. Returns the job or None."""
        chat = self.chat_id if chat_id is None else chat_id

        async def announce(job: Job, position: int) -> int:
            # The estimated wait: the position times the model's recent average (none without a history).
            eta = wait_estimate(position, await self.jobs.estimates.average(self.repos.session, job.model))
            return await self.notifier.announce(job, self.i18n.locale, position, eta)

        try:
            return await self.jobs.submit(self.repos, self.user, chat, params, announce, kind=kind, model=model)
        except AdmissionError as exc:
            # The messages are HTML: an admin's /pause reason is text, not markup.
            details = {k: html.escape(v) if isinstance(v, str) else v for k, v in exc.details.items()}
            await self.bot.send_message(chat, self.i18n.get(exc.code, limit=exc.limit, **details))
            return None

    async def resubmit(self, job: Job, **changes: Any) -> Job | None:
        """One of the user's jobs again, as a new job on the same model, with some fields changed."""
        params = read_params(job).model_copy(update=changes)
        return await self.submit(params, Mode(job.kind), job.model, chat_id=job.chat_id)

    def edit_params(self, edit: EditInputs, requested_model: str | None = None) -> EditParams:
        """An edit job's parameters: the output follows the first photo's aspect ratio, fitted to
        MAX_IMAGE_SIDE in multiples of 64; inputs are Telegram file ids (never bytes), so the job,
        or "Again" on it, still works after a restart. ``requested_model``: the user's model, when
        another one runs the edit (the status says so)."""
        width, height = fit_size(edit.photos[0].width, edit.photos[0].height, self.max_side)
        overrides: dict[str, Any] = dict(
            width=width,
            height=height,
            aspect_ratio=ratio_label(width, height),
            input_file_ids=[photo.file_id for photo in edit.photos],
            weights=[float(w) for w in edit.weights],
            requested_model=requested_model,
        )
        if edit.strength is not None:
            overrides["strength"] = edit.strength
        if edit.mode not in TEXT_MODES:  # no text: a style template or a beautified prompt would be the whole prompt
            overrides.update(style=DEFAULT_STYLE, beautify=False)
        if edit.display_prompt:
            overrides["display_prompt"] = edit.display_prompt
        if edit.remembered:
            overrides["remembered"] = True
        params = self.params(edit.prompt, edit.mode, **overrides)
        assert isinstance(params, EditParams)
        return params

    async def submit_edit(self, edit: EditInputs) -> Job | None:
        """An edit job on the model the registry picks (:func:`edit_model`)."""
        model, moved = edit_model(edit.mode, self.user.settings.model, self.user.settings.editing_model)
        params = self.edit_params(edit, requested_model=self.user.settings.model if moved else None)
        return await self.submit(params, edit.mode, model)


def edit_model(mode: Mode, user_model: str, editing_model: str | None = None) -> tuple[str, bool]:
    """(the model that runs ``mode``, whether the user should be told it is not their model).

    Restyling is the user's model's job when the registry says it restyles; the other edit modes run
    on the user's editing model (:func:`generation.registry.editing_model_for`: Kandinsky 2.2, or
    Kandinsky 3.1's IP-Adapter and HED ControlNet), which the user chose, so it is not announced."""
    if mode is not Mode.IMG2IMG:
        return str(editing_model_for(mode, editing_model)), False
    model, fell_back = model_for(mode, user_model)
    return str(model), fell_back


Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class RequestContextMiddleware(BaseMiddleware):
    """Puts ``request`` into the handler data (after the database, user and i18n middlewares).

    Installed as an outer middleware of messages and callback queries, so filters see it too."""

    def __init__(self, notifier: TelegramNotifier, max_side: int) -> None:
        self.notifier = notifier
        self.max_side = max_side

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user, chat, i18n = data.get("user"), data.get("event_chat"), data.get("i18n")
        if user is not None and chat is not None and i18n is not None and "repos" in data:
            data["request"] = RequestContext(
                bot=data["bot"],
                chat_id=chat.id,
                user=user,
                repos=data["repos"],
                jobs=data["jobs"],
                notifier=self.notifier,
                i18n=i18n,
                max_side=self.max_side,
            )
        return await handler(event, data)
