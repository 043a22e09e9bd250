"""audit Merkle log: each event row stores its leaf hash and the subtrees it completed
(audit_event.tree_nodes), the tree's right edge is in audit_head.tree, and the signed
checkpoints are kept (audit_checkpoint); the events already there are hashed into the tree here,
so the log covers the whole history from seq 1.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_checkpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("root", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("signed_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_checkpoint_size", "audit_checkpoint", ["size"])
    with op.batch_alter_table("audit_head", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tree", sa.Text(), server_default="", nullable=False))
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tree_nodes", sa.LargeBinary(), server_default=sa.text("''"), nullable=False))
    _hash_existing_events()


def _hash_existing_events() -> None:
    # The leaves are the bytes the HMAC chain already covers (models/audit.py _canonical).
    from models.audit import _canonical
    from models.audit_tree import blob
    from models.merkle import Frontier, leaf_hash

    bind = op.get_bind()
    events = sa.table(
        "audit_event",
        sa.column("at", models.types.UTCDateTime()),
        sa.column("tree_nodes", sa.LargeBinary()),
        *(sa.column(c) for c in ("seq", "actor", "action", "subject", "case_id", "campaign_id",
                                  "from_value", "to_value", "reason", "details")),
    )
    update = sa.update(events).where(events.c.seq == sa.bindparam("b_seq")).values(tree_nodes=sa.bindparam("b_nodes"))
    frontier, after = Frontier(), 0
    while True:
        rows = bind.execute(sa.select(events).where(events.c.seq > after).order_by(events.c.seq).limit(5000)).all()
        if not rows:
            break
        batch = [
            {"b_seq": row.seq, "b_nodes": blob(frontier.append(leaf_hash(_canonical(row.seq, row, row.details))))}
            for row in rows
        ]
        bind.execute(update, batch)
        after = rows[-1].seq
    head = sa.table("audit_head", sa.column("id"), sa.column("tree"))
    bind.execute(sa.update(head).where(head.c.id == 1).values(tree=frontier.encode()))


def downgrade() -> None:
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_column("tree_nodes")
    with op.batch_alter_table("audit_head", schema=None) as batch_op:
        batch_op.drop_column("tree")
    op.drop_index("ix_audit_checkpoint_size", "audit_checkpoint")
    op.drop_table("audit_checkpoint")
