"""/settings: an inline menu that edits itself in place; the negative prompt is set through FSM."""

from __future__ import annotations

import html

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram_i18n import I18nContext

from bot.i18n import translator
from bot.keyboards import (
    BeautifyCb,
    CountChoiceCb,
    LanguageChoiceCb,
    ModelChoiceCb,
    RatioChoiceCb,
    SettingsAction,
    SettingsActionCb,
    SettingsCb,
    SettingsSection,
    StyleChoiceCb,
    Switch,
    editing_model_name,
    main_keyboard,
    model_name,
    settings_menu,
    settings_section,
    style_name,
)
from generation.registry import EDITING_MODELS
from generation.styles import IMAGE_MODELS, image_size
from handlers.common import button
from handlers.context import RequestContext
from jobs.service import MAX_PROMPT_LENGTH
from storage.models import User, UserSettings


class NegativePrompt(StatesGroup):
    waiting = State()


# Sections whose buttons are choices (the negative prompt's section has its own text).
CHOICE_SECTIONS = frozenset(
    {SettingsSection.MODEL, SettingsSection.RATIO, SettingsSection.STYLE, SettingsSection.COUNT,
     SettingsSection.LANGUAGE, SettingsSection.EDITING}
)  # fmt: skip


def settings_text(i18n: I18nContext, settings: UserSettings, max_side: int) -> str:
    t, locale = translator(), i18n.locale
    width, height = image_size(settings.aspect_ratio, max_side)
    return i18n.get(
        "settings-title",
        model=model_name(t, settings.model, locale),
        ratio=settings.aspect_ratio,
        size=f"{width}×{height}",
        style=style_name(t, settings.style, locale),
        negative=html.escape(settings.negative_prompt) if settings.negative_prompt else i18n.get("settings-none"),
        beautify=i18n.get("settings-on" if settings.beautify else "settings-off"),
        count=settings.num_images,
        seed=str(settings.fixed_seed) if settings.fixed_seed is not None else i18n.get("settings-seed-random"),
        editing=editing_model_name(t, settings.editing_model, locale),
    )


async def open_settings(message: Message, i18n: I18nContext, user: User, max_image_side: int) -> None:
    await message.answer(
        settings_text(i18n, user.settings, max_image_side),
        reply_markup=settings_menu(translator(), i18n.locale, user.settings),
    )


def _apply(settings: UserSettings, choice: CallbackData) -> bool:
    """Store a choice; False for one that no button offers (forged or stale callback data)."""
    match choice:
        case ModelChoiceCb(section="model", model=model) if model in IMAGE_MODELS:
            settings.model = model.value
        case ModelChoiceCb(section="editing", model=model) if model in EDITING_MODELS:
            settings.editing_model = model.value
        case RatioChoiceCb(ratio=ratio):
            settings.aspect_ratio = ratio.value.replace("x", ":")
        case StyleChoiceCb(style=style):
            settings.style = style.value
        case CountChoiceCb(count=count):
            settings.num_images = count
        case BeautifyCb(value=value):
            settings.beautify = value == Switch.ON
        case SettingsActionCb(section="seed", action=SettingsAction.CLEAR):
            settings.fixed_seed = None
        case SettingsActionCb(section="neg", action=SettingsAction.CLEAR):
            settings.negative_prompt = None
        case _:
            return False
    return True


async def show_menu(query: CallbackQuery, message: Message, request: RequestContext, answer: str | None = None) -> None:
    """The main menu with the current values, in place of the section."""
    settings, locale = request.user.settings, request.i18n.locale
    await message.edit_text(
        settings_text(request.i18n, settings, request.max_side), reply_markup=settings_menu(translator(), locale, settings)
    )
    await query.answer(answer)


