"""CallbackData factories and keyboards. Button texts come from the i18n layer."""

from __future__ import annotations

from enum import StrEnum

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup, KeyboardButton, ReplyKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.i18n import LOCALES, Translator
from generation.registry import EDITING_MODELS
from generation.styles import ASPECT_RATIOS, MODELS, STYLES
from storage.models import UserSettings

MAX_IMAGES_PER_REQUEST = 4


class SettingsSection(StrEnum):
    MENU = "menu"
    MODEL = "model"
    RATIO = "ratio"
    STYLE = "style"
    NEGATIVE = "neg"
    BEAUTIFY = "beautify"
    COUNT = "count"
    SEED = "seed"
    EDITING = "editing"  # the editing model
    CLOSE = "close"


class ResultAction(StrEnum):
    AGAIN = "again"
    PLAIN = "plain"  # without beautification
    VARIATIONS = "variations"
    ORIGINAL = "original"
    SEED = "seed"  # reuse the seed


# Typed fields: aiogram rejects data whose enum value or int does not parse before any handler runs.
class SettingsCb(CallbackData, prefix="set"):
    section: SettingsSection
    value: str = ""  # empty: open the section; otherwise: set it (ratios as "16x9": ":" separates fields)


class ResultCb(CallbackData, prefix="res"):
    action: ResultAction
    job_id: int


class CancelJobCb(CallbackData, prefix="cancel"):
    job_id: int


class LanguageCb(CallbackData, prefix="lang"):
    code: str


def model_name(t: Translator, model: str, locale: str) -> str:
    return t("model-" + model.replace(".", "_"), locale)


def editing_model_name(t: Translator, model: str, locale: str) -> str:
    return t("editing-model-" + model.replace(".", "_"), locale)


def style_name(t: Translator, style: str, locale: str) -> str:
    return t("style-" + style, locale)


def main_keyboard(t: Translator, locale: str) -> ReplyKeyboardMarkup:
    return ReplyKeyboardMarkup(
        keyboard=[
            [KeyboardButton(text=t("btn-settings", locale)), KeyboardButton(text=t("btn-help", locale))],
            [KeyboardButton(text=t("btn-cancel", locale))],
        ],
        resize_keyboard=True,
        is_persistent=True,
    )


def language_keyboard() -> InlineKeyboardMarkup:
    names = {"en": "🇬🇧 English", "ru": "🇷🇺 Русский"}
    builder = InlineKeyboardBuilder()
    for code in LOCALES:
        builder.button(text=names[code], callback_data=LanguageCb(code=code))
    return builder.as_markup()


def _mark(text: str, selected: bool) -> str:
    return f"✅ {text}" if selected else text


def settings_menu(t: Translator, locale: str, settings: UserSettings) -> InlineKeyboardMarkup:
    state = t("settings-on" if settings.beautify else "settings-off", locale)
    builder = InlineKeyboardBuilder()
    builder.button(text=t("settings-model", locale), callback_data=SettingsCb(section="model"))
    builder.button(text=t("settings-ratio", locale), callback_data=SettingsCb(section="ratio"))
    builder.button(text=t("settings-style", locale), callback_data=SettingsCb(section="style"))
    builder.button(text=t("settings-negative", locale), callback_data=SettingsCb(section="neg"))
    builder.button(
        text=t("settings-beautify", locale, state=state),
        callback_data=SettingsCb(section="beautify", value="off" if settings.beautify else "on"),
    )
    builder.button(text=t("settings-count", locale), callback_data=SettingsCb(section="count"))
    builder.button(text=t("settings-editing", locale), callback_data=SettingsCb(section="editing"))
    if settings.fixed_seed is not None:
        builder.button(text=t("settings-seed-clear", locale), callback_data=SettingsCb(section="seed", value="clear"))
    builder.button(text=t("settings-close", locale), callback_data=SettingsCb(section="close"))
    builder.adjust(2)
    return builder.as_markup()


def settings_section(t: Translator, locale: str, section: str, settings: UserSettings) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    if section == "model":
        for model in MODELS:
            builder.button(
                text=_mark(model_name(t, model, locale), settings.model == model),
                callback_data=SettingsCb(section="model", value=model),
            )
        builder.adjust(1)
    elif section == "editing":
        for model in EDITING_MODELS:
            builder.button(
                text=_mark(editing_model_name(t, model, locale), settings.editing_model == model),
                callback_data=SettingsCb(section="editing", value=model),
            )
        builder.adjust(1)
    elif section == "ratio":
        for ratio in ASPECT_RATIOS:
            builder.button(
                text=_mark(ratio, settings.aspect_ratio == ratio),
                callback_data=SettingsCb(section="ratio", value=ratio.replace(":", "x")),
            )
        builder.adjust(4)
    elif section == "style":
        for key in STYLES:
            builder.button(
                text=_mark(style_name(t, key, locale), settings.style == key),
                callback_data=SettingsCb(section="style", value=key),
            )
        builder.adjust(2)
    elif section == "count":
        for count in range(1, MAX_IMAGES_PER_REQUEST + 1):
            builder.button(
                text=_mark(str(count), settings.num_images == count),
                callback_data=SettingsCb(section="count", value=str(count)),
            )
        builder.adjust(4)
    elif section == "neg":
        builder.button(text=t("settings-negative-set", locale), callback_data=SettingsCb(section="neg", value="set"))
        if settings.negative_prompt:
            builder.button(
                text=t("settings-negative-clear", locale), callback_data=SettingsCb(section="neg", value="clear")
            )
        builder.adjust(2)
    builder.row()
    builder.button(text=t("settings-back", locale), callback_data=SettingsCb(section="menu"))
    return builder.as_markup()


def cancel_job_keyboard(t: Translator, locale: str, job_id: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=t("btn-cancel-job", locale), callback_data=CancelJobCb(job_id=job_id))
    return builder.as_markup()


def result_keyboard(
    t: Translator, locale: str, job_id: int, variations: bool = False, plain: bool = False
) -> InlineKeyboardMarkup:
    """``plain``: the job's prompt was beautified; offer it again in the user's own words."""
    builder = InlineKeyboardBuilder()
    builder.button(text=t("btn-again", locale), callback_data=ResultCb(action="again", job_id=job_id))
    if plain:
        builder.button(text=t("btn-plain", locale), callback_data=ResultCb(action="plain", job_id=job_id))
    if variations:
        builder.button(text=t("btn-variations", locale), callback_data=ResultCb(action="variations", job_id=job_id))
    builder.button(text=t("btn-original", locale), callback_data=ResultCb(action="original", job_id=job_id))
    builder.button(text=t("btn-reuse-seed", locale), callback_data=ResultCb(action="seed", job_id=job_id))
    builder.adjust(2)
    return builder.as_markup()


def again_keyboard(t: Translator, locale: str, job_id: int) -> InlineKeyboardMarkup:
    """Just "Again" (the same job with a new seed), for failures another seed may fix."""
    builder = InlineKeyboardBuilder()
    builder.button(text=t("btn-again", locale), callback_data=ResultCb(action="again", job_id=job_id))
    return builder.as_markup()
