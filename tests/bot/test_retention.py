"""RESULTS_RETENTION_DAYS: old results go, what undelivered jobs need stays (issue 14, item 7)."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta

from aiogram.methods import AnswerCallbackQuery

from jobs.retention import clean_results
from storage.models import Job, JobStatus, utcnow
from tests.fakes import callback_update, message_update


async def _job(harness, status: str, age_days: float, finished: bool = True) -> int:
    when = utcnow() - timedelta(days=age_days)
    async with harness.app.db.session() as session:
        job = Job(
            user_id=1001, chat_id=1001, kind="text2img", model="kandinsky-3.1", status=status,
            params={"prompt": "x", "width": 64, "height": 64, "seed": 1},
            created_at=when, finished_at=when if finished else None,
        )  # fmt: skip
        session.add(job)
        await session.commit()
        return job.id


def _folder(harness, name: str, files: tuple[str, ...] = ("0.png",)):
    folder = harness.app.settings.results_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    for file in files:
        (folder / file).write_bytes(b"\x89PNG" + b"\0" * 1000)
    return folder


async def test_old_results_go_and_undelivered_ones_stay(harness):
    await harness.feed(message_update("/start"))  # the user row
    keep, drop = {}, {}
    drop["done, 4 days"] = await _job(harness, JobStatus.DONE, 4)
    drop["failed, 5 days (preview)"] = await _job(harness, JobStatus.FAILED, 5)
    drop["censored, 30 days"] = await _job(harness, JobStatus.CENSORED, 30)
    keep["done, 1 day"] = await _job(harness, JobStatus.DONE, 1)
    keep["generated, 10 days"] = await _job(harness, JobStatus.GENERATED, 10, finished=False)
    keep["running, 10 days"] = await _job(harness, JobStatus.RUNNING, 10, finished=False)
    keep["queued, 10 days"] = await _job(harness, JobStatus.QUEUED, 10, finished=False)
    for label, job_id in {**keep, **drop}.items():
        _folder(harness, str(job_id), ("preview-0.jpg",) if "preview" in label else ("0.png", "1.png"))
    old_orphan = _folder(harness, "99001")
    ten_days_ago = (utcnow() - timedelta(days=10)).timestamp()
    os.utime(old_orphan, (ten_days_ago, ten_days_ago))
    new_orphan = _folder(harness, "99002")
    stray = _folder(harness, "not-a-job")

    report = await clean_results(harness.app.db, harness.app.settings.results_dir, timedelta(days=3))

    assert report.deleted == sorted([*drop.values(), 99001])
    for label, job_id in drop.items():
        assert not (harness.app.settings.results_dir / str(job_id)).exists(), label
    for label, job_id in keep.items():
        assert (harness.app.settings.results_dir / str(job_id) / "0.png").exists(), label
    assert not old_orphan.exists() and new_orphan.exists() and stray.exists()
    assert report.freed_bytes > 0

    # The result's "Original" button now says the file is gone, instead of failing.
    await harness.feed(callback_update(f"res:original:{drop['done, 4 days']}"))
    assert harness.session.of(AnswerCallbackQuery)[-1].text == "The original file is no longer stored."


async def test_the_clean_up_runs_in_the_bot_process(harness):
    assert harness.app.settings.results_retention == timedelta(days=3)  # the default
    assert any(task.get_name() == "results-janitor" for task in asyncio.all_tasks())
