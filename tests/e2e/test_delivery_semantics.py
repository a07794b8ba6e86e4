"""Delivery is at-least-once (issue 14, item 8): a crash between Telegram taking a photo and the bot
recording it sends the photo again after the restart: never lost, one duplicate per such crash.

The emulator takes the sendPhoto at once and holds its answer; the bot is killed (SIGKILL) while
it waits for it, then started again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.e2e.botproc import BotProcess
from tests.e2e.conftest import TOKEN
from tests.e2e.scenario import WAIT, is_photo, open_world, wait_idle


async def test_a_photo_taken_by_telegram_before_a_crash_is_sent_again(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    async with open_world(tmp_path, "fake", request) as world:
        user = world.user()
        world.emulator.hold_answers("sendPhoto", 30)
        await user.send_text("a lighthouse at dusk")
        first = await user.wait_for(is_photo, WAIT)  # in the chat; the bot has no answer yet
        await world.bot.kill()
        [job] = world.jobs()
        assert job["status"] == "generated"  # the bot never recorded the delivery

        world.emulator.hold_answers("sendPhoto", 0)
        world.bot = BotProcess(world.emulator, TOKEN, world.bot.env, tmp_path / "bot-restarted.log")
        await world.bot.start(ready_timeout=120)
        second = await user.wait_for(is_photo, WAIT)
        [job] = await wait_idle(world)
        await asyncio.sleep(2.0)  # time for a third copy to show up, if the bot made one
        photos = user.received(is_photo)

    assert job["status"] == "done" and job["attempts"] == 1  # delivered from disk, not drawn again
    assert first["caption"] == second["caption"]
    assert len(photos) == 2  # at least once: the duplicate README "Security and limits" promises