async def open_section(query: CallbackQuery, callback_data: SettingsCb, request: RequestContext) -> None:
    """A section of the menu (its choices), back to the menu, or close."""
    i18n, settings, message = request.i18n, request.user.settings, query.message
    if not isinstance(message, Message):  # the message is too old to edit
        await query.answer(i18n.get("callback-unknown"))
        return
    section = callback_data.section
    if section == SettingsSection.CLOSE:
        await message.delete()
        await query.answer()
    elif section == SettingsSection.MENU:
        await show_menu(query, message, request)
    elif section == SettingsSection.NEGATIVE:
        negative = html.escape(settings.negative_prompt) if settings.negative_prompt else i18n.get("settings-none")
        await message.edit_text(
            i18n.get("settings-negative-menu", negative=negative),
            reply_markup=settings_section(translator(), i18n.locale, section, settings),
        )
        await query.answer()
    elif section in CHOICE_SECTIONS:
        await message.edit_text(
            i18n.get(f"settings-choose-{section}"),
            reply_markup=settings_section(translator(), i18n.locale, section, settings),
        )
        await query.answer()
    else:  # beautify and seed have no section of their own: no button opens them
        await query.answer(i18n.get("callback-unknown"), show_alert=True)


async def choose(query: CallbackQuery, callback_data: CallbackData, request: RequestContext) -> None:
    """A choice in a section (or the menu's beautify switch, clearing the seed or the negative prompt)."""
    i18n, message = request.i18n, query.message
    if not isinstance(message, Message):
        await query.answer(i18n.get("callback-unknown"))
        return
    if not _apply(request.user.settings, callback_data):
        await query.answer(i18n.get("callback-unknown"), show_alert=True)
        return
    await show_menu(query, message, request, i18n.get("settings-saved"))


async def choose_language(query: CallbackQuery, callback_data: LanguageChoiceCb, request: RequestContext) -> None:
    i18n, message = request.i18n, query.message
    if not isinstance(message, Message):
        await query.answer(i18n.get("callback-unknown"))
        return
    locale = callback_data.code.value
    await i18n.set_locale(locale, user=request.user)
    await show_menu(query, message, request)
    # The reply keyboard under the input field speaks the new language too.
    await message.answer(i18n.get("language-set"), reply_markup=main_keyboard(translator(), locale))


async def ask_negative(query: CallbackQuery, request: RequestContext, state: FSMContext) -> None:
    message = query.message
    if not isinstance(message, Message):
        await query.answer(request.i18n.get("callback-unknown"))
        return
    await state.set_state(NegativePrompt.waiting)
    # The menu is refreshed in place once the text arrives.
    await state.update_data(settings_message_id=message.message_id)
    await query.answer()
    await message.answer(request.i18n.get("negative-ask", limit=MAX_PROMPT_LENGTH))


async def negative_prompt_text(
    message: Message, bot: Bot, i18n: I18nContext, user: User, state: FSMContext, max_image_side: int
) -> None:
    text = (message.text or "").strip()
    if len(text) > MAX_PROMPT_LENGTH:
        await message.answer(i18n.get("negative-too-long", length=len(text), limit=MAX_PROMPT_LENGTH))
        return
    if not text:
        await message.answer(i18n.get("negative-empty"))
        return
    user.settings.negative_prompt = text
    menu_id = (await state.get_data()).get("settings_message_id")
    await state.clear()
    await message.answer(i18n.get("negative-saved", negative=html.escape(text)))
    if menu_id:  # the /settings message shows the new negative prompt (best effort: it may be gone)
        try:
            await bot.edit_message_text(
                settings_text(i18n, user.settings, max_image_side),
                chat_id=message.chat.id,
                message_id=int(menu_id),
                reply_markup=settings_menu(translator(), i18n.locale, user.settings),
            )
        except TelegramAPIError:
            pass


async def negative_prompt_not_text(message: Message, i18n: I18nContext) -> None:
    await message.answer(i18n.get("negative-empty"))


def create_router() -> Router:
    router = Router(name="settings")
    router.message(Command("settings"))(open_settings)
    router.message(button("btn-settings"))(open_settings)
    router.callback_query(SettingsCb.filter())(open_section)
    router.callback_query(LanguageChoiceCb.filter())(choose_language)
    router.callback_query(SettingsActionCb.filter((F.section == "neg") & (F.action == SettingsAction.SET)))(ask_negative)
    for choice in (ModelChoiceCb, RatioChoiceCb, StyleChoiceCb, CountChoiceCb, BeautifyCb, SettingsActionCb):
        router.callback_query(choice.filter())(choose)
    router.message(StateFilter(NegativePrompt.waiting), F.text, ~F.text.startswith("/"))(negative_prompt_text)
    router.message(StateFilter(NegativePrompt.waiting), ~F.text)(negative_prompt_not_text)
    return router
