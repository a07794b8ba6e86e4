"""/stats, /queue with its cancel buttons, /models, and the panel reaching every view."""

from __future__ import annotations

from datetime import timedelta

from aiogram.methods import AnswerCallbackQuery, EditMessageText, SendMessage

from generation.backend import ModelId
from handlers.admin.common import ModelCb
from storage.models import Job, JobStatus, ModerationKind, User, utcnow
from storage.repositories import Repositories
from tests.admin.conftest import EXPIRED, OTHER, OWNER, OWNER_ID, USER, USER_ID, audit, press, say
from tests.fakes import buttons


async def add_job(
    h,
    user_id: int,
    status: str,
    model: str = "kandinsky-3.1",
    wait: float | None = None,
    took: float | None = None,
    kind: str = "text2img",
    days_ago: float = 0,
) -> None:
    created = utcnow() - timedelta(days=days_ago, seconds=1)
    started = created + timedelta(seconds=wait) if wait is not None else None
    generated = started + timedelta(seconds=took) if started is not None and took is not None else None
    async with h.app.db.session() as s:
        s.add(
            Job(
                user_id=user_id,
                chat_id=user_id,
                kind=kind,
                model=model,
                status=status,
                params={"prompt": "p", "width": 64, "height": 64, "seed": 1},
                created_at=created,
                started_at=started,
                generated_at=generated,
            )
        )
        await s.commit()


async def test_stats(harness):
    h = harness
    for who in (OWNER, USER, OTHER):
        await say(h, "/start", who)
    async with h.app.db.session() as s:
        (await s.get(User, OTHER.id)).banned = True
        (await s.get(User, USER_ID)).blocked_bot = True
        await s.commit()
    await add_job(h, USER_ID, JobStatus.DONE, wait=10, took=30)
    await add_job(h, USER_ID, JobStatus.DONE, wait=20, took=40)
    await add_job(h, USER_ID, JobStatus.FAILED, model="kandinsky-2.2", kind="img2img", wait=4)
    await add_job(h, USER_ID, JobStatus.CENSORED, model="kandinsky-2.2", wait=2, took=8)
    await add_job(h, USER_ID, JobStatus.DONE, days_ago=3, wait=90, took=30)  # in the week, not today
    await add_job(h, USER_ID, JobStatus.DONE, days_ago=30, wait=999, took=999)  # too old for anything
    async with h.app.db.session() as s:
        repos = Repositories(s)
        await repos.moderation.add(USER_ID, ModerationKind.PROMPT_BLOCKED, "entry")
        await repos.moderation.add(USER_ID, ModerationKind.PROMPT_BLOCKED, "entry")
        await repos.moderation.add(OTHER.id, ModerationKind.IMAGE_CENSORED, "0.93")
        await s.commit()
    text = (await say(h, "/stats", OWNER))[-1]
    assert (
        "<b>Safety refusals</b>\ntoday: image_censored 1, prompt_blocked 2\n7 days: image_censored 1, prompt_blocked 2"
        in text
    )
    card = (await say(h, f"/user {USER_ID}", OWNER))[-1]
    assert "<b>Safety refusals</b>: prompt_blocked: 2" in card
    assert "<b>Users</b>: 3 · active today 3 · in 7 days 3 · banned 1 · blocked the bot 1" in text
    today, week = text.split("<b>Jobs, ")[1:3]
    assert today.startswith("today (UTC)</b>: 4")
    assert "by model: kandinsky-2.2 2, kandinsky-3.1 2" in today
    assert "by mode: img2img 1, text2img 3" in today
    assert "failures: 1 · censored: 1" in today
    assert week.startswith("last 7 days</b>: 5")
    assert "kandinsky-3.1: 20 s / 30 s (3 jobs)" in text  # medians of 10, 20, 90 and 30, 40, 30
    assert "kandinsky-2.2: 3 s / 8 s (2 jobs)" in text
    assert "<b>Now</b>: 0 queued, 0 running" in text


