"""Witnesses: each day's signed checkpoint goes to the audit contacts in their digest (a day on
which the log grew: operations.checkpoints.daily_checkpoint signs none for a day without events).

Whoever keeps one can later catch a rollback, a rewritten past or a second history shown to
someone else (``shenbao audit verify --checkpoint``, ``shenbao audit prove``). One notification a
contact a day (its key names the local date), so reconciling twice writes nothing new.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert
from sqlmodel import Session, col, select

from calendars.timeutil import format_local, local_date
from models.audit_tree import SignedCheckpoint
from models.org import Contact, Organisation
from models.outbox import Notification, engine_notice_row

KIND = "audit_checkpoint"


def witness_contacts(session: Session, orgs: Sequence[str]) -> list[Contact]:
    """The contacts of the witness organisations: the province's by default (``orgs`` empty), and
    each organisation named (by name or code) when configured."""
    query = select(Organisation.id)
    if orgs:
        query = query.where(col(Organisation.name).in_(orgs) | col(Organisation.id).in_(orgs))
    else:
        query = query.where(Organisation.tier == "province")
    ids = list(session.exec(query).all())
    if not ids:
        return []
    return list(
        session.exec(
            select(Contact).where(col(Contact.org_id).in_(ids), Contact.email != "").order_by(col(Contact.id))
        ).all()
    )


def plan(
    session: Session, checkpoint: SignedCheckpoint, contacts: Sequence[Contact], keys: str, now: datetime
) -> int:
    """Today's checkpoint for each witness not yet given one today; returns how many were written."""
    day = local_date(now).isoformat()
    keys_of = {f"{KIND}:{day}:{c.id}": c for c in contacts}
    if not keys_of:
        return 0
    existing = set(
        session.exec(select(Notification.key).where(col(Notification.key).in_(list(keys_of)))).all()
    )
    payload = {
        "size": checkpoint.size,
        "root": checkpoint.root,
        "note": checkpoint.note,
        "signed_at_text": format_local(checkpoint.signed_at),
        "keys": keys,
    }
    rows = [
        engine_notice_row(
            key=key, kind=KIND, contact_id=c.id, email_addr=c.email, now=now, payload=payload, step=day
        )
        for key, c in keys_of.items()
        if key not in existing
    ]
    if rows:
        session.execute(insert(Notification), rows)
    return len(rows)
