"""Zoom out, then upscale, as a user meets them: the real bot process against the emulator, with the
images drawn by the real (tiny, random-weight) Kandinsky 3.1, inpainting and KandiSuperRes pipelines."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.e2e.scenario import WAIT, World, is_photo, largest, open_world, wait_idle
from tests.e2e.users import button_texts

pytestmark = pytest.mark.asyncio(loop_scope="module")

MAX_SIDE = 256
LOAD_WAIT = 180.0  # each first use loads (and converts) a model


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> AsyncIterator[World]:
    async with open_world(
        tmp_path_factory.mktemp("e2e-canvas"), "diffusers", request, MAX_IMAGE_SIDE=MAX_SIDE,
        SAFETY_IMAGE_FILTER="false",  # random weights draw noise; the safety check has its own tests
    ) as opened:
        yield opened


async def test_prompt_then_zoom_out_then_upscale(world: World) -> None:
    user = world.user(first_name="Zoe")
    await user.send_text("a lighthouse on a cliff")
    first = await user.wait_for(is_photo, LOAD_WAIT)
    assert largest(first) == (MAX_SIDE, MAX_SIDE)
    assert "🔭 Zoom out 2x" in button_texts(first) and "⬆️ Upscale x2" in button_texts(first)
    await wait_idle(world)  # the picture's file id is on the job once Telegram took it

    await user.press(first, "🔭 Zoom out 2x")
    zoomed = await user.wait_for(lambda m: is_photo(m) and m["message_id"] != first["message_id"], LOAD_WAIT)
    assert zoomed["caption"].startswith("Zoom out 2x: a lighthouse on a cliff")
    assert largest(zoomed) == (MAX_SIDE, MAX_SIDE)
    await wait_idle(world)

    await user.press(zoomed, "⬆️ Upscale x2")
    upscaled = await user.wait_for(lambda m: "document" in m, LOAD_WAIT)
    assert upscaled["caption"] == f"Upscaled x2 · {2 * MAX_SIDE}×{2 * MAX_SIDE} px · KandiSuperRes"
    assert user.image(upscaled).size == (2 * MAX_SIDE, 2 * MAX_SIDE)
    jobs = await wait_idle(world, timeout=WAIT)
    assert [j["status"] for j in jobs if j["user_id"] == user.id] == ["done", "done", "done"]
