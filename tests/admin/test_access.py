"""Nobody but admins gets anything: every admin command and button, sent by a plain user and by a
banned user, is refused exactly like an unknown command or button, and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram.methods import AnswerCallbackQuery, SendMessage
from sqlalchemy import select

from generation.backend import ModelId
from handlers.admin.common import AdminCb, BroadcastCb, JobCb, LimitCb, ModelCb, UserCb
from storage.admin_models import AdminGrant, AuditEntry, BotSetting, Broadcast, BroadcastRecipient
from storage.admin_repositories import ControlRepository
from storage.models import Job, JobStatus, User
from tests.admin.conftest import OTHER, OWNER, OWNER_ID, USER, USER_ID, say
from tests.fakes import callback_update, message_update

COMMANDS = [
    "/admin",
    "/stats",
    "/queue",
    "/pause",
    "/pause maintenance",
    "/resume",
    f"/ban {OTHER.id}",
    "/ban @bob spam",
    f"/unban {OTHER.id}",
    f"/user {OTHER.id}",
    f"/user {OWNER_ID}",
    "/limits",
    "/limits daily 1",
    "/limits user 50",
    "/broadcast",
    "/models",
    f"/grant {USER_ID}",
    f"/revoke {OWNER_ID}",
    "/audit",
]


def admin_callbacks(job_id: int, broadcast_id: int) -> list[str]:
    views = ("panel", "stats", "queue", "limits", "models", "audit", "broadcast", "user", "pause", "resume")
    buttons = [AdminCb(action=a) for a in views] + [
        JobCb(job_id=job_id),
        LimitCb(name="daily", value=10),
        LimitCb(name="user", value=5),
        ModelCb(action="mload", model=ModelId.K31),
        ModelCb(action="munload", model=ModelId.K22),
        BroadcastCb(action="bsend", broadcast_id=broadcast_id),
        BroadcastCb(action="bcancel", broadcast_id=broadcast_id),
        UserCb(action="ban", user_id=OTHER.id),
        UserCb(action="unban", user_id=OTHER.id),
        UserCb(action="grant", user_id=USER_ID),
        UserCb(action="revoke", user_id=OWNER_ID),
    ]
    return [b.pack() for b in buttons]


async def snapshot(h: Any) -> dict[str, Any]:
    """Everything an admin action could change."""
    async with h.app.db.session() as s:
        rows = lambda model: s.execute(select(model))  # noqa: E731
        return {
            "users": sorted((u.id, u.banned, u.blocked_bot) for u in (await rows(User)).scalars()),
            "jobs": sorted((j.id, j.status, j.cancel_requested) for j in (await rows(Job)).scalars()),
            "grants": sorted(g.user_id for g in (await rows(AdminGrant)).scalars()),
            "audit": len((await rows(AuditEntry)).scalars().all()),
            "settings": sorted((b.key, str(b.value)) for b in (await rows(BotSetting)).scalars()),
            "broadcasts": sorted((b.id, b.status) for b in (await rows(Broadcast)).scalars()),
            "recipients": len((await rows(BroadcastRecipient)).scalars().all()),
        }


async def prepare(h: Any) -> tuple[int, int]:
    """A paused queue holding one job, a draft broadcast, an owner and two users."""
    for who in (OWNER, USER, OTHER):
        await say(h, "/start", who)
    async with h.app.db.session() as s:
        await ControlRepository(s).set_pause(True, "tests", OWNER_ID)
        job = Job(
            user_id=OTHER.id,
            chat_id=OTHER.id,
            kind="text2img",
            model="kandinsky-3.1",
            params={"prompt": "x", "width": 64, "height": 64, "seed": 1},
            status=JobStatus.QUEUED,
        )
        broadcast = Broadcast(admin_id=OWNER_ID, admin_chat_id=OWNER_ID, text="secret announcement")
        s.add_all([job, broadcast])
        await s.commit()
        return job.id, broadcast.id


@pytest.mark.parametrize("banned", [False, True], ids=["user", "banned-user"])
async def test_admin_commands_and_buttons_refused(harness, banned):
    h = harness
    job_id, broadcast_id = await prepare(h)
    unknown_command = (await say(h, "/nosuchcommand", USER))[-1]
    before = len(h.session.calls)
    await h.feed(callback_update("zzz:forged", from_user=USER))
    unknown_button = [c.text for c in h.session.calls[before:] if isinstance(c, AnswerCallbackQuery)]
    assert len(unknown_button) == 1

    if banned:
        async with h.app.db.session() as s:
            (await s.get(User, USER_ID)).banned = True
            await s.commit()
        notice = await say(h, "hello", USER)
        assert notice == ["You have been blocked from using this bot."]
    state = await snapshot(h)
    h.session.clear()

    for command in COMMANDS:
        await h.feed(message_update(command, from_user=USER))
    # the broadcast flow must not have been entered: the next text is an ordinary prompt (refused: paused)
    for data in admin_callbacks(job_id, broadcast_id):
        await h.feed(callback_update(data, from_user=USER))

    sent = [c for c in h.session.calls if not isinstance(c, AnswerCallbackQuery)]
    answers = [c for c in h.session.calls if isinstance(c, AnswerCallbackQuery)]
    if banned:
        assert h.session.calls == []  # ignored after the one notice
    else:
        assert all(isinstance(c, SendMessage) for c in sent)
        assert [c.text for c in sent] == [unknown_command] * len(COMMANDS)
        assert all(c.reply_markup is None for c in sent)
        assert [a.text for a in answers] == unknown_button * len(admin_callbacks(job_id, broadcast_id))
    assert await snapshot(h) == state
    assert h.backend.loads == [] and h.backend.unloads == []


async def test_non_admin_in_broadcast_flow_is_not_possible(harness):
    """A plain user's text after /broadcast is a prompt, not a broadcast."""
    h = harness
    await say(h, "/start", USER)
    await say(h, "/broadcast", USER)
    await say(h, "hello everyone", USER)
    jobs = await h.wait_jobs_settled()
    assert [j.params["prompt"] for j in jobs] == ["hello everyone"]
    async with h.app.db.session() as s:
        assert (await s.execute(select(Broadcast))).scalars().all() == []


