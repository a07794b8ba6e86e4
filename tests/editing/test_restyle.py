from datetime import datetime, timezone

from aiogram.methods import EditMessageReplyMarkup, SendMessage, SendPhoto
from aiogram.types import Chat, Message

from generation.backend import Mode, ModelId
from tests.editing.helpers import last_buttons, last_text, photo_update
from tests.fakes import callback_update, message_update
from tests.photos import photo_bytes


async def test_photo_with_caption_restyles_at_once_then_lighter_and_stronger(harness):
    harness.session.files["ph-1"] = photo_bytes("astronaut")
    await harness.feed(photo_update("ph-1", 512, 512, caption="a marble statue"))
    # No question: the remembered strength (medium until the user picks another) is used at once.
    [job] = await harness.wait_jobs_settled()
    assert (job.status, job.kind, job.model) == ("done", "img2img", "kandinsky-3.1")
    assert job.params["input_file_ids"] == ["ph-1"] and job.params["strength"] == 0.5
    [request] = harness.backend.calls
    assert (request.mode, request.model, request.prompt, request.strength) == (
        Mode.IMG2IMG, ModelId.K31, "a marble statue", 0.5
    )
    assert (request.width, request.height) == (256, 256)  # the photo's ratio, fitted to MAX_IMAGE_SIDE
    assert [im.size for im in request.images] == [(256, 256)] and request.images[0].mode == "RGB"
    photo = harness.session.of(SendPhoto)[-1]
    assert photo.caption.startswith("a marble statue\n\nKandinsky 3.1")
    rows = [[b.text for b in row] for row in photo.reply_markup.inline_keyboard]
    assert rows[0] == ["🔅 Lighter", "🔆 Stronger", "🧱 Keep the shapes"]

    # 🔆 Stronger: the same photo, text and seed at the next strength, remembered.
    await harness.feed(callback_update(f"res:stronger:{job.id}"))
    first, stronger = await harness.wait_jobs_settled()
    assert stronger.params["strength"] == 0.75 and stronger.params["seed"] == first.params["seed"]
    assert stronger.params["input_file_ids"] == ["ph-1"] and stronger.params["prompt"] == "a marble statue"
    assert [[b.text for b in row] for row in harness.session.of(SendPhoto)[-1].reply_markup.inline_keyboard][0] == [
        "🔅 Lighter", "🧱 Keep the shapes"  # nothing stronger than strong
    ]
    await harness.feed(photo_update("ph-1", 512, 512, caption="a bronze statue"))
    jobs = await harness.wait_jobs_settled()
    assert jobs[-1].params["strength"] == 0.75  # the strength is remembered
    # 🔅 Lighter twice: strong -> medium -> light.
    await harness.feed(callback_update(f"res:lighter:{jobs[-1].id}"))
    jobs = await harness.wait_jobs_settled()
    await harness.feed(callback_update(f"res:lighter:{jobs[-1].id}"))
    jobs = await harness.wait_jobs_settled()
    assert [j.params["strength"] for j in jobs[-2:]] == [0.5, 0.3]


async def test_restyle_command_then_photo_then_text(harness):
    harness.session.files["ph-2"] = photo_bytes("coffee")
    await harness.feed(message_update("/restyle"))
    assert "step 1 of 2" in last_text(harness) and "/cancel" in last_text(harness)

    await harness.feed(message_update("a cat in space"))  # typed before the photo: the flow answers
    assert "waiting for something else" in last_text(harness) and "step 1 of 2" in last_text(harness)

    await harness.feed(photo_update("ph-2", 600, 400))
    assert "step 2 of 2" in last_text(harness)
    await harness.feed(message_update("an oil painting"))  # the prompt goes to the flow, not to text-to-image
    assert "an oil painting" in last_text(harness)
    assert await harness.jobs() == [] and harness.backend.calls == []

    await harness.feed(callback_update("edit:restyle:light"))
    [job] = await harness.wait_jobs_settled()
    [request] = harness.backend.calls
    assert (request.mode, request.prompt, request.strength) == (Mode.IMG2IMG, "an oil painting", 0.3)
    assert (request.width, request.height) == (256, 192)  # 600x400 fitted: the photo's aspect ratio
    assert request.images[0].size == (256, 192)
    assert job.params["aspect_ratio"] == "4:3"


async def test_photo_without_caption_asks_for_the_text(harness):
    harness.session.files["ph-3"] = photo_bytes("astronaut")
    await harness.feed(photo_update("ph-3", 512, 512))
    assert "step 2 of 2" in last_text(harness)
    await harness.feed(message_update("a knight in armour"))
    await harness.feed(callback_update("edit:restyle:medium"))
    await harness.wait_jobs_settled()
    [request] = harness.backend.calls
    assert (request.mode, request.prompt, request.strength) == (Mode.IMG2IMG, "a knight in armour", 0.5)


