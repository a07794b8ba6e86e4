"""Admin commands and buttons under odd or hostile input (issue 14): nothing raises, nothing leaks."""

from __future__ import annotations

from aiogram.methods import SendMessage
from sqlalchemy import select

from handlers.admin.common import AdminCb, parse_id, parse_int
from storage.admin_models import Broadcast, BroadcastStatus
from tests.admin.conftest import ADMIN, ADMIN_ID, OWNER, USER, alerts, press, say
from tests.fakes import message_update

GENERIC_ERROR = "Something went wrong"


def test_one_helper_reads_numbers():
    assert parse_int("42") == 42 and parse_int(" -7 ") == -7 and parse_id("123456789") == 123456789
    for odd in ("²", "٣", "--5", "-", "1_000", "+5", "0x10", "", None, "5 6", "9" * 20, str(2**63)):
        assert parse_int(odd) is None, odd
    assert parse_id("0") is None and parse_id("-5") is None
    assert parse_int("101", 1, 100) is None and parse_int("100", 1, 100) == 100


async def test_odd_admin_arguments_get_answers_not_errors(harness):
    h = harness
    await say(h, "/start", USER)
    for command in (
        "/ban ²", "/ban --5", "/ban 99999999999999999999999", "/ban -9223372036854775809", "/unban ٣",
        "/user ²", "/user 99999999999999999999999", "/grant --5", "/revoke ²",
        "/limits user ²", "/limits daily ٣", "/limits queue 99999999999999999999", "/limits user --5",
    ):  # fmt: skip
        texts = await say(h, command, OWNER)
        assert texts, command
        assert not any(GENERIC_ERROR in t for t in texts), (command, texts)
    for action, arg in (
        ("qcancel", "²"), ("qcancel", "99999999999999999999"), ("bsend", "²"), ("bcancel", "٣"),
        ("bsend", "99999999999999999999"), ("ban", "²"), ("ban", "99999999999999999999"), ("grant", "--5"),
        ("limit", "user=²"), ("limit", "daily=٣"),
    ):  # fmt: skip
        calls = await press(h, AdminCb(action=action, arg=arg).pack(), OWNER)
        assert alerts(calls), (action, arg)
        assert not [c for c in calls if isinstance(c, SendMessage) and GENERIC_ERROR in c.text], (action, arg)


async def test_the_pause_reason_is_text_in_users_messages(harness):
    h = harness
    await say(h, "/pause <b>maintenance</b> & <tea>", OWNER)
    texts = await say(h, "a red fox", USER)
    assert texts[0].startswith("⏸ New pictures are paused for a while: &lt;b&gt;maintenance&lt;/b&gt; &amp; &lt;tea&gt;\n")


async def test_an_admin_cannot_send_or_cancel_another_admins_draft(harness):
    h = harness
    await say(h, "/start", ADMIN)
    await say(h, f"/grant {ADMIN_ID}", OWNER)
    await say(h, "/broadcast", OWNER)
    await h.feed(message_update("News from the owner", from_user=OWNER))
    async with h.app.db.session() as session:
        draft = (await session.execute(select(Broadcast))).scalars().one()
    for action in ("bsend", "bcancel"):
        calls = await press(h, AdminCb(action=action, arg=str(draft.id)).pack(), ADMIN)
        assert alerts(calls) == ["This broadcast was already sent or cancelled."], action
    async with h.app.db.session() as session:
        assert (await session.get(Broadcast, draft.id)).status == BroadcastStatus.DRAFT
    calls = await press(h, AdminCb(action="bcancel", arg=str(draft.id)).pack(), OWNER)
    async with h.app.db.session() as session:
        assert (await session.get(Broadcast, draft.id)).status == BroadcastStatus.CANCELLED
