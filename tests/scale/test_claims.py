"""Claims on PostgreSQL: one delivery per result across processes, take-over of a dead worker's job."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from jobs.claims import JobClaims
from jobs.events import JobContext
from jobs.runner import JobRunner
from storage.db import create_engine, create_sessionmaker
from storage.migrate import upgrade_async
from storage.models import Job, JobStatus, User, UserSettings, utcnow
from storage.repositories import Database


class RecordingEvents:
    """JobEvents that record deliveries; a delivery takes ``delay`` seconds or fails."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.delay = delay
        self.fail = fail
        self.delivered: list[int] = []

    async def started(self, ctx: JobContext) -> None: ...

    async def progress(self, ctx: JobContext, step: int, total: int) -> None: ...

    def working(self, ctx: JobContext) -> Any:
        return contextlib.nullcontext()

    async def deliver(self, ctx: JobContext, paths: list[Path]) -> list[str]:
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("Telegram said no")
        self.delivered.append(ctx.job.id)
        return [f"file-{ctx.job.id}-{i}" for i in range(len(paths))]

    async def failed(self, ctx: JobContext, code: str) -> None: ...

    async def cancelled(self, ctx: JobContext) -> None: ...

    async def fetch_file(self, file_id: str) -> bytes:
        raise AssertionError("no inputs here")


@pytest.fixture
async def db(pg_database) -> AsyncIterator[Database]:
    await upgrade_async(pg_database.url)
    engine = create_engine(pg_database.url)
    try:
        yield Database(create_sessionmaker(engine))
    finally:
        await engine.dispose()


async def add_job(db: Database, status: str = JobStatus.GENERATED, **values: Any) -> int:
    async with db.session() as session:
        if await session.get(User, 7) is None:
            user = User(id=7, first_name="Ann")
            user.settings = UserSettings(user_id=7)
            session.add(user)
            await session.flush()
        job = Job(
            user_id=7,
            chat_id=7,
            kind="text2img",
            model="kandinsky-3.1",
            params={"prompt": "a fox", "width": 64, "height": 64, "seed": 1},
            status=status,
            **values,
        )
        session.add(job)
        await session.commit()
        return job.id


async def job_row(db: Database, job_id: int) -> Job:
    async with db.session() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        return job


def store_result(results: Path, job_id: int) -> None:
    folder = results / str(job_id)
    folder.mkdir(parents=True)
    Image.new("RGB", (64, 64), "red").save(folder / "0.png")


async def test_two_workers_deliver_a_result_once(db, tmp_path):
    job_id = await add_job(db)
    store_result(tmp_path, job_id)
    events = [RecordingEvents(delay=0.3), RecordingEvents(delay=0.3)]
    runners = [JobRunner(db, None, e, tmp_path, worker_id=f"w{i}") for i, e in enumerate(events)]  # type: ignore[arg-type]

    results = await asyncio.gather(*(r.deliver(job_id) for r in runners for _ in range(3)))

    assert sum(results) == 1
    assert sum(len(e.delivered) for e in events) == 1
    job = await job_row(db, job_id)
    assert job.status == JobStatus.DONE and job.claimed_by is None
    assert job.result_file_ids == [f"file-{job_id}-0"]
    # Later retries (a redelivered message, a retry loop) find nothing to do.
    assert not await runners[1].deliver(job_id)
    assert sum(len(e.delivered) for e in events) == 1


async def test_a_refused_delivery_is_released_for_anyone_to_retry(db, tmp_path):
    job_id = await add_job(db)
    store_result(tmp_path, job_id)
    failing = JobRunner(db, None, RecordingEvents(fail=True), tmp_path, worker_id="w1")  # type: ignore[arg-type]
    other_events = RecordingEvents()
    other = JobRunner(db, None, other_events, tmp_path, worker_id="w2")  # type: ignore[arg-type]

    assert not await failing.deliver(job_id)
    assert (await job_row(db, job_id)).status == JobStatus.GENERATED
    assert await other.deliver(job_id)
    assert other_events.delivered == [job_id]


async def test_a_dead_deliverers_claim_blocks_others_until_it_expires(db, tmp_path):
    job_id = await add_job(db, claimed_by="dead-worker", claim_expires_at=utcnow() + timedelta(seconds=1))
    store_result(tmp_path, job_id)
    events = RecordingEvents()
    runner = JobRunner(db, None, events, tmp_path, worker_id="w2")  # type: ignore[arg-type]
    async with db.session() as session:
        assert await JobClaims(session).deliverable_ids("w2") == []

    assert not await runner.deliver(job_id)
    await asyncio.sleep(1.1)
    async with db.session() as session:
        assert await JobClaims(session).deliverable_ids("w2") == [job_id]
    assert await runner.deliver(job_id)
    assert events.delivered == [job_id]


async def test_running_job_is_taken_over_only_once_its_claim_expired(db):
    live = await add_job(db, JobStatus.RUNNING, claimed_by="w1", claim_expires_at=utcnow() + timedelta(minutes=1))
    dead = await add_job(db, JobStatus.RUNNING, claimed_by="w1", claim_expires_at=utcnow() - timedelta(seconds=1))
    mine = await add_job(db, JobStatus.RUNNING, claimed_by="w2", claim_expires_at=utcnow() + timedelta(minutes=1))
    async with db.session() as session:
        claims = JobClaims(session)
        assert not await claims.requeue_expired(live, owner="w2")
        assert await claims.requeue_expired(dead, owner="w2")
        assert not await claims.requeue_expired(dead, owner="w2")  # already queued: one winner
        assert await claims.requeue_expired(mine, owner="w2")  # w2's own claim: from its previous life
        await session.commit()
    assert (await job_row(db, live)).status == JobStatus.RUNNING
    requeued = await job_row(db, dead)
    assert requeued.status == JobStatus.QUEUED and requeued.claimed_by is None and requeued.started_at is None


async def test_renewing_a_claim_reports_cancellation(db):
    job_id = await add_job(db, JobStatus.RUNNING, claimed_by="w1", claim_expires_at=utcnow() + timedelta(seconds=5))
    async with db.session() as session:
        claims = JobClaims(session)
        assert await claims.renew(job_id, "w1", 60) is False
        assert await claims.renew(job_id, "w2", 60) is None  # not w2's job
        await session.commit()
    job = await job_row(db, job_id)
    assert job.claim_expires_at > utcnow() + timedelta(seconds=50)
    async with db.session() as session:
        await session.execute(Job.__table__.update().where(Job.id == job_id).values(cancel_requested=True))
        assert await JobClaims(session).renew(job_id, "w1", 60) is True
        await session.commit()


async def test_a_job_whose_workers_keep_dying_fails(db):
    job_id = await add_job(db, JobStatus.RUNNING, attempts=3, claimed_by="w1", claim_expires_at=utcnow())
    async with db.session() as session:
        assert await JobClaims(session).fail_expired(job_id, "internal")
        await session.commit()
    job = await job_row(db, job_id)
    assert job.status == JobStatus.FAILED and job.error == "internal"


async def test_job_counts_by_status_and_model(db):
    await add_job(db, JobStatus.QUEUED)
    await add_job(db, JobStatus.QUEUED)
    await add_job(db, JobStatus.DONE)
    async with db.session() as session:
        counts = await JobClaims(session).counts()
    assert sorted(counts) == [("done", "kandinsky-3.1", 1), ("queued", "kandinsky-3.1", 2)]