async def test_photo_alone_offers_variations(harness):
    harness.session.files["ph-6"] = photo_bytes("chelsea")
    await harness.feed(photo_update("ph-6", 451, 300))
    assert last_buttons(harness) == [("🎲 Variations of this photo", "edit:variations")]
    await harness.feed(callback_update("edit:variations"))
    [job] = await harness.wait_jobs_settled()
    [request] = harness.backend.calls
    assert (request.mode, request.model, len(request.images)) == (Mode.VARIATIONS, ModelId.K22, 1)
    assert job.params["input_file_ids"] == ["ph-6"]
    await harness.feed(callback_update("edit:variations"))  # pressed again: the step is over
    assert len(await harness.jobs()) == 1


async def test_model_choice_for_restyle(harness):
    harness.session.files["ph-4"] = photo_bytes("astronaut")
    expected = {
        "kandinsky-2.2": ModelId.K22,
        # The registry: every model restyles (Flash on its distilled schedule; the refiner finishes
        # Kandinsky 3.1's image-to-image with one Flash step), so nobody is moved to another model.
        "kandinsky-3.1-flash": ModelId.K31_FLASH,
        "kandinsky-3.1-refiner": ModelId.K31_REFINER,
        "kandinsky-3.1": ModelId.K31,
    }
    for index, (model, runs_on) in enumerate(expected.items()):
        await harness.feed(callback_update(f"set:model:{model}"))
        await harness.feed(photo_update("ph-4", 512, 512, caption="a statue"))
        jobs = await harness.wait_jobs_settled()
        assert harness.backend.calls[index].model == runs_on
        assert jobs[index].model == runs_on
        status = harness.session.of(SendMessage)[-1].text
        assert "cannot redraw photos" not in status, status


async def test_restyle_keeping_the_shapes(harness):
    harness.session.files["ph-5"] = photo_bytes("astronaut")
    # Under a restyle's result: "keep the shapes" at the same strength.
    await harness.feed(photo_update("ph-5", 512, 512, caption="a robot"))
    [job] = await harness.wait_jobs_settled()
    await harness.feed(callback_update(f"res:shapes:{job.id}"))
    await harness.wait_jobs_settled()
    request = harness.backend.calls[-1]
    assert (request.mode, request.model, request.prompt, request.strength) == (
        Mode.RESTYLE_DEPTH, ModelId.K22, "a robot", 0.5
    )

    # /restyle_shapes with a captioned photo: at once, keeping the shapes.
    await harness.feed(message_update("/restyle_shapes"))
    assert "keeping the shapes" in last_text(harness) and "step 1 of 2" in last_text(harness)
    await harness.feed(photo_update("ph-5", 512, 512, caption="a robot"))
    jobs = await harness.wait_jobs_settled()
    assert (harness.backend.calls[-1].mode, harness.backend.calls[-1].model) == (Mode.RESTYLE_DEPTH, ModelId.K22)
    # Without a caption, the text comes next and the three strength buttons all keep the shapes.
    await harness.feed(message_update("/restyle_shapes"))
    await harness.feed(photo_update("ph-5", 512, 512))
    await harness.feed(message_update("a robot"))
    assert last_buttons(harness) == [
        ("Light", "edit:shapes:light"), ("✅ Medium", "edit:shapes:medium"), ("Strong", "edit:shapes:strong")
    ]
    await harness.feed(callback_update("edit:shapes:strong"))
    jobs = await harness.wait_jobs_settled()
    request = harness.backend.calls[-1]
    assert (request.mode, request.model, request.strength) == (Mode.RESTYLE_DEPTH, ModelId.K22, 0.75)
    assert [j.kind for j in jobs] == ["img2img", "restyle_depth", "restyle_depth", "restyle_depth"]


async def test_photo_with_a_mention_in_a_group(harness):
    harness.session.files["g"] = photo_bytes("astronaut")
    await harness.feed(photo_update("g", 512, 512, caption="a photo for nobody", chat_type="group", chat_id=-100))
    assert harness.session.of(SendMessage) == []  # not addressed to the bot
    await harness.feed(
        photo_update("g", 512, 512, caption="@kandinsky_test_bot a marble statue", chat_type="group", chat_id=-100)
    )
    [job] = await harness.wait_jobs_settled()
    assert (job.chat_id, job.params["prompt"], job.kind) == (-100, "a marble statue", "img2img")


async def test_a_caption_that_is_no_prompt_asks_for_the_text(harness):
    harness.session.files["ph-7"] = photo_bytes("astronaut")
    await harness.feed(photo_update("ph-7", 512, 512, caption="🎨🖼"))
    assert last_text(harness).startswith("Emoji alone are hard to draw")
    await harness.feed(message_update("a mosaic"))  # the text step takes it
    assert "a mosaic" in last_text(harness) and ("✅ Medium", "edit:restyle:medium") in last_buttons(harness)
