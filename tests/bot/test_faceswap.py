"""The face-swap chat flow on the real Dispatcher and worker: /face with no face, several faces and
one face; an @me prompt; /forgetface; no face found in the drawn picture. Real photos (scikit-image,
the insightface wheel), real dlib detection and the classical swap; the drawing backend is the fake
one, or one that "draws" a real group photo."""

from __future__ import annotations

import io

import numpy as np
from aiogram.exceptions import TelegramServerError
from aiogram.methods import EditMessageText, GetFile, SendMessage, SendPhoto
from aiogram.types import PhotoSize
from PIL import Image
from skimage import data
from sqlalchemy import select

from generation.backend import GenerationRequest, Mode
from generation.fake import FakeBackend
from storage.models import ModerationEvent, UserFace
from tests.conftest import make_settings, start_harness, stop_harness
from tests.faceswap.conftest import insightface_images
from tests.fakes import buttons, callback_update, message_update

SLOW = 180.0  # dlib on two shared CPU cores


def jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


ASTRONAUT = jpeg(data.astronaut())
COFFEE = jpeg(data.coffee())
GROUP = np.asarray(Image.open(insightface_images() / "t1.jpg").convert("RGB"))


class GroupPhotoBackend(FakeBackend):
    """Draws every picture as a crop of the insightface group photo (two faces in it)."""

    @staticmethod
    def _draw(request: GenerationRequest, seed: int) -> Image.Image:
        crop = np.ascontiguousarray(GROUP[:512, 640:1152])
        return Image.fromarray(crop).resize((request.width, request.height))


def photo_update(harness, file_id: str, payload: bytes):
    harness.session.files[file_id] = payload
    return message_update(None, photo=[PhotoSize(file_id=file_id, file_unique_id=f"u-{file_id}", width=512, height=512)])


async def start(tmp_path, backend=None):
    settings = make_settings(tmp_path, faceswap_describer=False, faceswap_restore=False, max_image_side=512)
    return await start_harness(settings, backend=backend)


async def stored_face(harness) -> UserFace | None:
    async with harness.app.db.session() as session:
        return (await session.execute(select(UserFace))).scalars().first()


def last_text(harness) -> str:
    return harness.session.of(SendMessage)[-1].text


async def test_face_photo_is_checked_no_face_several_turned_small(tmp_path):
    harness = await start(tmp_path)
    try:
        await harness.feed(message_update("/face"))
        assert last_text(harness).startswith("🙂 Send me a photo of yourself: only your own face")
        assert "until you send /forgetface" in last_text(harness)  # what is kept, for how long
        await harness.feed(photo_update(harness, "coffee", COFFEE))
        assert last_text(harness).startswith("😕 I can't find a face on this photo")
        assert await stored_face(harness) is None
        # Still waiting for the photo: text is not taken as a prompt.
        await harness.feed(message_update("a cat"))
        assert last_text(harness).startswith("I am waiting for a photo with a face")
        assert await harness.jobs() == []

        # Only one's own face: a group photo is refused, and the bot still waits for a photo.
        await harness.feed(photo_update(harness, "group", jpeg(GROUP)))
        assert last_text(harness) == "😕 There are several faces on this photo. Send a photo with only your own face on it."
        assert await stored_face(harness) is None
        # A turned face (the man on the right of the group photo, alone in the crop) is refused too.
        turned = np.ascontiguousarray(GROUP[0:300, 800:1100])
        await harness.feed(photo_update(harness, "turned", jpeg(turned)))
        assert last_text(harness).startswith("😕 The face on this photo is turned or tilted too much.")
        # A face too small to carry detail.
        small = np.asarray(Image.fromarray(data.astronaut()).resize((300, 300)))
        await harness.feed(photo_update(harness, "small", jpeg(small)))
        assert last_text(harness).startswith("😕 The face on this photo is too small.")
        assert await stored_face(harness) is None

        await harness.feed(photo_update(harness, "astronaut", ASTRONAUT))
        assert last_text(harness).startswith("✅ Your face is saved: the photo's file id and where the face is, until")
        face = await stored_face(harness)
        assert face.file_id == "astronaut" and face.profile["several_faces"] is False
        assert len(face.profile["landmarks"]) == 68 and face.profile["description"] is None
    finally:
        await stop_harness(harness)


