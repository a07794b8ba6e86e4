"""Updates carrying pictures (photos, documents, albums, videos) and small queries for the editing tests."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from aiogram.fsm.context import FSMContext
from aiogram.fsm.storage.base import StorageKey
from aiogram.methods import SendMessage
from aiogram.types import Animation, Document, PhotoSize, Update, Video

from tests.fakes import BOT_ID, buttons, message_update, user

_unique = itertools.count(1)


def photo_update(
    file_id: str, width: int, height: int, *, caption: str | None = None, file_size: int | None = 50_000,
    media_group_id: str | None = None, **fields: Any,
) -> Update:
    """A compressed photo as Telegram sends it: several sizes, the largest last."""
    n = next(_unique)
    sizes = [
        PhotoSize(
            file_id=f"{file_id}-thumb", file_unique_id=f"t{n}", width=max(1, width // 4), height=max(1, height // 4)
        ),
        PhotoSize(file_id=file_id, file_unique_id=f"p{n}", width=width, height=height, file_size=file_size),
    ]
    return message_update(None, photo=sizes, caption=caption, media_group_id=media_group_id, **fields)


def document_update(
    file_id: str, mime_type: str | None, file_name: str, *, file_size: int | None = 50_000, caption: str | None = None,
    media_group_id: str | None = None,
) -> Update:
    n = next(_unique)
    document = Document(
        file_id=file_id, file_unique_id=f"d{n}", file_name=file_name, mime_type=mime_type, file_size=file_size
    )
    return message_update(None, document=document, caption=caption, media_group_id=media_group_id)


def video_update() -> Update:
    video = Video(file_id="video-1", file_unique_id="v1", width=640, height=480, duration=3)
    return message_update(None, video=video)


def animation_update() -> Update:
    """A GIF: Telegram sends animations with both ``animation`` and ``document``."""
    animation = Animation(file_id="anim-1", file_unique_id="a1", width=320, height=240, duration=2)
    document = Document(file_id="anim-1", file_unique_id="a1", file_name="cat.gif.mp4", mime_type="video/mp4")
    return message_update(None, animation=animation, document=document)


async def feed_album(harness: Any, updates: list[Update]) -> None:
    """An album's updates arriving at the same time, as polling hands them over."""
    await asyncio.gather(*(harness.feed(u) for u in updates))


def last_text(harness: Any) -> str:
    return harness.session.of(SendMessage)[-1].text


def last_buttons(harness: Any) -> list[tuple[str, str]]:
    return buttons(harness.session.of(SendMessage)[-1].reply_markup)


def fsm(harness: Any, user_id: int | None = None) -> FSMContext:
    user_id = user_id or user().id
    key = StorageKey(bot_id=BOT_ID, chat_id=user_id, user_id=user_id)
    return FSMContext(storage=harness.app.dispatcher.storage, key=key)


async def age_flow(harness: Any, seconds: float) -> None:
    """Pretend the user's flow was last touched ``seconds`` ago."""
    await fsm(harness).update_data(touched=time.time() - seconds)


def new_texts(harness: Any, since: int) -> list[str]:
    return [m.text for m in harness.session.of(SendMessage)[since:]]


def sent_count(harness: Any) -> int:
    return len(harness.session.of(SendMessage))
