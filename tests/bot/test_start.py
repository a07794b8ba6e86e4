from aiogram.methods import SendMessage, SetMyCommands
from aiogram.types import ReplyKeyboardMarkup

from tests.fakes import callback_update, message_update, user


async def test_start_greets_in_english_with_main_keyboard(harness):
    await harness.feed(message_update("/start", from_user=user(language_code="en-GB")))
    reply = harness.session.of(SendMessage)[-1]
    assert reply.text.startswith("Hi, Ann!")
    assert isinstance(reply.reply_markup, ReplyKeyboardMarkup)
    labels = [b.text for row in reply.reply_markup.keyboard for b in row]
    assert labels == ["⚙️ Settings", "❓ Help", "✖️ Cancel"]


async def test_start_greets_in_russian(harness):
    await harness.feed(message_update("/start", from_user=user(user_id=7, language_code="ru", first_name="Иван")))
    reply = harness.session.of(SendMessage)[-1]
    assert reply.text.startswith("Привет, Иван!")
    labels = [b.text for row in reply.reply_markup.keyboard for b in row]
    assert "⚙️ Настройки" in labels


async def test_unknown_language_falls_back_to_english(harness):
    await harness.feed(message_update("/start", from_user=user(user_id=8, language_code="de")))
    assert harness.session.of(SendMessage)[-1].text.startswith("Hi,")


async def test_name_is_html_escaped(harness):
    await harness.feed(message_update("/start", from_user=user(user_id=9, first_name="<b>x</b>")))
    assert "&lt;b&gt;x&lt;/b&gt;" in harness.session.of(SendMessage)[-1].text


async def test_help_lists_every_command_in_both_languages(harness):
    await harness.feed(message_update("/help"))
    english = harness.session.of(SendMessage)[-1].text
    await harness.feed(message_update("/help", from_user=user(user_id=2, language_code="ru")))
    russian = harness.session.of(SendMessage)[-1].text
    for command in ("/start", "/help", "/settings", "/language", "/cancel"):
        assert command in english and command in russian
    assert english != russian


async def test_help_button_from_the_reply_keyboard(harness):
    await harness.feed(message_update("❓ Help"))
    assert "/settings" in harness.session.of(SendMessage)[-1].text
    await harness.feed(message_update("❓ Помощь"))
    assert "/settings" in harness.session.of(SendMessage)[-1].text


async def test_language_switch_persists(harness):
    await harness.feed(message_update("/language"))
    choose = harness.session.of(SendMessage)[-1]
    assert [b.callback_data for row in choose.reply_markup.inline_keyboard for b in row] == ["lang:en", "lang:ru"]
    await harness.feed(callback_update("lang:ru"))
    assert harness.session.of(SendMessage)[-1].text == "Язык: русский."
    await harness.feed(message_update("/start"))  # Telegram still says "en"; the choice wins
    assert harness.session.of(SendMessage)[-1].text.startswith("Привет")


async def test_command_menu_registered_in_both_languages(harness):
    calls = harness.session.of(SetMyCommands)
    by_language = {c.language_code: [cmd.command for cmd in c.commands] for c in calls}
    assert set(by_language) == {None, "ru"}
    assert by_language[None] == [
        "start", "help", "settings", "language", "cancel",
        "restyle", "restyle_shapes", "style", "fuse", "mix", "variations",  # image editing
        "face", "forgetface",
        "history",
    ]
    russian = next(c for c in calls if c.language_code == "ru")
    assert russian.commands[0].description == "Начало и приветствие"


async def test_help_lists_the_models_of_the_registry(harness):
    await harness.feed(message_update("/help"))
    text = harness.session.of(SendMessage)[-1].text
    lines = {line.split(":")[0]: line for line in text.splitlines() if line.startswith("• ")}
    assert set(lines) == {
        "• Kandinsky 2.2", "• Kandinsky 3.1", "• Kandinsky 3.1 Flash", "• Kandinsky 3.1 + Flash refiner"
    }
    assert "fuse" in lines["• Kandinsky 2.2"] and "fuse" not in lines["• Kandinsky 3.1"]
    assert "restyle" in lines["• Kandinsky 3.1 Flash"]  # Flash restyles photos
    assert "no negative prompt" in lines["• Kandinsky 3.1 Flash"]
    assert "no negative prompt" not in lines["• Kandinsky 3.1"]
