"""The inpainting Mini App: a page the bot's web server serves, opened from a button in the chat.

- ``GET /webapp/inpaint?job=<id>|src=<signed photo>&lang=<en|ru>``: the page (static HTML and script,
  texts from the i18n layer). It shows the picture, lets the user paint the area to change with a
  finger or a mouse and type what goes there, and posts the mask back.
- ``POST /webapp/api/picture``: the picture to paint on; ``POST /webapp/api/inpaint``: queue the job.

Both API calls carry Telegram's ``initData``; :func:`aiogram.utils.web_app.safe_parse_webapp_init_data`
checks its signature with the bot token, so the user id is Telegram's word, not the page's. A result
must be the user's own job; a sent photo comes as a reference signed for that user
(:func:`handlers.canvas_edit.photo_source`). The job is an ordinary one: limits, queue position,
status message with Cancel, delivery to the chat.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiogram import Bot
from aiogram.utils.web_app import WebAppInitData, safe_parse_webapp_init_data
from aiohttp import web
from PIL import Image, UnidentifiedImageError

from bot.i18n import LOCALES, Translator
from bot.notifier import TelegramNotifier
from generation import canvas
from generation.backend import Mode
from generation.styles import DEFAULT_STYLE, fit_size
from handlers.canvas_edit import caption_for, canvas_params, inpaint_model, parse_photo_source, source_prompt
from handlers.common import PromptError, validate_prompt
from handlers.context import RequestContext
from jobs.params import JobParams, read_params
from jobs.service import JobService
from storage.models import Job, User
from storage.repositories import Database, Repositories

log = logging.getLogger(__name__)

PAGE = Path(__file__).with_name("inpaint.html")
INIT_DATA_MAX_AGE = 24 * 3600  # seconds: an old signed initData is not accepted again
MAX_BODY = 4 * 1024 * 1024  # a 1024 px mask as PNG is far smaller
PAGE_KEYS = (
    "webapp-title", "webapp-hint", "webapp-prompt-placeholder", "webapp-brush", "webapp-undo", "webapp-clear",
    "webapp-submit", "webapp-sending", "webapp-queued", "webapp-error-empty", "webapp-error-auth",
    "webapp-error-load",
)


class _PageI18n:
    """What :class:`handlers.context.RequestContext` needs of aiogram-i18n's context, outside an update."""

    def __init__(self, t: Translator, locale: str) -> None:
        self.t, self.locale = t, locale

    def get(self, key: str, **kwargs: Any) -> str:
        return self.t(key, self.locale, **kwargs)


@dataclass
class WebAppDeps:
    bot: Bot
    db: Database
    jobs: JobService
    notifier: TelegramNotifier
    translator: Translator
    max_image_side: int


class Refused(Exception):
    def __init__(self, status: int, code: str) -> None:
        super().__init__(code)
        self.status, self.code = status, code


def check_init_data(token: str, init_data: str, now: float | None = None) -> WebAppInitData:
    """Telegram's signed user data, or :class:`Refused` (forged, stale, or without a user)."""
    try:
        data = safe_parse_webapp_init_data(token, init_data)
    except ValueError as exc:
        raise Refused(403, "auth") from exc
    age = (now or time.time()) - data.auth_date.timestamp()
    if data.user is None or age > INIT_DATA_MAX_AGE:
        raise Refused(403, "auth")
    return data


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Refused(400, "bad_request") from exc
    if not isinstance(body, dict):
        raise Refused(400, "bad_request")
    return body


async def _user(deps: WebAppDeps, repos: Repositories, body: dict[str, Any]) -> User:
    data = check_init_data(deps.bot.token, str(body.get("initData") or ""))
    user = await repos.users.get(data.user.id)  # type: ignore[union-attr]
    if user is None or user.banned:
        raise Refused(403, "auth")  # only people who use the bot in the chat
    return user


@dataclass
class Source:
    """The picture to paint on: a result job's, or a photo the user sent."""

    file_id: str
    width: int
    height: int
    job: Job | None


async def _source(deps: WebAppDeps, repos: Repositories, user: User, body: dict[str, Any]) -> Source:
    if body.get("job") not in (None, ""):
        try:
            job = await repos.jobs.get(int(body["job"]))
        except (TypeError, ValueError) as exc:
            raise Refused(400, "bad_request") from exc
        # Upscales are documents beyond MAX_IMAGE_SIDE: not something to paint on.
        if job is None or job.user_id != user.id or job.kind == Mode.UPSCALE:
            raise Refused(404, "not_found")
        file_ids = [f for f in job.result_file_ids or [] if f]
        if not file_ids:
            raise Refused(404, "not_found")
        params = read_params(job)
        return Source(file_ids[0], params.width, params.height, job)
    photo = parse_photo_source(deps.bot.token, user.id, str(body.get("src") or ""))
    if photo is None:
        raise Refused(404, "not_found")
    return Source(photo.file_id, photo.width, photo.height, None)


