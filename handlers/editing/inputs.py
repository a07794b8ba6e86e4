"""The photos users send for editing: checked here, before any job exists, and kept as file ids.

Compressed photos are checked on Telegram's metadata (file size, width, height: Telegram re-encodes
them as upright JPEGs). Documents are checked on their MIME type and size, then downloaded and
decoded (:func:`generation.images.prepare_input_image`): a file named ``cat.png`` must really be a
still PNG, JPEG or WebP.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Filter
from aiogram.types import Message
from aiogram_i18n import I18nContext

from generation.images import MAX_INPUT_PIXELS, MAX_JPEG_PIXELS, MAX_RATIO, MIN_SIDE, InputImageError, prepare_input_image
from handlers.editing.flow import MAX_FUSE_PHOTOS

MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # the Bot API serves bots files up to 20 MB
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp"})


@dataclass(frozen=True)
class InputPhoto:
    """One input of an edit: the Telegram file id and the upright size (for the output's ratio)."""

    file_id: str
    width: int
    height: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputPhoto:
        return cls(str(data["file_id"]), int(data["width"]), int(data["height"]))


def has_media(message: Message) -> bool:
    """Anything a user might send as a picture (photos, files, videos, animations, stickers)."""
    return bool(
        message.photo or message.document or message.video or message.animation or message.video_note or message.sticker
    )


def check_dimensions(width: int, height: int) -> None:
    """The limits of :func:`generation.images.prepare_input_image`, on Telegram's photo metadata."""
    if min(width, height) < MIN_SIDE:
        raise InputImageError("too_small", f"{width}x{height}")
    if max(width, height) / min(width, height) > MAX_RATIO:
        raise InputImageError("bad_ratio", f"{width}x{height}")


def _check_file_size(size: int | None) -> None:
    if size is not None and size > MAX_DOWNLOAD_BYTES:
        raise InputImageError("too_big", f"{size} bytes")


def _looks_like_image(message: Message) -> bool:
    document = message.document
    assert document is not None
    mime = (document.mime_type or "").lower()
    suffix = PurePosixPath(document.file_name or "").suffix.lower()
    return mime.startswith("image/") or suffix in IMAGE_EXTENSIONS


async def download(bot: Bot, file_id: str) -> bytes:
    buffer = io.BytesIO()
    try:
        await bot.download(file_id, destination=buffer)
    except TelegramBadRequest as exc:
        if "too big" in exc.message.lower():  # file_size was missing and the file is over the limit
            raise InputImageError("too_big", exc.message) from exc
        raise
    return buffer.getvalue()


async def read_input(message: Message, bot: Bot, max_side: int) -> InputPhoto:
    """The message's picture as an :class:`InputPhoto`; :class:`InputImageError` says why not.

    Codes: not_image, animated, too_small, bad_ratio, too_big, too_many_pixels, sticker.
    """
    if message.video or message.animation or message.video_note:
        raise InputImageError("animated", "video or animation")
    if message.sticker:
        raise InputImageError("sticker")
    if message.photo:
        size = message.photo[-1]  # the largest of Telegram's sizes
        _check_file_size(size.file_size)
        check_dimensions(size.width, size.height)
        return InputPhoto(size.file_id, size.width, size.height)
    if message.document:
        if not _looks_like_image(message):
            raise InputImageError("not_image", f"{message.document.mime_type} {message.document.file_name}")
        _check_file_size(message.document.file_size)
        data = await download(bot, message.document.file_id)
        # Only PNG, JPEG and WebP are opened, checked on the header before decoding (generation.images).
        image = await asyncio.to_thread(prepare_input_image, data, max_side)
        return InputPhoto(message.document.file_id, *image.size)
    raise InputImageError("not_image", "no picture in the message")


async def read_inputs(messages: Sequence[Message], bot: Bot, max_side: int) -> list[InputPhoto]:
    """Every picture of an album (or one message); the first bad one refuses them all."""
    return [await read_input(message, bot, max_side) for message in messages]


def caption_of(messages: Sequence[Message]) -> str | None:
    """An album's caption: Telegram puts it on one of the items (usually the first)."""
    for message in messages:
        if message.caption and message.caption.strip():
            return message.caption
    return None


def rejection_text(i18n: I18nContext, code: str) -> str:
    """The message for an InputImageError code (``edit-reject-<code>`` in editing.ftl)."""
    return i18n.get(
        f"edit-reject-{code}",
        min_side=MIN_SIDE,
        ratio=int(MAX_RATIO),
        limit_mb=MAX_DOWNLOAD_BYTES // 2**20,
        max_photos=MAX_FUSE_PHOTOS,
        max_mp=MAX_INPUT_PIXELS // 1_000_000,
        max_jpeg_mp=MAX_JPEG_PIXELS // 1_000_000,
    )


async def accept_inputs(
    messages: Sequence[Message], bot: Bot, i18n: I18nContext, max_side: int, at_most: int | None = None
) -> list[InputPhoto] | None:
    """The messages' pictures, or None after telling the user why they are refused
    (``at_most``: more photos than the step takes, e.g. an album where one photo is expected)."""
    if at_most is not None and len(messages) > at_most:
        await messages[0].answer(rejection_text(i18n, "one_photo"))
        return None
    try:
        return await read_inputs(messages, bot, max_side)
    except InputImageError as exc:
        await messages[0].answer(rejection_text(i18n, exc.code))
        return None


class PhotosFilter(Filter):
    """Adds ``photos``: the message's (or its album's) pictures as checked :class:`InputPhoto` s, at
    most ``at_most`` of them, or None after answering the refusal (see :mod:`handlers.filters`);
    and ``caption``: the album's caption (:func:`caption_of`), unchecked."""

    def __init__(self, at_most: int | None = None) -> None:
        self.at_most = at_most

    async def __call__(
        self,
        message: Message,
        bot: Bot,
        i18n: I18nContext,
        max_image_side: int,
        album: list[Message] | None = None,
    ) -> dict[str, Any]:
        messages = album or [message]
        photos = await accept_inputs(messages, bot, i18n, max_image_side, at_most=self.at_most)
        return {"photos": photos, "caption": caption_of(messages)}
