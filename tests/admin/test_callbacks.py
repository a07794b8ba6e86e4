"""Typed admin buttons (issue 12): aiogram parses ids, models and limits itself; buttons sent before
the typed fields keep working where their format did not change, and the others get a clear answer.
And /models shows what the model registry says about each model."""

from __future__ import annotations

from typing import get_args

from aiogram.methods import AnswerCallbackQuery, EditMessageText, SendMessage
from sqlalchemy import select

from handlers.admin.common import AdminCb, BroadcastCb, JobCb, LimitCb, ModelCb, UserCb
from storage.admin_models import BotSetting
from storage.models import Job, JobStatus, User
from tests.admin.conftest import EXPIRED, OTHER, OWNER, OWNER_ID, alerts, get_user, press, say

FACTORIES = (AdminCb, UserCb, JobCb, BroadcastCb, ModelCb, LimitCb)


def actions(factory: type) -> set[str]:
    annotation = factory.model_fields["action"].annotation
    return set(get_args(annotation)) or {member.value for member in annotation}


def test_each_admin_button_has_one_factory():
    # One prefix, the action first: a button must parse with exactly one factory.
    assert {factory.__prefix__ for factory in FACTORIES} == {"adm"}
    seen: set[str] = set()
    for factory in FACTORIES:
        assert not actions(factory) & seen, factory
        seen |= actions(factory)


async def queued_job(h) -> int:
    async with h.app.db.session() as s:
        job = Job(
            user_id=OTHER.id, chat_id=OTHER.id, kind="text2img", model="kandinsky-3.1",
            params={"prompt": "x", "width": 64, "height": 64, "seed": 1}, status=JobStatus.QUEUED,
        )  # fmt: skip
        s.add(job)
        await s.commit()
        return job.id


async def test_buttons_sent_before_the_typed_fields(harness):
    """Callback data exactly as the untyped ``adm:<action>:<arg>`` buttons were packed."""
    h = harness
    for who in (OWNER, OTHER):
        await say(h, "/start", who)
    await say(h, "/pause", OWNER)  # a job stays queued

    # A user's card: ban / unban carried the user id, and still do.
    calls = await press(h, f"adm:ban:{OTHER.id}", OWNER)
    assert alerts(calls) == [None]
    assert (await get_user(h, OTHER.id)).banned
    await press(h, f"adm:unban:{OTHER.id}", OWNER)
    assert not (await get_user(h, OTHER.id)).banned

    # /queue's cancel button carried the job id.
    job_id = await queued_job(h)
    assert alerts(await press(h, f"adm:qcancel:{job_id}", OWNER)) == [f"Job #{job_id} cancelled."]

    # /models' buttons carried the model.
    await press(h, "adm:munload:kandinsky-2.2", OWNER)
    assert h.backend.unloads == ["kandinsky-2.2"]

    # The panel's views ("adm:stats:" had an empty argument) and the limit presets ("daily=10") changed
    # format: an admin is told to open a fresh panel, and nothing changes.
    for data in ("adm:panel:", "adm:stats:", "adm:queue:", "adm:pause:", "adm:resume:", "adm:limit:daily=10"):
        calls = await press(h, data, OWNER)
        assert alerts(calls) == [EXPIRED], data
        assert not [c for c in calls if isinstance(c, (SendMessage, EditMessageText))], data
    async with h.app.db.session() as s:
        assert (await s.execute(select(BotSetting).where(BotSetting.key == "daily_quota"))).scalars().all() == []

    # A plain user pressing the same old buttons gets the answer any unknown button gets.
    calls = await press(h, "adm:stats:", OTHER)
    assert alerts(calls) == ["This button is no longer valid."]


async def test_limit_presets(harness):
    h = harness
    await say(h, "/start", OWNER)
    await say(h, "/limits", OWNER)
    labels = {b.text: b.callback_data for row in h.session.of(SendMessage)[-1].reply_markup.inline_keyboard for b in row}
    assert labels["daily: off"] == "adm:limit:daily:" and labels["per user: 3"] == "adm:limit:user:3"
    calls = await press(h, labels["daily: 10"], OWNER)
    assert alerts(calls) == ["Saved: daily = 10. It applies from the next request."]
    calls = await press(h, labels["daily: off"], OWNER)
    assert alerts(calls) == ["Saved: daily = off. It applies from the next request."]
    assert "Jobs per user per day (UTC): unlimited" in [c for c in calls if isinstance(c, EditMessageText)][-1].text


async def test_models_show_the_registry_facts(harness):
    h = harness
    await say(h, "/start", OWNER)
    h.backend.unload("kandinsky-3.1-flash")
    lines = (await say(h, "/models", OWNER))[-1].split("\n")
    flash = lines.index("▫️ kandinsky-3.1-flash: not loaded")
    assert lines[flash + 1 : flash + 3] == [
        "↳ kandinsky-3 · about 28 GB of VRAM (24 GB GPUs offload) · 4 steps (fixed) · guidance none · negative prompt: no",
        "↳ modes: text2img, img2img, faceswap, zoom_in, animate",
    ]
    k22 = lines.index("✅ kandinsky-2.2: loaded on cpu, 0 B")
    assert lines[k22 + 1] == "↳ kandinsky-2.2 · fits a 16 GB GPU · 50 steps · guidance 4 · negative prompt: yes"
    assert lines[k22 + 2].startswith("↳ modes: text2img, img2img, restyle_depth, style, fuse, mix, variations, faceswap,")
    upscale = lines.index("✅ kandisuperres: loaded on cpu, 0 B")
    assert lines[upscale + 2] == "↳ modes: upscale"

    async with h.app.db.session() as s:
        (await s.get(User, OWNER_ID)).language = "ru"
        await s.commit()
    text = (await say(h, "/models", OWNER))[-1]
    assert (
        "▫️ kandinsky-3.1-flash: не загружена\n"
        "↳ kandinsky-3 · около 28 ГБ видеопамяти (на GPU с 24 ГБ — с выгрузкой) · 4 шага (фиксировано)"
        " · guidance нет · негативный промпт: нет\n"
        "↳ режимы: text2img, img2img, faceswap, zoom_in, animate\n"
    ) in text
    assert "↳ kandinsky-3 · около 28 ГБ видеопамяти (на GPU с 24 ГБ — с выгрузкой) · 50 шагов · guidance 3" in text
