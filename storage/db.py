"""Engine and session factory."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, SessionTransaction

# ``Session.info`` key: a transaction of this session has begun on a connection (statements ran).
_BEGUN = "connection_begun"


def create_engine(url: str, *, pool_size: int | None = None, **kwargs: Any) -> AsyncEngine:
    """An engine for ``url``; ``pool_size``: connections its pool keeps open (where it keeps a pool:
    not with another ``poolclass`` given, nor for an in-memory SQLite database, which has one)."""
    if pool_size is not None and "poolclass" not in kwargs and _pools_connections(url):
        kwargs["pool_size"] = pool_size
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


def sqlite_file(url: str) -> str | None:
    """The database file of a SQLite URL; None for an in-memory database or another backend."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.query.get("mode") == "memory":
        return None
    return parsed.database if parsed.database not in (None, "", ":memory:") else None


def _pools_connections(url: str) -> bool:
    return make_url(url).get_backend_name() != "sqlite" or sqlite_file(url) is not None


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # A Session class per sessionmaker: listeners on it (storage.user_cache) see this factory's
    # sessions only, not those of another app in the same process (tests build several).
    unit_of_work = type("UnitOfWork", (Session,), {"tracks_connections": True})
    event.listen(unit_of_work, "after_begin", _connection_begun)
    event.listen(unit_of_work, "after_transaction_end", _transaction_ended)
    return async_sessionmaker(engine, expire_on_commit=False, sync_session_class=unit_of_work)


def _connection_begun(session: Session, _transaction: SessionTransaction, _connection: Any) -> None:
    session.info[_BEGUN] = True


def _transaction_ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_BEGUN, None)


def has_work_to_commit(session: AsyncSession) -> bool:
    """Whether committing ``session`` would do anything: objects to flush, or a transaction open on
    a connection (statements ran since the last commit). Attaching a row (the update's user) also
    begins a transaction, but only in the ORM's bookkeeping: with nothing changed, its commit would
    send nothing and still cost as much as a small query. (A session of another factory, whose
    connections are not tracked, has work whenever it is in a transaction.)"""
    sync = session.sync_session
    begun = sync.info.get(_BEGUN) if getattr(sync, "tracks_connections", False) else sync.in_transaction()
    return bool(begun or sync.new or sync.dirty or sync.deleted)
