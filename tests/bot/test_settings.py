from aiogram.methods import AnswerCallbackQuery, EditMessageText, SendMessage

from storage.models import User
from tests.fakes import buttons, callback_update, message_update


async def stored_settings(harness, user_id=1001):
    async with harness.app.db.session() as session:
        return (await session.get(User, user_id)).settings


async def press(harness, data):
    """Press a button by its callback data on the last menu message."""
    await harness.feed(callback_update(data))


async def test_settings_menu_shows_current_values(harness):
    await harness.feed(message_update("/settings"))
    menu = harness.session.of(SendMessage)[-1]
    assert "Model: Kandinsky 3.1" in menu.text
    assert "Aspect ratio: 1:1 (1024×1024)" in menu.text
    data = [d for _, d in buttons(menu.reply_markup)]
    assert data == [
        "set:model:", "set:ratio:", "set:style:", "set:neg:", "set:beautify:on", "set:count:", "set:editing:", "set:lang:",
        "set:close:",
    ]


async def test_settings_button_on_the_reply_keyboard(harness):
    await harness.feed(message_update("⚙️ Settings"))
    assert "Model:" in harness.session.of(SendMessage)[-1].text


async def test_model_submenu_marks_current_and_switches(harness):
    await harness.feed(message_update("/settings"))
    await press(harness, "set:model:")
    submenu = harness.session.of(EditMessageText)[-1]
    labels = [t for t, _ in buttons(submenu.reply_markup)]
    assert "✅ Kandinsky 3.1" in labels and "Kandinsky 2.2" in labels and "Kandinsky 3.1 + Flash refiner" in labels
    await press(harness, "set:model:kandinsky-3.1-flash")
    menu = harness.session.of(EditMessageText)[-1]
    assert "Model: Kandinsky 3.1 Flash" in menu.text
    assert (await stored_settings(harness)).model == "kandinsky-3.1-flash"


async def test_each_setting_changes_and_persists(harness):
    await press(harness, "set:ratio:16x9")
    await press(harness, "set:style:ANIME")
    await press(harness, "set:count:4")
    await press(harness, "set:beautify:on")
    settings = await stored_settings(harness)
    assert (settings.aspect_ratio, settings.style, settings.num_images, settings.beautify) == ("16:9", "ANIME", 4, True)
    menu = harness.session.of(EditMessageText)[-1]
    assert "Aspect ratio: 16:9 (1024×576)" in menu.text and "Style: Anime" in menu.text
    assert "Images per request: 4" in menu.text and "Prompt beautification: on" in menu.text
    await press(harness, "set:beautify:off")
    assert (await stored_settings(harness)).beautify is False


async def test_negative_prompt_flow_set_and_clear(harness):
    await press(harness, "set:neg:")
    assert "Negative prompt: none" in harness.session.of(EditMessageText)[-1].text
    await press(harness, "set:neg:set")
    assert "Send the negative prompt" in harness.session.of(SendMessage)[-1].text
    await harness.feed(message_update("blurry, <watermark>"))
    assert harness.session.of(SendMessage)[-1].text == "Negative prompt saved: blurry, &lt;watermark&gt;"
    assert (await stored_settings(harness)).negative_prompt == "blurry, <watermark>"
    # The next text is a prompt again, not a negative prompt.
    await harness.feed(message_update("a cat"))
    assert (await harness.wait_jobs_settled())[0].params["negative_prompt"] == "blurry, <watermark>"
    await press(harness, "set:neg:clear")
    assert (await stored_settings(harness)).negative_prompt is None


async def test_negative_prompt_too_long_keeps_waiting(harness):
    await press(harness, "set:neg:set")
    await harness.feed(message_update("x" * 1001))
    assert "the limit is 1,000" in harness.session.of(SendMessage)[-1].text
    await harness.feed(message_update("low quality"))
    assert (await stored_settings(harness)).negative_prompt == "low quality"
    assert await harness.jobs() == []


async def test_negative_prompt_flow_left_with_cancel(harness):
    await press(harness, "set:neg:set")
    await harness.feed(message_update("/cancel"))
    assert harness.session.of(SendMessage)[-1].text == "Left the current step."
    await harness.feed(message_update("a cat"))
    await harness.wait_jobs_settled()
    assert (await stored_settings(harness)).negative_prompt is None


