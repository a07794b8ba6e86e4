"""Migrations on a real SQLite file: up, down, up again; the models and the newest revision agree."""

from pathlib import Path

import pytest

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


# -- databases built by earlier releases -------------------------------------------------------

# The parent of every released revision. A released revision is never re-parented: a database
# stamped at it would skip whatever is put before it (this happened to 0004, see 0010).
RELEASED_PARENTS = {
    "0001": None,
    "0002": "0001",
    "0005": "0002",
    "0006": "0005",
    "0004": "0006",
    "0007": "0004",
    "0008": "0007",
    "0009": "0008",
    "0010": "0009",
    "0011": "0010",
}

# The histories databases were built with, oldest revision first: main as it was released, and
# the editing branch, where 0004 followed 0002 and then 0005 before it landed after 0006.
RELEASED_HISTORIES = [
    ["0001", "0002", "0005", "0006", "0004", "0007", "0008", "0009"],  # main (every prefix was a release)
    ["0001", "0002", "0004"],  # the editing branch, first merge of main
    ["0001", "0002", "0005", "0004"],  # the editing branch, second merge of main
]


def test_released_revisions_keep_their_parents(tmp_path: Path):
    script = ScriptDirectory.from_config(migrate.alembic_config(f"sqlite:///{tmp_path / 'x.db'}"))
    parents = {r.revision: r.down_revision for r in script.walk_revisions()}
    assert {rev: parents.get(rev, "missing") for rev in RELEASED_PARENTS} == RELEASED_PARENTS


def _build_as_released(url: str, history: list[str]) -> None:
    """A database as the given history built it: each revision's own upgrade, in that order, then
    stamped at the last one (what an older checkout of the project left behind)."""
    from alembic import command
    from alembic.operations import Operations

    config = migrate.alembic_config(url)
    script = ScriptDirectory.from_config(config)
    engine = sa.create_engine(url.replace("+aiosqlite", ""))
    try:
        with engine.begin() as connection:
            context = MigrationContext.configure(connection)
            with Operations.context(context):
                for revision in history:
                    script.get_revision(revision).module.upgrade()
    finally:
        engine.dispose()
    command.stamp(config, history[-1], purge=True)


def _schema_diff(url: str) -> list:
    engine = sa.create_engine(url.replace("+aiosqlite", ""))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def _released_states() -> list[list[str]]:
    """Every prefix of every released history, once."""
    states: list[list[str]] = []
    for history in RELEASED_HISTORIES:
        for n in range(1, len(history) + 1):
            if history[:n] not in states:
                states.append(history[:n])
    return states


@pytest.mark.parametrize("history", _released_states(), ids=lambda h: "-".join(h))
def test_a_database_stamped_at_a_released_revision_upgrades_to_the_models(tmp_path: Path, history: list[str]):
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    _build_as_released(url, history)
    migrate.upgrade(url)
    assert _schema_diff(url) == []
