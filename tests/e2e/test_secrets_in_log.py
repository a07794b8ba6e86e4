"""The bot token never reaches the log: a download that fails prints its URL, token redacted (issue 14)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import TOKEN
from tests.e2e.scenario import WAIT, open_world
from tests.e2e.users import has_text, image_bytes
from tests.photos import photo


async def test_a_failed_download_logs_no_token(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    async with open_world(tmp_path, "fake", request) as world:
        user = world.user()
        document = world.emulator.store_document(image_bytes(photo("coffee")), "cat.png", "image/png")
        world.emulator.lose_file(document["file_id"])  # getFile answers, the download gets 404
        await user._send(document=document, caption="a watercolour")
        await user.wait_for(has_text("Something went wrong"), WAIT)
        await world.bot.stop()
        log = world.bot.log(tail=10**6)
    assert "404" in log and "/file/bot" in log, log[-3000:]  # the failure and its URL were logged ...
    assert TOKEN not in log and TOKEN.split(":")[1] not in log  # ... without the token
    assert "/file/bot[redacted]/" in log
