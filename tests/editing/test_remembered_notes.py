"""An edit made at once with the user's last choice (a captioned photo's restyle, /mix and a fusion of
two after the first answer) says which strength or weights it used and that the buttons under the
result change them: in the status message and in the result's caption, in English and Russian. An
explicit choice (a question answered, Lighter / Stronger, More photo / More text) carries no such note."""

from aiogram.methods import SendMessage, SendPhoto

from tests.editing.helpers import feed_album, photo_update
from tests.fakes import callback_update, message_update
from tests.photos import photo_bytes

STRENGTH_NOTE = "Strength: {} (remembered). 🔅 Lighter and 🔆 Stronger under the result redo it."


def status_texts(harness, since: int = 0) -> list[str]:
    """The status messages ("⏳ Queued ...") sent since call ``since``."""
    return [c.text for c in harness.session.calls[since:] if isinstance(c, SendMessage) and c.text.startswith("⏳")]


def last_caption(harness) -> str:
    return harness.session.of(SendPhoto)[-1].caption or ""


async def test_a_captioned_photo_says_which_remembered_strength_it_used(harness):
    harness.session.files["ph"] = photo_bytes("astronaut")
    await harness.feed(photo_update("ph", 512, 512, caption="a marble statue"))
    [job] = await harness.wait_jobs_settled()
    note = STRENGTH_NOTE.format("Medium")  # nothing chosen yet: the default
    assert note in status_texts(harness)[-1]
    assert last_caption(harness).endswith("\n" + note)
    # Under it: Lighter / Stronger / Keep the shapes, the usual buttons, and zoom / expand / upscale.
    labels = [b.text for row in harness.session.of(SendPhoto)[-1].reply_markup.inline_keyboard for b in row]
    assert labels[:3] == ["🔅 Lighter", "🔆 Stronger", "🧱 Keep the shapes"]
    assert "🔭 Zoom out 2x" in labels and "⬆️ Upscale x2" in labels

    # 🔆 Stronger is an explicit choice: its result has no "remembered" note ...
    since = len(harness.session.calls)
    await harness.feed(callback_update(f"res:stronger:{job.id}"))
    jobs = await harness.wait_jobs_settled()
    assert jobs[-1].params["strength"] == 0.75
    assert "(remembered)" not in status_texts(harness, since)[-1] and "(remembered)" not in last_caption(harness)
    # ... and the next captioned photo uses (and names) the strength chosen there.
    await harness.feed(photo_update("ph", 512, 512, caption="a bronze statue"))
    await harness.wait_jobs_settled()
    assert last_caption(harness).endswith("\n" + STRENGTH_NOTE.format("Strong"))

    await harness.feed(callback_update("lang:ru"))
    await harness.feed(photo_update("ph", 512, 512, caption="мраморная статуя"))
    await harness.wait_jobs_settled()
    ru = "Сила: Сильно (запомнена). 🔅 Слабее и 🔆 Сильнее под результатом переделают."
    assert ru in status_texts(harness)[-1] and last_caption(harness).endswith("\n" + ru)


async def test_a_restyle_whose_strength_was_asked_has_no_note(harness):
    harness.session.files["ph"] = photo_bytes("coffee")
    await harness.feed(message_update("/restyle"))
    await harness.feed(photo_update("ph", 512, 512))
    await harness.feed(message_update("an oil painting"))
    await harness.feed(callback_update("edit:restyle:strong"))
    [job] = await harness.wait_jobs_settled()
    assert job.params["strength"] == 0.75 and not job.params["remembered"]
    assert "(remembered)" not in last_caption(harness)
    assert all("(remembered)" not in text for text in harness.session.texts())


async def test_mix_and_fusion_name_the_remembered_weights(harness):
    for file_id, name in {"p": "chelsea", "a": "astronaut", "b": "coffee"}.items():
        harness.session.files[file_id] = photo_bytes(name)
    await harness.feed(message_update("/mix"))
    await harness.feed(photo_update("p", 451, 300, caption="a tiger"))
    await harness.feed(callback_update("edit:mix:75"))  # asked: no note
    await harness.wait_jobs_settled()
    assert "(your last choice)" not in last_caption(harness)

    since = len(harness.session.calls)
    await harness.feed(message_update("/mix"))
    await harness.feed(photo_update("p", 451, 300, caption="a lion"))  # not asked: the last answer
    jobs = await harness.wait_jobs_settled()
    note = "Photo 75% · text 25% (your last choice); the buttons under the result change it."
    assert note in status_texts(harness, since)[-1] and last_caption(harness).endswith("\n" + note)
    # 📝 More text is chosen now: no note.
    await harness.feed(callback_update(f"res:wless:{jobs[-1].id}"))
    await harness.wait_jobs_settled()
    assert "(your last choice)" not in last_caption(harness)

    await feed_album(harness, [photo_update(n, 512, 512, media_group_id="f1") for n in "ab"])
    await harness.feed(callback_update("edit:fuse:25"))
    await harness.wait_jobs_settled()
    assert "(your last choice)" not in last_caption(harness)
    await harness.feed(callback_update("lang:ru"))
    since = len(harness.session.calls)
    # With the album's caption fused in as a third part, the photos keep their 25 / 75 share.
    await feed_album(
        harness, [photo_update(n, 512, 512, media_group_id="f2", caption="гроза" if n == "a" else None) for n in "ab"]
    )
    await harness.wait_jobs_settled()
    ru = "Фото 1: 25% · фото 2: 75% (ваш прошлый выбор); кнопки под результатом его меняют."
    assert ru in status_texts(harness, since)[-1] and last_caption(harness).endswith("\n" + ru)
