"""receipts by mail start with this version: the "receipts" watermark of reconcile_cursor is set
at the audit log's head, so upgrading a running season mails no receipts for the actions of the
past (their actors fetch them with ``shenbao audit receipt`` or on the case's receipt page); a
new database starts at 0 and every action has its receipt

Revision ID: 0019
Revises: 0017
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "INSERT INTO reconcile_cursor (name, value) "
        "SELECT 'receipts', COALESCE(MAX(seq), 0) FROM audit_event"
    )


def downgrade() -> None:
    op.execute("DELETE FROM reconcile_cursor WHERE name = 'receipts'")
