"""CallbackData factories and keyboards. Button texts come from the i18n layer."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, KeyboardButton, ReplyKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder
from pydantic import Field

from bot.i18n import Locale, Translator
from generation.backend import ModelId
from generation.registry import EDITING_MODELS
from generation.styles import ASPECT_RATIOS, EDIT_STRENGTHS, IMAGE_MODELS, STYLES
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
    LANGUAGE = "lang"
    CLOSE = "close"


class ResultAction(StrEnum):
    AGAIN = "again"
    PLAIN = "plain"  # without beautification
    VARIATIONS = "variations"
    ORIGINAL = "original"
    SEED = "seed"  # reuse the seed
    REMIX = "remix"  # "Edit prompt": a new text, the same settings and seed
    LIGHTER = "lighter"  # a restyle at the next lower strength
    STRONGER = "stronger"
    SHAPES = "shapes"  # the same restyle keeping the shapes
    MORE_FIRST = "wmore"  # mix / fusion of two: more of the photo (of photo 1)
    LESS_FIRST = "wless"


# Typed fields: aiogram rejects data whose enum value or int does not parse before any handler runs.
#
# /settings: SettingsCb opens a section (or the menu, or closes it); each kind of choice inside a
# section has a factory of its own with the same prefix, the section first and a typed value, packed
# exactly as the untyped ``set:<section>:<value>`` buttons were, so menus already in chats still work.
class SettingsCb(CallbackData, prefix="set"):
    section: SettingsSection
    value: Literal[""] = ""  # always empty: it packs as the untyped buttons that opened a section did


# Ratios as the buttons carry them ("16x9": ":" separates the fields), styles by their key.
RatioChoice = StrEnum("RatioChoice", {ratio.replace(":", "x"): ratio.replace(":", "x") for ratio in ASPECT_RATIOS})
StyleChoice = StrEnum("StyleChoice", {key: key for key in STYLES})


class Switch(StrEnum):
    ON = "on"
    OFF = "off"


class SettingsAction(StrEnum):
    SET = "set"  # type a new negative prompt
    CLEAR = "clear"  # the negative prompt or the fixed seed


class ModelChoiceCb(CallbackData, prefix="set"):
    section: Literal["model", "editing"]  # the model, or the editing model
    model: ModelId


class RatioChoiceCb(CallbackData, prefix="set"):
    section: Literal["ratio"] = "ratio"
    ratio: RatioChoice


class StyleChoiceCb(CallbackData, prefix="set"):
    section: Literal["style"] = "style"
    style: StyleChoice


class CountChoiceCb(CallbackData, prefix="set"):
    section: Literal["count"] = "count"
    count: Annotated[int, Field(ge=1, le=MAX_IMAGES_PER_REQUEST)]


class BeautifyCb(CallbackData, prefix="set"):
    section: Literal["beautify"] = "beautify"
    value: Switch


class LanguageChoiceCb(CallbackData, prefix="set"):
    section: Literal["lang"] = "lang"
    code: Locale


class SettingsActionCb(CallbackData, prefix="set"):
    section: Literal["neg", "seed"]
    action: SettingsAction


class ResultCb(CallbackData, prefix="res"):
    action: ResultAction
    job_id: int


class ImageAction(StrEnum):
    VARIATIONS = "variations"
    ORIGINAL = "original"
    SEED = "seed"
    ZOOM = "zoom"  # zoom out 2x (handlers.canvas_edit)
    UPSCALE = "upscale"  # upscale x2 (handlers.canvas_edit)


class ImageCb(CallbackData, prefix="img"):
    """A button for one image of an album result: ``index`` counts from 1, as the buttons show it."""

    action: ImageAction
    job_id: int
    index: int


class CancelJobCb(CallbackData, prefix="cancel"):
    job_id: int


class LanguageCb(CallbackData, prefix="lang"):
    code: Locale


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
    for code in Locale:
        builder.button(text=names[code], callback_data=LanguageCb(code=code))
    return builder.as_markup()


def _mark(text: str, selected: bool) -> str:
    return f"✅ {text}" if selected else text


def settings_menu(t: Translator, locale: str, settings: UserSettings) -> InlineKeyboardMarkup:
    state = t("settings-on" if settings.beautify else "settings-off", locale)
    builder = InlineKeyboardBuilder()
    builder.button(text=t("settings-model", locale), callback_data=SettingsCb(section=SettingsSection.MODEL))
    builder.button(text=t("settings-ratio", locale), callback_data=SettingsCb(section=SettingsSection.RATIO))
    builder.button(text=t("settings-style", locale), callback_data=SettingsCb(section=SettingsSection.STYLE))
    builder.button(text=t("settings-negative", locale), callback_data=SettingsCb(section=SettingsSection.NEGATIVE))
    builder.button(
        text=t("settings-beautify", locale, state=state),
        callback_data=BeautifyCb(value=Switch.OFF if settings.beautify else Switch.ON),
    )
    builder.button(text=t("settings-count", locale), callback_data=SettingsCb(section=SettingsSection.COUNT))
    builder.button(text=t("settings-editing", locale), callback_data=SettingsCb(section=SettingsSection.EDITING))
    builder.button(text=t("settings-language", locale), callback_data=SettingsCb(section=SettingsSection.LANGUAGE))
    if settings.fixed_seed is not None:
        builder.button(
            text=t("settings-seed-clear", locale), callback_data=SettingsActionCb(section="seed", action="clear")
        )
    builder.button(text=t("settings-close", locale), callback_data=SettingsCb(section=SettingsSection.CLOSE))
    builder.adjust(2)
    return builder.as_markup()


def settings_section(t: Translator, locale: str, section: str, settings: UserSettings) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    if section == "model":
        for model in IMAGE_MODELS:
            builder.button(
                text=_mark(model_name(t, model, locale), settings.model == model),
                callback_data=ModelChoiceCb(section="model", model=model),
            )
        builder.adjust(1)
    elif section == "editing":
        for model in EDITING_MODELS:
            builder.button(
                text=_mark(editing_model_name(t, model, locale), settings.editing_model == model),
                callback_data=ModelChoiceCb(section="editing", model=model),
            )
        builder.adjust(1)
    elif section == "ratio":
        for ratio in ASPECT_RATIOS:
            builder.button(
                text=_mark(ratio, settings.aspect_ratio == ratio),
                callback_data=RatioChoiceCb(ratio=ratio.replace(":", "x")),
            )
        builder.adjust(4)
    elif section == "style":
        for key in STYLES:
            builder.button(
                text=_mark(style_name(t, key, locale), settings.style == key),
                callback_data=StyleChoiceCb(style=key),
            )
        builder.adjust(2)
    elif section == "count":
        for count in range(1, MAX_IMAGES_PER_REQUEST + 1):
            builder.button(
                text=_mark(str(count), settings.num_images == count),
                callback_data=CountChoiceCb(count=count),
            )
        builder.adjust(4)
    elif section == "lang":
        names = {"en": "🇬🇧 English", "ru": "🇷🇺 Русский"}
        for code in Locale:
            builder.button(text=_mark(names[code], locale == code), callback_data=LanguageChoiceCb(code=code))
        builder.adjust(2)
    elif section == "neg":
        builder.button(
            text=t("settings-negative-set", locale), callback_data=SettingsActionCb(section="neg", action="set")
        )
        if settings.negative_prompt:
            builder.button(
                text=t("settings-negative-clear", locale), callback_data=SettingsActionCb(section="neg", action="clear")
            )
        builder.adjust(2)
    # « Back on a row of its own, under the choices (InlineKeyboardBuilder.button would append it
    # to the last row of choices).
    builder.row(InlineKeyboardButton(text=t("settings-back", locale), callback_data=SettingsCb(section=SettingsSection.MENU).pack()))
    return builder.as_markup()


def cancel_job_keyboard(t: Translator, locale: str, job_id: int) -> InlineKeyboardMarkup:
    # Under every status message, and rebuilt for every queue-position edit: one button, made
    # directly (the builder's layout pass is not needed for one).
    button = InlineKeyboardButton(text=t("btn-cancel-job", locale), callback_data=CancelJobCb(job_id=job_id).pack())
    return InlineKeyboardMarkup(inline_keyboard=[[button]])


def redo_buttons(t: Translator, locale: str, job_id: int, strength: float | None, shapes: bool) -> list[InlineKeyboardButton]:
    """Under a restyled photo: 🔅 Lighter / 🔆 Stronger (the neighbouring strengths) and 🧱 Keep the shapes."""
    if strength is None:
        return []
    levels = sorted(EDIT_STRENGTHS.values())
    out = []
    if any(v < strength - 1e-6 for v in levels):
        out.append(InlineKeyboardButton(text=t("btn-lighter", locale), callback_data=ResultCb(action="lighter", job_id=job_id).pack()))
    if any(v > strength + 1e-6 for v in levels):
        out.append(InlineKeyboardButton(text=t("btn-stronger", locale), callback_data=ResultCb(action="stronger", job_id=job_id).pack()))
    if shapes:
        out.append(InlineKeyboardButton(text=t("btn-keep-shapes", locale), callback_data=ResultCb(action="shapes", job_id=job_id).pack()))
    return out


PAIR_PERCENTS = (25, 50, 75)  # the weight buttons of /mix and of a fusion of two (handlers.editing.flow)


def weight_buttons(t: Translator, locale: str, job_id: int, kind: str, first_percent: int | None) -> list[InlineKeyboardButton]:
    """Under a mix or a fusion of two: more of the photo / of the text (of photo 1 / photo 2)."""
    if first_percent is None:
        return []
    names = ("btn-more-photo", "btn-more-text") if kind == "mix" else ("btn-more-first", "btn-more-second")
    out = []
    if first_percent < max(PAIR_PERCENTS):
        out.append(InlineKeyboardButton(text=t(names[0], locale), callback_data=ResultCb(action="wmore", job_id=job_id).pack()))
    if first_percent > min(PAIR_PERCENTS):
        out.append(InlineKeyboardButton(text=t(names[1], locale), callback_data=ResultCb(action="wless", job_id=job_id).pack()))
    return out


def result_keyboard(
    t: Translator, locale: str, job_id: int, variations: bool = False, plain: bool = False, remix: bool = False,
    strength: float | None = None, shapes: bool = False, weights: list[InlineKeyboardButton] | None = None,
    canvas: bool = False, webapp_url: str | None = None,
) -> InlineKeyboardMarkup:
    """``plain``: the job's prompt was beautified; offer it again in the user's own words.
    ``remix``: "Edit prompt" (a new text with the same settings and seed). ``strength``: a restyle's,
    for Lighter / Stronger; ``shapes``: offer the same restyle keeping the shapes.
    ``canvas``: zoom / expand / upscale rows (bot.canvas_keyboard), and Inpaint with ``webapp_url``."""
    builder = InlineKeyboardBuilder()
    redo = redo_buttons(t, locale, job_id, strength, shapes) + list(weights or [])
    if redo:
        builder.row(*redo)
    builder.button(text=t("btn-again", locale), callback_data=ResultCb(action="again", job_id=job_id))
    if plain:
        builder.button(text=t("btn-plain", locale), callback_data=ResultCb(action="plain", job_id=job_id))
    if remix:
        builder.button(text=t("btn-remix", locale), callback_data=ResultCb(action="remix", job_id=job_id))
    if variations:
        builder.button(text=t("btn-variations", locale), callback_data=ResultCb(action="variations", job_id=job_id))
    builder.button(text=t("btn-original", locale), callback_data=ResultCb(action="original", job_id=job_id))
    builder.button(text=t("btn-reuse-seed", locale), callback_data=ResultCb(action="seed", job_id=job_id))
    if redo:  # the redo row stays a row of its own; the usual buttons two by two below it
        rest = [b for row in builder.export()[1:] for b in row]
        rows = [redo] + [rest[i : i + 2] for i in range(0, len(rest), 2)]
    else:
        builder.adjust(2)
        rows = builder.export()
    if canvas:  # a restyled or mixed picture can be zoomed and upscaled too
        from bot.canvas_keyboard import canvas_rows

        rows += canvas_rows(t, locale, job_id, webapp_url)
    return InlineKeyboardMarkup(inline_keyboard=rows)


def album_keyboard(
    t: Translator, locale: str, job_id: int, count: int, variations: bool = False, plain: bool = False,
    remix: bool = False, strength: float | None = None, shapes: bool = False,
    weights: list[InlineKeyboardButton] | None = None, canvas: bool = False,
) -> InlineKeyboardMarkup:
    """Under an album of ``count`` images: the job's own buttons, then a row per action with one
    button per image (🎲 1 … 🎲 4 variations, 📄 originals, 📌 seeds; with ``canvas`` 🔭 zoom out and
    ⬆️ upscale), like U1–U4 / V1–V4."""
    rows = [[InlineKeyboardButton(text=t("btn-again", locale), callback_data=ResultCb(action="again", job_id=job_id).pack())]]
    if plain:
        rows[0].append(InlineKeyboardButton(text=t("btn-plain", locale), callback_data=ResultCb(action="plain", job_id=job_id).pack()))
    if remix:
        rows[0].append(InlineKeyboardButton(text=t("btn-remix", locale), callback_data=ResultCb(action="remix", job_id=job_id).pack()))
    redo = redo_buttons(t, locale, job_id, strength, shapes) + list(weights or [])
    if redo:
        rows.append(redo)
    actions = (["variations"] if variations else []) + ["original", "seed"] + (["zoom", "upscale"] if canvas else [])
    for action in actions:
        rows.append([
            InlineKeyboardButton(
                text=t(f"btn-image-{action}", locale, n=n), callback_data=ImageCb(action=action, job_id=job_id, index=n).pack()
            )
            for n in range(1, count + 1)
        ])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def again_keyboard(t: Translator, locale: str, job_id: int) -> InlineKeyboardMarkup:
    """Just "Again" (the same job with a new seed), for failures another seed may fix."""
    builder = InlineKeyboardBuilder()
    builder.button(text=t("btn-again", locale), callback_data=ResultCb(action="again", job_id=job_id))
    return builder.as_markup()
