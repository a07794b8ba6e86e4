from aiogram.methods import SendMessage

from tests.admin.conftest import OWNER, say
from tests.fakes import buttons


async def test_owner_opens_the_panel(harness):
    texts = await say(harness, "/admin", OWNER)
    assert "Admin panel" in texts[-1]
    labels = [t for t, _ in buttons(harness.session.of(SendMessage)[-1].reply_markup)]
    assert "📊 Statistics" in labels
