"""The chat side of a job: status message, progress, chat action, delivery of results.

:class:`TelegramNotifier` is the only writer of a job's status message: it sends it
(:meth:`~TelegramNotifier.announce`), edits it (queue position, progress, stages, failures,
cancellations, also those by admins) and deletes it when the result arrives, so its de-duplication
and throttling see every edit, and the notes under "queued" (Flash ignores the negative prompt, the
model an edit moved to) are part of every queued text instead of being overwritten by refreshes.
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
from collections import OrderedDict
from io import BytesIO
from pathlib import Path

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramNotFound,
)
from aiogram.types import BufferedInputFile, FSInputFile, InlineKeyboardMarkup, InputFile, InputMediaPhoto, Message
from PIL import Image

from bot.best_effort import best_effort
from bot.i18n import Translator
from bot.keyboards import (
    again_keyboard,
    album_keyboard,
    cancel_job_keyboard,
    model_name,
    result_keyboard,
    style_name,
    weight_buttons,
)
from bot.retry import BestEffortChatActionSender
from bot.video_messages import is_video_job, send_video
from bot.video_messages import progress_text as video_progress_text
from generation.registry import uses_negative_prompt
from generation.styles import EDIT_STRENGTHS
from jobs.events import DeliveryRefused, JobContext
from jobs.params import EditParams, read_outcome, read_params
from jobs.results import VIDEO_THUMBNAIL
from storage.models import Job

log = logging.getLogger(__name__)

CAPTION_LIMIT = 1024
# Failures worth another try with a new seed: the status message gets an "Again" button.
RETRY_WITH_NEW_SEED = frozenset({"no_face_in_result", "face_pose_mismatch"})
BAR_WIDTH = 10


def progress_bar(step: int, total: int) -> str:
    filled = round(BAR_WIDTH * step / max(total, 1))
    return "▓" * filled + "░" * (BAR_WIDTH - filled)


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (an emoji outside the BMP is two)."""
    return len(text.encode("utf-16-le")) // 2


def first_weight_percent(job: Job) -> int | None:
    """A mix's photo share, or the first photo's share of a fusion of two (its caption's part aside)."""
    params = read_params(job)
    weights = list(getattr(params, "weights", []) or [])
    photos = len(getattr(params, "input_file_ids", []) or [])
    if job.kind == "mix" and len(weights) == 2:
        return round(100 * weights[0] / (weights[0] + weights[1]))
    if job.kind == "fuse" and photos == 2 and len(weights) >= 2 and weights[0] + weights[1] > 0:
        return round(100 * weights[0] / (weights[0] + weights[1]))
    return None


def remembered_note(t: Translator, job: Job, locale: str) -> str | None:
    """A restyle, mix or fusion of two made at once with the user's last choice: which strength or
    weights it used, and that the buttons under the result change them."""
    params = read_params(job)
    if not isinstance(params, EditParams) or not params.remembered:
        return None
    if job.kind in ("img2img", "restyle_depth"):
        strength = params.strength
        level = min(EDIT_STRENGTHS, key=lambda name: abs(EDIT_STRENGTHS[name] - strength))
        return t("edit-note-strength", locale, strength=t(f"edit-strength-{level}", locale))
    percent = first_weight_percent(job)
    if percent is None:
        return None
    if job.kind == "mix":
        return t("edit-note-mix-remembered", locale, image=percent, text=100 - percent)
    return t("edit-note-fuse-remembered", locale, first=percent, second=100 - percent)


def _duration(t: Translator, locale: str, seconds: float) -> str:
    # Rounded to 5 seconds or to minutes: few distinct texts, each formatted once (Translator.memo).
    if seconds < 90:
        return t.memo("eta-seconds", locale, n=max(5, round(seconds / 5) * 5))
    return t.memo("eta-minutes", locale, n=round(seconds / 60))


