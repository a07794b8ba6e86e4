"""Scripted Telegram users for the emulator: they send what a person sends and wait for the bot.

A user talks to one bot in a private chat (chat id = user id). Everything a user sends becomes an
update of that bot (getUpdates or webhook); photos and documents go into the emulator's file store
first, so the bot can getFile and download them. Everything the bot does to the chat (new messages,
edits, deletions) is an event the user can wait for with :meth:`ScriptedUser.wait_for`; each event is
handed out at most once, so ``wait_for`` never returns the same event twice and never misses one that
arrived before it was called.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import secrets
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from PIL import Image

if TYPE_CHECKING:
    from playground.emulator import BotState, Chat, TelegramEmulator

JSON = dict[str, Any]
MessagePredicate = Callable[[JSON], bool]

_media_groups = itertools.count(1)


def image_bytes(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt)
    return buf.getvalue()


def buttons(message: JSON) -> list[JSON]:
    """The inline buttons of a message, row by row."""
    markup = message.get("reply_markup") or {}
    return [button for row in markup.get("inline_keyboard", []) for button in row]


def button_texts(message: JSON) -> list[str]:
    return [button["text"] for button in buttons(message)]


def is_image(message: JSON) -> bool:
    """A photo, or an image sent as a document (the fallback for photos Telegram rejects)."""
    document = message.get("document") or {}
    return "photo" in message or str(document.get("mime_type", "")).startswith("image/")


def has_text(fragment: str) -> MessagePredicate:
    """Matches a message whose text or caption contains ``fragment`` (case-insensitive)."""
    fragment = fragment.lower()
    return lambda m: fragment in (m.get("text") or m.get("caption") or "").lower()


class ScriptedUser:
    def __init__(self, emulator: TelegramEmulator, bot: BotState, chat: Chat, *, record_own: bool = False) -> None:
        self.emulator = emulator
        # The playground shows the user's own messages too: they become "user" events of the chat
        # (which wait_for and received never return, since they ask for the bot's "new"/"edited").
        self.record_own = record_own
        self.bot = bot
        self.chat = chat
        self.user: JSON = chat.user
        self._handed_out: set[int] = set()  # indexes into chat.events already returned by wait_for

    @property
    def id(self) -> int:
        return self.user["id"]

    @property
    def chat_id(self) -> int:
        return self.chat.id

    # --- sending ---------------------------------------------------------------------------------

    async def _send(self, **content: Any) -> JSON:
        message: JSON = {
            "message_id": self.chat.take_id(),
            "from": dict(self.user),
            "chat": self.chat.as_chat(),
            "date": int(time.time()),
            **content,
        }
        self.chat.messages[message["message_id"]] = message
        if self.record_own:
            await self.emulator._record_event(self.chat, "user", message)
        await self.bot.push_update("message", message)
        return message

    async def send_text(self, text: str, entities: list[JSON] | None = None) -> JSON:
        content: JSON = {"text": text}
        if entities:
            content["entities"] = entities
        return await self._send(**content)

    async def send_command(self, command: str, args: str = "") -> JSON:
        """``/command args`` with the ``bot_command`` entity Telegram adds."""
        command = command if command.startswith("/") else f"/{command}"
        text = f"{command} {args}" if args else command
        entity = {"type": "bot_command", "offset": 0, "length": len(command)}
        return await self.send_text(text, [entity])

    async def send_photo(
        self, image: Image.Image | bytes, caption: str | None = None, *, media_group_id: str | None = None
    ) -> JSON:
        """A photo as Telegram delivers it: re-encoded to JPEG, with thumbnails, stored for getFile."""
        data = image_bytes(image) if isinstance(image, Image.Image) else image
        content: JSON = {"photo": self.emulator.store_photo(data, reencode=True)}
        if caption:
            content["caption"] = caption
        if media_group_id:
            content["media_group_id"] = media_group_id
        return await self._send(**content)

    async def send_document(
        self,
        data: bytes,
        file_name: str,
        mime_type: str | None = None,
        caption: str | None = None,
        *,
        media_group_id: str | None = None,
    ) -> JSON:
        content: JSON = {"document": self.emulator.store_document(data, file_name, mime_type)}
        if caption:
            content["caption"] = caption
        if media_group_id:
            content["media_group_id"] = media_group_id
        return await self._send(**content)

    async def send_album(self, images: Iterable[Image.Image | bytes], caption: str | None = None) -> list[JSON]:
        """Several photo messages sharing one ``media_group_id`` (the caption on the first, as clients do)."""
        images = list(images)
        if not 2 <= len(images) <= 10:
            raise ValueError("an album holds 2 to 10 items")
        group_id = f"{13 * 10**16 + next(_media_groups)}"
        return [
            await self.send_photo(image, caption if i == 0 else None, media_group_id=group_id)
            for i, image in enumerate(images)
        ]

    async def send_sticker(self, emoji: str = "🙂") -> JSON:
        webp = image_bytes(Image.new("RGBA", (512, 512), (255, 200, 0, 255)), "WEBP")
        stored = self.emulator.store_file(webp, "stickers", extension=".webp", mime_type="image/webp")
        sticker = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
            "set_name": "TestStickers",
            "file_size": stored.size,
        }
        return await self._send(sticker=sticker)

    # --- buttons ---------------------------------------------------------------------------------

    def _current(self, message: JSON) -> JSON:
        current = self.chat.messages.get(message["message_id"])
        if current is None:
            raise LookupError(f"message {message['message_id']} is gone from the chat")
        return current

    async def press(self, message: JSON, text: str | None = None, *, data: str | None = None) -> str:
        """Press an inline button of ``message`` as it is now in the chat (edits included).

        The button is picked by its exact text, a text fragment, or its callback_data. Returns the
        callback query id; :meth:`wait_for_answer` gives the bot's answerCallbackQuery.
        """
        current = self._current(message)
        candidates = [b for b in buttons(current) if "callback_data" in b]
        if data is not None:
            found = [b for b in candidates if b["callback_data"] == data]
        elif text is not None:
            found = [b for b in candidates if b["text"] == text] or [
                b for b in candidates if text.lower() in b["text"].lower()
            ]
        else:
            raise ValueError("name the button by text or data")
        if not found:
            raise LookupError(f"no button {text or data!r} in {button_texts(current)}")
        return await self.press_raw(current, found[0]["callback_data"])

    async def press_raw(self, message: JSON, data: str) -> str:
        """A callback query with any data, as an old keyboard (a previous bot version's) produces."""
        query_id = str(secrets.randbits(63))
        query = {
            "id": query_id,
            "from": dict(self.user),
            "message": self._current(message),
            "chat_instance": str(-self.chat.id),
            "data": data,
        }
        self.bot.callback_queries[query_id] = dict(query)
        await self.bot.push_update("callback_query", query)
        return query_id

    async def wait_for_answer(self, query_id: str, timeout: float = 10.0) -> JSON:
        """The bot's answerCallbackQuery for ``query_id``: {"text", "show_alert", "time"}."""
        answered = self.bot.callback_answered
        query = self.bot.callback_queries[query_id]

        async def wait() -> None:
            async with answered:
                await answered.wait_for(lambda: "answer" in query)

        try:
            await asyncio.wait_for(wait(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"the bot did not answer callback query {query['data']!r} in {timeout}s") from None
        return query["answer"]

    def block(self) -> None:
        """The user blocks the bot: sends to this chat get 403 from now on."""
        self.chat.blocked = True

    # --- receiving -------------------------------------------------------------------------------

    async def wait_for(
        self,
        predicate: MessagePredicate | None = None,
        timeout: float = 10.0,
        *,
        kinds: Iterable[str] = ("new", "edited"),
    ) -> JSON:
        """The first event of ``kinds`` not handed out yet whose message matches ``predicate``.

        Events are snapshots: an "edited" event holds the message right after that edit.
        """
        kinds = frozenset(kinds)
        predicate = predicate or (lambda m: True)

        def find() -> JSON | None:
            for i, (kind, message) in enumerate(self.chat.events):
                if i not in self._handed_out and kind in kinds and predicate(message):
                    self._handed_out.add(i)
                    return message
            return None

        async def wait() -> JSON:
            async with self.chat.changed:
                while (found := find()) is None:
                    await self.chat.changed.wait()
                return found

        try:
            return await asyncio.wait_for(wait(), timeout)
        except asyncio.TimeoutError:
            seen = [(kind, m.get("text") or m.get("caption") or list(m)[-1]) for kind, m in self.chat.events]
            raise AssertionError(f"user {self.id}: nothing matched within {timeout}s; chat events: {seen}") from None

    async def wait_for_album(self, size: int, timeout: float = 10.0) -> list[JSON]:
        """The next album of ``size`` items the bot sends (messages sharing a media_group_id)."""
        first = await self.wait_for(lambda m: "media_group_id" in m, timeout, kinds=("new",))
        group_id = first["media_group_id"]
        items = [first]
        while len(items) < size:
            items.append(await self.wait_for(lambda m: m.get("media_group_id") == group_id, timeout, kinds=("new",)))
        return items

    def received(self, predicate: MessagePredicate | None = None) -> list[JSON]:
        """Every new message the bot sent to this chat (first versions), in order."""
        return [m for kind, m in self.chat.events if kind == "new" and (predicate is None or predicate(m))]

    def current(self, message: JSON) -> JSON:
        """The message as it is in the chat now."""
        return self._current(message)

    def download(self, file_id: str) -> bytes:
        return self.emulator.file_bytes(file_id)

    def image(self, message: JSON) -> Image.Image:
        """The full-size image of a photo message (or an image document)."""
        file_id = message["photo"][-1]["file_id"] if "photo" in message else message["document"]["file_id"]
        return Image.open(io.BytesIO(self.download(file_id)))
