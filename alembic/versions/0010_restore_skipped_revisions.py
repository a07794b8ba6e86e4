"""restore what revisions 0005 and 0006 create where a database skipped them

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 03:10:00

Revision 0004 (user_settings.edit_strength) followed 0002, then 0005, on the editing branch before
it landed after 0006. A database built on that branch is stamped 0004 without the tables of 0005
(admin: grants, audit, runtime settings, broadcasts; users.blocked_bot) and 0006 (user_faces), and
Alembic, which reads the history as it is now, takes them as applied. This revision runs them where
their tables are missing; on every other database it does nothing.
Released revisions are never re-parented again (tests/storage/test_migrations.py pins them).
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import context, op

revision: str = "0010"
down_revision: Union[str, None] = "0009"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# revision -> a table that exists once it ran
SKIPPABLE = (("0005", "admin_grants"), ("0006", "user_faces"))


def upgrade() -> None:
    tables = set(sa.inspect(op.get_bind()).get_table_names())
    for skipped, table in SKIPPABLE:
        if table not in tables:
            context.script.get_revision(skipped).module.upgrade()


def downgrade() -> None:
    # Nothing to undo: the tables belong to 0005 and 0006, whose downgrades drop them.
    pass
