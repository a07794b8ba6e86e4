"""A recording aiogram session that answers like Telegram, and update factories."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncGenerator, Callable
from datetime import datetime, timezone
from typing import Any

from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.methods import (
    EditMessageReplyMarkup,
    EditMessageText,
    GetFile,
    GetMe,
    SendDocument,
    SendMediaGroup,
    SendMessage,
    SendPhoto,
    SendVideo,
    TelegramMethod,
)
from aiogram.types import (
    CallbackQuery,
    Chat,
    Document,
    InlineKeyboardMarkup,
    File,
    Message,
    MessageEntity,
    PhotoSize,
    Sticker,
    Update,
    User,
    Video,
)

BOT_ID = 42
BOT_USERNAME = "kandinsky_test_bot"
TOKEN = f"{BOT_ID}:{'A' * 35}"

_update_ids = itertools.count(1)
_user_message_ids = itertools.count(1)


def now() -> datetime:
    return datetime.now(timezone.utc)


class RecordingSession(BaseSession):
    """Records every API call and returns plausible results, like aiogram's own MockedBot."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[TelegramMethod[Any]] = []
        self._message_ids = itertools.count(1000)
        self._file_ids = itertools.count(1)
        self.files: dict[str, bytes] = {}  # file_id -> bytes, for downloads
        self.failures: dict[type, Callable[[TelegramMethod[Any]], Exception | None]] = {}
        self.new_call = asyncio.Event()

    async def close(self) -> None:
        return None

    async def make_request(self, bot: Bot, method: TelegramMethod[Any], timeout: int | None = None) -> Any:
        self.calls.append(method)
        self.new_call.set()
        failure = self.failures.get(type(method))
        if failure is not None:
            exc = failure(method)
            if exc is not None:
                raise exc
        return self._result(method)

    async def stream_content(self, url: str, headers: Any = None, timeout: int = 30, chunk_size: int = 65536, raise_for_status: bool = True) -> AsyncGenerator[bytes, None]:
        path = url.rsplit("/", 1)[-1]
        yield self.files[path]

    # -- results ---------------------------------------------------------------------------
    def _message(self, chat_id: int | str, **fields: Any) -> Message:
        if fields.get("reply_markup") is not None and not isinstance(fields["reply_markup"], InlineKeyboardMarkup):
            fields["reply_markup"] = None  # Telegram returns only inline keyboards on messages
        return Message(
            message_id=next(self._message_ids),
            date=now(),
            chat=Chat(id=int(chat_id), type="private"),
            from_user=User(id=BOT_ID, is_bot=True, first_name="Kandinsky", username=BOT_USERNAME),
            **fields,
        )

    def _photo(self, upload: Any) -> list[PhotoSize]:
        n = next(self._file_ids)
        return [PhotoSize(file_id=f"photo-{n}", file_unique_id=f"u{n}", width=1024, height=1024)]

    def _result(self, method: TelegramMethod[Any]) -> Any:
        if isinstance(method, GetMe):
            return User(id=BOT_ID, is_bot=True, first_name="Kandinsky", username=BOT_USERNAME)
        if isinstance(method, SendMessage):
            return self._message(method.chat_id, text=method.text, reply_markup=method.reply_markup)
        if isinstance(method, EditMessageText):
            return self._message(method.chat_id or 0, text=method.text, reply_markup=method.reply_markup)
        if isinstance(method, EditMessageReplyMarkup):
            return self._message(method.chat_id or 0, text="", reply_markup=method.reply_markup)
        if isinstance(method, SendPhoto):
            return self._message(method.chat_id, photo=self._photo(method.photo), caption=method.caption, reply_markup=method.reply_markup)
        if isinstance(method, SendDocument):
            n = next(self._file_ids)
            filename = getattr(method.document, "filename", None)
            return self._message(
                method.chat_id,
                document=Document(file_id=f"doc-{n}", file_unique_id=f"d{n}", file_name=filename),
                caption=method.caption,
            )
        if isinstance(method, SendVideo):
            n = next(self._file_ids)
            video = Video(
                file_id=f"video-{n}", file_unique_id=f"v{n}", width=method.width or 0, height=method.height or 0,
                duration=method.duration or 0,
            )
            return self._message(method.chat_id, video=video, caption=method.caption, reply_markup=method.reply_markup)
        if isinstance(method, SendMediaGroup):
            return [
                self._message(method.chat_id, photo=self._photo(m.media), caption=m.caption) for m in method.media
            ]
        if isinstance(method, GetFile):
            return File(file_id=method.file_id, file_unique_id=method.file_id, file_path=f"files/{method.file_id}")
        return True

    # -- queries ---------------------------------------------------------------------------
    def of(self, method_type: type) -> list[Any]:
        return [c for c in self.calls if isinstance(c, method_type)]

    def texts(self) -> list[str]:
        out = []
        for call in self.calls:
            if isinstance(call, (SendMessage, EditMessageText)):
                out.append(call.text)
        return out

    def clear(self) -> None:
        self.calls.clear()


def user(user_id: int = 1001, language_code: str = "en", first_name: str = "Ann", username: str | None = "ann") -> User:
    return User(id=user_id, is_bot=False, first_name=first_name, language_code=language_code, username=username)


def message_update(
    text: str | None = None,
    *,
    from_user: User | None = None,
    chat_type: str = "private",
    chat_id: int | None = None,
    edited: bool = False,
    **fields: Any,
) -> Update:
    from_user = from_user or user()
    entities = None
    if text and text.startswith("/"):
        entities = [MessageEntity(type="bot_command", offset=0, length=len(text.split()[0]))]
    message = Message(
        message_id=next(_user_message_ids),
        date=now(),
        chat=Chat(id=chat_id if chat_id is not None else from_user.id, type=chat_type),
        from_user=from_user,
        text=text,
        entities=entities,
        **fields,
    )
    if edited:
        return Update(update_id=next(_update_ids), edited_message=message)
    return Update(update_id=next(_update_ids), message=message)


def sticker_update(from_user: User | None = None) -> Update:
    sticker = Sticker(file_id="st", file_unique_id="st", type="regular", width=512, height=512, is_animated=False, is_video=False)
    return message_update(None, from_user=from_user, sticker=sticker)


def callback_update(data: str, *, from_user: User | None = None, message: Message | None = None) -> Update:
    from_user = from_user or user()
    message = message or Message(
        message_id=next(_user_message_ids),
        date=now(),
        chat=Chat(id=from_user.id, type="private"),
        from_user=User(id=BOT_ID, is_bot=True, first_name="Kandinsky"),
        text="…",
    )
    return Update(
        update_id=next(_update_ids),
        callback_query=CallbackQuery(
            id=str(next(_update_ids)), from_user=from_user, chat_instance="ci", message=message, data=data
        ),
    )


def buttons(markup: Any) -> list[tuple[str, str]]:
    """(text, callback_data) of every inline button of a markup."""
    if markup is None:
        return []
    return [(b.text, b.callback_data) for row in markup.inline_keyboard for b in row]


