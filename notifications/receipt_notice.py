"""Receipts by mail: whoever acted gets the receipt of it, as a .json attachment to check offline.

Every state change a person made (submit, recommend, a result, a return …) and every deadline a
person moved gives its actor a mail carrying ``shenbao audit receipt``'s file for those events
(the event, its inclusion proof, a signed checkpoint that covers it) and how to check it on
another machine with only the public key. The engine's own actions (SYSTEM: lapses, cascades, a
re-plan that follows a moved deadline) give none: nobody acted.

Who "the actor" is, from the event's actor label:

* ``姓名@机构``: the contacts of that organisation with that name (the dashboard's people are
  contacts; a CLI ``--by`` who is no contact gets no mail and fetches the receipt with
  ``shenbao audit receipt`` or on the page);
* ``admin:姓名``: the same, in the organisation the administrator acted for (``admin_org``);
* ``平台同步``: the sync acts for whoever acted on the provincial platform, which names nobody
  here: the receipt goes to the applicant's contacts, whose case it is.

Planned from the audit log past a watermark of its own (``reconcile_cursor`` "receipts"), as the
notices are: a receipt can never be lost between the action and the outbox. The actions of one
person in one pass make one receipt file (a city recommending twenty cases keeps one file
listing twenty proofs), at most ``PER_RECEIPT`` events each.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy import insert
from sqlmodel import Session, col, select

from calendars.timeutil import format_local
from models import receipts
from models.audit import AuditEvent, AuditHead
from models.audit_tree import SignedCheckpoint
from models.case import Case
from models.checkpoint import VerifierKey
from models.context import PLATFORM_SYNC, SYSTEM
from models.machines import machine_for
from models.org import Contact
from models.outbox import Notification, ReconcileCursor, engine_notice_row

KIND = "receipt"
CURSOR = "receipts"
PER_RECEIPT = 200  # events a file: a bulk recommendation's receipt stays a mail attachment

# (size) -> the checkpoint covering event ``size`` and the public keys that signed it; raises
# models.checkpoint.KeyProblem when none can be had (no signing key here).
CheckpointFor = Callable[[int], tuple[SignedCheckpoint, list[VerifierKey]]]


def plan(session: Session, now: datetime, checkpoint_for: CheckpointFor) -> int:
    """The receipts of the actions since the watermark, into the outbox; returns how many.

    Nothing is written and the watermark stays when ``checkpoint_for`` raises: the receipts of
    these actions go out from the first pass that has a checkpoint covering them.
    """
    cursor = session.get(ReconcileCursor, CURSOR) or ReconcileCursor(name=CURSOR, value=0)
    head = session.exec(select(AuditHead.seq).where(AuditHead.id == 1)).first() or 0
    if head <= cursor.value:
        return 0
    events = list(
        session.exec(
            select(AuditEvent)
            .where(
                col(AuditEvent.seq) > cursor.value,
                col(AuditEvent.seq) <= head,
                col(AuditEvent.action).in_(("state_change", "deadline_change")),
                AuditEvent.actor != SYSTEM.label,
            )
            .order_by(col(AuditEvent.seq))
        ).all()
    )
    # An event stamped after now (an action entered with --now, a clock ahead) waits for its
    # time: the watermark stops short of it, as the notices' does.
    later = next((e.seq for e in events if e.at > now), None)
    watermark = later - 1 if later is not None else head
    by_contact: dict[int, list[AuditEvent]] = defaultdict(list)
    contacts: dict[int, Contact] = {}
    found: dict[tuple[str, str | None], list[Contact]] = {}
    for event in events:
        if later is not None and event.seq >= later:
            break
        for contact in _actors(session, event, found):
            assert contact.id is not None
            contacts[contact.id] = contact
            by_contact[contact.id].append(event)
    written = 0
    if by_contact:
        covered = max(int(e.seq or 0) for evs in by_contact.values() for e in evs)
        checkpoint, keys = checkpoint_for(covered)
        rows = [
            _row(session, contacts[cid], chunk, checkpoint, keys, now)
            for cid, evs in by_contact.items()
            for chunk in (evs[i : i + PER_RECEIPT] for i in range(0, len(evs), PER_RECEIPT))
        ]
        taken = set(
            session.exec(
                select(Notification.key).where(col(Notification.key).in_([r["key"] for r in rows]))
            ).all()
        )
        rows = [r for r in rows if r["key"] not in taken]
        if rows:
            session.execute(insert(Notification), rows)
        written = len(rows)
    if watermark != cursor.value:
        cursor.value = watermark
        session.add(cursor)
    return written


def waiting(session: Session) -> int:
    """Actions by people past the watermark: receipts not yet planned (no checkpoint yet)."""
    cursor = session.get(ReconcileCursor, CURSOR)
    return len(
        session.exec(
            select(AuditEvent.seq).where(
                col(AuditEvent.seq) > (cursor.value if cursor else 0),
                col(AuditEvent.action).in_(("state_change", "deadline_change")),
                AuditEvent.actor != SYSTEM.label,
            )
        ).all()
    )


def _actors(
    session: Session, event: AuditEvent, found: dict[tuple[str, str | None], list[Contact]]
) -> list[Contact]:
    """Who acted, as contacts with an email address (the module's docstring says who that is)."""
    details = json.loads(event.details)
    if event.action == "deadline_change" and details.get("replan"):
        return []  # the engine's consequence of a moved deadline; the move itself has its receipt
    name: str | None
    if event.actor == PLATFORM_SYNC.label:
        case = session.get(Case, event.case_id) if event.case_id is not None else None
        if case is None:
            return []
        org, name = case.org_id, None
    elif event.actor.startswith("admin:"):
        org, name = details.get("admin_org") or "", event.actor.removeprefix("admin:")
    else:
        name, _, org = event.actor.partition("@")
    if not org:
        return []
    if (org, name) not in found:
        query = select(Contact).where(Contact.org_id == org, col(Contact.active), Contact.email != "")
        if name is not None:
            query = query.where(Contact.name == name)
        found[(org, name)] = list(session.exec(query.order_by(col(Contact.id))).all())
    return found[(org, name)]


def _what(session: Session, event: AuditEvent) -> str:
    """One line of what the event records, for the mail's text (the file has the event itself)."""
    details = json.loads(event.details)
    subject = event.subject.removeprefix("case:")
    if event.action == "deadline_change":
        before, after = details.get("from_text") or "另行通知", details.get("to_text") or "另行通知"
        return f"调整截止时间 {subject}：{before} → {after}"
    label = details.get("label") or details.get("action") or event.action
    case = session.get(Case, event.case_id) if event.case_id is not None else None
    if case is None:
        return f"{subject} {label}"
    machine = machine_for(case.kind, case.campaign_id)
    return f"{subject} {label}（{machine.state_label(event.from_value or '')} → {machine.state_label(event.to_value or '')}）"


def _row(
    session: Session,
    contact: Contact,
    events: Sequence[AuditEvent],
    checkpoint: SignedCheckpoint,
    keys: list[VerifierKey],
    now: datetime,
) -> dict[str, Any]:
    seqs = [int(e.seq or 0) for e in events]
    # The same bytes ``shenbao audit receipt`` writes for these events against this checkpoint.
    text = receipts.to_text(receipts.build(session, seqs, checkpoint))
    refs = {e.subject.removeprefix("case:") for e in events if e.subject.startswith("case:")}
    page = (
        f"/cases/{quote(refs.pop(), safe='')}/receipt"
        if len(refs) == 1 and all(e.subject.startswith("case:") for e in events)
        else "/audit"
    )
    name = f"shenbao-receipt-{seqs[0]}" + (f"-{seqs[-1]}" if len(seqs) > 1 else "") + ".json"
    return engine_notice_row(
        key=f"r:{seqs[0]}:{contact.id}",
        kind=KIND,
        contact_id=contact.id,
        email_addr=contact.email,
        now=now,
        audit_seq=seqs[-1],
        payload={
            "file": name,
            "receipt": text,
            "events": [
                {"seq": e.seq, "at_text": format_local(e.at), "what": _what(session, e)} for e in events
            ],
            "size": checkpoint.size,
            "signed_at_text": format_local(checkpoint.signed_at),
            "keys": [{"label": k.label, "fingerprint": k.fingerprint, "text": k.text} for k in keys],
            "page": page,
        },
    )


def attachments(sections: Sequence[dict[str, Any]]) -> list[tuple[str, bytes]]:
    """The receipt files an email's sections carry, to attach to it (compose and the recheck's
    re-render both build the message through here)."""
    return [
        (str(s["file"]), str(s["receipt"]).encode("utf-8"))
        for s in sections
        if s.get("kind") == KIND and s.get("receipt")
    ]
