"""Buttons per image under an album (🎲 N variations, 📄 N original, 📌 N seed) act on image N;
variations keep the picture's model, style and prompt where the model can; "Edit prompt" keeps the seed."""

from aiogram.methods import AnswerCallbackQuery, SendDocument, SendMessage

from generation.backend import Mode, ModelId
from tests.fakes import buttons, callback_update, message_update, user


def serve_results(harness, job):
    """What Telegram serves for the delivered pictures' file ids (the worker downloads the input)."""
    folder = harness.app.settings.results_dir / str(job.id)
    for i, file_id in enumerate(job.result_file_ids):
        harness.session.files[file_id] = (folder / f"{i}.png").read_bytes()


async def album(harness, text):
    await harness.feed(message_update(text))
    [job] = [j for j in await harness.wait_jobs_settled() if j.params.get("prompt") == text.split(" --")[0]]
    follow_up = harness.session.of(SendMessage)[-1]
    return job, dict(buttons(follow_up.reply_markup)), follow_up


async def test_each_button_acts_on_its_own_image(harness):
    job, keyboard, follow_up = await album(harness, "three foxes --n 3 --seed 100 --style anime")
    rows = [[b.text for b in row] for row in follow_up.reply_markup.inline_keyboard]
    assert rows == [
        ["🔁 Again", "✏️ Edit prompt"],
        ["🎲 1", "🎲 2", "🎲 3"],
        ["📄 1", "📄 2", "📄 3"],
        ["📌 1", "📌 2", "📌 3"],
        ["🔭 1", "🔭 2", "🔭 3"],
        ["⬆️ 1", "⬆️ 2", "⬆️ 3"],
    ]
    # 📄 2: the second PNG, named after its seed.
    await harness.feed(callback_update(keyboard["📄 2"]))
    document = harness.session.of(SendDocument)[-1]
    assert document.document.filename == f"kandinsky-{job.id}-101.png"
    assert open(document.document.path, "rb").read() == (harness.app.settings.results_dir / str(job.id) / "1.png").read_bytes()
    # 📌 3: the third picture's seed for the next pictures.
    await harness.feed(callback_update(keyboard["📌 3"]))
    assert harness.session.of(AnswerCallbackQuery)[-1].text.startswith("Seed 102 is now used")
    # 🎲 2: the second picture, redrawn by its own model with its prompt and style.
    serve_results(harness, job)
    await harness.feed(callback_update(keyboard["🎲 2"]))
    jobs = await harness.wait_jobs_settled()
    variation = jobs[-1]
    assert variation.status == "done" and variation.kind == Mode.IMG2IMG and variation.model == ModelId.K31
    assert variation.params["input_file_ids"] == [job.result_file_ids[1]]
    assert variation.params["style"] == "ANIME"
    request = harness.backend.calls[-1]
    assert request.prompt.startswith("three foxes, in anime style") and request.seed == 102  # the fixed seed of 📌 3
    assert request.images[0].tobytes() == __import__("PIL.Image", fromlist=["Image"]).open(
        harness.app.settings.results_dir / str(job.id) / "1.png"
    ).convert("RGB").tobytes()


async def test_flash_variations_stay_on_flash(harness):
    job, keyboard, _ = await album(harness, "two robots --n 2 --model flash")
    serve_results(harness, job)
    await harness.feed(callback_update(keyboard["🎲 1"]))
    jobs = await harness.wait_jobs_settled()
    # Flash redraws pictures (generation.registry): its own variations, nothing to announce.
    assert jobs[-1].model == ModelId.K31_FLASH and jobs[-1].params["input_file_ids"] == [job.result_file_ids[0]]
    assert not any("run on" in (m.text or "") for m in harness.session.of(SendMessage))