async def test_queue_lists_jobs_and_cancels_them(harness):
    h = harness
    h.backend.step_seconds = 0.2  # the first job runs (25 steps) while the test acts
    await say(h, "/start", OWNER)
    await say(h, "a red fox", USER)
    await say(h, "a blue fox", USER)
    await h.wait_for(lambda: len(h.backend.calls) == 1)
    text = (await say(h, "/queue", OWNER))[-1]
    assert "<b>Jobs in progress</b>: 2" in text
    assert "#1 running · @ann (<code>1001</code>) · text2img · kandinsky-3.1" in text
    assert "#2 queued · @ann (<code>1001</code>) · text2img · kandinsky-3.1" in text
    labels = dict(buttons(h.session.of(SendMessage)[-1].reply_markup))
    jobs = await h.jobs()
    calls = await press(h, labels["✖️ #2"], OWNER)
    assert [c.text for c in calls if isinstance(c, AnswerCallbackQuery)] == ["Job #2 cancelled."]
    edits = [c for c in calls if isinstance(c, EditMessageText)]
    assert [e.text for e in edits if e.message_id == jobs[1].status_message_id] == ["✖️ Cancelled by the administrator."]
    assert "#2" not in [e for e in edits if e.chat_id == OWNER_ID][-1].text  # the queue view was refreshed
    await press(h, labels["✖️ #1"], OWNER)
    jobs = await h.wait_jobs_settled()
    assert [j.status for j in jobs] == [JobStatus.CANCELLED, JobStatus.CANCELLED]
    calls = await press(h, labels["✖️ #1"], OWNER)
    assert [c.text for c in calls if isinstance(c, AnswerCallbackQuery)] == ["This job is no longer queued or running."]
    assert [(e.action, e.target) for e in await audit(h)] == [("cancel_job", "2"), ("cancel_job", "1")]
    assert "The queue is empty." in (await say(h, "/queue", OWNER))[-1]


async def test_models_load_and_unload(harness):
    h = harness
    await say(h, "/start", OWNER)
    text = (await say(h, "/models", OWNER))[-1]
    assert "✅ kandinsky-3.1: loaded on cpu" in text
    labels = dict(buttons(h.session.of(SendMessage)[-1].reply_markup))
    calls = await press(h, labels["⏏ Unload kandinsky-3.1"], OWNER)
    assert h.backend.unloads == [ModelId.K31]
    view = [c for c in calls if isinstance(c, EditMessageText)][-1]
    assert "▫️ kandinsky-3.1: not loaded" in view.text
    await press(h, dict(buttons(view.reply_markup))["🔥 Load / pre-warm kandinsky-3.1"], OWNER)
    assert h.backend.loads == [ModelId.K31]
    assert ModelId.K31 in h.backend.resident
    calls = await press(h, "adm:mload:stable-diffusion", OWNER)  # forged: no such model
    assert [c.text for c in calls if isinstance(c, AnswerCallbackQuery)] == [EXPIRED]
    assert [(e.action, e.target) for e in await audit(h)] == [
        ("model_unload", "kandinsky-3.1"),
        ("model_load", "kandinsky-3.1"),
    ]


async def test_model_load_failure_is_reported(harness):
    h = harness
    await say(h, "/start", OWNER)

    def broken(model: ModelId) -> None:
        raise RuntimeError("checkpoint missing")

    h.backend.load = broken
    await press(h, ModelCb(action="mload", model=ModelId.K22).pack(), OWNER)
    assert h.session.texts()[-1] == "❌ kandinsky-2.2: checkpoint missing"


async def test_panel_reaches_every_view(harness):
    h = harness
    await say(h, "/start", OWNER)
    await say(h, "/admin", OWNER)
    panel = dict(buttons(h.session.of(SendMessage)[-1].reply_markup))
    expected = {
        "📊 Statistics": "<b>Users</b>",
        "📋 Queue": "<b>Jobs in progress</b>",
        "🚦 Limits": "<b>Limits</b>",
        "🧠 Models": "<b>Models</b>",
        "📜 Audit log": "<b>Audit log</b>",
    }
    for label, heading in expected.items():
        calls = await press(h, panel[label], OWNER)
        edit = [c for c in calls if isinstance(c, EditMessageText)][-1]
        assert heading in edit.text
        back = dict(buttons(edit.reply_markup))["« Panel"]
        calls = await press(h, back, OWNER)
        assert "Admin panel" in [c for c in calls if isinstance(c, EditMessageText)][-1].text
    await press(h, panel["📣 Broadcast"], OWNER)
    assert h.session.texts()[-1].startswith("Send the message to broadcast")
    await say(h, "/cancel", OWNER)
    await press(h, panel["👤 User"], OWNER)
    assert h.session.texts()[-1].startswith("Send the user's id")
    assert "User</b> @olga" in (await say(h, str(OWNER_ID), OWNER))[-1]
    await press(h, panel["⏸ Pause"], OWNER)
    await say(h, "/admin", OWNER)
    assert "⏸ Paused" in h.session.texts()[-1]
    assert "▶️ Resume" in dict(buttons(h.session.of(SendMessage)[-1].reply_markup))


async def test_videos_show_in_models_and_stats(harness):
    h = harness
    text = (await say(h, "/models", OWNER))[-1]
    assert "kandinsky-5.0-video-lite-5s" in text and "kandinsky-5.0-video-lite-10s" in text
    await press(h, "adm:mload:kandinsky-5.0-video-lite-10s", OWNER)
    assert h.backend.loads[-1] == "kandinsky-5.0-video-lite-10s"
    await say(h, "/video a kite over the sea", USER)
    await h.wait_jobs_settled()
    text = (await say(h, "/stats", OWNER))[-1]
    assert "kandinsky-5.0-video-lite-5s 1" in text and "video 1" in text
