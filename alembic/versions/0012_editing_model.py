"""user_settings.editing_model: the model of the image-editing modes (Kandinsky 2.2 or 3.1)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 02:35:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = "0012"
down_revision: Union[str, None] = "0011"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # Existing users keep what they had: Kandinsky 2.2 runs their editing modes.
    with op.batch_alter_table("user_settings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("editing_model", sa.String(length=32), server_default="kandinsky-2.2", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("user_settings", schema=None) as batch_op:
        batch_op.drop_column("editing_model")
