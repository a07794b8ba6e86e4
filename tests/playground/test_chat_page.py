"""The playground's web chat API, without a browser."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from playground.chat import ChatPage
from playground.emulator import TelegramEmulator


async def test_stopping_the_page_answers_its_long_poll_at_once() -> None:
    emulator = TelegramEmulator()
    await emulator.start("127.0.0.1", 0)
    bot = emulator.add_bot("42:playground-page", username="PageBot")
    page = ChatPage(emulator, bot, emulator.user("42:playground-page", user_id=7, first_name="Ann"))
    url = await page.start()
    try:
        async with aiohttp.ClientSession() as http:
            poll = asyncio.create_task(http.get(url + "api/events?after=0&timeout=20"))
            await asyncio.sleep(0.3)
            assert not poll.done()  # nothing happened in the chat: it waits
            started = time.monotonic()
            await page.stop()
            response = await asyncio.wait_for(poll, 5)
            assert response.status == 200
            assert (await response.json())["events"] == []
            assert time.monotonic() - started < 5  # not the poll's 20 s
    finally:
        await page.stop()
        await emulator.stop()
