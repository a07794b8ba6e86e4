"""The i18n layer: Fluent files under bot/locales/{locale}/ through aiogram-i18n.

Handlers get an ``i18n`` context from the middleware; code outside an update (the worker, delivery)
uses :func:`translator` with the job owner's stored language.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from aiogram.dispatcher.event.bases import NextMiddlewareType
from aiogram.types import TelegramObject
from aiogram.types import User as TelegramUser
from aiogram_i18n import I18nMiddleware
from aiogram_i18n.cores import FluentRuntimeCore
from aiogram_i18n.managers import BaseManager

LOCALES_PATH = Path(__file__).parent / "locales" / "{locale}"


class Locale(StrEnum):
    """The languages the bot speaks (a folder under bot/locales each)."""

    EN = "en"
    RU = "ru"


LOCALES: tuple[str, ...] = tuple(locale.value for locale in Locale)
DEFAULT_LOCALE = "en"


def normalize_locale(language_code: str | None) -> str:
    code = (language_code or "").lower()
    return "ru" if code.startswith("ru") else DEFAULT_LOCALE


class UserLocaleManager(BaseManager):
    """The locale is the user's stored language (set on first contact from Telegram's language_code)."""

    async def get_locale(self, event_from_user: TelegramUser | None = None, **data: Any) -> str:
        user = data.get("user")
        if user is not None:
            return user.language
        return normalize_locale(event_from_user.language_code if event_from_user else None)

    async def set_locale(self, locale: str, **data: Any) -> None:
        user = data.get("user")
        if user is not None:
            user.language = locale


class ParsedOnceCore(FluentRuntimeCore):
    """The Fluent files parsed once per process, shared by every dispatcher and :func:`translator`.

    aiogram-i18n parses the files again on each dispatcher start-up and forgets them on shutdown; the
    texts never change while the process runs, so both are no-ops here."""

    async def startup(self) -> None:
        if not self.locales:
            self.locales.update(self.find_locales())

    async def shutdown(self) -> None:
        pass


@lru_cache(maxsize=1)
def create_core() -> ParsedOnceCore:
    core = ParsedOnceCore(path=LOCALES_PATH, default_locale=DEFAULT_LOCALE)
    core.locales.update(core.find_locales())
    return core


class ReleasingI18nMiddleware(I18nMiddleware):
    """aiogram-i18n's middleware, letting go of the update's context once the update is handled.

    The ``i18n`` context keeps the handler data, and the data keeps the context: a reference cycle
    with everything the update touched in it (its database session and rows, the FSM context), some
    35 objects a prompt that only the cycle collector could free, walking every update in flight
    each time it runs. With the context dropped from the data, all of it is freed as the update ends.
    (Not after a failure: the errors router's handlers get the same data.)"""

    async def __call__(
        self,
        handler: NextMiddlewareType[TelegramObject],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        result = await super().__call__(handler, event, data)
        data.pop(self.context_key, None)
        return result


def create_middleware() -> I18nMiddleware:
    return ReleasingI18nMiddleware(core=create_core(), manager=UserLocaleManager(), default_locale=DEFAULT_LOCALE)


MEMO_SIZE = 4096  # formatted texts remembered by Translator.memo


class Translator:
    """Translations outside an update's context: ``t("key", locale, **kwargs)``."""

    def __init__(self, core: FluentRuntimeCore) -> None:
        self.core = core
        # ``memo``: the same, remembered, for texts sent over and over with the same few arguments
        # (a queue position, a rounded wait); formatting one with Fluent costs tens of microseconds.
        self.memo: Callable[..., str] = lru_cache(maxsize=MEMO_SIZE)(self.__call__)

    def __call__(self, key: str, locale: str | None = None, /, **kwargs: Any) -> str:
        return self.core.get(key, locale if locale in LOCALES else DEFAULT_LOCALE, **kwargs)

    def has(self, key: str, locale: str) -> bool:
        return self.core.get_translator(self.core.get_locale(locale)).has_message(key)

    def all_locales(self, key: str) -> set[str]:
        return {self.core.get(key, locale) for locale in LOCALES}


@lru_cache(maxsize=1)
def translator() -> Translator:
    return Translator(create_core())
