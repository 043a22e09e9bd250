"""reconcile_plan (which step reconcile last planned in full, as of which audit event) and the
covering case indexes ix_case_pending and ix_case_board: issue 10's scale targets (reconcile, status over 1M cases)

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reconcile_plan",
        sa.Column("campaign_id", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("stage_id", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("rule", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("signature", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("audit_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "stage_id", "rule"),
    )
    # A plain CREATE INDEX (no batch rebuild of the case table).
    op.create_index(
        "ix_case_pending",
        "case",
        ["campaign_id", "kind", "state", "state_since", "org_id", "county_code", "city_code", "ref"],
        unique=False,
    )
    op.create_index(
        "ix_case_board",
        "case",
        ["campaign_id", "kind", "city_code", "state", "county_code", "org_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_case_board", table_name="case")
    op.drop_index("ix_case_pending", table_name="case")
    op.drop_table("reconcile_plan")
