"""The "Editing model" setting: with Kandinsky 3.1 chosen, /fuse, /mix, /variations and /style go to
the IP-Adapter and "Keep the shapes" to the HED ControlNet, through the same flows and buttons
(the dispatcher with the real bot, generation mocked by the fake backend)."""

import pytest
from aiogram.methods import EditMessageText, SendPhoto

from generation.backend import Mode, ModelId
from tests.editing.helpers import feed_album, last_buttons, last_text, photo_update
from tests.fakes import callback_update, message_update
from tests.photos import photo_bytes

IP, HED = ModelId.K31_IP_ADAPTER, ModelId.K31_CONTROLNET_HED


def put(harness, **files):
    for file_id, name in files.items():
        harness.session.files[file_id] = photo_bytes(name)


async def choose_k31(harness):
    await harness.feed(message_update("/settings"))
    await harness.feed(callback_update("set:editing:"))
    menu = harness.session.of(EditMessageText)[-1]
    buttons = [b.text for row in menu.reply_markup.inline_keyboard for b in row]
    assert "Kandinsky 2.2 (lighter)" in " ".join(buttons)
    assert any(text.startswith("✅") and "2.2" in text for text in buttons)  # the default
    await harness.feed(callback_update("set:editing:kandinsky-3.1"))
    assert "Editing model: Kandinsky 3.1 (IP-Adapter, HED ControlNet)" in harness.session.of(EditMessageText)[-1].text


async def test_settings_show_and_store_the_editing_model(harness):
    await harness.feed(message_update("/settings"))
    assert "Editing model: Kandinsky 2.2 (lighter)" in last_text(harness)
    assert ("Editing model", "set:editing:") in last_buttons(harness)
    await choose_k31(harness)
    # a value no button offers is refused
    await harness.feed(callback_update("set:editing:kandinsky-3.1-flash"))
    assert "Editing model: Kandinsky 3.1" in harness.session.of(EditMessageText)[-1].text


async def test_album_fusion_runs_on_the_ip_adapter(harness):
    await choose_k31(harness)
    put(harness, a="astronaut", b="coffee")
    await feed_album(harness, [photo_update("a", 512, 512, media_group_id="g"),
                               photo_update("b", 600, 400, media_group_id="g")])
    assert [b[1] for b in last_buttons(harness)] == ["edit:fuse:25", "edit:fuse:50", "edit:fuse:75"]
    await harness.feed(callback_update("edit:fuse:75"))
    [job] = await harness.wait_jobs_settled()
    [request] = harness.backend.calls
    assert (request.mode, request.model, len(request.images)) == (Mode.FUSE, IP, 2)
    assert request.weights == pytest.approx([0.75, 0.25])
    assert job.model == IP.value
    caption = harness.session.of(SendPhoto)[-1].caption
    assert caption.startswith("Fusion of 2 photos") and "Kandinsky 3.1 IP-Adapter" in caption


async def test_mix_variations_and_style_run_on_the_ip_adapter(harness):
    await choose_k31(harness)
    put(harness, p="chelsea", content="coffee", look="astronaut")
    await harness.feed(message_update("/mix"))
    await harness.feed(photo_update("p", 451, 300))
    await harness.feed(message_update("a tiger in the jungle"))
    await harness.feed(callback_update("edit:mix:25"))
    await harness.wait_jobs_settled()
    mix = harness.backend.calls[-1]
    assert (mix.mode, mix.model, mix.prompt) == (Mode.MIX, IP, "a tiger in the jungle")
    assert mix.weights == pytest.approx([0.25, 0.75])

    await harness.feed(message_update("/variations"))
    await harness.feed(photo_update("p", 451, 300))
    await harness.wait_jobs_settled()
    variations = harness.backend.calls[-1]
    assert (variations.mode, variations.model, variations.prompt) == (Mode.VARIATIONS, IP, "")

    await harness.feed(message_update("/style"))
    await harness.feed(photo_update("content", 600, 400))
    await harness.feed(photo_update("look", 512, 512))
    await harness.feed(callback_update("edit:style:30"))
    await harness.wait_jobs_settled()
    style = harness.backend.calls[-1]
    assert (style.mode, style.model, len(style.images)) == (Mode.STYLE, IP, 2)
    assert style.weights == pytest.approx([0.7, 0.3])