def _json_error(exc: Refused) -> web.Response:
    return web.json_response({"ok": False, "error": exc.code}, status=exc.status)


def create_routes(deps: WebAppDeps) -> web.RouteTableDef:
    routes = web.RouteTableDef()

    @routes.get("/webapp/inpaint")
    async def page(request: web.Request) -> web.Response:
        locale = request.query.get("lang", "en")
        locale = locale if locale in LOCALES else "en"
        texts = {key: deps.translator(key, locale) for key in PAGE_KEYS}
        html = PAGE.read_text(encoding="utf-8")
        html = html.replace("__LANG__", locale).replace("__TEXTS__", json.dumps(texts, ensure_ascii=False))
        html = html.replace("__TITLE__", texts["webapp-title"])
        return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})

    @routes.post("/webapp/api/picture")
    async def picture(request: web.Request) -> web.Response:
        try:
            body = await _body(request)
            async with deps.db.session() as session:
                repos = Repositories(session)
                user = await _user(deps, repos, body)
                source = await _source(deps, repos, user, body)
            buffer = io.BytesIO()
            await deps.bot.download(source.file_id, destination=buffer)
        except Refused as exc:
            return _json_error(exc)
        data = buffer.getvalue()
        content_type = "image/png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg"
        return web.Response(body=data, content_type=content_type, headers={"Cache-Control": "no-store"})

    @routes.post("/webapp/api/inpaint")
    async def inpaint(request: web.Request) -> web.Response:
        try:
            body = await _body(request)
            async with deps.db.session() as session:
                repos = Repositories(session)
                user = await _user(deps, repos, body)
                source = await _source(deps, repos, user, body)
                mask = _mask(str(body.get("mask") or ""))
                prompt = str(body.get("prompt") or "").strip()
                if prompt:
                    try:
                        prompt = validate_prompt(prompt)
                    except PromptError as exc:
                        raise Refused(400, exc.code) from exc
                i18n = _PageI18n(deps.translator, user.language)
                request_ctx = RequestContext(
                    bot=deps.bot, chat_id=user.id, user=user, repos=repos, jobs=deps.jobs, notifier=deps.notifier,
                    i18n=i18n, max_side=deps.max_image_side,  # type: ignore[arg-type]
                )
                extra = {"mask": canvas.encode_mask(mask)}
                caption = caption_for(i18n, Mode.INPAINT, extra, prompt)  # type: ignore[arg-type]
                params = _inpaint_params(request_ctx, source, prompt, extra, caption)
                job = await request_ctx.submit(params, Mode.INPAINT, inpaint_model(user))
                await session.commit()
        except Refused as exc:
            return _json_error(exc)
        if job is None:  # over a limit: the chat says which
            return web.json_response({"ok": False, "error": "refused"}, status=429)
        log.info("inpainting job %s queued from the Mini App for user %s", job.id, user.id)
        return web.json_response({"ok": True, "job_id": job.id})

    return routes


def _mask(data_url: str) -> Image.Image:
    """The painted layer the page sends (a PNG data URL); white or opaque = repaint."""
    _, _, encoded = data_url.partition(",")
    try:
        raw = base64.b64decode(encoded or data_url, validate=True)
        if len(raw) > MAX_BODY:
            raise Refused(413, "too_large")
        with Image.open(io.BytesIO(raw)) as image:
            image.load()
            layer = image.getchannel("A") if image.mode in ("RGBA", "LA") else image.convert("L")
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError) as exc:
        raise Refused(400, "bad_mask") from exc
    mask = layer.point(lambda v: 255 if v >= 128 else 0)
    if canvas.is_blank(mask):
        raise Refused(400, "empty_mask")
    return mask


def _inpaint_params(
    request: RequestContext, source: Source, prompt: str, extra: dict[str, Any], caption: str
) -> JobParams:
    if source.job is not None:
        params = canvas_params(request, source.job, source.file_id, Mode.INPAINT, extra, prompt=prompt)
        if not prompt:  # erase: the picture's own words guide what fills the gap
            params = params.model_copy(update={"prompt": source_prompt(source.job)})
        return params
    width, height = fit_size(source.width, source.height, request.max_side)
    return request.params(
        prompt, Mode.INPAINT, width=width, height=height, aspect_ratio=f"{width}:{height}", num_images=1,
        input_file_ids=[source.file_id], extra=extra, beautify=False, style=DEFAULT_STYLE, display_prompt=caption,
    )


def add_routes(web_app: web.Application, deps: WebAppDeps) -> None:
    web_app.add_routes(create_routes(deps))


def create_app(deps: WebAppDeps) -> web.Application:
    """The Mini App alone (polling mode: its own server on WEBAPP_LISTEN)."""
    web_app = web.Application(client_max_size=MAX_BODY)
    add_routes(web_app, deps)
    return web_app
