import pytest
from aiogram.methods import AnswerCallbackQuery, SendMediaGroup, SendMessage, SendPhoto

from generation.backend import Mode, ModelId
from tests.editing.helpers import document_update, feed_album, last_buttons, last_text, photo_update
from tests.fakes import callback_update, message_update, user
from tests.photos import photo_bytes


def put(harness, **files):
    for file_id, name in files.items():
        harness.session.files[file_id] = photo_bytes(name)


async def test_style_from_a_guidance_photo(harness):
    put(harness, content="coffee", look="astronaut")
    harness.session.files["content-png"] = photo_bytes("coffee", "PNG")
    await harness.feed(message_update("/style"))
    assert "step 1 of 3" in last_text(harness) and "content photo" in last_text(harness)
    await harness.feed(document_update("content-png", "image/png", "coffee.png"))  # an image file works too
    assert "step 2 of 3" in last_text(harness)
    await harness.feed(photo_update("look", 512, 512))
    assert "step 3 of 3" in last_text(harness)
    assert last_buttons(harness) == [
        ("Style 30%", "edit:style:30"), ("Style 50%", "edit:style:50"), ("Style 70%", "edit:style:70")
    ]

    await harness.feed(callback_update("edit:style:70"))
    [job] = await harness.wait_jobs_settled()
    [request] = harness.backend.calls
    assert (request.mode, request.model) == (Mode.STYLE, ModelId.K22)
    assert request.weights == pytest.approx([0.3, 0.7])  # [content, style]
    assert request.strength == 0.5  # the remembered restyle strength
    assert (request.width, request.height) == (256, 192)  # the content photo's ratio
    assert [im.size for im in request.images] == [(256, 192), (256, 256)]
    assert job.params["input_file_ids"] == ["content-png", "look"]
    assert harness.session.of(SendPhoto)[-1].caption.startswith("Style from a photo (70% style)")


async def test_fusion_of_an_album_arriving_concurrently(harness):
    put(harness, a="astronaut", b="coffee", c="chelsea")
    album = [
        photo_update("a", 512, 512, media_group_id="album-1"),
        photo_update("b", 600, 400, media_group_id="album-1"),
        photo_update("c", 451, 300, media_group_id="album-1"),
    ]
    await feed_album(harness, album)
    [job] = await harness.wait_jobs_settled()  # one request for the whole album
    [request] = harness.backend.calls
    assert (request.mode, request.model, len(request.images)) == (Mode.FUSE, ModelId.K22, 3)
    assert request.weights == pytest.approx([1 / 3] * 3)  # equal by default
    assert job.params["input_file_ids"] == ["a", "b", "c"]  # in the album's order
    assert [im.size for im in request.images] == [(256, 256), (256, 192), (256, 192)]
    texts = [m.text for m in harness.session.of(SendMessage)]
    assert not any("I understand text and photos" in t for t in texts)  # no item fell through to the fallback
    assert harness.session.of(SendPhoto)[-1].caption.startswith("Fusion of 3 photos")


async def test_fusion_one_by_one_then_done_with_weights_for_two(harness):
    put(harness, a="astronaut", b="coffee")
    await harness.feed(message_update("/fuse"))
    assert "step 1 of 2" in last_text(harness) and "Done" in last_text(harness)
    await harness.feed(photo_update("a", 512, 512))
    # No Done button yet, and no word about one: "press Done" comes with the button.
    assert last_text(harness) == "🧬 Photos: 1 of 4. Send at least one more." and last_buttons(harness) == []
    await harness.feed(callback_update("edit:fuse_done"))  # too early: one photo
    assert "at least 2 photos; I have 1" in last_text(harness)
    await harness.feed(photo_update("b", 600, 400))
    assert "Photos: 2 of 4" in last_text(harness) and "“Done”" in last_text(harness)
    assert last_buttons(harness) == [("✅ Done", "edit:fuse_done")]
    await harness.feed(callback_update("edit:fuse_done"))
    assert "step 2 of 2" in last_text(harness)
    assert [b[1] for b in last_buttons(harness)] == ["edit:fuse:25", "edit:fuse:50", "edit:fuse:75"]
    # Forged weights: not a number (aiogram's typed field refuses it), a number no button offers.
    for forged in ("edit:fuse:abc", "edit:fuse:30", "edit:restyle:extreme"):
        await harness.feed(callback_update(forged))
        assert harness.session.of(AnswerCallbackQuery)[-1].show_alert, forged
    assert await harness.jobs() == []
    await harness.feed(callback_update("edit:fuse:25"))
    [job] = await harness.wait_jobs_settled()
    [request] = harness.backend.calls
    assert request.mode == Mode.FUSE and request.weights == pytest.approx([0.25, 0.75])
    assert (request.width, request.height) == (256, 256)  # the first photo's ratio


