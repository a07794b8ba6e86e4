"""The same Alembic revisions migrate PostgreSQL, up and down."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import asyncpg
from alembic.script import ScriptDirectory

from storage.migrate import alembic_config, downgrade, upgrade, upgrade_async

ROOT = Path(__file__).resolve().parents[2]
CLAIMS_REVISION = "0007"  # alembic/versions/0007_job_claims.py


async def _columns(dsn: str) -> dict[str, set[str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
        )
        versions = []
        if any(r["table_name"] == "alembic_version" for r in rows):
            versions = [r["version_num"] for r in await conn.fetch("SELECT version_num FROM alembic_version")]
    finally:
        await conn.close()
    tables: dict[str, set[str]] = {}
    for row in rows:
        tables.setdefault(row["table_name"], set()).add(row["column_name"])
    tables["<versions>"] = set(versions)
    return tables


async def test_upgrade_and_downgrade_on_postgres(pg_database):
    url = pg_database.url
    heads = ScriptDirectory.from_config(alembic_config(url)).get_heads()

    await upgrade_async(url)
    schema = await _columns(pg_database.dsn)
    assert {"users", "user_settings", "jobs", "alembic_version"} <= set(schema)
    assert {"claimed_by", "claim_expires_at", "cancel_requested", "status"} <= schema["jobs"]
    assert schema["<versions>"] == set(heads)

    # Down to the revision before the claims: their columns go, the rest stays.
    before = ScriptDirectory.from_config(alembic_config(url)).get_revision(CLAIMS_REVISION).down_revision
    await asyncio.to_thread(downgrade, url, before)
    schema = await _columns(pg_database.dsn)
    assert "claimed_by" not in schema["jobs"] and "claim_expires_at" not in schema["jobs"]
    assert {"cancel_requested", "status"} <= schema["jobs"]
    assert schema["<versions>"] == {before}

    # All the way down: nothing but Alembic's own table is left.
    await asyncio.to_thread(downgrade, url, "base")
    schema = await _columns(pg_database.dsn)
    assert set(schema) - {"<versions>"} <= {"alembic_version"}
    assert schema["<versions>"] == set()

    # And up again.
    await asyncio.to_thread(upgrade, url)
    schema = await _columns(pg_database.dsn)
    assert {"claimed_by", "claim_expires_at"} <= schema["jobs"]
    assert schema["<versions>"] == set(heads)


async def test_replicas_migrating_together_take_turns(pg_database):
    """Bot replicas started at the same time all migrate; the advisory lock makes them take turns.

    (Separate processes, as replicas are: Alembic's ``context`` is global to a process.)
    """
    code = "import sys; from storage.migrate import upgrade; upgrade(sys.argv[1])"
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, pg_database.url, cwd=ROOT, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(3)
    ]
    results = [await asyncio.wait_for(p.communicate(), timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err.decode()[-2000:] for _out, err in results]
    schema = await _columns(pg_database.dsn)
    assert {"claimed_by", "claim_expires_at"} <= schema["jobs"]
