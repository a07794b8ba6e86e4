"""storage.db.create_engine: the pool size reaches the pools that keep connections, and only those."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.pool import NullPool

from storage.db import create_engine


async def test_the_pool_size_applies_where_connections_are_pooled(tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", pool_size=20)
    assert engine.sync_engine.pool.size() == 20
    await engine.dispose()
    # An in-memory database has a single connection; SQLAlchemy refuses a pool_size for it.
    for url in ("sqlite+aiosqlite://", "sqlite+aiosqlite:///:memory:"):
        engine = create_engine(url, pool_size=20)
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
        await engine.dispose()
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", pool_size=20, poolclass=NullPool)
    assert isinstance(engine.sync_engine.pool, NullPool)
    await engine.dispose()
