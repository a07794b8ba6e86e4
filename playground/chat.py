"""The playground's web chat: a page on 127.0.0.1 that shows one private chat with the bot the way a
Telegram client does, and sends what the person types, uploads and presses as that chat's user.

The page (``static/index.html``) talks to a small JSON API next to it:

- ``GET /api/state``: the bot's and the user's names, the bot's command menu;
- ``GET /api/events?after=N``: the chat's events after the N-th (long poll): the user's own messages
  ("user"), the bot's new messages, edits and deletions, plus the reply keyboard shown now;
- ``POST /api/text`` ``{"text"}``: a message (``/command`` gets Telegram's ``bot_command`` entity);
- ``POST /api/files`` (multipart ``file`` parts, ``caption``, ``as_document``): one photo, an album,
  or files sent as documents;
- ``POST /api/press`` ``{"message_id", "data"}``: an inline button; answers the bot's
  ``answerCallbackQuery`` text (a toast or an alert on the page);
- ``GET /api/file/{file_id}``: a file of the chat (photos, documents, videos), for the page to show.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
from importlib import resources
from typing import Any

from aiohttp import web
from PIL import Image, UnidentifiedImageError

from playground.emulator import BotState, TelegramEmulator
from playground.users import ScriptedUser, image_bytes

JSON = dict[str, Any]

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # what the bot can download from Telegram
ANSWER_WAIT_SECONDS = 5.0
POLL_SECONDS = 25.0


def _page() -> bytes:
    return resources.files("playground").joinpath("static/index.html").read_bytes()


class ChatPage:
    """The web chat of one user with one bot of the emulator."""

    def __init__(self, emulator: TelegramEmulator, bot: BotState, user: ScriptedUser) -> None:
        self.emulator = emulator
        self.bot = bot
        self.user = user
        self.app = web.Application(client_max_size=MAX_UPLOAD_BYTES * 4 + 1024 * 1024)
        self.app.router.add_get("/", self._index)
        self.app.router.add_get("/api/state", self._state)
        self.app.router.add_get("/api/events", self._events)
        self.app.router.add_post("/api/text", self._text)
        self.app.router.add_post("/api/files", self._files)
        self.app.router.add_post("/api/press", self._press)
        self.app.router.add_get("/api/file/{file_id}", self._file)
        self._runner: web.AppRunner | None = None
        self._closing = False  # the page's long polls answer at once (the server is stopping)
        self.url = ""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://{host}:{bound_port}/"
        return self.url

    async def stop(self) -> None:
        chat = self.user.chat
        self._closing = True
        async with chat.changed:  # releases the page's long polls (else the cleanup waits them out)
            chat.changed.notify_all()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- pages and state ---------------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(body=_page(), content_type="text/html", charset="utf-8")

    async def _state(self, request: web.Request) -> web.Response:
        language = self.user.user.get("language_code") or ""
        commands = self._commands(language)
        return web.json_response(
            {
                "bot": {"name": self.bot.me["first_name"], "username": self.bot.me["username"]},
                "user": self.user.user,
                "commands": commands,
            }
        )

    def _commands(self, language: str) -> list[JSON]:
        """The command menu a client shows for this chat: the most specific scope the bot set."""
        import json

        for scope in (
            {"type": "chat", "chat_id": self.user.chat_id},
            {"type": "all_private_chats"},
            {"type": "default"},
        ):
            for lang in (language, ""):
                key = json.dumps([scope, lang], sort_keys=True)
                if key in self.bot.commands:
                    return self.bot.commands[key]
        return []

    async def _events(self, request: web.Request) -> web.Response:
        try:
            after = max(int(request.query.get("after", "0")), 0)
            wait = min(max(float(request.query.get("timeout", POLL_SECONDS)), 0.0), POLL_SECONDS)
        except ValueError:
            raise web.HTTPBadRequest(text="after and timeout are numbers") from None
        chat = self.user.chat
        with contextlib.suppress(asyncio.TimeoutError):
            async with asyncio.timeout(wait):
                async with chat.changed:
                    await chat.changed.wait_for(lambda: self._closing or len(chat.events) > after)
        events = [
            {"seq": i + 1, "kind": kind, "message": message}
            for i, (kind, message) in enumerate(chat.events[after:], start=after)
        ]
        return web.json_response({"events": events, "next": after + len(events), "keyboard": chat.reply_keyboard})

    # --- what the user does ------------------------------------------------------------------------

    async def _text(self, request: web.Request) -> web.Response:
        body = await request.json()
        text = str(body.get("text") or "").strip()
        if not text:
            raise web.HTTPBadRequest(text="an empty message")
        if text.startswith("/"):
            command, _, args = text.partition(" ")
            message = await self.user.send_command(command, args.strip())
        else:
            message = await self.user.send_text(text)
        return web.json_response({"message_id": message["message_id"]})

    async def _files(self, request: web.Request) -> web.Response:
        reader = await request.multipart()
        uploads: list[tuple[str, str | None, bytes]] = []
        caption = ""
        as_document = False
        while (part := await reader.next()) is not None:
            if part.name == "caption":
                caption = (await part.text()).strip()  # type: ignore[union-attr]
            elif part.name == "as_document":
                as_document = (await part.text()).strip() in ("1", "true", "on")  # type: ignore[union-attr]
            elif part.name == "file":
                data = await part.read()  # type: ignore[union-attr]
                if len(data) > MAX_UPLOAD_BYTES:
                    raise web.HTTPRequestEntityTooLarge(max_size=MAX_UPLOAD_BYTES, actual_size=len(data))
                uploads.append((part.filename or "file", part.headers.get("Content-Type"), data))  # type: ignore[union-attr]
        if not uploads:
            raise web.HTTPBadRequest(text="no file")
        if len(uploads) > 10:
            raise web.HTTPBadRequest(text="an album holds at most 10 items")
        photos = [] if as_document else [_as_photo(data) for _, _, data in uploads]
        sent: list[JSON]
        if photos and all(p is not None for p in photos):
            if len(photos) == 1:
                sent = [await self.user.send_photo(photos[0], caption or None)]
            else:
                sent = await self.user.send_album(photos, caption or None)  # type: ignore[arg-type]
        elif len(uploads) == 1:
            name, mime, data = uploads[0]
            mime = mime if mime and mime != "application/octet-stream" else mimetypes.guess_type(name)[0]
            sent = [await self.user.send_document(data, name, mime, caption or None)]
        else:
            raise web.HTTPBadRequest(text="send several files one by one, or several photos as an album")
        return web.json_response({"message_ids": [m["message_id"] for m in sent]})

    async def _press(self, request: web.Request) -> web.Response:
        body = await request.json()
        try:
            message = self.user.current({"message_id": int(body["message_id"])})
        except (KeyError, ValueError, LookupError):
            raise web.HTTPNotFound(text="that message is gone") from None
        query_id = await self.user.press_raw(message, str(body.get("data") or ""))
        try:
            answer = await self.user.wait_for_answer(query_id, timeout=ANSWER_WAIT_SECONDS)
        except AssertionError:  # the bot did not answer in time: the client's spinner just stops
            answer = {"text": None, "show_alert": False}
        return web.json_response({"text": answer.get("text"), "show_alert": answer.get("show_alert", False)})

    async def _file(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        stored = self.emulator.files.get(file_id)
        if stored is None:
            raise web.HTTPNotFound()
        data = self.emulator.file_bytes(file_id)
        mime = stored.mime_type or mimetypes.guess_type(stored.file_path)[0] or "application/octet-stream"
        if stored.file_path.startswith("photos/"):
            mime = _image_mime(data)
        headers = {"Cache-Control": "max-age=3600"}
        if stored.file_name:
            headers["Content-Disposition"] = f'inline; filename="{stored.file_name}"'
        return web.Response(body=data, content_type=mime, headers=headers)


def _as_photo(data: bytes) -> bytes | None:
    """The upload as a photo Telegram accepts (PNG or JPEG bytes), or None when it is not an image."""
    import io

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if img.format in ("PNG", "JPEG"):
                return data
            return image_bytes(img.convert("RGB"), "PNG")
    except (UnidentifiedImageError, OSError):
        return None


def _image_mime(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/jpeg"