async def test_fusion_done_command_with_three_photos(harness):
    put(harness, a="astronaut", b="coffee", c="chelsea")
    await harness.feed(message_update("/fuse"))
    for file_id in "abc":
        await harness.feed(photo_update(file_id, 512, 512))
    await harness.feed(message_update("/done"))
    [job] = await harness.wait_jobs_settled()
    assert harness.backend.calls[0].weights == pytest.approx([1 / 3] * 3)
    # "Done" typed as a word works too, in Russian as well.
    await harness.feed(message_update("/fuse"))
    for file_id in "ab":
        await harness.feed(photo_update(file_id, 512, 512))
    await harness.feed(message_update("Готово"))
    assert "step 2 of 2" in last_text(harness)


async def test_mix_a_photo_and_a_text(harness):
    put(harness, p="chelsea")
    await harness.feed(message_update("/mix"))
    assert "step 1 of 3" in last_text(harness)
    await harness.feed(photo_update("p", 451, 300))
    assert "step 2 of 3" in last_text(harness)
    await harness.feed(message_update("a tiger in the jungle"))
    assert "step 3 of 3" in last_text(harness)
    assert last_buttons(harness)[2] == ("🖼 Photo 75% · 📝 Text 25%", "edit:mix:75")
    await harness.feed(message_update("a lion in the savanna"))  # a new text replaces the previous one
    await harness.feed(callback_update("edit:mix:75"))
    [job] = await harness.wait_jobs_settled()
    [request] = harness.backend.calls
    assert (request.mode, request.model, request.prompt) == (Mode.MIX, ModelId.K22, "a lion in the savanna")
    assert request.weights == pytest.approx([0.75, 0.25])  # [image, text]
    assert len(request.images) == 1 and (request.width, request.height) == (256, 192)


async def test_variations_command_and_button(harness):
    put(harness, p="astronaut")
    await harness.feed(callback_update("set:count:2"))  # the user's images-per-request setting
    await harness.feed(message_update("/variations"))
    assert "Variations" in last_text(harness)
    await harness.feed(photo_update("p", 512, 512))
    [job] = await harness.wait_jobs_settled()
    [request] = harness.backend.calls
    assert (request.mode, request.model, request.num_images, len(request.images)) == (
        Mode.VARIATIONS, ModelId.K22, 2, 1
    )
    assert (request.prompt, request.weights) == ("", [])
    [album] = harness.session.of(SendMediaGroup)
    assert [("🎲 1", f"img:variations:{job.id}:1"), ("🎲 2", f"img:variations:{job.id}:2")] == [
        b for b in last_buttons(harness) if b[0].startswith("🎲")
    ]

    # 🎲 2 under the album: variations of the second delivered picture, by its stored file id.
    delivered = job.result_file_ids[1]
    with open(harness.app.settings.results_dir / str(job.id) / "1.png", "rb") as f:
        harness.session.files[delivered] = f.read()  # what Telegram would serve for that file id
    await harness.feed(callback_update(f"img:variations:{job.id}:2"))
    jobs = await harness.wait_jobs_settled()
    assert [j.status for j in jobs] == ["done", "done"]
    second = harness.backend.calls[1]
    assert second.mode == Mode.VARIATIONS and jobs[1].params["input_file_ids"] == [delivered]
    assert second.images[0].size == (256, 256)


async def test_variations_button_under_a_text_to_image_result(harness):
    await harness.feed(message_update("a lighthouse"))
    [job] = await harness.wait_jobs_settled()
    photo = harness.session.of(SendPhoto)[-1]
    assert ("🎲 Variations", f"res:variations:{job.id}") in [
        (b.text, b.callback_data) for row in photo.reply_markup.inline_keyboard for b in row
    ]
    with open(harness.app.settings.results_dir / str(job.id) / "0.png", "rb") as f:
        harness.session.files[job.result_file_ids[0]] = f.read()
    await harness.feed(callback_update(f"res:variations:{job.id}"))
    jobs = await harness.wait_jobs_settled()
    # The picture's own model (Kandinsky 3.1) redraws it lightly with its prompt: not Kandinsky 2.2.
    assert jobs[1].kind == "img2img" and jobs[1].model == "kandinsky-3.1" and jobs[1].status == "done"
    assert harness.backend.calls[1].prompt == "a lighthouse" and harness.backend.calls[1].strength == 0.3
    assert harness.backend.calls[1].images[0].size == (256, 256)
    # Someone else's job: refused.
    await harness.feed(callback_update(f"res:variations:{job.id}", from_user=user(2002, first_name="Bob")))
    assert len(await harness.jobs()) == 2


