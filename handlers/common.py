"""Small pieces shared by the routers: prompt validation, button-text filters, job ownership.

Job submission is :class:`handlers.context.RequestContext`'s."""

from __future__ import annotations

import unicodedata
from typing import Any

from aiogram import F
from aiogram.types import CallbackQuery, Message
from aiogram.utils.magic_filter import MagicFilter
from aiogram_i18n import I18nContext

from bot.i18n import translator
from jobs.service import MAX_PROMPT_LENGTH
from prompting.safety import INVISIBLE, is_invisible_only
from storage.models import Job, User
from storage.repositories import Repositories


class PromptError(Exception):
    def __init__(self, code: str, **kwargs: Any) -> None:
        super().__init__(code)
        self.code = code
        self.kwargs = kwargs


def _meaningful(char: str) -> bool:
    return unicodedata.category(char)[0] in ("L", "N") and not INVISIBLE.match(char)


def validate_prompt(text: str | None, limit: int = MAX_PROMPT_LENGTH) -> str:
    """A prompt: any language, emoji welcome, but not empty, not emoji alone, not over the limit."""
    prompt = (text or "").strip()
    if not prompt or is_invisible_only(prompt):  # Hangul fillers and zero-width characters show nothing
        raise PromptError("prompt-empty")
    if len(prompt) > limit:
        raise PromptError("prompt-too-long", length=len(prompt), limit=limit)
    if not any(_meaningful(c) for c in prompt):
        raise PromptError("prompt-only-emoji")
    return prompt


async def checked_prompt(message: Message, text: str | None, i18n: I18nContext) -> str | None:
    """``text`` validated as a prompt (:func:`validate_prompt`), or None after answering ``message``
    with the reason (a caption, a command's argument, a flow's text step)."""
    try:
        return validate_prompt(text)
    except PromptError as exc:
        await message.answer(i18n.get(exc.code, **exc.kwargs))
        return None


# The reply-keyboard buttons that have a handler (:func:`button`): texts no plain prompt may take.
MENU_BUTTON_KEYS: set[str] = set()

# "@me" in a prompt: the user's own face in the picture (handlers.faceswap).
ME_PATTERN = r"(?i)@me\b"


def button(key: str) -> MagicFilter:
    """Matches a reply-keyboard button's text in any of the bot's languages."""
    MENU_BUTTON_KEYS.add(key)
    return F.text.in_(translator().all_locales(key))


async def own_job(
    query: CallbackQuery, job_id: int, user: User, repos: Repositories, i18n: I18nContext
) -> Job | None:
    """The job a button under a message points at, if it is this user's; else the user is told the
    button is no longer valid (a forged, stale or foreign callback changes nothing)."""
    job = await repos.jobs.get(job_id)
    if job is None or job.user_id != user.id:
        await query.answer(i18n.get("callback-unknown"), show_alert=True)
        return None
    return job
