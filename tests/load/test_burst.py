"""One slow chat must not stall the others (issue 14, item 1), on the default set-up: SQLite, one process.

While one user's document takes 15 s to download and another chat sits under flood control
(429, retry_after 15), 50 other users send a prompt and /help. Every one of them is answered
normally, every job is delivered, and the log has no "database is locked". The real bot process
runs against the emulator; the fake backend draws.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.e2e.emulator import FaultRule
from tests.e2e.scenario import open_world, wait_idle
from tests.e2e.users import has_text, image_bytes
from tests.photos import photo

STALL = 15
USERS = 50
WAIT = 120.0


def is_photo(message: dict) -> bool:
    return "photo" in message


async def test_fifty_users_are_served_while_one_download_and_one_chat_stall(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    async with open_world(
        tmp_path, "fake", request, FAKE_STEP_SECONDS=0.005, PROGRESS_EDIT_INTERVAL=5, MAX_IMAGE_SIDE=256
    ) as world:
        emulator = world.emulator
        slow = world.user(first_name="Slow")
        flooded = world.user(first_name="Flooded")
        others = [world.user(first_name=f"U{i}") for i in range(USERS)]

        # The slow download: a document whose file takes 15 s to come.
        document = emulator.store_document(image_bytes(photo("coffee")), "cat.png", "image/png")
        emulator.slow_download(document["file_id"], STALL)
        # The flooded chat: its first answer gets 429 with retry_after 15 (and the window that goes with it).
        emulator.add_faults(FaultRule(rate_429=1.0, retry_after=STALL, chat_ids=frozenset({flooded.id}), limit=1))

        started = time.monotonic()
        await slow._send(document=document, caption="a watercolour")
        await flooded.send_text("a lighthouse in a storm")
        await asyncio.sleep(1.0)  # both stalls are under way
        sends = []
        for user in others:
            sends.append(user.send_text(f"a red fox number {user.id}"))
            sends.append(user.send_command("help"))
        await asyncio.gather(*sends)

        helped: list[float] = []

        async def served(user) -> None:
            await user.wait_for(has_text("What I can do"), WAIT)
            helped.append(time.monotonic() - started)
            await user.wait_for(is_photo, WAIT)

        await asyncio.gather(*(served(user) for user in others))
        everyone_served = time.monotonic() - started
        # The stalled two get their answers too, once their stall is over.
        await flooded.wait_for(is_photo, WAIT)
        await slow.wait_for(is_photo, WAIT)  # the captioned photo is restyled
        jobs = await wait_idle(world, timeout=WAIT)
        await world.bot.stop()
        log = world.bot.log(tail=10**7)

    assert "database is locked" not in log
    assert "Traceback" not in log, log[-5000:]
    assert len(jobs) == USERS + 2 and all(j["status"] == "done" for j in jobs), [dict(j) for j in jobs]
    assert not emulator.flood_violations
    # /help does not wait for either stall: every answer came while both were still under way.
    assert max(helped) < STALL, sorted(helped)[-5:]
    print(f"50 users served in {everyone_served:.1f}s (the last /help after {max(helped):.1f}s) while two chats stalled for {STALL}s")