def queued_line(t: Translator, locale: str, position: int, eta: int | None) -> str:
    """"Queued, position N", with the estimated wait when the model has finished jobs to go by.

    Every prompt's first answer and every queue-position refresh: formatted once per position and
    rounded wait (Translator.memo)."""
    if eta is None:
        return t.memo("job-queued", locale, position=position)
    return t.memo("job-queued-eta", locale, position=position, eta=_duration(t, locale, eta))


def _shorten(text: str, room: int) -> str:
    """``text`` cut to ``room`` UTF-16 units, "…" included; never in the middle of a surrogate pair."""
    if utf16_len(text) <= room:
        return text
    kept, used = [], 1  # the ellipsis
    for char in text:
        used += utf16_len(char)
        if used > room:
            break
        kept.append(char)
    return "".join(kept) + "…"


DOCUMENT_LIMIT = 49 * 1024 * 1024  # Telegram's 50 MB for documents bots send, with room for the form


def result_caption(t: Translator, job: Job, locale: str, seed: int | None = None) -> str:
    """The caption: the prompt shortened so the whole caption fits Telegram's 1024 characters,
    counted as Telegram counts them (UTF-16 units; the template's markup is counted too, to be safe).

    A beautified job shows the prompt that was used with the user's own beside it; a line says when
    beautification fell back to the user's words, and when the safety check withheld some images.
    """
    params, outcome = read_params(job), read_outcome(job)
    fields = dict(
        model=model_name(t, job.model, locale),
        style=style_name(t, params.style, locale),
        size=f"{params.width}×{params.height}",
        seed=str(params.seed if seed is None else seed),  # a str: Fluent would group digits
    )
    notes = []
    if params.inline:  # the parameters typed into the prompt (--ar 16:9 --seed 42 ...)
        notes.append(t("result-params", locale, params=html.escape(params.inline)))
    remembered = remembered_note(t, job, locale)  # the strength / weights used without asking
    if remembered:
        notes.append(remembered)
    if outcome.beautify_outcome == "fell_back":
        notes.append(t("beautify-fell-back", locale))
    if outcome.censored:
        notes.append(t("result-censored-some", locale, count=len(outcome.censored)))
    notes.extend(t(f"result-note-{note}", locale) for note in outcome.notes)
    tail = "".join("\n" + note for note in notes)
    prompt = params.display_prompt or params.prompt
    used = outcome.used_prompt
    if used:
        room = CAPTION_LIMIT - utf16_len(tail) - utf16_len(
            t("result-caption-beautified", locale, prompt="", original="", **fields)
        )
        original = _shorten(prompt, max(room // 3, 1))
        used = _shorten(used, room - utf16_len(original))
        caption = t(
            "result-caption-beautified", locale, prompt=html.escape(used), original=html.escape(original), **fields
        )
        return caption + tail
    room = CAPTION_LIMIT - utf16_len(tail) - utf16_len(t("result-caption", locale, prompt="", **fields))
    prompt = _shorten(prompt, room)
    return t("result-caption", locale, prompt=html.escape(prompt), **fields) + tail


# Telegram takes photo uploads of up to 10 MB; a 4096 px result's PNG can be three times that.
PHOTO_MAX_BYTES = 10 * 1024 * 1024
PHOTO_JPEG_QUALITY = 95  # a 4096 px picture: 2-6 MB


async def photo_upload(path: Path) -> InputFile:
    """A stored result as a photo upload: its PNG, or, over Telegram's photo limit, a JPEG of it
    (encoded in a worker thread; Telegram turns photos into JPEGs anyway, and "Original" still sends
    the PNG)."""
    if path.stat().st_size <= PHOTO_MAX_BYTES:
        return FSInputFile(path)
    return BufferedInputFile(await asyncio.to_thread(_jpeg_of, path), filename=f"{path.stem}.jpg")


def _jpeg_of(path: Path) -> bytes:
    with Image.open(path) as image:
        buffer = BytesIO()
        image.convert("RGB").save(buffer, format="JPEG", quality=PHOTO_JPEG_QUALITY)
    return buffer.getvalue()


def _photo_rejected(exc: TelegramBadRequest) -> bool:
    text = exc.message.upper()
    return any(k in text for k in ("PHOTO_INVALID_DIMENSIONS", "TOO BIG", "PHOTO_SAVE_FILE_INVALID", "IMAGE_PROCESS_FAILED", "TOO LARGE"))


CLOSED_REMEMBERED = 4096  # ended status messages remembered against late edits


class TelegramNotifier:
    def __init__(self, bot: Bot, translator: Translator, edit_interval: float = 2.0) -> None:
        self.bot = bot
        self.t = translator
        self.edit_interval = edit_interval
        self._last_edit: dict[int, float] = {}  # chat id -> monotonic time of the last status edit
        self._last_text: dict[tuple[int, int], str] = {}  # (chat, status message) -> its text
        # Status messages that show a final state (cancelled, failed): a queue-position refresh or a
        # step that was under way when the job ended must not write over them. The latest few only.
        self._closed: OrderedDict[tuple[int, int], None] = OrderedDict()
        self.variations_enabled = True  # the "Variations" button (handlers.editing.variations)
        self.canvas_enabled = True  # zoom / expand / upscale buttons (handlers.canvas_edit)
        self.webapp_url: str | None = None  # the Mini App's public base URL: the Inpaint button (handlers.webapp)

    # -- status message ---------------------------------------------------------------------
    async def edit_status(
        self,
        job: Job,
        text: str,
        markup: InlineKeyboardMarkup | None = None,
        throttle: bool = False,
        final: bool = False,
    ) -> bool:
        """Best-effort edit of the job's status message, at most one per chat per interval
        (``throttle``). After a ``final`` edit only final edits reach the message. True when an
        edit was sent (a text the message shows already is not sent again)."""
        if job.status_message_id is None:
            return False
        key = (job.chat_id, job.status_message_id)
        if key in self._closed and not final:
            return False
        if self._last_text.get(key) == text:
            return False
        now = time.monotonic()
        if throttle and self._throttled(job, now):
            return False
        self._last_edit[job.chat_id] = now
        self._last_text[key] = text
        try:
            with best_effort():
                await self.bot.edit_message_text(
                    chat_id=job.chat_id, message_id=job.status_message_id, text=text, reply_markup=markup
                )
        except TelegramAPIError as exc:  # "message is not modified", deleted, throttled: never fatal
            log.debug("status edit for job %s dropped: %s", job.id, exc)
        return True

    def _throttled(self, job: Job, now: float | None = None) -> bool:
        """The chat's status message was edited less than ``edit_interval`` ago."""
        if job.status_message_id is None:
            return True
        now = time.monotonic() if now is None else now
        return now - self._last_edit.get(job.chat_id, 0.0) < self.edit_interval

    def _noted(self, job: Job, text: str, locale: str | None = None) -> str:
        """An in-progress status with the job's notes (the Flash negative-prompt note, a model
        fallback) kept under it, so that they stay readable through the progress."""
        notes = self.notes(job, locale or "en")
        return "\n".join([text, *notes])

    async def started(self, ctx: JobContext) -> None:
        await self.edit_status(ctx.job, self._noted(ctx.job, self.t("job-starting", ctx.locale), ctx.locale), self._cancel_markup(ctx))

    async def progress(self, ctx: JobContext, step: int, total: int) -> None:
        # Called for every denoising step: most are throttled away, so decide that before the text
        # and keyboard are built (a burst of jobs would spend the event loop on texts never sent).
        if self._throttled(ctx.job):
            return
        if is_video_job(ctx.job):
            text = video_progress_text(self.t, ctx.job, ctx.locale, step, total, progress_bar(step, total))
        else:
            text = self.t("job-progress", ctx.locale, step=step, total=total, bar=progress_bar(step, total))
        await self.edit_status(ctx.job, self._noted(ctx.job, text, ctx.locale), self._cancel_markup(ctx), throttle=True)

    async def stage(self, ctx: JobContext, stage: str) -> None:
        """A face-swap job's stage: describing, drawing, swapping, restoring."""
        text = self._noted(ctx.job, self.t(f"face-stage-{stage}", ctx.locale), ctx.locale)
        await self.edit_status(ctx.job, text, self._cancel_markup(ctx))

    def queued_text(self, job: Job, locale: str, position: int, eta: int | None = None) -> str:
        """"Queued, position N" (with the estimated wait when the model has finished jobs to go by)
        and the job's notes (they stay readable through every refresh)."""
        return "\n".join([queued_line(self.t, locale, position, eta), *self.notes(job, locale)])

    def notes(self, job: Job, locale: str) -> list[str]:
        """The job's notes: the model an edit moved to, Flash ignoring the negative prompt, the
        remembered strength or weights an edit used without asking."""
        lines = []
        params = read_params(job)
        requested = getattr(params, "requested_model", None)
        if requested and requested != job.model:
            lines.append(self.t("edit-note-img2img-fallback", locale, model=model_name(self.t, job.model, locale)))
        if params.negative_prompt and not uses_negative_prompt(job.model):
            lines.append(self.t("job-flash-no-negative", locale))
        remembered = remembered_note(self.t, job, locale)
        if remembered:
            lines.append(remembered)
        return lines

    async def announce(self, job: Job, locale: str, position: int, eta: int | None = None) -> int:
        """Send the job's status message (queued, position N); returns its id. Not best effort:
        a job whose user cannot be reached is not created (the caller's transaction rolls back)."""
        text = self.queued_text(job, locale, position, eta)
        message = await self.bot.send_message(job.chat_id, text, reply_markup=cancel_job_keyboard(self.t, locale, job.id))
        self._last_text[(job.chat_id, message.message_id)] = text
        return message.message_id

    async def queued(self, job: Job, locale: str, position: int, eta: int | None = None) -> bool:
        """The queue moved: the new position. Not throttled per chat: a position changes only when
        a job starts, ends or is cancelled (and unchanged texts are not sent again), while a dropped
        one would stay wrong until the next change; the throttle would drop it whenever the same
        chat's running job had just shown a step (jobs.positions paces these edits overall). True
        when an edit was sent."""
        text = self.queued_text(job, locale, position, eta)
        return await self.edit_status(job, text, cancel_job_keyboard(self.t, locale, job.id))

    async def withdrawn(self, job: Job, locale: str, key: str = "job-cancelled") -> None:
        """A queued job cancelled outside the runner (/cancel, a button, an admin, a ban)."""
        await self.edit_status(job, self.t(key, locale), final=True)
        self._forget(job)

    def _cancel_markup(self, ctx: JobContext) -> InlineKeyboardMarkup:
        return cancel_job_keyboard(self.t, ctx.locale, ctx.job.id)

    def working(self, ctx: JobContext) -> BestEffortChatActionSender:
        if is_video_job(ctx.job):
            return BestEffortChatActionSender.upload_video(bot=self.bot, chat_id=ctx.job.chat_id)
        return BestEffortChatActionSender.upload_photo(bot=self.bot, chat_id=ctx.job.chat_id)

    async def failed(self, ctx: JobContext, code: str) -> None:
        key = f"job-error-{code}"
        text = self.t(key if self.t.has(key, ctx.locale) else "job-failed", ctx.locale)
        markup = again_keyboard(self.t, ctx.locale, ctx.job.id) if code in RETRY_WITH_NEW_SEED else None
        await self.edit_status(ctx.job, text, markup, final=True)
        self._forget(ctx.job)

    async def cancelled(self, ctx: JobContext) -> None:
        await self.edit_status(ctx.job, self.t("job-cancelled", ctx.locale), final=True)
        self._forget(ctx.job)

    def _forget(self, job: Job) -> None:
        """The status message will not change again: stop remembering its text, and close it to
        the edits still on their way (a refresh that read the queue before the job ended)."""
        if job.status_message_id is not None:
            key = (job.chat_id, job.status_message_id)
            self._last_text.pop(key, None)
            self._closed[key] = None
            self._closed.move_to_end(key)
            while len(self._closed) > CLOSED_REMEMBERED:
                self._closed.popitem(last=False)

    async def loading(self, ctx: JobContext, seconds: float | None) -> None:
        model = model_name(self.t, ctx.job.model, ctx.locale)
        if seconds is None:
            text = self.t("job-loading-first", ctx.locale, model=model)
        else:
            text = self.t("job-loading", ctx.locale, model=model, eta=_duration(self.t, ctx.locale, seconds))
        await self.edit_status(ctx.job, self._noted(ctx.job, text, ctx.locale), self._cancel_markup(ctx))

    async def beautifying(self, ctx: JobContext) -> None:
        await self.edit_status(ctx.job, self._noted(ctx.job, self.t("job-beautifying", ctx.locale), ctx.locale), self._cancel_markup(ctx))

    async def censored(self, ctx: JobContext, previews: list[Path], upload: bool = False) -> None:
        """The notice instead of the pictures; with a blurred preview (under a spoiler) when there is one."""
        job, locale = ctx.job, ctx.locale
        text = self.t("upload-censored" if upload else "job-censored", locale)
        if not previews:
            await self.edit_status(job, text)
            self._forget(job)
            return
        await self.bot.send_photo(chat_id=job.chat_id, photo=FSInputFile(previews[0]), caption=text, has_spoiler=True)
        if job.status_message_id is not None:
            try:
                with best_effort():
                    await self.bot.delete_message(chat_id=job.chat_id, message_id=job.status_message_id)
            except TelegramAPIError:
                pass
        self._forget(job)

    async def fetch_file(self, file_id: str) -> bytes:
        buffer = BytesIO()
        await self.bot.download(file_id, destination=buffer)
        return buffer.getvalue()

    # -- results ------------------------------------------------------------------------------
    async def deliver(self, ctx: JobContext, paths: list[Path]) -> list[str]:
        """Send the result. Telegram's refusals for good become :class:`DeliveryRefused` (403: the
        user blocked the bot or the bot left the group; 400/404/413: this request can never be
        served); anything else (network, 5xx, flood control past the session's retries) is raised
        as it is, and the runner tries again later."""
        try:
            return await self._deliver(ctx, paths)
        except TelegramForbiddenError as exc:
            # In a private chat the user blocked the bot; in a group, the bot was removed.
            raise DeliveryRefused("blocked", blocked=ctx.job.chat_id == ctx.job.user_id) from exc
        except (TelegramBadRequest, TelegramNotFound, TelegramEntityTooLarge) as exc:
            raise DeliveryRefused(f"refused: {exc.message}"[:200]) from exc

    async def _deliver(self, ctx: JobContext, paths: list[Path]) -> list[str]:
        job, locale = ctx.job, ctx.locale
        if not paths:
            raise FileNotFoundError(f"no stored images for job {job.id}")
        if paths[0].suffix == ".mp4":
            message = await send_video(
                self.bot, self.t, job, locale, paths[0], paths[0].with_name(VIDEO_THUMBNAIL)
            )
            file_ids = [message.video.file_id if message.video else self._file_id(message)]
            await self._drop_status(job)
            return file_ids
        if job.kind == "upscale":
            return await self._deliver_document(ctx, paths[0])
        plain = bool(read_outcome(job).used_prompt)
        remix = job.kind == "text2img"  # "Edit prompt": a new text, the same settings and seed
        restyled = job.kind in ("img2img", "restyle_depth")
        strength = float(getattr(read_params(job), "strength", 0.0)) if restyled else None
        shapes = job.kind == "img2img"
        weights = weight_buttons(self.t, locale, job.id, job.kind, first_weight_percent(job))
        keyboard = result_keyboard(
            self.t, locale, job.id, variations=self.variations_enabled, plain=plain, remix=remix, strength=strength,
            shapes=shapes, weights=weights,
            canvas=self.canvas_enabled, webapp_url=self.webapp_url,
        )
        seed = read_params(job).seed
        if len(paths) == 1:
            single_seed = seed + int(paths[0].stem)
            message = await self._send_photo(job, paths[0], result_caption(self.t, job, locale, single_seed), keyboard)
            file_ids = [self._file_id(message)]
        else:
            # Image i was generated with seed + i; the file name keeps i when the safety check left some out.
            seeds_of = [seed + int(path.stem) for path in paths]
            uploads = await asyncio.gather(*(photo_upload(path) for path in paths))
            media = [
                InputMediaPhoto(
                    media=upload, caption=result_caption(self.t, job, locale, seeds_of[i]) if i == 0 else None
                )
                for i, upload in enumerate(uploads)
            ]
            messages = await self.bot.send_media_group(chat_id=job.chat_id, media=media)
            file_ids = [self._file_id(m) for m in messages]
            seeds = ", ".join(str(s) for s in seeds_of)
            # The album is delivered once Telegram took it: if the buttons message fails (after the
            # session's retries), the job must not count as undelivered, or the album comes twice.
            try:
                await self.bot.send_message(
                    chat_id=job.chat_id,
                    text=self.t("result-album-buttons", locale, count=len(paths), seeds=seeds)
                    + "\n"
                    + self.t("result-album-legend", locale, variations="yes" if self.variations_enabled else "no")
                    + ("\n" + self.t("result-album-legend-canvas", locale) if self.canvas_enabled else ""),
                    reply_markup=album_keyboard(
                        self.t, locale, job.id, len(paths), variations=self.variations_enabled, plain=plain, remix=remix,
                        strength=strength, shapes=shapes, weights=weights, canvas=self.canvas_enabled,
                    ),
                )
            except TelegramAPIError as exc:
                log.warning("job %s: album delivered, its buttons message failed: %s", job.id, exc)
        await self._drop_status(job)
        return file_ids

    async def _drop_status(self, job: Job) -> None:
        if job.status_message_id is not None:
            try:
                with best_effort():
                    await self.bot.delete_message(chat_id=job.chat_id, message_id=job.status_message_id)
            except TelegramAPIError:
                pass
        self._forget(job)

    async def _deliver_document(self, ctx: JobContext, path: Path) -> list[str]:
        """An upscaled picture: a document (Telegram would recompress and shrink a photo), its size in the caption."""
        job, locale = ctx.job, ctx.locale
        from PIL import Image

        with Image.open(path) as image:
            width, height = image.size
            document = path
            if path.stat().st_size > DOCUMENT_LIMIT:
                # Bots may send documents up to 50 MB; a noisy 4096 px PNG can pass that. A JPEG at
                # quality 95 is a fraction of it and looks the same.
                document = path.with_suffix(".jpg")
                if not document.exists():
                    image.convert("RGB").save(document, format="JPEG", quality=95)
        caption = self.t("canvas-upscaled-caption", locale, scale=str(read_params(job).extra.get("scale", 2)),
                         width=str(width), height=str(height))
        message = await self.bot.send_document(chat_id=job.chat_id, document=FSInputFile(document), caption=caption)
        if job.status_message_id is not None:
            try:
                with best_effort():
                    await self.bot.delete_message(chat_id=job.chat_id, message_id=job.status_message_id)
            except TelegramAPIError:
                pass
        self._forget(job)
        return [self._file_id(message)]

    async def _send_photo(self, job: Job, path: Path, caption: str, keyboard: InlineKeyboardMarkup) -> Message:
        try:
            photo = await photo_upload(path)
            return await self.bot.send_photo(chat_id=job.chat_id, photo=photo, caption=caption, reply_markup=keyboard)
        except TelegramBadRequest as exc:
            if not _photo_rejected(exc):
                raise
            log.info("job %s: Telegram rejected the photo (%s); sending it as a document", job.id, exc.message)
            return await self.bot.send_document(
                chat_id=job.chat_id, document=FSInputFile(path), caption=caption, reply_markup=keyboard
            )

    @staticmethod
    def _file_id(message: Message) -> str:
        if message.photo:
            return message.photo[-1].file_id
        if message.document:
            return message.document.file_id
        return ""
