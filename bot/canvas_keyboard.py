"""The zoom / expand / upscale / inpaint buttons under an image result (CallbackData + keyboard rows)."""

from __future__ import annotations

import hashlib
import hmac
from enum import StrEnum
from urllib.parse import urlencode

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, WebAppInfo

from bot.i18n import Translator


class CanvasOp(StrEnum):
    ZOOM_OUT_15 = "zo15"
    ZOOM_OUT_2 = "zo2"
    EXPAND_16X9 = "ex169"
    EXPAND_9X16 = "ex916"
    EXPAND_1X1 = "ex11"
    ZOOM_IN = "zi"
    UPSCALE_2 = "up2"
    UPSCALE_4 = "up4"


class CanvasCb(CallbackData, prefix="cnv"):
    op: CanvasOp
    job_id: int


# (op, i18n key) per row, as the buttons appear.
ROWS: tuple[tuple[tuple[CanvasOp, str], ...], ...] = (
    ((CanvasOp.ZOOM_OUT_15, "btn-zoom-out-15"), (CanvasOp.ZOOM_OUT_2, "btn-zoom-out-2")),
    ((CanvasOp.EXPAND_16X9, "btn-expand-16x9"), (CanvasOp.EXPAND_9X16, "btn-expand-9x16"), (CanvasOp.EXPAND_1X1, "btn-expand-1x1")),
    ((CanvasOp.ZOOM_IN, "btn-zoom-in"), (CanvasOp.UPSCALE_2, "btn-upscale-2"), (CanvasOp.UPSCALE_4, "btn-upscale-4")),
)


def sign_source(secret: str, payload: str) -> str:
    """A short HMAC over a Mini App source reference (which picture, for which user)."""
    return hmac.new(hashlib.sha256(secret.encode()).digest(), payload.encode(), hashlib.sha256).hexdigest()[:32]


def inpaint_url(base_url: str, locale: str, *, job_id: int | None = None, source: str | None = None) -> str:
    """The Mini App page for a result (``job_id``) or a sent photo (``source``: a signed reference)."""
    query = {"lang": locale}
    if job_id is not None:
        query["job"] = str(job_id)
    if source is not None:
        query["src"] = source
    return f"{base_url.rstrip('/')}/webapp/inpaint?{urlencode(query)}"


def canvas_rows(t: Translator, locale: str, job_id: int, webapp_url: str | None) -> list[list[InlineKeyboardButton]]:
    rows = [
        [InlineKeyboardButton(text=t(key, locale), callback_data=CanvasCb(op=op, job_id=job_id).pack()) for op, key in row]
        for row in ROWS
    ]
    if webapp_url:
        url = inpaint_url(webapp_url, locale, job_id=job_id)
        rows.append([InlineKeyboardButton(text=t("btn-inpaint", locale), web_app=WebAppInfo(url=url))])
    return rows
