"""/settings: an inline menu that edits itself in place; the negative prompt is set through FSM."""

from __future__ import annotations

import html

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram_i18n import I18nContext

from bot.i18n import LOCALES, translator
from bot.keyboards import (
    MAX_IMAGES_PER_REQUEST,
    SettingsCb,
    editing_model_name,
    main_keyboard,
    model_name,
    settings_menu,
    settings_section,
    style_name,
)
from generation.registry import EDITING_MODELS
from generation.styles import ASPECT_RATIOS, IMAGE_MODELS, STYLES, image_size
from handlers.common import button
from jobs.service import MAX_PROMPT_LENGTH
from storage.models import User, UserSettings


class NegativePrompt(StatesGroup):
    waiting = State()


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


def _apply(settings: UserSettings, section: str, value: str) -> bool:
    """Store a choice; False for a value that no button offers (forged or stale callback data)."""
    if section == "model" and value in IMAGE_MODELS:
        settings.model = value
    elif section == "editing" and value in EDITING_MODELS:
        settings.editing_model = value
    elif section == "ratio" and value.replace("x", ":") in ASPECT_RATIOS:
        settings.aspect_ratio = value.replace("x", ":")
    elif section == "style" and value in STYLES:
        settings.style = value
    elif section == "count" and value.isascii() and value.isdigit() and 1 <= int(value) <= MAX_IMAGES_PER_REQUEST:
        settings.num_images = int(value)
    elif section == "beautify" and value in ("on", "off"):
        settings.beautify = value == "on"
    elif section == "seed" and value == "clear":
        settings.fixed_seed = None
    elif section == "neg" and value == "clear":
        settings.negative_prompt = None
    else:
        return False
    return True


async def settings_callback(
    query: CallbackQuery,
    callback_data: SettingsCb,
    i18n: I18nContext,
    user: User,
    state: FSMContext,
    max_image_side: int,
) -> None:
    message = query.message
    if not isinstance(message, Message):  # the message is too old to edit
        await query.answer(i18n.get("callback-unknown"))
        return
    section, value = callback_data.section, callback_data.value
    settings = user.settings
    t, locale = translator(), i18n.locale

    if section == "close":
        await message.delete()
        await query.answer()
        return
    if section == "neg" and value == "set":
        await state.set_state(NegativePrompt.waiting)
        # The menu is refreshed in place once the text arrives.
        await state.update_data(settings_message_id=message.message_id)
        await query.answer()
        await message.answer(i18n.get("negative-ask", limit=MAX_PROMPT_LENGTH))
        return
    if section == "neg" and not value:
        negative = html.escape(settings.negative_prompt) if settings.negative_prompt else i18n.get("settings-none")
        await message.edit_text(
            i18n.get("settings-negative-menu", negative=negative),
            reply_markup=settings_section(t, locale, "neg", settings),
        )
        await query.answer()
        return
    if section == "lang" and value in LOCALES:
        await i18n.set_locale(value, user=user)
        locale = value
        await message.edit_text(settings_text(i18n, settings, max_image_side), reply_markup=settings_menu(t, locale, settings))
        await query.answer()
        # The reply keyboard under the input field speaks the new language too.
        await message.answer(i18n.get("language-set"), reply_markup=main_keyboard(t, locale))
        return
    if section in ("model", "ratio", "style", "count", "lang", "editing") and not value:
        await message.edit_text(
            i18n.get(f"settings-choose-{section}"), reply_markup=settings_section(t, locale, section, settings)
        )
        await query.answer()
        return
    if section != "menu" and not _apply(settings, section, value):
        await query.answer(i18n.get("callback-unknown"), show_alert=True)
        return
    # A choice was stored (or "back"): show the main menu with the new values.
    await message.edit_text(settings_text(i18n, settings, max_image_side), reply_markup=settings_menu(t, locale, settings))
    await query.answer(i18n.get("settings-saved") if section != "menu" else None)


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
    router.callback_query(SettingsCb.filter())(settings_callback)
    router.message(StateFilter(NegativePrompt.waiting), F.text, ~F.text.startswith("/"))(negative_prompt_text)
    router.message(StateFilter(NegativePrompt.waiting), ~F.text)(negative_prompt_not_text)
    return router
