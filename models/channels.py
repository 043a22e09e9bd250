"""The outbox beside email: one ``ChannelMessage`` per message on 浙政钉, a DingTalk group robot or
SMS, every try a ``ChannelAttempt``, the notifications each message carries (``ChannelItem``),
and the governor's shared quota state (``DeliveryBucket``, ``DeliveryLedger``).

A ``ChannelMessage`` moves like an ``Email`` (models/outbox.py) and is claimed the same way (a
conditional UPDATE with a lease token, lease renewed by the real clock): ``pending``/``retry`` →
``sending`` → ``sent`` | ``retry`` | ``dead`` | ``cancelled``, plus ``folded``: the governor put
it into a summary message (``folded_into``) because its destination's quota would be exceeded.
A dead message whose person has another channel is followed by a fallback message on that
channel (``fallback_of``), recorded in both rows and in an attempt.

Keys: ``ChannelMessage.key`` is the outbox key; the idempotency key a platform sees (浙政钉's
bizMsgId, a robot message's uuid, an SMS client reference) is derived from it
(:func:`idempotency_key`), the same on every attempt.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Column, Index, Text, text
from sqlmodel import Field, Session, SQLModel, col, select

from models.audit import EventDraft
from models.types import UTCDateTime

if TYPE_CHECKING:
    from models.context import Ctx

# ChannelMessage.status (the email statuses, plus folded)
C_PENDING = "pending"
C_SENDING = "sending"
C_SENT = "sent"
C_RETRY = "retry"
C_DEAD = "dead"
C_CANCELLED = "cancelled"
C_FOLDED = "folded"  # carried on by a summary message (folded_into)


def idempotency_key(outbox_key: str) -> str:
    """What the platform sees as the message's identity: 32 hex characters (fits bizMsgId, a uuid,
    an SMS gateway's client reference), the same for every attempt of one outbox row."""
    return hashlib.sha256(outbox_key.encode()).hexdigest()[:32]


class ChannelMessage(SQLModel, table=True):
    __tablename__ = "channel_message"
    __table_args__ = (
        # As ix_email_due: dispatchers look only at what can go now.
        Index(
            "ix_channel_message_due",
            "channel",
            "next_attempt_at",
            sqlite_where=text("status IN ('pending', 'retry')"),
            postgresql_where=text("status IN ('pending', 'retry')"),
        ),
        Index("ix_channel_message_status", "channel", "status"),
        Index("ix_channel_message_destination", "channel", "address", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=200, unique=True)
    channel: str = Field(max_length=10)  # zzd | robot | sms
    # zzd/sms: the person's mobile; robot: the robot's configured name (a group, not a person)
    address: str = Field(max_length=60)
    # The person, or for a robot the first person whose items it carries (the group has many).
    contact_id: int | None = Field(default=None, foreign_key="contact.id", index=True)
    to_name: str = Field(default="", max_length=100)
    title: str = Field(max_length=200)
    text: str = Field(sa_column=Column(Text, nullable=False))
    link: str | None = Field(default=None, max_length=500)
    urgent: bool = False
    kinds: str = Field(default="", max_length=200)
    items: int = 1  # notifications carried (a summary carries many)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    next_attempt_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    status: str = Field(default=C_PENDING, max_length=20)
    attempts: int = 0
    claimed_by: str | None = Field(default=None, max_length=100)
    claimed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    lease_token: str | None = Field(default=None, max_length=32)
    sent_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    last_error: str = Field(default="", max_length=1000)
    provider_id: str | None = Field(default=None, max_length=100)
    folded_into: int | None = Field(default=None, index=True)
    fallback_of: int | None = Field(default=None, index=True)


class ChannelItem(SQLModel, table=True):
    """Which notifications a channel message carries: a digest several, a summary all it folded."""

    __tablename__ = "channel_item"

    message_id: int = Field(foreign_key="channel_message.id", primary_key=True)
    notification_id: int = Field(foreign_key="notification.id", primary_key=True, index=True)


class ChannelAttempt(SQLModel, table=True):
    __tablename__ = "channel_attempt"

    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="channel_message.id", index=True)
    channel: str = Field(max_length=10)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    worker: str = Field(max_length=100)
    # sent | temporary | permanent | unknown | rate_limited (the transport's kinds) | cancelled
    # (re-check: nothing left to say) | folded (into a summary) | fallback (dead here, sent on
    # by another channel) | duplicate (the same content reached the person today)
    outcome: str = Field(max_length=20)
    code: str | None = Field(default=None, max_length=40)
    detail: str = Field(default="", max_length=1000)


class DeliveryBucket(SQLModel, table=True):
    """One destination's quota, shared by every process: tokens refilled by the (injected) clock,
    spent by an atomic ``UPDATE … WHERE tokens >= 1``; ``locked_until`` when the platform locked
    the destination (a robot sent too fast: 130101, ten minutes)."""

    __tablename__ = "delivery_bucket"

    name: str = Field(primary_key=True, max_length=120)  # e.g. robot:杭州市经信局工作群
    tokens: float
    capacity: float
    per_second: float  # refill rate
    refilled_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    locked_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class DeliveryLedger(SQLModel, table=True):
    """What reached whom today, for the rules that count by day: 浙政钉's same content to the same
    person once a day (``name`` = zzd:mobile:day:content-hash) and the daily caps per person per
    app and per SMS number (``name`` = …:day, ``count``)."""

    __tablename__ = "delivery_ledger"

    name: str = Field(primary_key=True, max_length=160)
    count: int = 0
    day: str = Field(max_length=10, index=True)


def requeue_channel(
    session: Session, ctx: Ctx, channel: str, message_ids: Sequence[int] | None, reason: str
) -> list[int]:
    """Put a channel's dead letters back, due now with a fresh count of attempts (as
    ``models.outbox.requeue`` does for email): each an audit event; anything not dead, or not on
    ``channel``, refuses the whole request and changes nothing."""
    if not reason.strip():
        raise ValueError("重新排队需要说明原因（--reason）")
    base = select(ChannelMessage).where(col(ChannelMessage.channel) == channel)
    if message_ids is None:
        found_all = session.exec(
            base.where(col(ChannelMessage.status) == C_DEAD).order_by(col(ChannelMessage.id))
        ).all()
        messages = list(found_all)
    else:
        wanted = sorted(set(message_ids))
        found = {m.id: m for m in session.exec(base.where(col(ChannelMessage.id).in_(wanted))).all()}
        missing = [i for i in wanted if i not in found]
        if missing:
            raise LookupError(
                f"发件箱中没有这些编号的{channel}消息：{'、'.join(map(str, missing))}（未作任何修改）"
            )
        alive = [f"{i}（{found[i].status}）" for i in wanted if found[i].status != C_DEAD]
        if alive:
            raise ValueError(f"只有死信（dead）可以重新排队，这些不是：{'、'.join(alive)}（未作任何修改）")
        messages = [found[i] for i in wanted]
    drafts = [
        EventDraft(
            at=ctx.now,
            actor=ctx.actor.label,
            action="outbox_requeue",
            subject=f"{channel}:{m.id}",
            from_value=C_DEAD,
            to_value=C_PENDING,
            reason=reason,
            details={"to": m.address, "attempts": m.attempts, "last_error": m.last_error},
        )
        for m in messages
    ]
    for m in messages:
        m.status, m.attempts, m.next_attempt_at = C_PENDING, 0, ctx.now
        m.last_error, m.lease_token = "", None
        session.add(m)
    if drafts:
        ctx.audit.append_many(session, drafts)
    session.flush()
    return [int(m.id or 0) for m in messages]
