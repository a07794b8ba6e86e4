"""Groups (issue 14): only messages addressed to the bot, new or edited, are answered or stored."""

from __future__ import annotations

from aiogram.methods import AnswerCallbackQuery, SendMessage
from aiogram.types import Chat, Message, User as TgUser

from storage.models import User
from tests.fakes import BOT_ID, callback_update, message_update, now, user

GROUP = -100_777
MEMBER = user(6001, first_name="Member")
ANONYMOUS_ADMIN = TgUser(id=1087968824, is_bot=True, first_name="Group", username="GroupAnonymousBot")


async def _user_row(harness, user_id: int) -> User | None:
    async with harness.app.db.session() as session:
        return await session.get(User, user_id)


async def test_members_who_do_not_address_the_bot_leave_no_trace(harness):
    for update in (
        message_update("a cat", from_user=MEMBER, chat_type="group", chat_id=GROUP),
        message_update("/help", from_user=MEMBER, chat_type="supergroup", chat_id=GROUP),
        message_update("a cat, edited", from_user=MEMBER, chat_type="group", chat_id=GROUP, edited=True),
    ):
        await harness.feed(update)
    assert harness.session.calls == [c for c in harness.session.calls if not isinstance(c, SendMessage)]
    assert await _user_row(harness, MEMBER.id) is None
    assert await harness.jobs() == []


async def test_an_edited_message_needs_the_mention_too(harness):
    await harness.feed(message_update("@kandinsky_test_bot /help", from_user=MEMBER, chat_type="group", chat_id=GROUP))
    answered = len(harness.session.of(SendMessage))
    assert answered == 1 and await _user_row(harness, MEMBER.id) is not None
    await harness.feed(message_update("/help", from_user=MEMBER, chat_type="group", chat_id=GROUP, edited=True))
    assert len(harness.session.of(SendMessage)) == answered


async def test_a_button_pressed_by_an_anonymous_group_admin_is_acknowledged_quietly(harness):
    message = Message(
        message_id=5, date=now(), chat=Chat(id=GROUP, type="supergroup"),
        from_user=TgUser(id=BOT_ID, is_bot=True, first_name="Kandinsky"), text="…",
    )  # fmt: skip
    for data in ("cancel:1", "adm:panel:", "set:model", "res:again:1"):
        await harness.feed(callback_update(data, from_user=ANONYMOUS_ADMIN, message=message))
    assert not harness.session.of(SendMessage)  # no "something went wrong"
    assert len(harness.session.of(AnswerCallbackQuery)) == 4
    assert await _user_row(harness, ANONYMOUS_ADMIN.id) is None
