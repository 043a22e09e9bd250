"""channels beside email: the contact's SMS number, robot and preference; the channel outbox, its
attempts and items; the governor's shared buckets and daily ledger

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _s(n: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=n)


def upgrade() -> None:
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sms_mobile", sa.String(length=11), server_default="", nullable=False))
        batch_op.add_column(sa.Column("robot", sa.String(length=60), server_default="", nullable=False))
        batch_op.add_column(sa.Column("prefers", sa.String(length=10), server_default="email", nullable=False))
    op.create_table(
        "channel_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", _s(200), nullable=False),
        sa.Column("channel", _s(10), nullable=False),
        sa.Column("address", _s(60), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("to_name", _s(100), nullable=False),
        sa.Column("title", _s(200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("link", _s(500), nullable=True),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("kinds", _s(200), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("created_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", _s(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by", _s(100), nullable=True),
        sa.Column("claimed_at", models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lease_token", _s(32), nullable=True),
        sa.Column("sent_at", models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", _s(1000), nullable=False),
        sa.Column("provider_id", _s(100), nullable=True),
        sa.Column("folded_into", sa.Integer(), nullable=True),
        sa.Column("fallback_of", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["contact_id"], ["contact.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    due = "status IN ('pending', 'retry')"
    op.create_index(
        "ix_channel_message_due",
        "channel_message",
        ["channel", "next_attempt_at"],
        sqlite_where=sa.text(due),
        postgresql_where=sa.text(due),
    )
    op.create_index("ix_channel_message_status", "channel_message", ["channel", "status"])
    op.create_index("ix_channel_message_destination", "channel_message", ["channel", "address", "status"])
    op.create_index("ix_channel_message_contact_id", "channel_message", ["contact_id"])
    op.create_index("ix_channel_message_folded_into", "channel_message", ["folded_into"])
    op.create_index("ix_channel_message_fallback_of", "channel_message", ["fallback_of"])
    op.create_table(
        "channel_item",
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("notification_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["channel_message.id"]),
        sa.ForeignKeyConstraint(["notification_id"], ["notification.id"]),
        sa.PrimaryKeyConstraint("message_id", "notification_id"),
    )
    op.create_index("ix_channel_item_notification_id", "channel_item", ["notification_id"])
    op.create_table(
        "channel_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("channel", _s(10), nullable=False),
        sa.Column("at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("worker", _s(100), nullable=False),
        sa.Column("outcome", _s(20), nullable=False),
        sa.Column("code", _s(40), nullable=True),
        sa.Column("detail", _s(1000), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["channel_message.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_channel_attempt_message_id", "channel_attempt", ["message_id"])
    op.create_table(
        "delivery_bucket",
        sa.Column("name", _s(120), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("capacity", sa.Float(), nullable=False),
        sa.Column("per_second", sa.Float(), nullable=False),
        sa.Column("refilled_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("locked_until", models.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "delivery_ledger",
        sa.Column("name", _s(160), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("day", _s(10), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_index("ix_delivery_ledger_day", "delivery_ledger", ["day"])


def downgrade() -> None:
    op.drop_table("delivery_ledger")
    op.drop_table("delivery_bucket")
    op.drop_table("channel_attempt")
    op.drop_table("channel_item")
    op.drop_table("channel_message")
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.drop_column("prefers")
        batch_op.drop_column("robot")
        batch_op.drop_column("sms_mobile")