async def test_one_face_then_an_at_me_prompt_runs_the_face_swap(tmp_path):
    harness = await start(tmp_path, GroupPhotoBackend())
    try:
        await harness.feed(message_update("@me at the bar, photo"))
        assert last_text(harness) == "To draw @me, I need your face first: send /face."
        assert await harness.jobs() == []

        await harness.feed(message_update("/face"))
        await harness.feed(photo_update(harness, "astronaut", ASTRONAUT))
        assert last_text(harness).startswith("✅ Your face is saved")
        assert "several" not in " ".join(m.text for m in harness.session.of(SendMessage))

        await harness.feed(message_update("@me at the bar, photo"))
        [job] = await harness.wait_jobs_settled(timeout=SLOW)
        assert job.status == "done", job.error
        # The job carries no copy of the face: the runner looked it up by user and downloaded it.
        assert job.kind == Mode.FACESWAP and not job.params.get("input_file_ids") and "face" not in job.params["extra"]
        assert "astronaut" in [c.file_id for c in harness.session.of(GetFile)]
        assert job.params["prompt"] == "@me at the bar, photo"
        # The drawing backend got a plain text-to-image request, "@me" replaced (describer off).
        [drawn] = harness.backend.calls
        assert drawn.mode == Mode.TEXT2IMG and drawn.prompt == "a person at the bar, photo"
        assert harness.session.of(SendPhoto)
        edits = [c.text for c in harness.session.of(EditMessageText)]
        stages = [t for t in edits if t in ("🔎 Looking at your face…", "🎨 Drawing the scene…", "🙂 Putting your face in…")]
        assert stages == ["🔎 Looking at your face…", "🎨 Drawing the scene…", "🙂 Putting your face in…"]

        # /face followed by a prompt: the face is the subject.
        await harness.feed(message_update("/face as an astronaut on the moon"))
        jobs = await harness.wait_jobs_settled(timeout=SLOW)
        assert jobs[-1].kind == Mode.FACESWAP and jobs[-1].params["prompt"] == "@me, as an astronaut on the moon"
        assert harness.backend.calls[-1].prompt == "a person, as an astronaut on the moon"
    finally:
        await stop_harness(harness)


async def test_forgetface_deletes_the_face(tmp_path):
    harness = await start(tmp_path, GroupPhotoBackend())
    try:
        await harness.feed(message_update("/face"))
        await harness.feed(photo_update(harness, "astronaut", ASTRONAUT))
        assert await stored_face(harness) is not None
        await harness.feed(message_update("@me at the bar"))
        [job] = await harness.wait_jobs_settled(timeout=SLOW)
        assert job.status == "done" and harness.app.runner.result_paths(job.id)
        await harness.feed(message_update("/forgetface"))
        assert last_text(harness).startswith("🗑 Done: your face and everything about it is deleted.")
        assert await stored_face(harness) is None
        # Nothing about the face is left: not in the job (file id, landmarks), not on disk.
        [job] = await harness.jobs()
        assert "input_file_ids" not in job.params and "face" not in job.params["extra"]
        assert "astronaut" not in str(job.params)
        assert harness.app.runner.result_paths(job.id) == []
        await harness.feed(message_update("/forgetface"))
        assert last_text(harness) == "I have no face of yours saved."
        await harness.feed(message_update("@me on a horse"))
        assert last_text(harness) == "To draw @me, I need your face first: send /face."
    finally:
        await stop_harness(harness)


async def test_forgetface_reaches_variations_and_undelivered_pictures(tmp_path):
    """Variations made from a face picture lose their inputs and results too, the Variations button
    under an old face picture stops working, and a face picture Telegram has not accepted yet is
    withdrawn: the delivery retries never send it."""
    harness = await start(tmp_path, GroupPhotoBackend())
    try:
        await harness.feed(message_update("/face"))
        await harness.feed(photo_update(harness, "astronaut", ASTRONAUT))
        await harness.feed(message_update("@me at the bar"))
        [face_job] = await harness.wait_jobs_settled(timeout=SLOW)
        assert face_job.status == "done" and face_job.result_file_ids
        await harness.feed(callback_update(f"res:variations:{face_job.id}"))
        jobs = await harness.wait_jobs_settled(timeout=SLOW)
        variation = jobs[-1]
        assert variation.kind == Mode.VARIATIONS and variation.params["input_file_ids"] == face_job.result_file_ids

        # A second face picture that Telegram keeps refusing: generated, not delivered.
        harness.session.failures[SendPhoto] = lambda method: TelegramServerError(method=method, message="Bad Gateway")
        await harness.feed(message_update("@me on a horse"))

        async def generated() -> bool:
            return any(j.status == "generated" for j in await harness.jobs())

        await harness.wait_for(generated, timeout=SLOW)
        undelivered = [j for j in await harness.jobs() if j.status == "generated"][0]
        assert harness.app.runner.result_paths(undelivered.id)

        await harness.feed(message_update("/forgetface"))
        by_id = {j.id: j for j in await harness.jobs()}
        for job_id in (face_job.id, variation.id, undelivered.id):
            job = by_id[job_id]
            assert job.result_file_ids == [] and "input_file_ids" not in job.params, job_id
            assert harness.app.runner.result_paths(job_id) == []
        assert by_id[undelivered.id].status == "cancelled"
        # The delivery retry finds nothing to send.
        harness.session.failures.pop(SendPhoto)
        sent = len(harness.session.of(SendPhoto))
        assert await harness.app.runner.deliver(undelivered.id) is False
        assert len(harness.session.of(SendPhoto)) == sent
        # The Variations button under the old face picture no longer makes anything.
        count = len(await harness.jobs())
        await harness.feed(callback_update(f"res:variations:{face_job.id}"))
        assert len(await harness.jobs()) == count
    finally:
        await stop_harness(harness)


