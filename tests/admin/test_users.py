"""Grants, bans, the user card and the audit log."""

from __future__ import annotations

from datetime import datetime, timezone

from aiogram.methods import EditMessageText, SendMessage
from aiogram.types import MessageOriginHiddenUser, MessageOriginUser

from handlers.admin.common import AdminCb, UserCb
from storage.models import JobStatus
from tests.admin.conftest import (
    ADMIN,
    ADMIN_ID,
    OTHER,
    OWNER,
    OWNER_ID,
    USER,
    USER_ID,
    audit,
    get_user,
    make_admin,
    press,
    say,
)
from tests.fakes import buttons, message_update

UNKNOWN = "I don't know this command. /help lists what I can do."


async def test_grant_and_revoke(harness):
    h = harness
    await make_admin(h)
    # The new admin reaches admin commands, but cannot grant or revoke, and an owner is never revoked.
    assert "Admin panel" in (await say(h, "/admin", ADMIN))[-1]
    await say(h, "/start", USER)
    assert (await say(h, f"/grant {USER_ID}", ADMIN)) == ["Only owners (ADMIN_IDS) can do this."]
    assert (await say(h, f"/revoke {OWNER_ID}", ADMIN)) == ["Only owners (ADMIN_IDS) can do this."]
    calls = await press(h, UserCb(action="revoke", user_id=OWNER_ID).pack(), ADMIN)
    assert [c.text for c in calls if isinstance(c, SendMessage)] == ["Only owners (ADMIN_IDS) can do this."]
    assert (await say(h, f"/revoke {OWNER_ID}", OWNER))[-1].endswith("cannot be revoked.")
    assert "Admin panel" in (await say(h, "/admin", OWNER))[-1]
    # by @username; twice is reported, not an error
    assert (await say(h, "/grant @adam", OWNER))[-1] == "@adam (<code>8</code>) is an admin already."
    assert (await say(h, f"/revoke {ADMIN_ID}", OWNER))[-1] == "@adam (<code>8</code>) is no longer an admin."
    assert (await say(h, "/admin", ADMIN)) == [UNKNOWN]
    # the user card's buttons do the same for owners
    await say(h, f"/user {ADMIN_ID}", OWNER)
    labels = dict(buttons(h.session.of(SendMessage)[-1].reply_markup))
    assert "⭐ Make admin" in labels
    await press(h, labels["⭐ Make admin"], OWNER)
    assert "is an admin now" in h.session.of(SendMessage)[-1].text
    assert "Admin panel" in (await say(h, "/admin", ADMIN))[-1]
    actions = [(e.admin_id, e.action, e.target) for e in await audit(h)]
    assert (OWNER_ID, "grant", str(ADMIN_ID)) in actions and (OWNER_ID, "revoke", str(ADMIN_ID)) in actions
    assert [a for a in actions if a[0] == ADMIN_ID] == []  # refused attempts change nothing


async def test_ban_cancels_jobs_and_stops_generation_unban_restores(harness):
    h = harness
    h.backend.step_seconds = 0.2  # 25 steps: the first job is still running when the ban comes
    await make_admin(h)
    await say(h, "/start", USER)
    await say(h, "a red fox", USER)
    await say(h, "a blue fox", USER)
    await h.wait_for(lambda: len(h.backend.calls) == 1)
    texts = await say(h, f"/ban {USER_ID} spam", ADMIN)
    assert texts[-1] == "🚫 @ann (<code>1001</code>) is banned. Cancelled: 1 queued, 1 running."
    jobs = await h.wait_jobs_settled()
    assert [j.status for j in jobs] == [JobStatus.CANCELLED, JobStatus.CANCELLED]
    # the one notice was sent at once; after that the user is ignored
    assert "You have been blocked from using this bot." in [
        c.text for c in h.session.of(SendMessage) if c.chat_id == USER_ID
    ]
    h.session.clear()
    await say(h, "a green fox", USER)
    await say(h, "/start", USER)
    assert h.session.calls == []
    assert len(await h.jobs()) == 2
    # admins and owners cannot be banned
    assert (await say(h, f"/ban {OWNER_ID}", ADMIN))[-1].startswith("Admins cannot be banned")
    assert (await say(h, f"/ban {ADMIN_ID}", OWNER))[-1].startswith("Admins cannot be banned")
    # unban restores
    assert (await say(h, "/unban @ann", ADMIN))[-1] == "✅ @ann (<code>1001</code>) is unbanned."
    h.backend.step_seconds = 0.0
    await say(h, "a green fox", USER)
    jobs = await h.wait_jobs_settled()
    assert jobs[-1].status == JobStatus.DONE
    entries = [(e.admin_id, e.action, e.target, e.details) for e in await audit(h)]
    assert (ADMIN_ID, "ban", str(USER_ID), "spam") in entries
    assert (ADMIN_ID, "unban", str(USER_ID), None) in entries


