"""Delivery is separate from generation: a result Telegram refused is sent later, once, never regenerated."""

from __future__ import annotations

import asyncio

from aiogram.exceptions import TelegramBadRequest, TelegramServerError
from aiogram.methods import SendDocument, SendMediaGroup, SendMessage, SendPhoto

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
