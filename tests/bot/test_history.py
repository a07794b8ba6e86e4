"""/history: the user's own jobs, newest first, five a page, with Show and Again buttons."""

from aiogram.methods import EditMessageText, SendMediaGroup, SendMessage, SendPhoto
from aiogram.methods.answer_callback_query import AnswerCallbackQuery

from tests.fakes import buttons, callback_update, message_update, user

ANN = user(1001)
BOB = user(2002, first_name="Bob", username="bob")


async def draw(harness, prompts, who=ANN):
    for prompt in prompts:
        await harness.feed(message_update(prompt, from_user=who))
        await harness.wait_jobs_settled()


async def test_pages_of_own_jobs_newest_first(harness):
    await draw(harness, [f"ann picture {i}" for i in range(1, 8)])  # 7 jobs: two pages
    await draw(harness, ["bob's secret cat"], who=BOB)

    await harness.feed(message_update("/history", from_user=ANN))
    first = harness.session.of(SendMessage)[-1]
    assert first.text.startswith("<b>Your pictures</b> (page 1 of 2), newest first:")
    lines = [line for line in first.text.splitlines() if line[:1].isdigit()]
    assert [line.split(" ", 2)[2] for line in lines] == [f"ann picture {i}" for i in (7, 6, 5, 4, 3)]
    assert "bob" not in first.text
    labels = [text for text, _ in buttons(first.reply_markup)]
    assert labels == ["🖼 1", "🔁 1", "🖼 2", "🔁 2", "🖼 3", "🔁 3", "🖼 4", "🔁 4", "🖼 5", "🔁 5", "Older »"]

    older = dict(buttons(first.reply_markup))["Older »"]
    await harness.feed(callback_update(older, from_user=ANN))
    second = harness.session.of(EditMessageText)[-1]
    assert second.text.startswith("<b>Your pictures</b> (page 2 of 2)")
    assert [line.split(" ", 2)[2] for line in second.text.splitlines() if line[:1].isdigit()] == ["ann picture 2", "ann picture 1"]
    assert [text for text, _ in buttons(second.reply_markup)][-1] == "« Newer"

    await harness.feed(message_update("/history", from_user=BOB))
    bob = harness.session.of(SendMessage)[-1].text
    assert "bob's secret cat" in bob and "ann picture" not in bob and "(page 1 of 1)" in bob


async def test_show_resends_the_pictures_and_again_runs_the_job_with_a_new_seed(harness):
    await draw(harness, ["a lighthouse --seed 5"])
    await harness.feed(message_update("/history", from_user=ANN))
    keyboard = dict(buttons(harness.session.of(SendMessage)[-1].reply_markup))
    sent_before = harness.session.of(SendPhoto)[-1]

    await harness.feed(callback_update(keyboard["🖼 1"], from_user=ANN))
    again_photo = harness.session.of(SendPhoto)[-1]
    [job] = await harness.jobs()
    assert again_photo.photo == job.result_file_ids[0]  # Telegram's copy, nothing uploaded again
    assert again_photo.caption == sent_before.caption

    await harness.feed(callback_update(keyboard["🔁 1"], from_user=ANN))
    first, second = await harness.wait_jobs_settled()
    assert second.params["prompt"] == "a lighthouse" and second.model == first.model
    assert second.params["seed"] != 5 and second.status == "done"


async def test_another_users_history_buttons_do_nothing(harness):
    await draw(harness, ["ann's dog"])
    await harness.feed(message_update("/history", from_user=ANN))
    keyboard = dict(buttons(harness.session.of(SendMessage)[-1].reply_markup))
    photos = len(harness.session.of(SendPhoto))
    for label in ("🖼 1", "🔁 1"):
        await harness.feed(callback_update(keyboard[label], from_user=BOB))  # a forwarded or forged button
        assert harness.session.of(AnswerCallbackQuery)[-1].text == "This button is no longer valid."
    assert len(harness.session.of(SendPhoto)) == photos and len(await harness.jobs()) == 1


async def test_albums_and_an_empty_history_in_russian(harness):
    ru = user(3003, language_code="ru", first_name="Иван", username=None)
    await harness.feed(message_update("/history", from_user=ru))
    assert harness.session.of(SendMessage)[-1].text == "У вас пока нет картинок. Пришлите описание — нарисую."
    await draw(harness, ["два кота --n 2"], who=ru)
    await harness.feed(message_update("/history", from_user=ru))
    keyboard = dict(buttons(harness.session.of(SendMessage)[-1].reply_markup))
    await harness.feed(callback_update(keyboard["🖼 1"], from_user=ru))
    album = harness.session.of(SendMediaGroup)[-1]
    assert len(album.media) == 2 and album.media[0].caption.startswith("два кота")
