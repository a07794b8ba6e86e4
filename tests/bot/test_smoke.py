from aiogram.methods import SendMessage, SendPhoto

from tests.fakes import message_update


async def test_start_and_prompt(harness):
    await harness.feed(message_update("/start"))
    assert "Hi, Ann!" in harness.session.of(SendMessage)[0].text
    await harness.feed(message_update("a red fox in the snow"))
    jobs = await harness.wait_jobs_settled()
    assert [j.status for j in jobs] == ["done"]
    photo = harness.session.of(SendPhoto)[0]
    assert "a red fox in the snow" in photo.caption