async def test_ban_by_reply_to_a_forwarded_message(harness):
    h = harness
    await say(h, "/start", OWNER)
    await say(h, "/start", OTHER)
    forwarded = message_update("spam spam", from_user=OWNER).message.model_copy(
        update={"forward_origin": MessageOriginUser(date=datetime.now(timezone.utc), sender_user=OTHER)}
    )
    texts = await say(h, "/ban", OWNER, reply_to_message=forwarded)
    assert texts[-1].startswith("🚫 @bob (<code>1002</code>) is banned.")
    assert (await get_user(h, OTHER.id)).banned
    hidden = forwarded.model_copy(
        update={"forward_origin": MessageOriginHiddenUser(date=datetime.now(timezone.utc), sender_user_name="X")}
    )
    texts = await say(h, "/unban", OWNER, reply_to_message=hidden)
    assert "hides their account" in texts[-1]
    assert (await get_user(h, OTHER.id)).banned
    texts = await say(h, "/unban", OWNER, reply_to_message=forwarded)
    assert texts[-1] == "✅ @bob (<code>1002</code>) is unbanned."
    assert not (await get_user(h, OTHER.id)).banned
    assert (await say(h, "/ban", OWNER))[-1].startswith("Whom?")
    assert (await say(h, "/ban 99999", OWNER))[-1].startswith("No such user")


async def test_user_card_buttons_and_audit(harness):
    h = harness
    await say(h, "/start", OWNER)
    await say(h, "/start", USER)
    await say(h, "a <b>tagged</b> fox", USER)
    await h.wait_jobs_settled()
    texts = await say(h, f"/user {USER_ID}", OWNER)
    card = texts[-1]
    assert "@ann (<code>1001</code>)" in card and "Banned: no" in card
    assert "&lt;b&gt;tagged&lt;/b&gt;" in card  # user text is escaped in HTML replies
    assert "done: 1" in card
    labels = dict(buttons(h.session.of(SendMessage)[-1].reply_markup))
    await press(h, labels["🚫 Ban"], OWNER)
    assert (await get_user(h, USER_ID)).banned
    edited = h.session.of(EditMessageText)[-1]
    assert "Banned: yes" in edited.text and "✅ Unban" in dict(buttons(edited.reply_markup))
    # the panel's User button asks for the user, then shows the card
    await press(h, AdminCb(action="user").pack(), OWNER)
    assert h.session.texts()[-1].startswith("Send the user's id")
    texts = await say(h, "@ann", OWNER)
    assert "Banned: yes" in texts[-1]
    texts = await say(h, "/audit", OWNER)
    assert "user_view" in texts[-1] and "<b>ban</b>" in texts[-1] and "@olga" in texts[-1]


async def test_admin_command_menu_only_in_admin_chats(harness):
    """Admin commands appear in the menus of admin chats only: set on grant, removed on revoke."""
    from aiogram.methods import DeleteMyCommands, SetMyCommands

    h = harness
    menus = {
        c.scope.chat_id: [b.command for b in c.commands] for c in h.session.of(SetMyCommands) if c.scope.type == "chat"
    }
    assert set(menus) == {OWNER_ID}  # set on start-up for the owner
    assert {"admin", "stats", "grant", "revoke", "start"} <= set(menus[OWNER_ID])
    assert all(
        "admin" not in [b.command for b in c.commands] for c in h.session.of(SetMyCommands) if c.scope.type == "default"
    )
    await make_admin(h)
    menu = [c for c in h.session.of(SetMyCommands) if c.scope.type == "chat" and c.scope.chat_id == ADMIN_ID][-1]
    assert "broadcast" in [b.command for b in menu.commands] and "grant" not in [b.command for b in menu.commands]
    await say(h, f"/revoke {ADMIN_ID}", OWNER)
    assert [c.scope.chat_id for c in h.session.of(DeleteMyCommands)] == [ADMIN_ID]
