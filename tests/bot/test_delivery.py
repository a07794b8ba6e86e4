"""Delivery is separate from generation: a result Telegram refused is sent later, once, never regenerated."""

from __future__ import annotations

import asyncio
import io

import numpy as np
from aiogram.exceptions import TelegramBadRequest, TelegramServerError
from aiogram.methods import SendDocument, SendMediaGroup, SendMessage, SendPhoto
from aiogram.types import BufferedInputFile
from PIL import Image

from tests.fakes import callback_update, message_update


async def test_a_result_telegram_refused_is_delivered_later_without_generating_again(harness):
    refused = []

    def bad_gateway(method):
        if len(refused) < 3:
            refused.append(method)
            return TelegramServerError(method=method, message="Bad Gateway")
        return None

    harness.session.failures[SendPhoto] = bad_gateway
    await harness.feed(message_update("a cat on a roof"))

    async def generated_then_refused() -> bool:
        return len(refused) >= 2 and [j.status for j in await harness.jobs()] == ["generated"]

    await harness.wait_for(generated_then_refused)  # generated, waiting for delivery
    [job] = await harness.wait_jobs_settled()
    assert job.status == "done" and job.result_file_ids
    assert len(harness.session.of(SendPhoto)) == 4  # three refused, one delivered
    assert len(harness.backend.calls) == 1  # generated once


async def test_an_album_is_not_sent_again_when_only_its_buttons_message_fails(harness):
    await harness.feed(callback_update("set:count:4"))
    harness.session.failures[SendMessage] = lambda m: (
        TelegramServerError(method=m, message="Bad Gateway") if "images, seeds" in (m.text or "") else None
    )
    await harness.feed(message_update("four cats"))
    [job] = await harness.wait_jobs_settled()
    await asyncio.sleep(0.5)  # several redelivery rounds (every 0.2 s) would have sent it again
    assert job.status == "done" and len(job.result_file_ids) == 4
    assert len(harness.session.of(SendMediaGroup)) == 1


async def test_a_photo_telegram_rejects_is_sent_as_a_document(harness):
    harness.session.failures[SendPhoto] = lambda m: TelegramBadRequest(
        method=m, message="Bad Request: PHOTO_INVALID_DIMENSIONS"
    )
    await harness.feed(message_update("a very wide panorama"))
    [job] = await harness.wait_jobs_settled()
    [document] = harness.session.of(SendDocument)
    assert job.status == "done" and job.result_file_ids
    assert document.caption.startswith("a very wide panorama")
    assert document.reply_markup is not None


def psnr(a: Image.Image, b: Image.Image) -> float:
    diff = np.asarray(a.convert("RGB"), dtype=np.float64) - np.asarray(b.convert("RGB"), dtype=np.float64)
    return float(10 * np.log10(255**2 / max(np.mean(diff**2), 1e-12)))


async def test_a_result_over_telegrams_photo_limit_is_uploaded_as_a_jpeg_of_it(harness, monkeypatch):
    """A 4096 px PNG can be over the 10 MB a photo may have: the photo (alone or in an album) is then a
    JPEG of the stored picture, which itself stays the PNG that "Original" sends."""
    monkeypatch.setattr("bot.notifier.PHOTO_MAX_BYTES", 1000)  # every stored PNG is over it here
    await harness.feed(message_update("one fox"))
    await harness.wait_jobs_settled()
    await harness.feed(callback_update("set:count:2"))
    await harness.feed(message_update("two foxes"))
    single, album = await harness.wait_jobs_settled()
    assert (single.status, album.status) == ("done", "done")
    [photo] = harness.session.of(SendPhoto)
    [group] = harness.session.of(SendMediaGroup)
    uploads = [(single.id, 0, photo.photo)] + [(album.id, i, m.media) for i, m in enumerate(group.media)]
    for job_id, index, upload in uploads:
        assert isinstance(upload, BufferedInputFile) and upload.filename == f"{index}.jpg"
        stored = Image.open(harness.app.runner.result_paths(job_id)[index])
        sent = Image.open(io.BytesIO(upload.data))
        assert (stored.format, sent.format) == ("PNG", "JPEG")
        # 30 dB: the stand-in's sharp colour edges give a q95 JPEG 33 dB at worst over 60 seeds
        assert sent.size == stored.size and psnr(sent, stored) > 30
    assert harness.session.of(SendDocument) == []