async def test_the_users_style_applies_to_text_modes_only(harness):
    put(harness, a="astronaut", b="coffee")
    await harness.feed(callback_update("set:style:ANIME"))
    await harness.feed(photo_update("a", 512, 512, caption="a samurai"))
    await harness.feed(callback_update("edit:restyle:medium"))
    await feed_album(harness, [photo_update(n, 512, 512, media_group_id="ab") for n in "ab"])
    await harness.feed(callback_update("edit:fuse:50"))
    jobs = await harness.wait_jobs_settled()
    restyle, fusion = harness.backend.calls
    assert restyle.prompt == "a samurai, in anime style, detailed anime illustration"
    assert fusion.prompt == "" and jobs[1].params["style"] == "DEFAULT"
    assert fusion.weights == pytest.approx([0.5, 0.5])


async def test_an_albums_caption_is_the_fusions_text(harness):
    put(harness, a="astronaut", b="coffee", c="chelsea")
    album = [
        photo_update("a", 512, 512, media_group_id="cap-1", caption="a sunset over the sea"),
        photo_update("b", 600, 400, media_group_id="cap-1"),
        photo_update("c", 451, 300, media_group_id="cap-1"),
    ]
    await feed_album(harness, album)
    [job] = await harness.wait_jobs_settled()
    [request] = harness.backend.calls
    assert (request.mode, request.prompt) == (Mode.FUSE, "a sunset over the sea")
    assert request.weights == pytest.approx([0.25, 0.25, 0.25, 0.25])  # three photos, then the text
    caption = harness.session.of(SendPhoto)[-1].caption
    assert caption.startswith("Fusion of 3 photos and “a sunset over the sea”")

    # Two photos and a caption: the pair's weight question, the text fused in as a third part.
    put(harness, d="astronaut", e="coffee")
    await feed_album(harness, [
        photo_update("d", 512, 512, media_group_id="cap-2", caption="a storm"),
        photo_update("e", 512, 512, media_group_id="cap-2"),
    ])
    await harness.feed(callback_update("edit:fuse:75"))
    await harness.wait_jobs_settled()
    request = harness.backend.calls[-1]
    assert request.prompt == "a storm" and request.weights == pytest.approx([0.5, 1 / 6, 1 / 3])


async def test_mix_and_fuse_remember_the_last_answer_and_offer_more_or_less(harness):
    put(harness, p="chelsea", a="astronaut", b="coffee")
    # The first /mix asks; the answer is remembered.
    await harness.feed(message_update("/mix"))
    await harness.feed(photo_update("p", 451, 300, caption="a tiger"))
    await harness.feed(callback_update("edit:mix:75"))
    [first] = await harness.wait_jobs_settled()
    # The second does not ask: the same weights at once, and the status says so.
    await harness.feed(message_update("/mix"))
    await harness.feed(photo_update("p", 451, 300, caption="a lion"))
    jobs = await harness.wait_jobs_settled()
    assert len(jobs) == 2 and harness.backend.calls[-1].weights == pytest.approx([0.75, 0.25])
    # Under the result: 📝 More text (nothing more of the photo than 75 %).
    photo = harness.session.of(SendPhoto)[-1]
    labels = [b.text for row in photo.reply_markup.inline_keyboard for b in row]
    assert "📝 More text" in labels and "🖼 More photo" not in labels
    await harness.feed(callback_update(f"res:wless:{jobs[-1].id}"))
    jobs = await harness.wait_jobs_settled()
    assert harness.backend.calls[-1].weights == pytest.approx([0.5, 0.5])
    assert jobs[-1].params["seed"] == jobs[-2].params["seed"] and jobs[-1].params["prompt"] == "a lion"

    # A fusion of two: asked once, then remembered; the caption's share is kept by the buttons.
    await feed_album(harness, [photo_update(n, 512, 512, media_group_id="r1") for n in "ab"])
    await harness.feed(callback_update("edit:fuse:25"))
    await harness.wait_jobs_settled()
    await feed_album(harness, [photo_update(n, 512, 512, media_group_id="r2", caption="a storm" if n == "a" else None) for n in "ab"])
    jobs = await harness.wait_jobs_settled()
    assert jobs[-1].kind == "fuse" and harness.backend.calls[-1].weights == pytest.approx([1 / 6, 0.5, 1 / 3])
    await harness.feed(callback_update(f"res:wmore:{jobs[-1].id}"))
    await harness.wait_jobs_settled()
    assert harness.backend.calls[-1].weights == pytest.approx([1 / 3, 1 / 3, 1 / 3])
