"""/start, /help, /language."""

from __future__ import annotations

import html

from aiogram import Router
from aiogram.filters import Command, CommandStart
from aiogram.types import CallbackQuery, Message
from aiogram_i18n import I18nContext

from bot.i18n import translator
from bot.keyboards import LanguageCb, language_keyboard, main_keyboard, model_name
from generation.backend import Mode
from generation.registry import MODELS, Family
from handlers.common import button
from generation.styles import ASPECT_RATIOS
from storage.models import User


async def start(message: Message, i18n: I18nContext) -> None:
    name = html.escape(message.from_user.first_name if message.from_user else "")
    await message.answer(
        i18n.get("start-greeting", name=name), reply_markup=main_keyboard(translator(), i18n.locale)
    )


def models_help(i18n: I18nContext) -> str:
    """One line per model of the registry: what it does (and that Flash ignores a negative prompt).
    The editing model's parts (IP-Adapter, HED ControlNet) are not listed: the help text's /settings
    line names the editing model."""
    lines = [i18n.get("help-models")]
    for model, spec in MODELS.items():
        if spec.family is Family.K3_IMAGE:
            continue
        modes = ", ".join(i18n.get(f"mode-{mode}") for mode in Mode if spec.supports(mode))
        line = i18n.get("help-model", model=model_name(translator(), model, i18n.locale), modes=modes)
        lines.append(line if spec.negative_prompt else i18n.get("help-model-no-negative", line=line))
    return "\n".join(lines)


async def help_(message: Message, i18n: I18nContext) -> None:
    params = i18n.get("help-params", ratios=", ".join(ASPECT_RATIOS))
    await message.answer(i18n.get("help-text") + "\n\n" + models_help(i18n) + "\n\n" + params)


async def language(message: Message, i18n: I18nContext) -> None:
    await message.answer(i18n.get("language-choose"), reply_markup=language_keyboard())


async def set_language(query: CallbackQuery, callback_data: LanguageCb, i18n: I18nContext, user: User) -> None:
    locale = callback_data.code.value
    await i18n.set_locale(locale, user=user)
    await query.answer()
    if query.message is not None:
        await query.message.answer(i18n.get("language-set"), reply_markup=main_keyboard(translator(), locale))


def create_router() -> Router:
    router = Router(name="start")
    router.message(CommandStart())(start)
    router.message(Command("help"))(help_)
    router.message(button("btn-help"))(help_)
    router.message(Command("language"))(language)
    router.callback_query(LanguageCb.filter())(set_language)
    return router
