"""email lease token

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 10:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (SQLite has it): a batch rebuild of the table could lose the partial
    # due index's WHERE clause.
    op.add_column(
        "email", sa.Column("lease_token", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("email", schema=None) as batch_op:
        batch_op.drop_column("lease_token")
