"""What users send: accepted photos and image files, and every refused input (nothing queued)."""

from aiogram.methods import GetFile, SendMessage
from PIL import Image

from generation.backend import Mode
from tests.editing.helpers import (
    animation_update,
    document_update,
    feed_album,
    last_text,
    photo_update,
    video_update,
)
from tests.fakes import callback_update, message_update, sticker_update
from tests.photos import animated_gif, encode, exif_rotated_jpeg, photo_bytes, random_bytes

MB = 1024 * 1024


async def test_image_documents_are_accepted(harness):
    cases = {
        "png": ("image/png", "a.png", photo_bytes("coffee", "PNG"), (256, 192)),
        "webp": ("image/webp", "a.webp", photo_bytes("coffee", "WEBP"), (256, 192)),
        "jpeg": ("image/jpeg", "a.jpg", photo_bytes("astronaut", "JPEG"), (256, 256)),
        # Stored sideways (400x600) with an EXIF tag: the upright picture is landscape.
        "exif": ("image/jpeg", "portrait.jpg", exif_rotated_jpeg("coffee"), (256, 192)),
        # No MIME type, but the name and the bytes say PNG.
        "nomime": (None, "b.png", photo_bytes("chelsea", "PNG"), (256, 192)),
    }
    for index, (file_id, (mime, name, data, size)) in enumerate(cases.items()):
        harness.session.files[file_id] = data
        await harness.feed(document_update(file_id, mime, name, caption="a pencil sketch"))  # restyled at once
        await harness.wait_jobs_settled()
        request = harness.backend.calls[index]
        assert request.mode == Mode.IMG2IMG
        assert (request.width, request.height) == size, file_id
        assert request.images[0].size == size and request.images[0].mode == "RGB", file_id


REFUSALS = [
    # (what is sent, the message must contain)
    ("photo over 20 MB", lambda: photo_update("big", 2000, 2000, file_size=25 * MB), "over 20 MB"),
    ("tiny photo", lambda: photo_update("tiny", 50, 300), "at least 64 px"),
    ("photo 1:5", lambda: photo_update("long", 1000, 200), "at most 4 times"),
    ("video", video_update, "Videos and animated images"),
    ("GIF animation", animation_update, "Videos and animated images"),
    ("PDF document", lambda: document_update("pdf", "application/pdf", "paper.pdf"), "not a picture"),
    ("random bytes named .png", lambda: document_update("fake-png", "image/png", "cat.png"), "not a picture"),
    ("animated GIF file", lambda: document_update("gif", "image/gif", "funny.gif"), "Videos and animated images"),
    ("tiny PNG file", lambda: document_update("tiny-png", "image/png", "tiny.png"), "at least 64 px"),
    ("PNG 1:5 file", lambda: document_update("long-png", "image/png", "long.png"), "at most 4 times"),
    ("file over 20 MB", lambda: document_update("huge", "image/png", "huge.png", file_size=30 * MB), "over 20 MB"),
    ("BMP file", lambda: document_update("bmp", "image/bmp", "old.bmp"), "not a picture"),
]


async def _assert_refused(harness, make_update, expected, label):
    before = len(harness.session.of(SendMessage))
    await harness.feed(make_update())
    replies = [m.text for m in harness.session.of(SendMessage)[before:]]
    assert len(replies) == 1 and expected in replies[0], (label, replies)
    assert await harness.jobs() == [], label


async def test_refused_inputs_outside_and_inside_flows(harness):
    files = harness.session.files
    files["fake-png"] = random_bytes()
    files["gif"] = animated_gif()
    files["tiny-png"] = photo_bytes("astronaut", "PNG", size=(40, 40))
    files["long-png"] = photo_bytes("coffee", "PNG", size=(1000, 200))
    files["bmp"] = encode(Image.new("RGB", (128, 128)), "BMP")
    for label, make_update, expected in REFUSALS:  # outside any flow
        await _assert_refused(harness, make_update, expected, label)
    for command in ("/restyle", "/style", "/fuse", "/mix", "/variations"):  # at each flow's photo step
        await harness.feed(message_update(command))
        for label, make_update, expected in REFUSALS:
            await _assert_refused(harness, make_update, expected, f"{command}: {label}")
    # Files over the limit are refused on their metadata, never downloaded.
    downloaded = {call.file_id for call in harness.session.of(GetFile)}
    assert "huge" not in downloaded and "big" not in downloaded and "pdf" not in downloaded
    assert harness.backend.calls == []


async def test_stickers_in_a_flow_and_outside(harness):
    await harness.feed(message_update("/variations"))
    await harness.feed(sticker_update())
    assert "Stickers cannot be edited" in last_text(harness)
    await harness.feed(message_update("/cancel"))
    await harness.feed(sticker_update())
    assert last_text(harness).startswith("Nice sticker!")  # outside flows the fallback answers


async def test_more_than_four_photos_for_fusion(harness):
    for name in ("a", "b", "c", "d", "e"):
        harness.session.files[name] = photo_bytes("astronaut")
    # An album of five outside any flow.
    await feed_album(harness, [photo_update(n, 512, 512, media_group_id="five") for n in "abcde"])
    assert "at most 4 photos" in last_text(harness)
    # One by one: the fifth is refused, the four collected stay.
    await harness.feed(message_update("/fuse"))
    await harness.feed(photo_update("a", 512, 512))
    await feed_album(harness, [photo_update(n, 512, 512, media_group_id="four") for n in "bcde"])
    assert "at most 4 photos" in last_text(harness)
    assert await harness.jobs() == []
    await feed_album(harness, [photo_update(n, 512, 512, media_group_id="three") for n in "bcd"])
    [job] = await harness.wait_jobs_settled()  # four photos: fused at once
    assert job.params["input_file_ids"] == ["a", "b", "c", "d"]


async def test_albums_where_one_photo_is_expected(harness):
    for name in ("a", "b", "c"):
        harness.session.files[name] = photo_bytes("astronaut")
    await harness.feed(message_update("/variations"))
    await feed_album(harness, [photo_update(n, 512, 512, media_group_id="v") for n in "ab"])
    assert "One photo here, please" in last_text(harness)
    # /style takes an album of two as the content and the style photos.
    await harness.feed(message_update("/style"))
    await feed_album(harness, [photo_update(n, 512, 512, media_group_id="s") for n in "ab"])
    assert "step 3 of 3" in last_text(harness)
    assert await harness.jobs() == []


async def test_an_album_with_a_bad_item_is_refused_whole(harness):
    harness.session.files["a"] = photo_bytes("astronaut")
    harness.session.files["bad"] = random_bytes()
    await feed_album(
        harness,
        [
            photo_update("a", 512, 512, media_group_id="m"),
            document_update("bad", "image/png", "x.png", media_group_id="m"),
        ],
    )
    assert "not a picture" in last_text(harness)
    assert await harness.jobs() == []
    # And no fusion flow was left behind: a text is a prompt again.
    await harness.feed(message_update("a sunset"))
    [job] = await harness.wait_jobs_settled()
    assert job.kind == "text2img"