async def test_variations_of_a_mix_run_on_kandinsky_2_2_and_say_the_style_is_not_used(harness):
    from tests.editing.helpers import photo_update
    from tests.photos import photo_bytes

    harness.session.files["p"] = photo_bytes("chelsea")
    await harness.feed(callback_update("set:style:ANIME"))
    await harness.feed(message_update("/mix"))
    await harness.feed(photo_update("p", 451, 300))
    await harness.feed(message_update("a lion in the savanna"))
    await harness.feed(callback_update("edit:mix:75"))
    [mix] = await harness.wait_jobs_settled()
    assert mix.kind == Mode.MIX and mix.params["style"] == "ANIME"
    serve_results(harness, mix)
    await harness.feed(callback_update(f"res:variations:{mix.id}"))
    jobs = await harness.wait_jobs_settled()
    assert jobs[-1].kind == Mode.VARIATIONS and jobs[-1].model == ModelId.K22
    assert jobs[-1].params["input_file_ids"] == [mix.result_file_ids[0]]
    assert any("your style is not used" in (m.text or "") for m in harness.session.of(SendMessage))


async def test_edit_prompt_keeps_the_model_settings_and_seed(harness):
    await harness.feed(callback_update("set:model:kandinsky-2.2"))
    await harness.feed(callback_update("set:style:OIL_PAINTING"))
    await harness.feed(message_update("a castle --seed 4242 --ar 3:2"))
    [job] = await harness.wait_jobs_settled()
    await harness.feed(callback_update("set:model:kandinsky-3.1"))  # settings changed since: the job's count
    await harness.feed(callback_update(f"res:remix:{job.id}"))
    assert harness.session.of(SendMessage)[-1].text.startswith("✏️ Send the new prompt") and "4242" in harness.session.of(SendMessage)[-1].text
    await harness.feed(message_update("a castle in the snow"))
    first, remix = await harness.wait_jobs_settled()
    assert remix.params["prompt"] == "a castle in the snow" and remix.params["seed"] == 4242
    assert (remix.model, remix.params["style"], remix.params["aspect_ratio"]) == ("kandinsky-2.2", "OIL_PAINTING", "3:2")
    assert harness.backend.calls[-1].seed == 4242
    # The flow is over: the next text is a prompt of its own, with the settings of now.
    await harness.feed(message_update("a bridge"))
    jobs = await harness.wait_jobs_settled()
    assert jobs[-1].model == "kandinsky-3.1" and jobs[-1].params["seed"] != 4242


async def test_someone_elses_image_buttons_change_nothing(harness):
    job, keyboard, _ = await album(harness, "two cats --n 2")
    for label in ("🎲 1", "📄 2", "📌 1", "🔭 2", "⬆️ 1"):
        await harness.feed(callback_update(keyboard[label], from_user=user(2002, first_name="Bob")))
        assert harness.session.of(AnswerCallbackQuery)[-1].text == "This button is no longer valid."
    await harness.feed(callback_update(f"res:remix:{job.id}", from_user=user(2002, first_name="Bob")))
    assert harness.session.of(AnswerCallbackQuery)[-1].text == "This button is no longer valid."
    assert len(await harness.jobs()) == 1 and not harness.session.of(SendDocument)


async def test_zoom_out_and_upscale_take_their_own_image(harness):
    job, keyboard, follow_up = await album(harness, "three owls --n 3 --seed 300")
    assert "🔭 zoom out 2x · ⬆️ upscale x2 — of image 1, 2, …" in follow_up.text
    serve_results(harness, job)
    await harness.feed(callback_update(keyboard["🔭 2"]))
    await harness.feed(callback_update(keyboard["⬆️ 3"]))
    jobs = await harness.wait_jobs_settled()
    zoom, upscale = jobs[-2:]
    assert (zoom.kind, zoom.status) == (Mode.ZOOM_OUT, "done") and zoom.params["extra"]["factor"] == 2.0
    assert zoom.params["input_file_ids"] == [job.result_file_ids[1]]
    assert (upscale.kind, upscale.status) == (Mode.UPSCALE, "done") and upscale.params["extra"]["scale"] == 2
    assert upscale.params["input_file_ids"] == [job.result_file_ids[2]]
    pictures = [__import__("PIL.Image", fromlist=["Image"]).open(
        harness.app.settings.results_dir / str(job.id) / f"{i}.png").convert("RGB").tobytes() for i in (1, 2)]
    assert [request.images[0].tobytes() for request in harness.backend.calls[-2:]] == pictures
