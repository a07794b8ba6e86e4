"""New jobs inserted in one statement (JobRepository.insert_new, used by admission) on a real SQLite
file and a real PostgreSQL database: each job gets the row the database stored for it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import delete, event, func, select

from storage.db import create_engine, create_sessionmaker
from storage.migrate import upgrade_async
from storage.models import Job, JobStatus
from storage.repositories import Database, Repositories
from tests.scale.conftest import fresh_pg_database


@contextlib.asynccontextmanager
async def database(kind: str, tmp_path: Path) -> AsyncIterator[Database]:
    async with contextlib.AsyncExitStack() as stack:
        if kind == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
        else:
            url = (await stack.enter_async_context(fresh_pg_database())).url
        await upgrade_async(url)
        engine = create_engine(url)
        stack.push_async_callback(engine.dispose)
        yield Database(create_sessionmaker(engine))


def new_job(user_id: int, chat_id: int, prompt: str) -> Job:
    return Job(
        user_id=user_id,
        chat_id=chat_id,
        kind="text2img",
        model="kandinsky-3.1",
        params={"version": 1, "prompt": prompt, "width": 64, "height": 64, "seed": chat_id},
        status=JobStatus.QUEUED,
    )


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_a_batch_of_new_jobs_is_one_insert_and_each_job_gets_its_own_row(kind: str, tmp_path: Path):
    async with database(kind, tmp_path) as db:
        async with db.session() as session:
            repos = Repositories(session)
            for user_id in (1, 2, 3):
                await repos.users.upsert_seen(user_id, None, "Ann", "en")
            # Earlier jobs, the newest of them deleted: SQLite may hand its number out again.
            await repos.jobs.insert_new([new_job(1, 1, f"old {i}") for i in range(5)])
            newest = (await session.execute(select(func.max(Job.id)))).scalar_one()
            await session.execute(delete(Job).where(Job.id == newest))
            await session.commit()

        # Several jobs of one user and one chat among them, as a burst's batch has.
        wanted = [(1 + i % 3, 100 + i // 2, f"prompt {i}") for i in range(40)]
        inserts: list[str] = []
        engine = db.sessionmaker.kw["bind"]
        listen = lambda conn, cursor, statement, *rest: inserts.append(statement)  # noqa: E731
        event.listen(engine.sync_engine, "before_cursor_execute", listen)
        async with db.session() as session:
            rows = await Repositories(session).jobs.insert_new([new_job(*w) for w in wanted])
            await session.commit()
        event.remove(engine.sync_engine, "before_cursor_execute", listen)
        assert len([s for s in inserts if s.lstrip().upper().startswith("INSERT")]) == 1

        # Read back by id in a fresh session: the database, not the returned objects, says what each id holds.
        async with db.session() as session:
            stored = {job.id: job for job in (await session.execute(select(Job))).scalars()}
        assert len({row.id for row in rows}) == len(wanted)
        for row, (user_id, chat_id, prompt) in zip(rows, wanted, strict=True):
            job = stored[row.id]
            assert (job.user_id, job.chat_id, job.params["prompt"]) == (user_id, chat_id, prompt)
            # The columns' defaults are applied and loaded on the returned row.
            assert (row.status, row.attempts, row.delivery_attempts, row.cancel_requested) == ("queued", 0, 0, False)
            assert row.result_file_ids == [] and row.created_at is not None and row.status_message_id is None
