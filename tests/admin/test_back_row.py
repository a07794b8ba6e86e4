"""« Back sits on a row of its own in every submenu: /settings sections and every admin screen."""

from aiogram.methods import EditMessageText, SendMessage

from handlers.admin.common import AdminCb
from tests.admin.conftest import OWNER, USER, press, say
from tests.fakes import buttons


def rows(markup):
    return [[b.text for b in row] for row in markup.inline_keyboard]


def assert_back_alone(markup, back):
    found = [row for row in rows(markup) if any(back in text for text in row)]
    assert found == [[back]] and rows(markup)[-1] == [back], rows(markup)


async def test_settings_sections(harness):
    await say(harness, "/settings", USER)
    for section in ("model", "editing", "ratio", "style", "count", "neg", "lang"):  # every section of the menu
        await press(harness, f"set:{section}:", USER)
        assert_back_alone(harness.session.of(EditMessageText)[-1].reply_markup, "« Back")
    await press(harness, "lang:ru", USER)
    await press(harness, "set:ratio:", USER)
    assert_back_alone(harness.session.of(EditMessageText)[-1].reply_markup, "« Назад")


async def test_admin_screens(harness):
    await say(harness, "/admin", OWNER)
    for action in ("stats", "queue", "limits", "models", "audit"):
        await press(harness, AdminCb(action=action).pack(), OWNER)
        edit = harness.session.of(EditMessageText)[-1]
        assert_back_alone(edit.reply_markup, "« Panel")
    await say(harness, "/start", USER)
    await say(harness, f"/user {USER.id}", OWNER)
    assert_back_alone(harness.session.of(SendMessage)[-1].reply_markup, "« Panel")