async def test_keep_the_shapes_runs_on_the_hed_controlnet_and_restyle_stays_on_the_users_model(harness):
    await choose_k31(harness)
    put(harness, ph="astronaut")
    # A captioned photo restyles at once: restyling by text is the main model's job (Kandinsky 3.1 by
    # default), not the editing model's.
    await harness.feed(photo_update("ph", 512, 512, caption="a robot"))
    [job] = await harness.wait_jobs_settled()
    restyle = harness.backend.calls[-1]
    assert (restyle.mode, restyle.model) == (Mode.IMG2IMG, ModelId.K31)
    # "Keep the shapes" under the result: the HED ControlNet, at the same strength.
    await harness.feed(callback_update(f"res:shapes:{job.id}"))
    await harness.wait_jobs_settled()
    shapes = harness.backend.calls[-1]
    assert (shapes.mode, shapes.model, shapes.prompt, shapes.strength) == (Mode.RESTYLE_DEPTH, HED, "a robot", 0.5)
    # /restyle_shapes, the text next, the strong button: the HED ControlNet too.
    await harness.feed(message_update("/restyle_shapes"))
    await harness.feed(photo_update("ph", 512, 512))
    await harness.feed(message_update("a robot"))
    await harness.feed(callback_update("edit:shapes:strong"))
    await harness.wait_jobs_settled()
    shapes = harness.backend.calls[-1]
    assert (shapes.mode, shapes.model, shapes.strength) == (Mode.RESTYLE_DEPTH, HED, 0.75)


async def test_back_to_kandinsky_22(harness):
    await choose_k31(harness)
    await harness.feed(callback_update("set:editing:kandinsky-2.2"))
    put(harness, p="astronaut")
    await harness.feed(message_update("/variations"))
    await harness.feed(photo_update("p", 512, 512))
    await harness.wait_jobs_settled()
    assert harness.backend.calls[-1].model == ModelId.K22


def test_the_caption_says_when_the_edges_came_from_canny():
    from bot.i18n import translator
    from bot.notifier import result_caption
    from jobs.params import JobOutcome, with_outcome
    from storage.models import Job

    params = dict(prompt="a robot", width=256, height=256, seed=5, input_file_ids=["ph"])
    job = Job(kind="restyle_depth", model=HED.value,
              params=with_outcome("restyle_depth", params, JobOutcome(notes=["edges-canny"])))
    english = result_caption(translator(), job, "en")
    assert "Kandinsky 3.1 HED ControlNet" in english and "Canny" in english and "HED" in english
    assert "Canny" in result_caption(translator(), job, "ru")
    job.params = with_outcome("restyle_depth", params, JobOutcome())
    assert "Canny" not in result_caption(translator(), job, "en")


async def test_a_note_of_the_pipeline_reaches_the_caption(harness):
    """The HED ControlNet marks Canny-traced results; the runner keeps the note for the caption."""
    await choose_k31(harness)
    generate = harness.backend.generate

    def canny(request, progress):
        images = generate(request, progress)
        for image in images:
            image.info["note"] = "edges-canny"
        return images

    harness.backend.generate = canny
    put(harness, ph="astronaut")
    await harness.feed(message_update("/restyle_shapes"))
    await harness.feed(photo_update("ph", 512, 512, caption="a robot"))
    [job] = await harness.wait_jobs_settled()
    assert job.kind == "restyle_depth" and job.params["outcome"]["notes"] == ["edges-canny"]
    caption = harness.session.of(SendPhoto)[-1].caption
    assert caption.startswith("a robot") and "Canny" in caption
