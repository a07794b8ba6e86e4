"""Fixtures of the scaling tests: a fresh PostgreSQL database and a private Redis namespace per test.

The services are the real ones on 127.0.0.1 (PostgreSQL 5432, user postgres, trust auth; Redis 6379);
``SCALE_PG_DSN`` / ``SCALE_REDIS_URL`` point elsewhere. Where a service is unreachable the tests skip
with the reason, except under CI (``CI=true``), where they fail instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from redis.asyncio import Redis

PG_DSN = os.environ.get("SCALE_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("SCALE_REDIS_URL", "redis://127.0.0.1:6379/0")


def _unreachable(what: str, exc: BaseException) -> None:
    reason = f"{what} is unreachable ({type(exc).__name__}: {exc})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; under CI the scaling tests must run")
    pytest.skip(reason)


@dataclass
class PgDatabase:
    name: str
    dsn: str  # for asyncpg
    url: str  # for SQLAlchemy: postgresql+asyncpg://...


def _with_database(dsn: str, name: str) -> str:
    return dsn.rsplit("/", 1)[0] + "/" + name


@contextlib.asynccontextmanager
async def fresh_pg_database() -> AsyncIterator[PgDatabase]:
    """A new, empty database, dropped afterwards."""
    try:
        admin = await asyncio.wait_for(asyncpg.connect(PG_DSN), timeout=5)
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
        _unreachable(f"PostgreSQL at {PG_DSN}", exc)
    name = f"kb_test_{secrets.token_hex(6)}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = _with_database(PG_DSN, name)
    try:
        yield PgDatabase(name, dsn, dsn.replace("postgresql://", "postgresql+asyncpg://", 1))
    finally:
        admin = await asyncpg.connect(PG_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def redis_namespace() -> AsyncIterator[str]:
    """A key prefix no other test run uses; every key under it is deleted afterwards."""
    redis = Redis.from_url(REDIS_URL)
    try:
        await asyncio.wait_for(redis.ping(), timeout=5)
    except (OSError, asyncio.TimeoutError, Exception) as exc:  # redis raises its own ConnectionError
        await redis.aclose()
        _unreachable(f"Redis at {REDIS_URL}", exc)
    prefix = f"kbtest:{secrets.token_hex(6)}"
    try:
        yield prefix
    finally:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}:*", count=500)]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


@pytest.fixture
async def pg_database() -> AsyncIterator[PgDatabase]:
    async with fresh_pg_database() as database:
        yield database


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    async with redis_namespace() as prefix:
        yield prefix


@pytest.fixture
async def redis(redis_prefix: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        await client.aclose()