async def test_again_uses_the_face_the_user_has_now(tmp_path):
    """"Again" on an old face picture after a new /face draws the new face, not the old one; after
    /forgetface it has no face to draw."""
    harness = await start(tmp_path, GroupPhotoBackend())
    try:
        await harness.feed(message_update("/face"))
        await harness.feed(photo_update(harness, "astronaut", ASTRONAUT))
        await harness.feed(message_update("@me at the bar"))
        [first] = await harness.wait_jobs_settled(timeout=SLOW)
        assert first.status == "done"
        # A new face: the frontal man in the middle of the group photo, alone in the crop.
        await harness.feed(message_update("/face"))
        await harness.feed(photo_update(harness, "second-face", jpeg(np.ascontiguousarray(GROUP[230:470, 380:630]))))
        assert last_text(harness).startswith("✅ Your face is saved"), last_text(harness)
        fetched = len(harness.session.of(GetFile))
        await harness.feed(callback_update(f"res:again:{first.id}"))
        jobs = await harness.wait_jobs_settled(timeout=SLOW)
        assert len(jobs) == 2 and jobs[-1].kind == Mode.FACESWAP
        assert [c.file_id for c in harness.session.of(GetFile)[fetched:]] == ["second-face"]

        await harness.feed(message_update("/forgetface"))
        await harness.feed(callback_update(f"res:again:{first.id}"))
        jobs = await harness.wait_jobs_settled(timeout=SLOW)
        assert len(jobs) == 3 and jobs[-1].status == "failed" and jobs[-1].error == "no_face"
        assert "astronaut" not in str(jobs[-1].params) and "second-face" not in str(jobs[-1].params)
    finally:
        await stop_harness(harness)


async def test_no_face_in_the_drawn_picture_offers_again(tmp_path):
    harness = await start(tmp_path)  # the fake backend draws rectangles: no face
    try:
        await harness.feed(message_update("/face"))
        await harness.feed(photo_update(harness, "astronaut", ASTRONAUT))
        await harness.feed(message_update("@me in the rain"))
        [job] = await harness.wait_jobs_settled(timeout=SLOW)
        assert job.status == "failed" and job.error == "no_face_in_result"
        assert not harness.session.of(SendPhoto)  # never a picture without the user's face
        failure = harness.session.of(EditMessageText)[-1]
        assert failure.text.startswith("😕 There was no face in the picture I drew")
        assert buttons(failure.reply_markup) == [("🔁 Again", f"res:again:{job.id}")]

        await harness.feed(callback_update(f"res:again:{job.id}"))
        jobs = await harness.wait_jobs_settled(timeout=SLOW)
        assert len(jobs) == 2 and jobs[1].kind == Mode.FACESWAP
        assert jobs[1].params["seed"] != job.params["seed"]
        assert [c.file_id for c in harness.session.of(GetFile)][-1] == "astronaut"  # the user's face, looked up
    finally:
        await stop_harness(harness)


async def test_face_photo_failing_the_content_check_is_refused(tmp_path):
    # A threshold of 0 flags every photo: the refusal path, with a real (harmless) photo.
    settings = make_settings(tmp_path, faceswap_describer=False, safety_nsfw_threshold=0.0)
    harness = await start_harness(settings)
    try:
        await harness.feed(message_update("/face"))
        await harness.feed(photo_update(harness, "astronaut", ASTRONAUT))
        assert last_text(harness).startswith("🙈 The photo did not pass the content check")
        assert await stored_face(harness) is None
        async with harness.app.db.session() as session:
            events = (await session.execute(select(ModerationEvent))).scalars().all()
        assert [e.kind for e in events] == ["upload_censored"]
    finally:
        await stop_harness(harness)
