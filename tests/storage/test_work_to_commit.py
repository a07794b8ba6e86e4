"""storage.db.has_work_to_commit on a real SQLite file: a session that only holds attached rows has
nothing to commit; one that ran a statement or changed a row has, and what it wrote is kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import create_engine, create_sessionmaker, has_work_to_commit
from storage.migrate import upgrade_async
from storage.models import User
from storage.repositories import Database, Repositories


@pytest.fixture
async def db(tmp_path: Path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    await upgrade_async(url)
    engine = create_engine(url)
    database = Database(create_sessionmaker(engine))
    async with database.session() as session:
        await Repositories(session).users.upsert_seen(7, "ann", "Ann", "en")
        await session.commit()
    yield database
    await engine.dispose()


async def detached_user(db: Database) -> User:
    async with db.session() as session:
        user = (await session.execute(select(User).where(User.id == 7))).scalar_one()
        _ = user.settings
    return user


async def test_an_attached_row_alone_is_no_work_and_a_change_to_it_is(db: Database):
    row = await detached_user(db)
    async with db.session() as session:
        assert not has_work_to_commit(session)
        user = await session.merge(row, load=False)
        assert session.in_transaction()  # begun in the ORM's bookkeeping only
        assert not has_work_to_commit(session)
        user.settings.fixed_seed = 42
        assert has_work_to_commit(session)
        await session.commit()
        assert not has_work_to_commit(session)
    assert (await detached_user(db)).settings.fixed_seed == 42


async def test_a_statement_is_work_until_the_commit_and_its_write_is_kept(db: Database):
    async with db.session() as session:
        await session.execute(update(User).where(User.id == 7).values(first_name="Bea"))
        assert not (session.new or session.dirty)  # no object tells of the write
        assert has_work_to_commit(session)
        await session.commit()
        assert not has_work_to_commit(session)
        (await session.execute(select(User.id))).all()  # a read opens a transaction too
        assert has_work_to_commit(session)
        await session.rollback()
        assert not has_work_to_commit(session)
    assert (await detached_user(db)).first_name == "Bea"


async def test_a_session_of_another_factory_has_work_whenever_it_is_in_a_transaction(db: Database):
    engine = db.sessionmaker.kw["bind"]
    async with AsyncSession(engine, expire_on_commit=False) as session:
        assert not has_work_to_commit(session)
        await session.merge(await detached_user(db), load=False)
        assert has_work_to_commit(session)  # its connections are not tracked: assume the worst
