"""The Mini App's HTTP API on the real dispatcher's database and job service (no browser)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import time
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image, ImageDraw

from bot.i18n import translator
from generation.backend import Mode, ModelId
from handlers.canvas_edit import photo_source
from handlers.editing.inputs import InputPhoto
from handlers.webapp import WebAppDeps, check_init_data, create_app
from tests.conftest import make_settings, start_harness, stop_harness
from tests.fakes import TOKEN, message_update, user
from tests.photos import photo_bytes


def init_data(user_id: int, token: str = TOKEN, auth_date: int | None = None) -> str:
    fields = {"auth_date": str(auth_date or int(time.time())), "user": json.dumps({"id": user_id, "first_name": "Ann"})}
    check = "\n".join(f"{k}={v}" for k, v in sorted(fields.items()))
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    fields["hash"] = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    return urlencode(fields)


def mask_url(size=(64, 64)) -> str:
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(layer).rectangle((10, 10, 40, 40), fill=(255, 255, 255, 255))
    buffer = io.BytesIO()
    layer.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture
async def web(tmp_path):
    harness = await start_harness(make_settings(tmp_path, webapp_url="https://bot.example.com"))
    app = harness.app
    deps = WebAppDeps(app.bot, app.db, app.jobs, app.notifier, translator(), app.settings.max_image_side)
    client = TestClient(TestServer(create_app(deps)))
    await client.start_server()
    try:
        yield harness, client
    finally:
        await client.close()
        await stop_harness(harness)


async def test_a_sent_photo_is_inpainted_for_its_sender_only(web):
    harness, client = web
    await harness.feed(message_update("/start"))  # the user exists
    harness.session.files["user-photo"] = photo_bytes("coffee", fmt="PNG", size=(800, 600))
    source = photo_source(TOKEN, 1001, InputPhoto("user-photo", 800, 600))

    page = await client.get("/webapp/inpaint", params={"src": source, "lang": "ru"})
    text = await page.text()
    assert page.status == 200 and '<html lang="ru">' in text and "Закрасьте область" in text

    picture = await client.post("/webapp/api/picture", json={"initData": init_data(1001), "src": source})
    assert picture.status == 200 and picture.content_type == "image/png"

    # Another user with the same link: the reference was signed for the sender.
    await harness.feed(message_update("/start", from_user=user(2002)))
    other = await client.post("/webapp/api/inpaint", json={"initData": init_data(2002), "src": source, "mask": mask_url()})
    assert other.status == 404

    sent = await client.post(
        "/webapp/api/inpaint", json={"initData": init_data(1001), "src": source, "prompt": "", "mask": mask_url()}
    )
    body = await sent.json()
    assert sent.status == 200 and body["ok"], body
    [job] = [j for j in await harness.jobs() if j.id == body["job_id"]]
    assert (job.kind, job.model, job.user_id) == (Mode.INPAINT, ModelId.K31_INPAINT, 1001)
    assert (job.params["width"], job.params["height"]) == (768, 576) and job.params["input_file_ids"] == ["user-photo"]
    mask = Image.open(io.BytesIO(base64.b64decode(job.params["extra"]["mask"])))
    assert mask.size == (64, 64) and mask.convert("L").getpixel((20, 20)) == 255 and mask.convert("L").getpixel((50, 50)) == 0
    assert job.params["display_prompt"] == "Inpaint: erased"
    [job] = [j for j in await harness.wait_jobs_settled() if j.id == body["job_id"]]
    assert job.status == "done"
    request = harness.backend.calls[-1]
    assert request.mode == Mode.INPAINT and request.images[0].size == (768, 576)


async def test_bad_requests_are_refused(web):
    harness, client = web
    await harness.feed(message_update("/start"))
    source = photo_source(TOKEN, 1001, InputPhoto("user-photo", 800, 600))
    cases = [
        ({"initData": init_data(1001, token="1:" + "x" * 35), "src": source, "mask": mask_url()}, 403),
        ({"initData": init_data(1001, auth_date=int(time.time()) - 2 * 86400), "src": source, "mask": mask_url()}, 403),
        ({"initData": init_data(1001), "src": source + "0", "mask": mask_url()}, 404),
        ({"initData": init_data(1001), "job": 999, "mask": mask_url()}, 404),
        ({"initData": init_data(1001), "src": source, "mask": "data:image/png;base64,bm90IGFuIGltYWdl"}, 400),
    ]
    # An empty layer is refused too.
    blank = io.BytesIO()
    Image.new("RGBA", (32, 32), (0, 0, 0, 0)).save(blank, format="PNG")
    cases.append(({"initData": init_data(1001), "src": source, "mask": base64.b64encode(blank.getvalue()).decode()}, 400))
    for body, status in cases:
        response = await client.post("/webapp/api/inpaint", json=body)
        assert response.status == status, (body, await response.text())
    assert await harness.jobs() == []


def test_init_data_check():
    data = check_init_data(TOKEN, init_data(42))
    assert data.user.id == 42
    with pytest.raises(Exception):
        check_init_data(TOKEN, init_data(42).replace("42", "43"))
