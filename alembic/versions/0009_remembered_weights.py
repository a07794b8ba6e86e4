"""remembered answers of the last question of /mix and /fuse (percent of the photo / first photo)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 03:35:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = "0009"
down_revision: Union[str, None] = "0008"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("user_settings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mix_weight", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("fuse_weight", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("user_settings", schema=None) as batch_op:
        batch_op.drop_column("fuse_weight")
        batch_op.drop_column("mix_weight")
