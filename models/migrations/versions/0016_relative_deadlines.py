"""relative deadlines and loaded working days: stage_deadline.completed_at, case_deadline,
workday_arrangement

Revision ID: 0016
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision = "0016"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stage_deadline", schema=None) as batch_op:
        batch_op.add_column(sa.Column("completed_at", models.types.UTCDateTime(timezone=True), nullable=True))
    op.create_table(
        "case_deadline",
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("stage_id", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("campaign_id", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("due_at", models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("anchor_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changed_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaign.id"]),
        sa.ForeignKeyConstraint(["case_id"], ["case.id"]),
        sa.PrimaryKeyConstraint("case_id", "stage_id"),
    )
    with op.batch_alter_table("case_deadline", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_deadline_campaign_id"), ["campaign_id"], unique=False)
    op.create_table(
        "workday_arrangement",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("digest", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("days", sa.JSON(), nullable=False),
        sa.Column("loaded_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("loaded_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("year", "version"),
    )
    with op.batch_alter_table("workday_arrangement", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_workday_arrangement_year"), ["year"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("workday_arrangement", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_workday_arrangement_year"))
    op.drop_table("workday_arrangement")
    with op.batch_alter_table("case_deadline", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_deadline_campaign_id"))
    op.drop_table("case_deadline")
    with op.batch_alter_table("stage_deadline", schema=None) as batch_op:
        batch_op.drop_column("completed_at")
