"""/forgetface in the database: everything derived from the face leaves the job rows, and a running
job's write-back cannot bring it back."""

from __future__ import annotations

from storage.db import create_engine, create_sessionmaker
from storage.migrate import upgrade_async
from storage.models import Job, JobStatus, User
from storage.repositories import Database, Repositories


async def _database(tmp_path) -> Database:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    await upgrade_async(url)
    return Database(create_sessionmaker(create_engine(url)))


def _job(kind: str, params: dict, result_file_ids: list[str], status: str = JobStatus.DONE) -> Job:
    return Job(user_id=1, chat_id=1, kind=kind, model="k31", params=params, status=status, result_file_ids=result_file_ids)


async def test_forget_strips_face_jobs_and_variations_made_from_their_pictures(tmp_path):
    db = await _database(tmp_path)
    async with db.session() as session:
        repos = Repositories(session)
        session.add(User(id=1))
        await session.flush()
        await repos.faces.set(1, "face-photo", "u", {"box": [1, 2, 3, 4]})
        face = await repos.jobs.add(_job("faceswap", {"prompt": "@me", "input_file_ids": ["face-photo"], "extra": {"face": {"box": [1]}}}, ["swapped-1"]))
        variation = await repos.jobs.add(_job("variations", {"prompt": "", "input_file_ids": ["swapped-1"]}, ["variation-1"]))
        of_variation = await repos.jobs.add(_job("variations", {"prompt": "", "input_file_ids": ["variation-1"]}, ["variation-2"]))
        unrelated = await repos.jobs.add(_job("variations", {"prompt": "", "input_file_ids": ["a-cat"]}, ["cat-2"]))
        await repos.commit()

        deleted, jobs = await repos.faces.forget(1, "faceswap", derived_kinds=["variations"])
        await repos.commit()
        assert deleted and {job.id for job in jobs} == {face.id, variation.id, of_variation.id}

    async with db.session() as session:
        repos = Repositories(session)
        assert await repos.faces.get(1) is None
        for job_id in (face.id, variation.id, of_variation.id):
            job = await repos.jobs.get(job_id)
            assert job.result_file_ids == [] and "input_file_ids" not in job.params
            assert "face" not in job.params["extra"]
        kept = await repos.jobs.get(unrelated.id)
        assert kept.result_file_ids == ["cat-2"] and kept.params["input_file_ids"] == ["a-cat"]


async def test_a_running_jobs_write_back_does_not_restore_the_face(tmp_path):
    db = await _database(tmp_path)
    async with db.session() as session:
        repos = Repositories(session)
        session.add(User(id=1))
        await session.flush()
        job = await repos.jobs.add(
            _job("faceswap", {"prompt": "@me", "input_file_ids": ["face-photo"], "extra": {"face": {"box": [1]}}}, [], JobStatus.RUNNING)
        )
        await repos.commit()
    # The worker read the row when the job started...
    async with db.session() as worker_session:
        stale = dict((await Repositories(worker_session).jobs.get(job.id)).params)
    assert stale["input_file_ids"] == ["face-photo"]
    # ...then the user sent /forgetface...
    async with db.session() as session:
        repos = Repositories(session)
        await repos.faces.forget(1, "faceswap")
        await repos.commit()
    # ...and the worker writes what it learnt: only its own keys reach the row.
    async with db.session() as session:
        repos = Repositories(session)
        await repos.jobs.update_params(job.id, {"used_prompt": "a person at the bar"})
        await repos.commit()
    async with db.session() as session:
        row = (await Repositories(session).jobs.get(job.id)).params
    assert row["used_prompt"] == "a person at the bar"
    assert "input_file_ids" not in row and "face" not in row["extra"]
