"""Engine and session factory."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        # WAL lets the worker write while handlers read; a busy timeout instead of "database is locked".
        # In WAL mode synchronous=NORMAL syncs at checkpoints, not at every commit: a commit survives
        # the process crashing (what "nothing lost on restart" needs); only an OS crash or power cut
        # can lose the last moments, never the database's consistency.
        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # A Session class per sessionmaker: listeners on it (storage.user_cache) see this factory's
    # sessions only, not those of another app in the same process (tests build several).
    unit_of_work = type("UnitOfWork", (Session,), {})
    return async_sessionmaker(engine, expire_on_commit=False, sync_session_class=unit_of_work)
