"""The outbox: what must be told to whom (notifications), the mails that carry it, every attempt.

- A ``Notification`` is one thing one person must hear: a reminder step of a stage, an
  escalation round, a state-change notice. Its ``key`` says what, whom, which deadline version
  and which rule step, and is unique, so reconcile can run any number of times.
- An ``Email`` is one message to one person, carrying every notification that came due for
  them in one reconcile run (a digest). Its Message-ID is derived from its key, so a resend
  after a crash is recognisable.
- A ``DeliveryAttempt`` records every try, successful or not.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Column, Index, LargeBinary, Text, text
from sqlmodel import Field, Session, SQLModel, select

from models.audit import EventDraft
from models.types import UTCDateTime

if TYPE_CHECKING:
    from models.context import Ctx

# Notification.status
PENDING = "pending"  # written, not yet put into an email
QUEUED = "queued"  # carried by an email
CANCELLED = "cancelled"  # no longer to be sent (deadline moved, done meanwhile); reason recorded

# Email.status
E_PENDING = "pending"
E_SENDING = "sending"  # claimed by a dispatcher
E_SENT = "sent"
E_RETRY = "retry"
E_DEAD = "dead"
E_CANCELLED = "cancelled"


def engine_notice_row(
    *,
    key: str,
    kind: str,
    contact_id: int | None,
    email_addr: str | None,
    now: datetime,
    payload: dict[str, Any],
    step: str | None = None,
    audit_seq: int | None = None,
) -> dict[str, Any]:
    """A pending notification of no campaign stage nor case (a checkpoint, a receipt), as a row
    for a Core bulk insert: what every such notice leaves empty, said once."""
    return {
        "key": key,
        "kind": kind,
        "campaign_id": None,
        "stage_id": None,
        "deadline_version": None,
        "step": step,
        "case_id": None,
        "audit_seq": audit_seq,
        "contact_id": contact_id,
        "email_addr": email_addr,
        "urgent": False,
        "due_at": now,
        "created_at": now,
        "status": PENDING,
        "status_reason": "",
        "email_id": None,
        "payload": payload,
    }


class Notification(SQLModel, table=True):
    __tablename__ = "notification"
    __table_args__ = (
        # "What is still to be batched" is one cheap query however large the table grows.
        Index(
            "ix_notification_unbatched",
            "contact_id",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_notification_stage", "campaign_id", "stage_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=200, unique=True)
    kind: str = Field(max_length=30)  # reminder, supervisor_reminder, escalation, notice, deadline_notice
    campaign_id: str | None = Field(default=None, max_length=60)
    stage_id: str | None = Field(default=None, max_length=60)
    deadline_version: int | None = None
    step: str | None = Field(default=None, max_length=60)
    case_id: int | None = Field(default=None, index=True)
    audit_seq: int | None = None
    contact_id: int = Field(foreign_key="contact.id")
    email_addr: str = Field(max_length=200)
    urgent: bool = False
    due_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    status: str = Field(default=PENDING, max_length=20)
    status_reason: str = Field(default="", max_length=500)
    email_id: int | None = Field(default=None, index=True)
    # What the reconcile saw when it wrote the row: case refs, organisations, deadline text.
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Email(SQLModel, table=True):
    __tablename__ = "email"
    __table_args__ = (
        # Dispatchers look only at mail that can go now: a partial index on the due column.
        Index(
            "ix_email_due",
            "next_attempt_at",
            sqlite_where=text("status IN ('pending', 'retry')"),
            postgresql_where=text("status IN ('pending', 'retry')"),
        ),
        Index("ix_email_status", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=200, unique=True)
    message_id: str = Field(max_length=250)
    contact_id: int = Field(foreign_key="contact.id")
    to_addr: str = Field(max_length=200)
    to_name: str = Field(max_length=100)
    subject: str = Field(max_length=500)
    text_body: str = Field(sa_column=Column(Text, nullable=False))
    html_body: str = Field(sa_column=Column(Text, nullable=False))
    # The complete MIME message, built when the email is written so the send loop only pushes
    # bytes (building a message costs ~0.6 ms of CPU, a quarter of the SMTP server's pace).
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    urgent: bool = False
    kinds: str = Field(default="", max_length=200)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    next_attempt_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    status: str = Field(default=E_PENDING, max_length=20)
    attempts: int = 0
    claimed_by: str | None = Field(default=None, max_length=100)
    # When the lease was taken or last renewed, by the real clock: a dispatcher holds a row in
    # ``sending`` for lease_seconds from here, and only the run holding ``lease_token`` may
    # send it or write its result (two runs may share a worker name).
    claimed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    lease_token: str | None = Field(default=None, max_length=32)
    sent_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    last_error: str = Field(default="", max_length=1000)


class DeliveryAttempt(SQLModel, table=True):
    __tablename__ = "delivery_attempt"

    id: int | None = Field(default=None, primary_key=True)
    email_id: int = Field(foreign_key="email.id", index=True)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    worker: str = Field(max_length=100)
    # sent | temporary (retry later) | permanent (dead-lettered) | cancelled (nothing left to say)
    # | unknown (the message was handed over but the server's final reply never came: it may
    # have been delivered, so it is retried only after a long delay, with the same Message-ID)
    outcome: str = Field(max_length=20)
    smtp_code: int | None = None
    detail: str = Field(default="", max_length=1000)


def requeue(session: Session, ctx: Ctx, email_ids: Sequence[int] | None, reason: str) -> list[int]:
    """Put dead letters back in the outbox, due now with a fresh count of attempts: a person
    decided the cause is gone (the address fixed, the server back). ``None`` = every dead letter.

    Each one is an audit event (who, why, the error it died of). Only dead letters can be
    re-queued; asking for any other email changes nothing and names the ones at fault.
    """
    if not reason.strip():
        raise ValueError("重新排队需要说明原因（--reason）")
    if email_ids is None:
        emails = list(session.exec(select(Email).where(Email.status == E_DEAD).order_by(Email.id)).all())  # type: ignore[arg-type]
    else:
        wanted = sorted(set(email_ids))
        found = {e.id: e for e in session.exec(select(Email).where(Email.id.in_(wanted))).all()}  # type: ignore[union-attr]
        missing = [i for i in wanted if i not in found]
        if missing:
            raise LookupError(f"发件箱中没有这些编号的邮件：{'、'.join(map(str, missing))}（未作任何修改）")
        alive = [f"{i}（{found[i].status}）" for i in wanted if found[i].status != E_DEAD]
        if alive:
            raise ValueError(f"只有死信（dead）可以重新排队，这些不是：{'、'.join(alive)}（未作任何修改）")
        emails = [found[i] for i in wanted]
    drafts = []
    for email in emails:
        drafts.append(
            EventDraft(
                at=ctx.now,
                actor=ctx.actor.label,
                action="outbox_requeue",
                subject=f"email:{email.id}",
                from_value=E_DEAD,
                to_value=E_PENDING,
                reason=reason,
                details={"to": email.to_addr, "attempts": email.attempts, "last_error": email.last_error},
            )
        )
        email.status, email.attempts, email.next_attempt_at = E_PENDING, 0, ctx.now
        email.last_error, email.lease_token = "", None
        session.add(email)
    if drafts:
        ctx.audit.append_many(session, drafts)
    session.flush()
    return [int(e.id) for e in emails]  # type: ignore[arg-type]


class ReconcileCursor(SQLModel, table=True):
    """How far reconcile has turned audit events into notices (a watermark, not a lock)."""

    __tablename__ = "reconcile_cursor"

    name: str = Field(primary_key=True, max_length=40)
    value: int = 0


class ReconcilePlan(SQLModel, table=True):
    """The last reminder step, escalation round or stuck-rule day that reconcile planned in
    full for one stage, and the audit head it planned against.

    Whom a stage's reminders go to depends only on its cases, contacts, organisations and
    campaign file, and every change to those is an audit event. So while the audit head has
    not moved and the step is the same, planning again would only find keys that exist: a
    pass with nothing new skips reading a million open cases. A new step, a new round, a new
    day or any recorded change plans in full again.
    """

    __tablename__ = "reconcile_plan"

    campaign_id: str = Field(primary_key=True, max_length=60)
    stage_id: str = Field(primary_key=True, max_length=60)
    rule: str = Field(primary_key=True, max_length=20)  # actor, supervisor, escalation, stuck
    signature: str = Field(max_length=120)  # deadline version and step, e.g. "v2:d-1wd"
    audit_seq: int = 0
