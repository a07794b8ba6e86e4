"""Private-bot mode: ALLOWED_USERS (ids and @usernames), owners, and one-person /invite links;
everyone else gets one polite refusal and nothing else."""

import pytest
from aiogram.methods import AnswerCallbackQuery, SendMessage

from tests.conftest import make_settings, start_harness, stop_harness
from tests.fakes import BOT_USERNAME, callback_update, message_update, user

OWNER = user(1, first_name="Olga", username="olga")
ANN = user(1001, username="ann")  # allowed by id
BOB = user(2002, first_name="Bob", username="BobTheBuilder")  # allowed by @username, any case
CARL = user(3003, first_name="Carl", username="carl")
DORA = user(4004, first_name="Dora", username=None, language_code="ru")
REFUSAL = "Sorry, this is a private bot: it draws for its owner's friends only. If you know the owner, ask them for an invitation link."


@pytest.fixture
async def private(tmp_path):
    h = await start_harness(make_settings(tmp_path, admin_ids=[1], allowed_users="1001, @bobthebuilder"))
    try:
        yield h
    finally:
        await stop_harness(h)


def texts_to(h, who):
    return [m.text for m in h.session.of(SendMessage) if m.chat_id == who.id]


async def test_allowed_users_and_the_owner_draw_others_get_one_refusal(private):
    for who in (OWNER, ANN, BOB):
        await private.feed(message_update("a cat", from_user=who))
    jobs = await private.wait_jobs_settled()
    assert sorted(j.user_id for j in jobs) == [1, 1001, 2002]

    for text in ("a cat", "/start", "/help", "please?"):
        await private.feed(message_update(text, from_user=CARL))
    assert texts_to(private, CARL) == [REFUSAL]  # once, whatever Carl sends
    await private.feed(callback_update("set:model:kandinsky-2.2", from_user=CARL))
    assert private.session.of(AnswerCallbackQuery)[-1].text == REFUSAL
    assert len(await private.jobs()) == 3


async def test_an_invite_opens_the_bot_to_one_person(private):
    await private.feed(message_update("/invite", from_user=OWNER))
    reply = texts_to(private, OWNER)[-1]
    assert reply.startswith("🎟 An invitation for one person (it works once):")
    link = reply.splitlines()[-1]
    assert link.startswith(f"https://t.me/{BOT_USERNAME}?start=inv_")
    payload = link.split("?start=", 1)[1]

    await private.feed(message_update(f"/start {payload}", from_user=DORA))
    assert texts_to(private, DORA)[0] == "🎟 Добро пожаловать! Приглашение сработало: бот теперь открыт для вас."
    assert texts_to(private, DORA)[1].startswith("Привет, Dora!")
    await private.feed(message_update("кот", from_user=DORA))
    [job] = await private.wait_jobs_settled()
    assert job.user_id == DORA.id

    await private.feed(message_update(f"/start {payload}", from_user=CARL))  # the same link again
    assert texts_to(private, CARL) == [
        "Sorry, this invitation link has already been used or is not valid. Ask the bot's owner for a new one."
    ]
    await private.feed(message_update("a cat", from_user=CARL))
    assert len(texts_to(private, CARL)) == 1 and len(await private.jobs()) == 1


async def test_only_owners_create_invites(private):
    await private.feed(message_update("/invite", from_user=ANN))  # allowed, but not an owner
    assert texts_to(private, ANN)[-1] == "I don't know this command. /help lists what I can do."


async def test_an_open_bot_lets_everyone_in(harness):
    await harness.feed(message_update("a cat", from_user=CARL))
    [job] = await harness.wait_jobs_settled()
    assert job.user_id == CARL.id and REFUSAL not in texts_to(harness, CARL)


def test_allowed_users_are_checked_at_start(tmp_path):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="neither a numeric user id nor a @username"):
        make_settings(tmp_path, allowed_users="123, not a name!")