async def test_forged_setting_value_changes_nothing(harness):
    await harness.feed(message_update("/start"))
    for data in (
        "set:model:stable-diffusion", "set:count:9", "set:ratio:21x9", "set:style:../../etc", "set:bogus:1",
        "set:count:0", "set:count:²", "set:beautify:maybe", "set:seed:set", "set:lang:de", "set:menu:x",
        "set:model:kandinsky-3.1-inpainting",  # a model, but not one /settings offers
    ):  # fmt: skip
        await press(harness, data)
        answer = harness.session.of(AnswerCallbackQuery)[-1]
        assert answer.text == "This button is no longer valid." and answer.show_alert
    settings = await stored_settings(harness)
    assert (settings.model, settings.num_images, settings.aspect_ratio, settings.style) == (
        "kandinsky-3.1", 1, "1:1", "DEFAULT"
    )


async def test_back_and_close(harness):
    await press(harness, "set:style:")
    await press(harness, "set:menu:")
    assert "Settings" in harness.session.of(EditMessageText)[-1].text
    await press(harness, "set:close:")
    assert harness.session.calls[-2].__class__.__name__ == "DeleteMessage"


async def test_the_settings_message_shows_the_new_negative_prompt(harness):
    from aiogram.methods import EditMessageText, SendMessage

    from tests.fakes import callback_update, message_update

    await harness.feed(message_update("/settings"))
    menu = harness.session.of(SendMessage)[-1]
    menu_message = harness.session._message(menu.chat_id, text=menu.text)  # noqa: SLF001 - the message the bot sent
    await harness.feed(callback_update("set:neg:set", message=menu_message))
    await harness.feed(message_update("blur, text"))
    edit = harness.session.of(EditMessageText)[-1]
    assert edit.message_id == menu_message.message_id and "Negative prompt: blur, text" in edit.text
    assert harness.session.of(SendMessage)[-1].text == "Negative prompt saved: blur, text"


async def test_language_inside_settings(harness):
    from aiogram.methods import EditMessageText, SendMessage

    from tests.fakes import buttons, callback_update, message_update

    await harness.feed(message_update("/settings"))
    assert ("🌐 Language", "set:lang:") in buttons(harness.session.of(SendMessage)[-1].reply_markup)
    await harness.feed(callback_update("set:lang:"))
    choices = buttons(harness.session.of(EditMessageText)[-1].reply_markup)
    assert choices == [("✅ 🇬🇧 English", "set:lang:en"), ("🇷🇺 Русский", "set:lang:ru"), ("« Back", "set:menu:")]
    await harness.feed(callback_update("set:lang:ru"))
    menu = harness.session.of(EditMessageText)[-1]
    assert menu.text.startswith("<b>Настройки</b>") and ("🌐 Язык", "set:lang:") in buttons(menu.reply_markup)
    said = harness.session.of(SendMessage)[-1]
    assert said.text == "Язык: русский." and said.reply_markup.keyboard[0][0].text == "⚙️ Настройки"


def test_every_settings_button_parses_with_one_factory():
    """The settings factories share the prefix "set" (the buttons pack as the untyped ones did):
    each button of the menu and of every section must parse with exactly one of them."""
    from bot.i18n import translator
    from bot.keyboards import (
        BeautifyCb, CountChoiceCb, LanguageChoiceCb, ModelChoiceCb, RatioChoiceCb, SettingsActionCb, SettingsCb,
        SettingsSection, StyleChoiceCb, settings_menu, settings_section,
    )  # fmt: skip

    factories = (
        SettingsCb, ModelChoiceCb, RatioChoiceCb, StyleChoiceCb, CountChoiceCb, BeautifyCb, LanguageChoiceCb,
        SettingsActionCb,
    )  # fmt: skip
    settings = _settings()  # with a negative prompt and a fixed seed: their buttons show
    markups = [settings_menu(translator(), "en", settings)]
    markups += [settings_section(translator(), "en", section, settings) for section in SettingsSection]
    data = {b.callback_data for markup in markups for row in markup.inline_keyboard for b in row}
    assert {"set:count:4", "set:ratio:16x9", "set:lang:ru", "set:neg:set", "set:neg:clear", "set:seed:clear"} <= data

    def parses(factory, value):
        try:
            factory.unpack(value)
            return True
        except (TypeError, ValueError):
            return False

    for value in data:
        assert sum(parses(factory, value) for factory in factories) == 1, value


def _settings():
    from storage.models import UserSettings

    return UserSettings(
        model="kandinsky-3.1", aspect_ratio="1:1", style="DEFAULT", negative_prompt="blurry", beautify=True,
        num_images=1, fixed_seed=42, editing_model="kandinsky-2.2",
    )  # fmt: skip
