"""A local Telegram Bot API emulator: the end-to-end tests' Telegram and the playground's.

It speaks the Bot API the way aiogram uses it: ``POST /bot{token}/{method}`` with urlencoded or
multipart form data (nested values such as ``reply_markup``, ``media`` and ``entities`` arrive as JSON
strings; uploads arrive as ``attach://<name>`` parts, even a top-level ``photo``), JSON bodies and query
strings as Telegram also accepts them, and ``GET /file/bot{token}/{path}`` for downloads.

Results are real Telegram objects (as JSON dicts): messages carry ids that increase per chat, photo
arrays carry the true size of the uploaded image plus smaller thumbnails, and every file (the bot's and
the scripted users') is stored so that getFile + download work. Updates reach the bot through
getUpdates (long polling that waits on an :class:`asyncio.Condition`, never spins) or are pushed to a
webhook (``setWebhook``), optionally split between several replicas (:meth:`BotState.balance_webhook`).

Telegram's failure modes are reproduced on purpose: error bodies and status codes like Telegram's
(``{"ok": false, "error_code": 404, "description": "Not Found"}`` for an unknown method, 400 "Bad
Request: message to edit not found", "message is not modified", ...), and :class:`FaultRule` answers a
seeded share of calls with 429 + ``retry_after`` or with a 5xx. A chat that got a 429 stays under flood
control until ``retry_after`` has passed, like on Telegram: calls that come earlier are answered 429
again, and those sent more than ``flood_grace`` seconds after the 429 (so not merely in flight
when it went out) are recorded in :attr:`TelegramEmulator.flood_violations`. Every call is recorded with its time
(:attr:`TelegramEmulator.calls`), so tests can check that the bot waited.

Deviations from Telegram, on purpose: webhook URLs may be plain ``http://127.0.0.1`` and photos keep
their uploaded size (Telegram re-encodes them to at most 2560 px), so tests can check exact sizes.
Real Bot API methods that the emulator does not emulate are answered 501 and recorded in
:attr:`TelegramEmulator.unsupported_calls`, so a test fails loudly instead of passing on a guess.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import logging
import math
import mimetypes
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import aiohttp
from aiohttp import web
from PIL import Image

log = logging.getLogger(__name__)

JSON = dict[str, Any]

# Telegram's own limits (https://core.telegram.org/bots/api).
MAX_MESSAGE_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_PHOTO_SIDES_SUM = 10000
MAX_PHOTO_RATIO = 20
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
THUMBNAIL_SIDES = (90, 320, 800)

# The methods a bot uses to talk to a chat: the default scope of fault injection and flood control.
CHAT_METHODS: frozenset[str] = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "sendDocument",
        "sendMediaGroup",
        "sendSticker",
        "sendChatAction",
        "editMessageText",
        "editMessageCaption",
        "editMessageMedia",
        "editMessageReplyMarkup",
        "deleteMessage",
        "copyMessage",
        "forwardMessage",
    }
)


class ApiError(Exception):
    """An error answer: HTTP status, Telegram's description, optional ``parameters``."""

    def __init__(self, status: int, description: str, parameters: JSON | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters
        self.html = False  # answered as an HTML page instead of JSON

    def payload(self) -> JSON:
        body: JSON = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: {detail}")


@dataclass
class FaultRule:
    """Answer a seeded share of the calls to ``methods`` with 429 (``retry_after``) or a 5xx.

    ``methods`` None means :data:`CHAT_METHODS`. The 429 also opens a flood-control window for the
    chat (all of ``methods``) until ``retry_after`` seconds have passed.
    """

    rate_429: float = 0.0
    rate_5xx: float = 0.0
    retry_after: int = 1
    methods: frozenset[str] | None = None
    seed: int = 0
    status_5xx: int = 500
    html_5xx: bool = False  # answer 5xx with a gateway's HTML page, as nginx in front of Telegram does
    chat_ids: frozenset[int] | None = None  # only calls to these chats (None: every chat)
    limit: int | None = None  # at most this many faults drawn (None: no limit)
    _rng: random.Random = field(init=False, repr=False)
    _drawn: int = field(init=False, repr=False, default=0)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        if self.methods is not None:
            self.methods = frozenset(self.methods)
        if self.chat_ids is not None:
            self.chat_ids = frozenset(int(c) for c in self.chat_ids)

    def covers(self, method: str, chat_id: Any = None) -> bool:
        if self.chat_ids is not None and (chat_id is None or str(chat_id) not in {str(c) for c in self.chat_ids}):
            return False
        return method in (self.methods if self.methods is not None else CHAT_METHODS)

    def draw(self) -> str | None:
        """'429', '5xx' or None, from this rule's own seeded generator."""
        if self.limit is not None and self._drawn >= self.limit:
            return None
        outcome = self._draw()
        if outcome is not None:
            self._drawn += 1
        return outcome

    def _draw(self) -> str | None:
        x = self._rng.random()
        if x < self.rate_429:
            return "429"
        if x < self.rate_429 + self.rate_5xx:
            return "5xx"
        return None


@dataclass
class CallRecord:
    """One API call as the emulator saw it and answered it."""

    time: float  # time.monotonic() when the request arrived
    token: str
    method: str  # the canonical name (``sendMessage``), whatever case the client used
    params: JSON  # decoded: JSON fields parsed, uploads replaced by {"upload": name, "size": n}
    chat_id: int | str | None
    status: int = 0
    result: Any = None
    description: str | None = None
    retry_after: int | None = None
    injected: bool = False  # answered by a FaultRule or flood control, not by the method
    html: bool = False  # answered with an HTML error page (a gateway's), not JSON
    finished: float | None = None  # time.monotonic() when the answer was ready
    wall: float = field(default_factory=time.time)  # time.time() on arrival, to compare with other processes

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class FloodViolation:
    """A call made to a chat while Telegram's flood control told the bot to wait."""

    call: CallRecord
    throttled_at: float
    retry_after: int


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes | None  # None: a thumbnail made from ``source`` on first download
    size: int
    mime_type: str | None = None
    file_name: str | None = None
    source: str | None = None  # file_id of the full-size photo a thumbnail is made from
    thumb_size: tuple[int, int] | None = None


@dataclass
class Chat:
    id: int
    user: JSON  # the private chat's other party (a scripted user's User object)
    messages: dict[int, JSON] = field(default_factory=dict)
    next_message_id: int = 1
    blocked: bool = False
    # Everything the bot did to this chat, in order: ("new" | "edited" | "deleted", message snapshot).
    events: list[tuple[str, JSON]] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    actions: list[tuple[float, str]] = field(default_factory=list)
    # The reply keyboard a client shows under the input field (the last one the bot sent), or None.
    reply_keyboard: JSON | None = None

    def take_id(self) -> int:
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id

    def as_chat(self) -> JSON:
        chat = {"id": self.id, "type": "private", "first_name": self.user.get("first_name", "")}
        for key in ("last_name", "username"):
            if self.user.get(key):
                chat[key] = self.user[key]
        return chat


@dataclass
class Webhook:
    url: str
    secret_token: str | None
    max_connections: int
    allowed_updates: list[str] | None
    last_error_date: int | None = None
    last_error_message: str | None = None


@dataclass
class WebhookDelivery:
    time: float
    update_id: int
    url: str
    status: int | None  # None: the connection failed
    error: str | None = None


class BotState:
    """Everything the emulator keeps for one bot token: identity, chats, updates, webhook."""

    def __init__(self, emulator: TelegramEmulator, token: str, username: str, first_name: str) -> None:
        self.emulator = emulator
        self.token = token
        self.id = int(token.split(":", 1)[0])
        self.me: JSON = {
            "id": self.id,
            "is_bot": True,
            "first_name": first_name,
            "username": username,
            "can_join_groups": False,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.chats: dict[int, Chat] = {}
        self.pending: list[JSON] = []  # updates not yet confirmed (polling) or delivered (webhook)
        self._next_update_id = 1
        self.updates_changed = asyncio.Condition()
        self._poll_generation = 0
        self.webhook: Webhook | None = None
        self._webhook_targets: list[str] | None = None
        self._webhook_rr = itertools.count()
        self._webhook_task: asyncio.Task[None] | None = None
        self._in_flight: set[int] = set()
        self.webhook_deliveries: list[WebhookDelivery] = []
        self.commands: dict[str, list[JSON]] = {}
        self.callback_queries: dict[str, JSON] = {}  # id -> the query, plus "answer" once answered
        self.callback_answered = asyncio.Condition()
        self.delivered_update_ids: list[int] = []  # every update handed to the bot, repeats included

    # --- updates ---------------------------------------------------------------------------------

    async def push_update(self, kind: str, payload: JSON) -> JSON:
        update = {"update_id": self._next_update_id, kind: payload}
        self._next_update_id += 1
        async with self.updates_changed:
            self.pending.append(update)
            self.updates_changed.notify_all()
        return update

    def chat(self, chat_id: Any) -> Chat:
        """The chat a method names, or Telegram's 400 'chat not found'."""
        if chat_id is None or chat_id == "":
            raise bad_request("chat_id is empty")
        try:
            key = int(chat_id)
        except (TypeError, ValueError):
            key = next((c.id for c in self.chats.values() if f"@{c.user.get('username')}" == chat_id), None)
        if key is None or key not in self.chats:
            raise bad_request("chat not found")
        chat = self.chats[key]
        if chat.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    # --- webhook ---------------------------------------------------------------------------------

    def balance_webhook(self, urls: Iterable[str] | None) -> None:
        """Deliver webhook updates round-robin to ``urls`` instead of the URL set by setWebhook.

        This stands for a load balancer in front of several replicas that all registered the same
        public URL. None restores delivery to the registered URL.
        """
        self._webhook_targets = list(urls) if urls is not None else None
        self._wake_webhook()

    def _wake_webhook(self) -> None:
        if self.webhook is not None and (self._webhook_task is None or self._webhook_task.done()):
            self._webhook_task = asyncio.get_running_loop().create_task(self._deliver_webhooks())

    def _webhook_url(self) -> str:
        assert self.webhook is not None
        targets = self._webhook_targets or [self.webhook.url]
        return targets[next(self._webhook_rr) % len(targets)]

    async def _deliver_webhooks(self) -> None:
        tasks: set[asyncio.Task[None]] = set()
        try:
            while self.webhook is not None:
                hook = self.webhook
                async with self.updates_changed:
                    await self.updates_changed.wait_for(
                        lambda: self.webhook is not hook
                        or (
                            len(self._in_flight) < hook.max_connections
                            and any(u["update_id"] not in self._in_flight for u in self.pending)
                        )
                    )
                    if self.webhook is not hook:
                        continue
                    update = next(u for u in self.pending if u["update_id"] not in self._in_flight)
                    self._in_flight.add(update["update_id"])
                task = asyncio.create_task(self._deliver_one(hook, update))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            for task in tasks:
                task.cancel()

    async def _deliver_one(self, hook: Webhook, update: JSON) -> None:
        url = self._webhook_url()
        headers = {}
        if hook.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret_token
        status: int | None = None
        error: str | None = None
        reply: Any = None
        self.delivered_update_ids.append(update["update_id"])
        try:
            session = await self.emulator.http_client()
            async with session.post(url, json=update, headers=headers, timeout=aiohttp.ClientTimeout(total=60)) as resp:
                status = resp.status
                body = await resp.read()
                if 200 <= status < 300 and body:
                    with contextlib.suppress(ValueError):
                        reply = json.loads(body)
                elif status >= 300:
                    error = f"Wrong response from the webhook: {status} {resp.reason}"
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            error = f"Connection failed: {type(e).__name__}"
        self.webhook_deliveries.append(WebhookDelivery(time.monotonic(), update["update_id"], url, status, error))
        delivered = error is None
        if not delivered:
            hook.last_error_date = int(time.time())
            hook.last_error_message = error
            await asyncio.sleep(self.emulator.webhook_retry_delay)
        async with self.updates_changed:
            self._in_flight.discard(update["update_id"])
            if delivered:
                self.pending = [u for u in self.pending if u["update_id"] != update["update_id"]]
            self.updates_changed.notify_all()
        # A webhook may answer with a method to call (aiogram's SimpleRequestHandler can do so).
        if delivered and isinstance(reply, dict) and isinstance(reply.get("method"), str):
            params = {k: v for k, v in reply.items() if k != "method"}
            await self.emulator.call(self.token, reply["method"], params, {})

    async def stop(self) -> None:
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._webhook_task


# Method handlers: (bot, params, files) -> result; they raise ApiError for Telegram's error answers.
Handler = Callable[[BotState, JSON, dict[str, "Upload"]], Awaitable[Any]]


@dataclass
class Upload:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes


# Parameters that arrive as JSON strings in form data.
_JSON_PARAMS = frozenset(
    {
        "reply_markup",
        "media",
        "entities",
        "caption_entities",
        "allowed_updates",
        "commands",
        "scope",
        "link_preview_options",
        "reply_parameters",
    }
)


def _parse_value(name: str, value: Any) -> Any:
    if isinstance(value, str) and name in _JSON_PARAMS:
        try:
            return json.loads(value)
        except ValueError:
            raise bad_request(f"can't parse {name} JSON object") from None
    return value


def _int(params: JSON, name: str, default: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad_request(f"invalid {name} specified") from None


def _bool(params: JSON, name: str) -> bool:
    value = params.get(name)
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1"))


def _text_length(text: str) -> int:
    # Telegram counts UTF-16 code units.
    return len(text.encode("utf-16-le")) // 2


def _check_reply_markup(markup: Any) -> JSON | None:
    if markup is None or markup == "":
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    for row in markup.get("inline_keyboard", []):
        for button in row:
            data = button.get("callback_data")
            if data is not None and len(str(data).encode()) > MAX_CALLBACK_DATA_BYTES:
                raise bad_request("BUTTON_DATA_INVALID")
            if not button.get("text"):
                raise bad_request("text buttons are unallowed in the inline keyboard")
    return markup


def _known_api_methods() -> frozenset[str]:
    """Every method name of the real Bot API, read off aiogram's method classes."""
    from aiogram import methods

    names = set()
    for obj in vars(methods).values():
        api_name = getattr(obj, "__api_method__", None)
        if isinstance(api_name, str):
            names.add(api_name)
    return frozenset(names)


_HTML_ENTITY_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "code": "code",
    "pre": "pre",
    "a": "text_link",
    "blockquote": "blockquote",
    "span": "spoiler",  # only <span class="tg-spoiler">
    "tg-emoji": "custom_emoji",
}


class _TelegramHTML(HTMLParser):
    """Telegram's HTML parse mode: plain text plus entities, or the error Telegram gives."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text = ""
        self.entities: list[JSON] = []
        self._open: list[tuple[str, int, JSON]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _HTML_ENTITY_TAGS or (tag == "span" and ("class", "tg-spoiler") not in attrs):
            raise bad_request(f'can\'t parse entities: Unsupported start tag "{tag}"')
        extra: JSON = {}
        if tag == "a":
            extra["url"] = dict(attrs).get("href") or ""
        self._open.append((tag, _text_length(self.text), extra))

    def handle_endtag(self, tag: str) -> None:
        if not self._open or self._open[-1][0] != tag:
            raise bad_request(f'can\'t parse entities: Unmatched end tag "{tag}"')
        _, offset, extra = self._open.pop()
        length = _text_length(self.text) - offset
        if length:
            self.entities.append({"type": _HTML_ENTITY_TAGS[tag], "offset": offset, "length": length, **extra})

    def handle_data(self, data: str) -> None:
        self.text += data

    def parse(self, markup: str) -> tuple[str, list[JSON]]:
        self.feed(markup)
        self.close()
        if self._open:
            raise bad_request(f'can\'t parse entities: Can\'t find end tag corresponding to start tag "{self._open[-1][0]}"')
        if "<" in self.rawdata:
            raise bad_request("can't parse entities: Unclosed start tag")
        return self.text, sorted(self.entities, key=lambda e: e["offset"])


def parse_formatted(text: str, parse_mode: Any, entities: Any) -> tuple[str, list[JSON] | None]:
    """Text as Telegram stores it: HTML parse mode turned into entities; other modes left as sent."""
    if isinstance(parse_mode, str) and parse_mode.upper() == "HTML":
        plain, found = _TelegramHTML().parse(text)
        return plain, found or None
    return text, entities or None


class TelegramEmulator:
    """The emulator: an aiohttp application plus the state of every bot it knows.

    Use :meth:`start` (port 0 picks a free port) and :meth:`stop`; :attr:`base_url` is what to give
    ``TelegramAPIServer.from_base`` or the bot's ``TELEGRAM_API_URL``.
    """

    def __init__(
        self, *, webhook_retry_delay: float = 0.2, photo_max_bytes: int = MAX_PHOTO_BYTES, flood_grace: float = 0.25
    ) -> None:
        self.bots: dict[str, BotState] = {}
        self.calls: list[CallRecord] = []
        self.faults: list[FaultRule] = []
        self.flood_violations: list[FloodViolation] = []
        self.unsupported_calls: list[CallRecord] = []
        self.files: dict[str, StoredFile] = {}
        self._files_by_path: dict[str, StoredFile] = {}
        self._file_counter = itertools.count(1)
        self._slow_files: dict[str, float] = {}  # file id -> seconds its download takes
        self._lost_files: set[str] = set()  # getFile answers, the download gets 404
        self._stopping = asyncio.Event()  # held answers and slow downloads end: the server is stopping
        self._held_answers: dict[str, float] = {}  # method -> seconds its answer waits once done
        self._flood_until: dict[tuple[str, Any], tuple[float, float, int]] = {}
        self.webhook_retry_delay = webhook_retry_delay
        self.flood_grace = flood_grace
        self.photo_max_bytes = photo_max_bytes
        self.calls_changed = asyncio.Condition()
        self._known_methods = _known_api_methods()
        self._handlers: dict[str, tuple[str, Handler]] = {}
        for name in (
            "getMe",
            "logOut",
            "close",
            "getUpdates",
            "setWebhook",
            "deleteWebhook",
            "getWebhookInfo",
            "sendMessage",
            "editMessageText",
            "editMessageCaption",
            "editMessageReplyMarkup",
            "deleteMessage",
            "sendPhoto",
            "sendDocument",
            "sendVideo",
            "sendAnimation",
            "sendMediaGroup",
            "sendChatAction",
            "answerCallbackQuery",
            "setMyCommands",
            "getMyCommands",
            "deleteMyCommands",
            "getFile",
            "getChat",
        ):
            self._handlers[name.lower()] = (name, getattr(self, f"_m_{name}"))
        self.app = web.Application(client_max_size=MAX_UPLOAD_BYTES + 1024 * 1024)
        self.app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        self.app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self.base_url = ""

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._stopping.clear()
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sockets = site._server.sockets  # type: ignore[union-attr]
        bound_port = sockets[0].getsockname()[1]
        self.base_url = f"http://{host}:{bound_port}"
        return self.base_url

    async def stop(self) -> None:
        self._stopping.set()  # else the cleanup below waits out every held answer
        for bot in self.bots.values():
            await bot.stop()
            async with bot.updates_changed:
                bot._poll_generation += 1  # releases long polls still waiting
                bot.updates_changed.notify_all()
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _delay(self, seconds: float) -> None:
        """``seconds`` of an answer held or a download slowed, cut short when the emulator stops."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def http_client(self) -> aiohttp.ClientSession:
        if self._client is None or self._client.closed:
            self._client = aiohttp.ClientSession()
        return self._client

    # --- set-up ----------------------------------------------------------------------------------

    def add_bot(self, token: str, username: str = "TestKandinskyBot", first_name: str = "Kandinsky") -> BotState:
        bot = BotState(self, token, username, first_name)
        self.bots[token] = bot
        return bot

    def user(
        self,
        token: str | None = None,
        *,
        user_id: int | None = None,
        first_name: str = "Test",
        username: str | None = None,
        language_code: str | None = "en",
    ) -> Any:
        """A scripted user of ``token``'s bot (the only bot when there is one); see ``users.py``."""
        from playground.users import ScriptedUser

        if token is None:
            if len(self.bots) != 1:
                raise ValueError("name the bot token: the emulator knows several bots")
            token = next(iter(self.bots))
        bot = self.bots[token]
        if user_id is None:
            user_id = 100000 + len(bot.chats) + 1
        user = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        bot.chats.setdefault(user_id, Chat(id=user_id, user=user))
        return ScriptedUser(self, bot, bot.chats[user_id])

    def add_faults(self, *rules: FaultRule) -> None:
        self.faults.extend(rules)

    def clear_faults(self) -> None:
        self.faults.clear()
        self._flood_until.clear()

    # --- files -----------------------------------------------------------------------------------

    def store_file(
        self,
        data: bytes | None,
        kind: str,
        *,
        extension: str = "",
        mime_type: str | None = None,
        file_name: str | None = None,
        size: int | None = None,
        source: str | None = None,
        thumb_size: tuple[int, int] | None = None,
    ) -> StoredFile:
        n = next(self._file_counter)
        stored = StoredFile(
            file_id=f"{kind[:2].upper()}{n}_{secrets.token_urlsafe(24)}",
            file_unique_id=f"U{n}{secrets.token_hex(4)}",
            file_path=f"{kind}/file_{n}{extension}",
            data=data,
            size=size if size is not None else len(data or b""),
            mime_type=mime_type,
            file_name=file_name,
            source=source,
            thumb_size=thumb_size,
        )
        self.files[stored.file_id] = stored
        self._files_by_path[stored.file_path] = stored
        return stored

    def hold_answers(self, method: str, seconds: float) -> None:
        """Calls of ``method`` take effect at once, their answers come ``seconds`` later: a bot
        that dies meanwhile never learns that Telegram took the message (0: no more holding)."""
        if seconds > 0:
            self._held_answers[method.lower()] = seconds
        else:
            self._held_answers.pop(method.lower(), None)

    def slow_download(self, file_id: str, seconds: float) -> None:
        """Downloading this file takes ``seconds`` (a slow link, a large file)."""
        self._slow_files[file_id] = seconds

    def lose_file(self, file_id: str) -> None:
        """``getFile`` still answers, the download gets 404 (Telegram's links expire after an hour)."""
        self._lost_files.add(file_id)

    def file_bytes(self, file_id: str) -> bytes:
        stored = self.files[file_id]
        if stored.data is None:  # a thumbnail, made the first time somebody asks
            assert stored.source is not None and stored.thumb_size is not None
            with Image.open(io.BytesIO(self.file_bytes(stored.source))) as img:
                thumb = img.convert("RGB").resize(stored.thumb_size)
            buf = io.BytesIO()
            thumb.save(buf, "JPEG", quality=85)
            stored.data = buf.getvalue()
            stored.size = len(stored.data)
        return stored.data

    def store_photo(self, data: bytes, *, reencode: bool = False) -> list[JSON]:
        """Store a photo; return Telegram's ``photo`` array (thumbnails first, the full size last).

        ``reencode`` turns the upload into a JPEG the way Telegram does for photos users send.
        Raises Telegram's errors for data that is not an image or breaks the photo limits.
        """
        try:
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if reencode and img.format != "JPEG":
                    buf = io.BytesIO()
                    img.convert("RGB").save(buf, "JPEG", quality=90)
                    data = buf.getvalue()
        except Exception:  # noqa: BLE001 - whatever PIL says, Telegram says this
            raise bad_request("IMAGE_PROCESS_FAILED") from None
        if len(data) > self.photo_max_bytes:
            raise bad_request("PHOTO_SAVE_FILE_INVALID")
        if width + height > MAX_PHOTO_SIDES_SUM or max(width, height) > MAX_PHOTO_RATIO * min(width, height):
            raise bad_request("PHOTO_INVALID_DIMENSIONS")
        full = self.store_file(data, "photos", extension=".jpg")
        sizes: list[JSON] = []
        for side in THUMBNAIL_SIDES:
            if max(width, height) <= side:
                break
            scale = side / max(width, height)
            tw, th = max(1, round(width * scale)), max(1, round(height * scale))
            # Thumbnail sizes are estimated until first downloaded (about 0.1 byte per pixel).
            thumb = self.store_file(
                None, "photos", extension=".jpg", size=tw * th // 10 + 600, source=full.file_id, thumb_size=(tw, th)
            )
            sizes.append(self._photo_size(thumb, tw, th))
        sizes.append(self._photo_size(full, width, height))
        return sizes

    @staticmethod
    def _photo_size(stored: StoredFile, width: int, height: int) -> JSON:
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
            "width": width,
            "height": height,
        }

    def store_document(self, data: bytes, file_name: str | None, mime_type: str | None = None) -> JSON:
        file_name = file_name or "document"
        # Telegram goes by the file name; HTTP clients label every upload application/octet-stream.
        if not mime_type or mime_type == "application/octet-stream":
            mime_type = mimetypes.guess_type(file_name)[0] or "application/octet-stream"
        extension = "." + file_name.rsplit(".", 1)[1] if "." in file_name else ""
        stored = self.store_file(data, "documents", extension=extension, mime_type=mime_type, file_name=file_name)
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_name": file_name,
            "mime_type": mime_type,
            "file_size": stored.size,
        }

    def _resolve_input_file(self, value: Any, files: dict[str, Upload], field_name: str) -> Upload | StoredFile:
        """An ``attach://`` upload, or a stored file named by its file_id."""
        if isinstance(value, Upload):
            return value
        if not isinstance(value, str) or not value:
            raise bad_request(f"there is no {field_name} in the request")
        if value.startswith("attach://"):
            name = value[len("attach://") :]
            if name not in files:
                raise bad_request(f"file attach://{name} not found in the request")  # noqa: E501
            return files[name]
        if value in self.files:
            return self.files[value]
        raise bad_request("wrong file identifier/HTTP URL specified")

    # --- HTTP ------------------------------------------------------------------------------------

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        if token not in self.bots:
            return web.json_response(ApiError(401, "Unauthorized").payload(), status=401)
        stored = self._files_by_path.get(request.match_info["path"])
        if stored is None or stored.file_id in self._lost_files:
            return web.json_response(ApiError(404, "Not Found").payload(), status=404)
        if stored.file_id in self._slow_files:
            await self._delay(self._slow_files[stored.file_id])
        return web.Response(body=self.file_bytes(stored.file_id), content_type=stored.mime_type or "application/octet-stream")

    async def _read_params(self, request: web.Request) -> tuple[JSON, dict[str, Upload]]:
        params: JSON = dict(request.query)
        files: dict[str, Upload] = {}
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                body = await request.json()
                if not isinstance(body, dict):
                    raise bad_request("request body must be a JSON object")
                params.update(body)
            else:
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        files[key] = Upload(key, value.filename, value.content_type, value.file.read())
                    else:
                        params[key] = value
        return {k: _parse_value(k, v) for k, v in params.items()}, files

    async def _handle_method(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        try:
            params, files = await self._read_params(request)
        except ApiError as e:
            return web.json_response(e.payload(), status=e.status)
        status, body, record = await self.call(token, request.match_info["method"], params, files)
        if record.html:
            page = f"<html><head><title>{status} {body['description']}</title></head><body>nginx</body></html>"
            return web.Response(text=page, status=status, content_type="text/html")
        return web.json_response(body, status=status)

    async def call(
        self, token: str, method: str, params: JSON, files: dict[str, Upload]
    ) -> tuple[int, JSON, CallRecord]:
        """Run one API call, with fault injection, flood control and the call record."""
        entry = self._handlers.get(method.lower())
        canonical = entry[0] if entry else method
        record = CallRecord(
            time=time.monotonic(),
            token=token,
            method=canonical,
            params={**params, **{k: {"upload": u.filename, "size": len(u.data)} for k, u in files.items()}},
            chat_id=params.get("chat_id"),
        )
        self.calls.append(record)
        async with self.calls_changed:  # a call under way counts for wait_for_call(in_flight=True)
            self.calls_changed.notify_all()
        try:
            bot = self.bots.get(token)
            if bot is None:
                raise ApiError(401, "Unauthorized")
            if entry is None:
                known = {m.lower(): m for m in self._known_methods}
                if method.lower() in known:
                    record.method = known[method.lower()]
                    self.unsupported_calls.append(record)
                    raise ApiError(501, f"Not Implemented: the emulator does not emulate {record.method}")
                raise ApiError(404, "Not Found")
            self._inject_faults(record)
            result = await entry[1](bot, params, files)
            held = self._held_answers.get(canonical.lower())
            if held:
                record.status, record.result = 200, result  # done: the message is in the chat
                async with self.calls_changed:
                    self.calls_changed.notify_all()
                await self._delay(held)
        except ApiError as e:
            record.status = e.status
            record.description = e.description
            record.html = e.html
            if e.parameters and "retry_after" in e.parameters:
                record.retry_after = e.parameters["retry_after"]
            body = e.payload()
        else:
            record.status = 200
            record.result = result
            body = {"ok": True, "result": result}
        record.finished = time.monotonic()
        async with self.calls_changed:
            self.calls_changed.notify_all()
        return record.status, body, record

    def _inject_faults(self, record: CallRecord) -> None:
        now = record.time
        for rule in self.faults:
            if not rule.covers(record.method, record.chat_id):
                continue
            key = (record.token, str(record.chat_id))
            window = self._flood_until.get(key)
            if window is not None and now < window[0]:
                until, throttled_at, retry_after = window
                # A call already on its way when the 429 went out is not hammering; a later one is.
                if now > throttled_at + self.flood_grace:
                    self.flood_violations.append(FloodViolation(record, throttled_at, retry_after))
                record.injected = True
                left = max(1, math.ceil(until - now))
                raise ApiError(429, f"Too Many Requests: retry after {left}", {"retry_after": left})
            outcome = rule.draw()
            if outcome == "429":
                self._flood_until[key] = (now + rule.retry_after, now, rule.retry_after)
                record.injected = True
                raise ApiError(
                    429, f"Too Many Requests: retry after {rule.retry_after}", {"retry_after": rule.retry_after}
                )
            if outcome == "5xx":
                record.injected = True
                reason = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
                error = ApiError(rule.status_5xx, reason.get(rule.status_5xx, "Internal Server Error"))
                error.html = rule.html_5xx
                raise error
            return

    # --- queries for tests -----------------------------------------------------------------------

    def calls_to(self, method: str | Iterable[str], *, ok: bool | None = None, chat_id: Any = None) -> list[CallRecord]:
        names = {method} if isinstance(method, str) else set(method)
        return [
            c
            for c in self.calls
            if c.method in names
            and (ok is None or c.ok == ok)
            and (chat_id is None or str(c.chat_id) == str(chat_id))
        ]

    async def wait_for_call(
        self, predicate: Callable[[CallRecord], bool], timeout: float = 10.0, *, in_flight: bool = False
    ) -> CallRecord:
        """The first call matching ``predicate`` once it is answered; with ``in_flight``, as soon as
        it arrives (a long poll is under way long before it is answered)."""

        async def found() -> CallRecord:
            async with self.calls_changed:
                while True:
                    for record in self.calls:
                        if (in_flight or record.finished is not None) and predicate(record):
                            return record
                    await self.calls_changed.wait()

        return await asyncio.wait_for(found(), timeout)

    # --- message helpers -------------------------------------------------------------------------

    async def _record_event(self, chat: Chat, kind: str, message: JSON) -> None:
        async with chat.changed:
            chat.events.append((kind, json.loads(json.dumps(message))))
            chat.changed.notify_all()

    def _new_bot_message(self, bot: BotState, chat: Chat, params: JSON) -> JSON:
        message: JSON = {
            "message_id": chat.take_id(),
            "from": {k: v for k, v in bot.me.items() if k in ("id", "is_bot", "first_name", "username")},
            "chat": chat.as_chat(),
            "date": int(time.time()),
        }
        markup = _check_reply_markup(params.get("reply_markup"))
        if markup is not None and "inline_keyboard" in markup:
            message["reply_markup"] = {"inline_keyboard": markup["inline_keyboard"]}
        elif markup is not None and "keyboard" in markup:
            # Not part of the message (as on Telegram): the client keeps it under the input field.
            chat.reply_keyboard = markup
        elif markup is not None and markup.get("remove_keyboard"):
            chat.reply_keyboard = None
        reply_to = _int(params, "reply_to_message_id")
        reply_parameters = params.get("reply_parameters")
        if isinstance(reply_parameters, dict):
            reply_to = reply_parameters.get("message_id", reply_to)
        if reply_to is not None:
            if reply_to not in chat.messages:
                if not (isinstance(reply_parameters, dict) and reply_parameters.get("allow_sending_without_reply")):
                    raise bad_request("message to be replied not found")
            else:
                message["reply_to_message"] = {
                    k: v for k, v in chat.messages[reply_to].items() if k != "reply_to_message"
                }
        return message

    def _caption(self, params: JSON, message: JSON, parse_mode: Any = None) -> None:
        caption, entities = parse_formatted(
            params.get("caption") or "", params.get("parse_mode", parse_mode), params.get("caption_entities")
        )
        if caption:
            if _text_length(caption) > MAX_CAPTION_LENGTH:
                raise bad_request("message caption is too long")
            message["caption"] = caption
            if entities:
                message["caption_entities"] = entities

    def _message_for_edit(self, bot: BotState, params: JSON, verb: str) -> tuple[Chat, JSON]:
        if params.get("inline_message_id"):
            raise bad_request(f"message to {verb} not found")
        chat = bot.chat(params.get("chat_id"))
        message_id = _int(params, "message_id")
        message = chat.messages.get(message_id) if message_id is not None else None
        if message is None:
            raise bad_request(f"message to {verb} not found")
        if message["from"]["id"] != bot.id:
            raise bad_request("message can't be edited" if verb == "edit" else "message can't be deleted")
        return chat, message

    async def _commit_edit(self, chat: Chat, message: JSON, changed: JSON) -> JSON:
        """Apply ``changed`` (None removes a field), or Telegram's 'message is not modified'."""
        if {k: message.get(k) for k in changed} == changed:
            raise bad_request(
                "message is not modified: specified new message content and reply markup are exactly the same "
                "as a current content and reply markup of the message"
            )
        message.update({k: v for k, v in changed.items() if v is not None})
        for key, value in changed.items():
            if value is None:
                message.pop(key, None)
        message["edit_date"] = int(time.time())
        await self._record_event(chat, "edited", message)
        return message

    # --- methods ---------------------------------------------------------------------------------

    async def _m_getMe(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> Any:
        return bot.me

    async def _m_logOut(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> Any:
        return True

    async def _m_close(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> Any:
        return True

    async def _m_getUpdates(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> Any:
        if bot.webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the "
                "webhook first",
            )
        offset = _int(params, "offset", 0) or 0
        limit = min(max(_int(params, "limit", 100) or 100, 1), 100)
        timeout = max(_int(params, "timeout", 0) or 0, 0)
        allowed = params.get("allowed_updates") or None
        async with bot.updates_changed:
            bot._poll_generation += 1
            generation = bot._poll_generation
            bot.updates_changed.notify_all()  # an older long poll is terminated, like on Telegram
            if offset > 0:  # confirms every update before offset
                bot.pending = [u for u in bot.pending if u["update_id"] >= offset]

            def ready() -> list[JSON]:
                selected = bot.pending
                if offset < 0:
                    selected = selected[offset:]
                if allowed:
                    selected = [u for u in selected if any(k in u for k in allowed)]
                return selected[:limit]

            deadline = time.monotonic() + timeout
            while not (found := ready()):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(bot.updates_changed.wait(), left)
                if bot._poll_generation != generation:
                    raise ApiError(
                        409,
                        "Conflict: terminated by other getUpdates request; make sure that only one bot instance "
                        "is running",
                    )
                if bot.webhook is not None:
                    return []
            bot.delivered_update_ids.extend(u["update_id"] for u in found)
            return found

    async def _m_setWebhook(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> Any:
        url = params.get("url") or ""
        if not url:
            return await self._m_deleteWebhook(bot, params, files)
        if not url.startswith(("https://", "http://")):
            raise bad_request("bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443")
        secret = params.get("secret_token") or None
        if secret is not None and (len(secret) > 256 or not all(c.isalnum() or c in "_-" for c in secret)):
            raise bad_request("secret token contains unallowed characters")
        if _bool(params, "drop_pending_updates"):
            bot.pending.clear()
        await bot.stop()
        async with bot.updates_changed:
            bot.webhook = Webhook(
                url=url,
                secret_token=secret,
                max_connections=_int(params, "max_connections", 40) or 40,
                allowed_updates=params.get("allowed_updates") or None,
            )
            bot.updates_changed.notify_all()
        bot._wake_webhook()
        return True

    async def _m_deleteWebhook(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> Any:
        async with bot.updates_changed:
            bot.webhook = None
            if _bool(params, "drop_pending_updates"):
                bot.pending.clear()
            bot.updates_changed.notify_all()
        await bot.stop()
        return True

    async def _m_getWebhookInfo(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> Any:
        hook = bot.webhook
        info: JSON = {
            "url": hook.url if hook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(bot.pending),
        }
        if hook is not None:
            info["max_connections"] = hook.max_connections
            if hook.allowed_updates:
                info["allowed_updates"] = hook.allowed_updates
            if hook.last_error_date:
                info["last_error_date"] = hook.last_error_date
                info["last_error_message"] = hook.last_error_message
        return info

    async def _m_sendMessage(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> Any:
        chat = bot.chat(params.get("chat_id"))
        text, entities = parse_formatted(params.get("text") or "", params.get("parse_mode"), params.get("entities"))
        if not text.strip():
            raise bad_request("message text is empty")
        if _text_length(text) > MAX_MESSAGE_LENGTH:
            raise bad_request("message is too long")
        message = self._new_bot_message(bot, chat, params)
        message["text"] = text
        if entities:
            message["entities"] = entities
        chat.messages[message["message_id"]] = message
        await self._record_event(chat, "new", message)
        return message

    async def _m_editMessageText(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> Any:
        chat, message = self._message_for_edit(bot, params, "edit")
        if "text" not in message:
            raise bad_request("there is no text in the message to edit")
        text, entities = parse_formatted(params.get("text") or "", params.get("parse_mode"), params.get("entities"))
        if not text.strip():
            raise bad_request("message text is empty")
        if _text_length(text) > MAX_MESSAGE_LENGTH:
            raise bad_request("MESSAGE_TOO_LONG")
        markup = _check_reply_markup(params.get("reply_markup"))
        changed: JSON = {"text": text, "entities": entities}
        changed["reply_markup"] = {"inline_keyboard": markup["inline_keyboard"]} if markup else None
        return await self._commit_edit(chat, message, changed)

    async def _m_editMessageCaption(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> Any:
        chat, message = self._message_for_edit(bot, params, "edit")
        if "text" in message:
            raise bad_request("there is no caption in the message to edit")
        caption, entities = parse_formatted(
            params.get("caption") or "", params.get("parse_mode"), params.get("caption_entities")
        )
        if caption and _text_length(caption) > MAX_CAPTION_LENGTH:
            raise bad_request("message caption is too long")
        markup = _check_reply_markup(params.get("reply_markup"))
        changed: JSON = {"caption": caption or None, "caption_entities": entities}
        changed["reply_markup"] = {"inline_keyboard": markup["inline_keyboard"]} if markup else None
        return await self._commit_edit(chat, message, changed)

    async def _m_editMessageReplyMarkup(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> Any:
        chat, message = self._message_for_edit(bot, params, "edit")
        markup = _check_reply_markup(params.get("reply_markup"))
        changed = {"reply_markup": {"inline_keyboard": markup["inline_keyboard"]} if markup else None}
        return await self._commit_edit(chat, message, changed)

    async def _m_deleteMessage(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> Any:
        chat = bot.chat(params.get("chat_id"))
        message_id = _int(params, "message_id")
        message = chat.messages.pop(message_id, None) if message_id is not None else None
        if message is None:
            raise bad_request("message to delete not found")
        await self._record_event(chat, "deleted", message)
        return True

    async def _m_sendPhoto(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> Any:
        chat = bot.chat(params.get("chat_id"))
        source = self._resolve_input_file(params.get("photo"), files, "photo")
        message = self._new_bot_message(bot, chat, params)
        self._caption(params, message)
        if isinstance(source, Upload):
            message["photo"] = self.store_photo(source.data)
        else:
            message["photo"] = self._photo_from_stored(source)
        chat.messages[message["message_id"]] = message
        await self._record_event(chat, "new", message)
        return message

    def _photo_from_stored(self, stored: StoredFile) -> list[JSON]:
        if not stored.file_path.startswith("photos/"):
            raise bad_request("type of file mismatch")
        with Image.open(io.BytesIO(self.file_bytes(stored.file_id))) as img:
            width, height = img.size
        return [self._photo_size(stored, width, height)]

    async def _m_sendDocument(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> Any:
        chat = bot.chat(params.get("chat_id"))
        source = self._resolve_input_file(params.get("document"), files, "document")
        message = self._new_bot_message(bot, chat, params)
        self._caption(params, message)
        message["document"] = self._document(source)
        chat.messages[message["message_id"]] = message
        await self._record_event(chat, "new", message)
        return message

    def _document(self, source: Upload | StoredFile) -> JSON:
        if isinstance(source, Upload):
            if not source.data:
                raise bad_request("file must be non-empty")
            return self.store_document(source.data, source.filename, source.content_type)
        return {
            "file_id": source.file_id,
            "file_unique_id": source.file_unique_id,
            "file_name": source.file_name or source.file_path.rsplit("/", 1)[-1],
            "mime_type": source.mime_type or "application/octet-stream",
            "file_size": source.size,
        }

    async def _m_sendVideo(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> Any:
        return await self._send_video_like(bot, params, files, "video")

    async def _m_sendAnimation(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> Any:
        return await self._send_video_like(bot, params, files, "animation")

    async def _send_video_like(self, bot: BotState, params: JSON, files: dict[str, Upload], kind: str) -> Any:
        chat = bot.chat(params.get("chat_id"))
        source = self._resolve_input_file(params.get(kind), files, kind)
        message = self._new_bot_message(bot, chat, params)
        self._caption(params, message)
        message[kind] = self._video(source, params)
        chat.messages[message["message_id"]] = message
        await self._record_event(chat, "new", message)
        return message

    def _video(self, source: Upload | StoredFile, params: JSON) -> JSON:
        if isinstance(source, Upload):
            if not source.data:
                raise bad_request("file must be non-empty")
            mime = source.content_type or mimetypes.guess_type(source.filename or "")[0] or "video/mp4"
            stored = self.store_file(
                source.data, "videos", extension=mimetypes.guess_extension(mime) or ".mp4", mime_type=mime,
                file_name=source.filename,
            )
        else:
            stored = source
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "width": _int(params, "width", 0) or 0,
            "height": _int(params, "height", 0) or 0,
            "duration": _int(params, "duration", 0) or 0,
            "mime_type": stored.mime_type or "video/mp4",
            "file_size": stored.size,
        }

    async def _m_sendMediaGroup(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> Any:
        chat = bot.chat(params.get("chat_id"))
        media = params.get("media")
        if not isinstance(media, list) or not 2 <= len(media) <= 10:
            raise bad_request("media group must contain from 2 to 10 items" if isinstance(media, list) else "media not found")
        kinds = {item.get("type") for item in media if isinstance(item, dict)}
        if not kinds <= {"photo", "video"} and len(kinds) > 1:
            raise bad_request("documents can't be mixed with other media types")
        # Validate everything first: Telegram sends all of the album or nothing.
        contents: list[tuple[JSON, JSON]] = []
        for item in media:
            if not isinstance(item, dict) or item.get("type") not in ("photo", "video", "document"):
                raise bad_request("unsupported media type in the media group")
            source = self._resolve_input_file(item.get("media"), files, item["type"])
            if item["type"] == "photo":
                content = {"photo": self.store_photo(source.data) if isinstance(source, Upload) else self._photo_from_stored(source)}
            elif item["type"] == "video":
                content = {"video": self._video(source, item)}
            else:
                content = {"document": self._document(source)}
            caption_holder: JSON = {}
            self._caption(item, caption_holder, params.get("parse_mode"))
            contents.append((content, caption_holder))
        group_id = str(10**17 + next(self._file_counter))
        messages = []
        for content, caption in contents:
            message = self._new_bot_message(bot, chat, {k: v for k, v in params.items() if k != "reply_markup"})
            message["media_group_id"] = group_id
            message.update(content)
            message.update(caption)
            chat.messages[message["message_id"]] = message
            messages.append(message)
        for message in messages:
            await self._record_event(chat, "new", message)
        return messages

    async def _m_sendChatAction(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> Any:
        chat = bot.chat(params.get("chat_id"))
        action = params.get("action") or ""
        allowed = {
            "typing",
            "upload_photo",
            "record_video",
            "upload_video",
            "record_voice",
            "upload_voice",
            "upload_document",
            "choose_sticker",
            "find_location",
            "record_video_note",
            "upload_video_note",
        }
        if action not in allowed:
            raise bad_request("wrong parameter action in request")
        chat.actions.append((time.monotonic(), action))
        return True

    async def _m_answerCallbackQuery(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> Any:
        query = bot.callback_queries.get(params.get("callback_query_id") or "")
        if query is None or "answer" in query:
            raise bad_request("query is too old and response timeout expired or query ID is invalid")
        text = params.get("text") or None
        if text is not None and len(text) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        async with bot.callback_answered:
            query["answer"] = {"text": text, "show_alert": _bool(params, "show_alert"), "time": time.monotonic()}
            bot.callback_answered.notify_all()
        return True

    async def _m_setMyCommands(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> Any:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad_request("commands not found" if not isinstance(commands, list) else "too many commands")
        for command in commands:
            name = command.get("command", "") if isinstance(command, dict) else ""
            if not (1 <= len(name) <= 32 and all(c.islower() or c.isdigit() or c == "_" for c in name)):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(command.get("description", "")) <= 256:
                raise bad_request("command description is empty" if not command.get("description") else "BOT_COMMAND_INVALID")
        bot.commands[self._commands_key(params)] = commands
        return True

    async def _m_getMyCommands(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> Any:
        return bot.commands.get(self._commands_key(params), [])

    async def _m_deleteMyCommands(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> Any:
        bot.commands.pop(self._commands_key(params), None)
        return True

    @staticmethod
    def _commands_key(params: JSON) -> str:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps([scope, params.get("language_code") or ""], sort_keys=True)

    async def _m_getFile(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> Any:
        stored = self.files.get(params.get("file_id") or "")
        if stored is None:
            raise bad_request("invalid file_id")
        if stored.size > MAX_DOWNLOAD_BYTES:
            raise bad_request("file is too big")
        if stored.data is None:
            self.file_bytes(stored.file_id)
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
            "file_path": stored.file_path,
        }

    async def _m_getChat(self, bot: BotState, params: JSON, files: dict[str, Upload]) -> Any:
        chat = bot.chat(params.get("chat_id"))
        gifts = {"unlimited_gifts": False, "limited_gifts": False, "unique_gifts": False, "premium_subscription": False}
        return {**chat.as_chat(), "accent_color_id": 0, "max_reaction_count": 11, "accepted_gift_types": gifts}
