"""Admin commands and buttons under odd or hostile input (issue 14): nothing raises, nothing leaks."""

from __future__ import annotations

from aiogram.methods import SendMessage
from sqlalchemy import select

from handlers.admin.common import BroadcastCb, LimitCb, parse_id, parse_int
from storage.admin_models import Broadcast, BroadcastStatus
from tests.admin.conftest import ADMIN, ADMIN_ID, EXPIRED, OWNER, USER, alerts, press, say
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
    # Forged buttons: the typed callback data of no admin button parses them.
    for data in (
        "adm:qcancel:²", "adm:qcancel:99999999999999999999", "adm:qcancel:0", "adm:bsend:²", "adm:bcancel:٣",
        "adm:bsend:99999999999999999999", "adm:ban:²", "adm:ban:99999999999999999999", "adm:grant:--5",
        "adm:limit:user:²", "adm:limit:daily:٣", "adm:limit:weekly:5", "adm:mload:", "adm:nosuch",
    ):  # fmt: skip
        calls = await press(h, data, OWNER)
        assert alerts(calls) == [EXPIRED], data
        assert not [c for c in calls if isinstance(c, SendMessage) and GENERIC_ERROR in c.text], data
    for button in (LimitCb(name="user", value=101), LimitCb(name="user", value=None), LimitCb(name="queue", value=0)):
        calls = await press(h, button.pack(), OWNER)  # parses, but out of range: no preset carries it
        assert alerts(calls) == ["This button is no longer valid."], button


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
        calls = await press(h, BroadcastCb(action=action, broadcast_id=draft.id).pack(), ADMIN)
        assert alerts(calls) == ["This broadcast was already sent or cancelled."], action
    async with h.app.db.session() as session:
        assert (await session.get(Broadcast, draft.id)).status == BroadcastStatus.DRAFT
    calls = await press(h, BroadcastCb(action="bcancel", broadcast_id=draft.id).pack(), OWNER)
    async with h.app.db.session() as session:
        assert (await session.get(Broadcast, draft.id)).status == BroadcastStatus.CANCELLED