async def test_revoked_admin_old_buttons_do_nothing(harness):
    """Rights are checked on every press: a button kept from admin days is dead after /revoke."""
    from tests.admin.conftest import ADMIN, ADMIN_ID, make_admin, press

    h = harness
    await make_admin(h)
    calls = await press(h, AdminCb(action="stats").pack(), ADMIN)
    assert any(isinstance(c, AnswerCallbackQuery) for c in calls)
    assert "Users" in h.session.texts()[-1]
    texts = await say(h, f"/revoke {ADMIN_ID}", OWNER)
    assert "no longer an admin" in texts[-1]
    state = await snapshot(h)
    calls = await press(h, LimitCb(name="daily", value=1).pack(), ADMIN)
    assert [c.text for c in calls] == ["This button is no longer valid."]
    assert await snapshot(h) == state
    assert (await say(h, "/stats", ADMIN)) == ["I don't know this command. /help lists what I can do."]


async def test_admin_commands_in_a_group_are_unknown(harness):
    """Even an owner gets no admin answer in a group, where everybody would read it."""
    h = harness
    group = dict(chat_type="group", chat_id=-100123)
    unknown = await say(h, "/nosuchcommand@kandinsky_test_bot", OWNER, **group)
    assert unknown == ["I don't know this command. /help lists what I can do."]
    for command in ("/stats", "/admin", "/queue", "/audit", f"/user {OWNER_ID}", "/pause"):
        assert (
            await say(
                h,
                f"{command.split()[0]}@kandinsky_test_bot {command[len(command.split()[0]) :]}".strip(),
                OWNER,
                **group,
            )
            == unknown
        )
    async with h.app.db.session() as s:
        assert (await ControlRepository(s).pause_state()).paused is False


async def test_admin_texts_follow_the_admins_language(harness):
    from tests.fakes import user

    h = harness
    ru_owner = user(OWNER_ID, language_code="ru", first_name="Olga", username="olga")
    assert "<b>Панель администратора</b> (владелец)" in (await say(h, "/admin", ru_owner))[-1]
    assert (await say(h, "/limits daily 3", ru_owner))[0] == "Сохранено: daily = 3. Действует со следующего запроса."
