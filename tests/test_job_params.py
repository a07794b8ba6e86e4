"""Typed job parameters (jobs/params.py) against rows in the shape today's database holds.

The rows are written with plain SQL and ``json.dumps`` of the dicts the code before version 1 wrote
(the outcome's keys next to the parameters, no ``version``), so the test does not depend on the code
it checks to produce them. The bot then starts on that database: the queued jobs run, the finished
ones still answer their buttons.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiogram.methods import SendMediaGroup

from generation.backend import Mode, ModelId
from jobs.params import (
    EditParams,
    FaceSwapParams,
    JobOutcome,
    JobParams,
    JobParamsError,
    PARAMS_BY_KIND,
    parse_params,
    read_outcome,
    read_params,
    upgrade_row,
    with_outcome,
)
from storage.migrate import upgrade_async
from storage.models import Job
from tests.conftest import make_settings, start_harness, stop_harness
from tests.fakes import callback_update
from tests.photos import photo_bytes

# What generation.jobs.JobService.params_from_settings and the runner wrote before version 1.
OLD_TEXT2IMG = {
    "prompt": "a lighthouse at dusk",
    "style": "ANIME",
    "negative_prompt": "blurry",
    "aspect_ratio": "16:9",
    "width": 1344,
    "height": 768,
    "num_images": 2,
    "seed": 4242,
    "beautify": True,
    # Carried over by "Again" from the job it copied (the old runner rewrote them on every run):
    "used_prompt": "an old beautified prompt",
    "beautify_outcome": "beautified",
}
OLD_IMG2IMG = {
    "prompt": "in watercolour",
    "style": "DEFAULT",
    "negative_prompt": None,
    "aspect_ratio": "4:3",
    "width": 512,
    "height": 384,
    "num_images": 1,
    "seed": 7,
    "beautify": False,
    "input_file_ids": ["old-photo"],
    "weights": [],
    "strength": 0.75,
}
OLD_DONE = {
    "prompt": "a red fox",
    "style": "DEFAULT",
    "negative_prompt": None,
    "aspect_ratio": "1:1",
    "width": 1024,
    "height": 1024,
    "num_images": 1,
    "seed": 99,
    "beautify": True,
    "used_prompt": "a red fox in deep snow, golden light",
    "beautify_outcome": "beautified",
    "censored": [],
}
# A face-swap job after /forgetface: the file id is gone, the profile emptied.
OLD_FACESWAP_FORGOTTEN = {
    "prompt": "@me at the bar",
    "style": "DEFAULT",
    "negative_prompt": None,
    "aspect_ratio": "1:1",
    "width": 1024,
    "height": 1024,
    "num_images": 1,
    "seed": 5,
    "beautify": False,
    "extra": {},
}


def insert_old_rows(db_url: str) -> None:
    engine = sa.create_engine(db_url.replace("+aiosqlite", ""))
    rows = [
        (1, "text2img", "kandinsky-3.1", OLD_TEXT2IMG, "queued", None),
        (2, "img2img", "kandinsky-2.2", OLD_IMG2IMG, "queued", None),
        (3, "text2img", "kandinsky-3.1", OLD_DONE, "done", ["done-file"]),
        (4, "faceswap", "kandinsky-3.1", OLD_FACESWAP_FORGOTTEN, "done", ["face-file"]),
    ]
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(
                "INSERT INTO users (id, language, banned, ban_notified, created_at, last_seen) "
                "VALUES (1001, 'en', 0, 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            ))
            connection.execute(sa.text(
                "INSERT INTO user_settings (user_id, model, aspect_ratio, style, beautify, num_images, edit_strength) "
                "VALUES (1001, 'kandinsky-3.1', '1:1', 'DEFAULT', 0, 1, 'medium')"
            ))
            for job_id, kind, model, params, status, results in rows:
                connection.execute(
                    sa.text(
                        "INSERT INTO jobs (id, user_id, chat_id, kind, model, params, status, cancel_requested, "
                        "result_file_ids, attempts, created_at) VALUES (:id, 1001, 1001, :kind, :model, :params, "
                        ":status, 0, :results, 0, '2026-01-01 00:00:00')"
                    ),
                    dict(
                        id=job_id, kind=kind, model=model, params=json.dumps(params), status=status,
                        results=json.dumps(results or []),
                    ),
                )
    finally:
        engine.dispose()


async def test_an_old_database_loads_and_its_jobs_run(tmp_path: Path):
    settings = make_settings(tmp_path)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await upgrade_async(settings.db_url)
    insert_old_rows(settings.db_url)
    harness = await start_harness(settings)
    harness.session.files["old-photo"] = photo_bytes("coffee", size=(640, 480))
    try:
        jobs = {job.id: job for job in await harness.wait_jobs_settled()}
        assert jobs[1].status == "done" and jobs[2].status == "done"

        text2img, img2img = sorted(harness.backend.calls, key=lambda r: r.mode != Mode.TEXT2IMG)
        assert (text2img.mode, text2img.model) == (Mode.TEXT2IMG, ModelId.K31)
        assert text2img.prompt == "a lighthouse at dusk, in anime style, detailed anime illustration"
        assert (text2img.width, text2img.height, text2img.num_images, text2img.seed) == (1344, 768, 2, 4242)
        assert text2img.negative_prompt == "blurry"
        assert (img2img.mode, img2img.model, img2img.strength) == (Mode.IMG2IMG, ModelId.K22, 0.75)
        assert [im.size for im in img2img.images] == [(512, 384)] and (img2img.width, img2img.height) == (512, 384)

        # The rows were rewritten in version 1 by the run: the stale outcome "Again" carried over is
        # gone (beautification is off in this bot), the parameters are unchanged.
        row = jobs[1].params
        assert row["version"] == 1 and row["outcome"] == {"used_prompt": None, "beautify_outcome": None, "censored": [], "notes": []}
        assert {k: row[k] for k in ("prompt", "seed", "width", "height", "style")} == {
            "prompt": "a lighthouse at dusk", "seed": 4242, "width": 1344, "height": 768, "style": "ANIME"
        }
        # Two images: an album; its first photo carries the caption.
        captions = [album.media[0].caption for album in harness.session.of(SendMediaGroup)]
        assert any(c and "a lighthouse at dusk" in c and "an old beautified prompt" not in c for c in captions)

        # A finished old job: its outcome reads from the old keys, and "Again" copies it as version 1.
        done = jobs[3]
        assert read_outcome(done).used_prompt == "a red fox in deep snow, golden light"
        assert read_params(done).seed == 99 and done.params.get("version") is None  # never rewritten
        harness.session.clear()
        await harness.feed(callback_update("res:again:3"))
        await harness.feed(callback_update("res:seed:4"))  # the forgotten face-swap job still reads
        after = await harness.wait_jobs_settled()
        again = after[-1]
        assert again.id == 5 and again.kind == "text2img" and again.status == "done"
        assert again.params["prompt"] == "a red fox" and again.params["seed"] != 99 and again.params["version"] == 1
        assert not any("went wrong" in t for t in harness.session.texts())
    finally:
        await stop_harness(harness)


def test_old_rows_split_into_parameters_and_outcome():
    params, outcome = upgrade_row(OLD_DONE)
    assert "used_prompt" not in params and params["version"] == 1
    assert outcome == {"used_prompt": "a red fox in deep snow, golden light", "beautify_outcome": "beautified", "censored": []}
    edit = parse_params(Mode.IMG2IMG, OLD_IMG2IMG)
    assert isinstance(edit, EditParams) and edit.input_file_ids == ["old-photo"] and edit.strength == 0.75
    face = parse_params(Mode.FACESWAP, OLD_FACESWAP_FORGOTTEN)
    assert isinstance(face, FaceSwapParams) and face.input_file_ids == []


def test_rows_are_validated_when_read():
    with pytest.raises(JobParamsError):
        parse_params(Mode.IMG2IMG, OLD_TEXT2IMG)  # an edit job without its photo
    with pytest.raises(JobParamsError):
        parse_params(Mode.TEXT2IMG, dict(OLD_DONE, seed="not a number"))
    with pytest.raises(JobParamsError):
        parse_params(Mode.TEXT2IMG, dict(OLD_DONE, colour="blue"))  # an unknown field is a bug of ours
    with pytest.raises(JobParamsError):
        parse_params("no-such-kind", OLD_DONE)


def test_version_1_round_trip():
    params = JobParams(prompt="a cat", width=512, height=512, seed=1)
    row = with_outcome(Mode.TEXT2IMG, params.to_row(), JobOutcome(censored=[1]))
    job = Job(kind="text2img", params=json.loads(json.dumps(row)))
    assert read_params(job) == params and read_outcome(job).censored == [1]


def test_every_mode_has_a_parameters_class():
    assert set(PARAMS_BY_KIND) == set(Mode)
