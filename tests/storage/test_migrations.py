"""Migrations on a real SQLite file: up, down, up again; the models and the newest revision agree."""

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from storage import migrate
from storage.models import Base


def tables(url: str) -> set[str]:
    engine = sa.create_engine(url.replace("+aiosqlite", ""))
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(tmp_path: Path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'db' / 'bot.db'}"
    migrate.upgrade(url)
    assert tables(url) >= {"users", "user_settings", "jobs"}
    migrate.downgrade(url, "base")
    assert tables(url) == set()
    migrate.upgrade(url)
    assert tables(url) >= {"users", "user_settings", "jobs"}


def test_every_revision_downgrades_one_step_at_a_time(tmp_path: Path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    script = ScriptDirectory.from_config(migrate.alembic_config(url))
    revisions = [r.revision for r in script.walk_revisions()]  # newest first
    assert len(script.get_heads()) == 1, "the migration history must be linear"
    migrate.upgrade(url)
    for revision in revisions:
        migrate.downgrade(url, "-1")
    assert tables(url) == set()


def test_models_match_the_newest_revision(tmp_path: Path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    migrate.upgrade(url)
    engine = sa.create_engine(url.replace("+aiosqlite", ""))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []
