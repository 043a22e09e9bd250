"""database identity: a random id written once, so the audit anchor is found by it, not by the URL

Revision ID: 0007
Revises: 0003
Create Date: 2026-12-01 10:00:00
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel
import models.types
from alembic import op


revision = '0007'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table('database_identity',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('identity', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('created_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    # Written here, once: a later `shenbao init` finds the migration applied and keeps it.
    op.bulk_insert(table, [{'id': 1, 'identity': str(uuid.uuid4()), 'created_at': datetime.now(UTC)}])


def downgrade() -> None:
    op.drop_table('database_identity')
