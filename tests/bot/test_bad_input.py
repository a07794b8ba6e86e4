"""Every bad input gets a short, clear answer (or is ignored), never an unhandled exception."""

from aiogram.methods import AnswerCallbackQuery, SendMessage
from aiogram.types import Document, Voice
from sqlalchemy import update

from storage.models import User
from tests.fakes import callback_update, message_update, sticker_update, user


def last_text(harness):
    return harness.session.of(SendMessage)[-1].text


async def test_prompt_over_1000_characters(harness):
    await harness.feed(message_update("a" * 1001))
    assert last_text(harness) == "That prompt is 1,001 characters long; the limit is 1,000. Please shorten it."
    assert await harness.jobs() == []


async def test_prompt_of_exactly_1000_characters_is_accepted(harness):
    await harness.feed(message_update("b" * 1000))
    assert len(await harness.jobs()) == 1


async def test_whitespace_only_message(harness):
    await harness.feed(message_update("   \n\t "))
    assert last_text(harness) == "Send me a description of the picture in words."
    assert await harness.jobs() == []


async def test_emoji_only_message(harness):
    await harness.feed(message_update("🦊🌲❄️ 👍🏽"))
    assert last_text(harness) == "Emoji alone are hard to draw: add a few words to describe the picture."
    assert await harness.jobs() == []


async def test_emoji_with_words_in_any_language(harness):
    await harness.feed(message_update("лиса в снегу 🦊"))
    await harness.feed(message_update("雪の中の狐", from_user=user(user_id=2)))
    assert len(await harness.jobs()) == 2


async def test_sticker_voice_and_file(harness):
    await harness.feed(sticker_update())
    # The answers agree with /help: photos are understood too.
    assert last_text(harness) == (
        "Nice sticker! I draw from words and photos, not stickers: send me a description of a picture, "
        "or a photo with a caption to redraw it. /help lists everything."
    )
    await harness.feed(message_update("/help"))
    assert "A photo with a caption — I redraw it" in last_text(harness)
    await harness.feed(message_update(None, voice=Voice(file_id="v", file_unique_id="v", duration=3)))
    assert last_text(harness).startswith("I understand text and photos: send me a description of a picture")
    await harness.feed(message_update(None, document=Document(file_id="d", file_unique_id="d", file_name="a.zip")))
    # Files are taken as photos to edit (handlers.editing): a non-image file is refused as such.
    assert last_text(harness).startswith("This is not a picture I can edit")
    assert await harness.jobs() == []


async def test_edited_message(harness):
    await harness.feed(message_update("a cat", edited=True))
    assert last_text(harness) == "I don't follow edits: send the new prompt as a new message."
    assert await harness.jobs() == []


async def test_unknown_command(harness):
    await harness.feed(message_update("/frobnicate"))
    assert last_text(harness) == "I don't know this command. /help lists what I can do."
    assert await harness.jobs() == []


async def test_group_messages_are_ignored_unless_the_bot_is_mentioned(harness):
    await harness.feed(message_update("a cat", chat_type="group", chat_id=-100))
    assert harness.session.of(SendMessage) == [] and await harness.jobs() == []
    await harness.feed(message_update("@kandinsky_test_bot a cat on a roof", chat_type="group", chat_id=-100))
    [job] = await harness.wait_jobs_settled()
    assert job.params["prompt"] == "a cat on a roof" and job.chat_id == -100


async def test_unknown_and_forged_callback_data(harness):
    for data in ("hello", "res:explode:1", "res:again:notanumber", "cancel:99999", "lang:de", "hist:explode:0:0"):
        await harness.feed(callback_update(data))
        assert harness.session.of(AnswerCallbackQuery)[-1].text == "This button is no longer valid."
    assert await harness.jobs() == []


async def test_result_button_on_a_missing_job(harness):
    await harness.feed(callback_update("res:again:12345"))
    assert harness.session.of(AnswerCallbackQuery)[-1].text == "This button is no longer valid."


async def test_banned_user_gets_one_notice_then_silence(harness):
    await harness.feed(message_update("/start"))
    async with harness.app.db.session() as session:
        await session.execute(update(User).where(User.id == 1001).values(banned=True))
        await session.commit()
    harness.session.clear()
    await harness.feed(message_update("a cat"))
    assert [c.text for c in harness.session.of(SendMessage)] == ["You have been blocked from using this bot."]
    await harness.feed(message_update("another cat"))
    await harness.feed(callback_update("set:count:2"))
    assert len(harness.session.calls) == 1
    assert await harness.jobs() == []


async def test_unexpected_handler_error_is_logged_and_the_user_told(harness, caplog, monkeypatch):
    from jobs.service import JobService

    async def broken(*args, **kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(JobService, "submit", broken)
    update = message_update("a cat")
    await harness.feed(update)
    assert f"update {update.update_id} failed" in caplog.text
    assert last_text(harness) == "Something went wrong on our side. Please try again later."
    assert await harness.jobs() == []
