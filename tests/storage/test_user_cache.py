"""Users kept between updates (storage.user_cache) on a real SQLite file: first contacts created in
batches, known users attached without SQL, and every change the bot's sessions make seen at once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiogram.types import User as TelegramUser
from sqlalchemy import event, select, update

from storage.db import create_engine, create_sessionmaker
from storage.migrate import upgrade_async
from storage.models import User, UserSettings
from storage.repositories import Database
from storage.user_cache import UserDirectory


def tg(user_id: int, language: str = "en", name: str = "Ann") -> TelegramUser:
    return TelegramUser(id=user_id, is_bot=False, first_name=name, language_code=language, username=f"u{user_id}")


class Statements:
    def __init__(self, engine: Any) -> None:
        self.seen: list[str] = []
        event.listen(engine.sync_engine, "before_cursor_execute", self._record)

    def _record(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.seen.append(" ".join(statement.split()[:2]))


@pytest.fixture
async def db(tmp_path: Path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    await upgrade_async(url)
    engine = create_engine(url)
    yield Database(create_sessionmaker(engine))
    await engine.dispose()


async def attach(directory: UserDirectory, db: Database, tg_user: TelegramUser) -> User:
    async with db.session() as session:
        return await directory.attach(session, tg_user)


async def test_a_burst_of_first_contacts_is_one_batch_and_known_users_cost_no_statement(db: Database):
    directory = UserDirectory(db, ttl=300)
    directory.watch()
    statements = Statements(db.sessionmaker.kw["bind"])
    users = await asyncio.gather(*(attach(directory, db, tg(100 + i, "ru" if i % 2 else "en")) for i in range(40)))
    assert directory.batches == 1
    # One read, one INSERT of users and one of settings (executemany), one read of the new rows.
    assert [s for s in statements.seen if s.split()[0] in ("SELECT", "INSERT")] == [
        "SELECT users.id,", "INSERT INTO", "INSERT INTO", "SELECT users.id,"
    ]
    assert [u.id for u in users] == [100 + i for i in range(40)]
    assert [u.language for u in users[:2]] == ["en", "ru"]
    assert users[0].settings.model == "kandinsky-3.1" and users[0].settings.aspect_ratio == "1:1"
    async with db.session() as session:  # the rows are in the database, not only in memory
        assert len((await session.execute(select(User))).scalars().all()) == 40
        assert len((await session.execute(select(UserSettings))).scalars().all()) == 40

    statements.seen.clear()
    again = await attach(directory, db, tg(101, "ru"))
    assert statements.seen == []  # known: no statement at all
    assert again.language == "ru" and again.settings.user_id == 101


async def test_a_change_made_through_the_bots_sessions_is_seen_by_the_next_update(db: Database):
    directory = UserDirectory(db, ttl=300)
    directory.watch()
    async with db.session() as session:
        user = await directory.attach(session, tg(7))
        user.settings.model = "kandinsky-2.2"  # what /settings does with the update's user
        user.language = "ru"
        await session.commit()
    fresh = await attach(directory, db, tg(7))
    assert fresh.settings.model == "kandinsky-2.2" and fresh.language == "ru"

    # A bulk UPDATE (how admins ban) forgets every kept user.
    async with db.session() as session:
        await session.execute(update(User).where(User.id == 7).values(banned=True))
        await session.commit()
    assert (await attach(directory, db, tg(7))).banned is True


async def test_without_watching_a_change_from_elsewhere_shows_after_the_ttl(db: Database):
    now = [0.0]
    directory = UserDirectory(db, ttl=2.0, clock=lambda: now[0])
    await attach(directory, db, tg(9))
    other = Database(create_sessionmaker(db.sessionmaker.kw["bind"]))  # another process, in effect
    async with other.session() as session:
        await session.execute(update(UserSettings).where(UserSettings.user_id == 9).values(num_images=4))
        await session.commit()
    assert (await attach(directory, db, tg(9))).settings.num_images == 1  # kept, not read
    now[0] = 2.5
    assert (await attach(directory, db, tg(9))).settings.num_images == 4


async def test_ttl_zero_reads_every_time(db: Database):
    directory = UserDirectory(db, ttl=0)
    await attach(directory, db, tg(5))
    await attach(directory, db, tg(5))
    assert directory.batches == 2


async def test_watch_needs_a_session_class_of_its_own(db: Database):
    from sqlalchemy.ext.asyncio import async_sessionmaker

    shared = Database(async_sessionmaker(db.sessionmaker.kw["bind"]))
    with pytest.raises(ValueError):
        UserDirectory(shared, ttl=1).watch()


@pytest.mark.parametrize("rolled_back", [True, False], ids=["rolled back", "closed without a commit"])
async def test_a_change_an_update_never_wrote_is_not_kept(db: Database, rolled_back: bool):
    directory = UserDirectory(db, ttl=300)
    directory.watch()
    await attach(directory, db, tg(3))
    async with db.session() as session:
        user = await directory.attach(session, tg(3))
        user.settings.style = "ANIME"
        user.language = "ru"
        if rolled_back:  # the handler failed: nothing written
            await session.rollback()
        # else the handler failed before committing: the session closes without a commit
    async with db.session() as session:
        again = await directory.attach(session, tg(3))
        assert again.settings.style == "DEFAULT" and again.language == "en"


async def test_two_updates_of_one_user_at_once_each_have_their_row(db: Database):
    directory = UserDirectory(db, ttl=300)
    directory.watch()
    await attach(directory, db, tg(4))
    statements = Statements(db.sessionmaker.kw["bind"])
    async with db.session() as first_session, db.session() as second_session:
        first = await directory.attach(first_session, tg(4))
        second = await directory.attach(second_session, tg(4))  # the first update still holds its row
        assert first is not second and first.settings is not second.settings
        assert statements.seen == []  # both from memory
        second.settings.num_images = 3
        await second_session.commit()
        first.settings.style = "ANIME"
        await first_session.commit()
    fresh = await attach(directory, db, tg(4))
    assert (fresh.settings.num_images, fresh.settings.style) == (3, "ANIME")
