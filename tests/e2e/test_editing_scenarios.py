"""Image editing as a user meets it: the real bot process over HTTP (polling), against the emulator.

Albums here arrive the way Telegram delivers them: separate updates fetched by getUpdates and
handled concurrently by aiogram's polling, so this checks the album collector in the real set-up.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.e2e.conftest import E2E_BACKEND
from tests.e2e.scenario import WAIT, World, is_photo, open_world, wait_idle
from playground.users import button_texts, has_text
from tests.photos import photo, photo_bytes, random_bytes

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> AsyncIterator[World]:
    async with open_world(
        tmp_path_factory.mktemp("e2e-editing"), E2E_BACKEND, request, MAX_IMAGE_SIDE=256, ALBUM_WAIT_SECONDS=0.5
    ) as opened:
        yield opened


def user_jobs(world: World, user_id: int) -> list[dict]:
    return [dict(j, params=json.loads(j["params"])) for j in world.jobs() if j["user_id"] == user_id]


async def test_an_album_is_fused_into_one_picture(world: World) -> None:
    user = world.user(first_name="Ann")
    await user.send_album([photo("astronaut"), photo("coffee"), photo("chelsea")])
    result = await user.wait_for(is_photo, WAIT)
    assert result["caption"].startswith("Fusion of 3 photos")
    await wait_idle(world)
    [job] = user_jobs(world, user.id)  # one job for the three updates
    assert len(job["params"]["input_file_ids"]) == 3 and job["status"] == "done"


async def test_a_photo_with_a_caption_is_restyled(world: World) -> None:
    user = world.user(first_name="Bob")
    await user.send_photo(photo("coffee"), caption="a pencil drawing")  # restyled at once, medium
    result = await user.wait_for(is_photo, WAIT)
    assert result["caption"].startswith("a pencil drawing")
    assert button_texts(result)[:3] == ["🔅 Lighter", "🔆 Stronger", "🧱 Keep the shapes"]
    await user.press(result, "Stronger")
    stronger = await user.wait_for(is_photo, WAIT)
    assert button_texts(stronger)[:2] == ["🔅 Lighter", "🧱 Keep the shapes"]
    await wait_idle(world)
    first, second = user_jobs(world, user.id)
    assert (first["params"]["strength"], second["params"]["strength"]) == (0.5, 0.75)
    assert first["params"]["width"] == 256 and second["params"]["seed"] == first["params"]["seed"]


async def test_a_file_that_is_no_picture_is_refused(world: World) -> None:
    user = world.user(first_name="Eve")
    await user.send_document(random_bytes(), "cat.png", "image/png")
    await user.wait_for(has_text("not a picture I can edit"), WAIT)
    assert user_jobs(world, user.id) == []
    # A real picture as a file is taken (and, with a caption, restyled at once).
    await user.send_document(photo_bytes("astronaut", "PNG"), "astronaut.png", "image/png", caption="a statue")
    result = await user.wait_for(is_photo, WAIT)
    assert result["caption"].startswith("a statue")
