"""How the worker opens a job's input photos: prepared for the editing modes, as sent otherwise."""

import pytest

from generation.backend import Mode
from storage.repositories import Repositories
from tests.photos import exif_rotated_jpeg, photo_bytes


async def submit(harness, kind, file_id, width=256, height=192):
    async with harness.app.db.session() as session:
        repos = Repositories(session)
        user = await repos.users.upsert_seen(1001, "ann", "Ann", "en")
        params = harness.app.jobs.params_from_settings(
            user, "a portrait", kind, width=width, height=height, input_file_ids=[file_id]
        )

        async def announce(job, position):
            return None

        return await harness.app.jobs.submit(repos, user, 1001, params, announce, kind=kind, model="kandinsky-2.2")


@pytest.mark.parametrize("kind", [Mode.IMG2IMG, Mode.VARIATIONS])
async def test_editing_inputs_are_upright_and_fitted(harness, kind):
    harness.session.files["p"] = exif_rotated_jpeg("coffee")  # 400x600 stored, 600x400 upright
    await submit(harness, kind, "p")
    await harness.wait_jobs_settled()
    [request] = harness.backend.calls
    assert request.images[0].size == (256, 192) and request.images[0].mode == "RGB"


async def test_face_swap_gets_its_photo_as_sent(harness):
    # The stored face landmarks were measured on the original photo: it must not be rescaled.
    harness.session.files["face"] = photo_bytes("coffee", "PNG")
    harness.app.runner.backend = harness.backend  # the fake itself, without the face-swap pipeline around it
    await submit(harness, Mode.FACESWAP, "face")
    [job] = await harness.wait_jobs_settled()
    [request] = harness.backend.calls
    assert request.images[0].size == (600, 400) and request.images[0].mode == "RGB"


async def test_an_input_that_is_no_image_fails_the_job(harness):
    harness.session.files["junk"] = b"not an image at all"
    await submit(harness, Mode.MIX, "junk")
    [job] = await harness.wait_jobs_settled()
    assert (job.status, job.error) == ("failed", "input_invalid")
    assert harness.backend.calls == []
