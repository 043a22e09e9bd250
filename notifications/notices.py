"""State changes and deadline moves that someone must hear about, as data.

The audit record is the source: a notice is a pure function of one audit event, so a notice
can never be lost between the action and the outbox; reconcile turns events past its watermark
into notices, keyed by the event's sequence number and the recipient.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from models.audit import AuditEvent
from models.campaign import Campaign
from models.case import Case
from models.machines import machine_for
from models.outbox import Notification
from notifications.audience import PROVINCE, Directory

# Who hears of a state change is data: each transition's ``notify:`` in the campaign file (the
# applicant, its county, its city, the case's recommender — its city, or the SOE group /
# association it is filed through —, the case's owner, the province).


# A window closing lapses every draft at one instant: who is told of a lapse hears it once, as a
# list of the cases of their organisation, not once per case (50,000 drafts made 154,755 notices).
LAPSE_NOTICE = "lapse_notice"


def is_lapse(event: Any) -> bool:
    """A case lapsing at its deadline (the engine's own action; close_windows records it)."""
    # The details are canonical JSON (models.audit._details_text): the pair reads exactly so,
    # and a window closing is 50,000 of them, not worth parsing each.
    # The lapse is its role, whatever the file calls the action and the state it leads to;
    # events written before roles name the action ``lapse`` (an id that can have no other role).
    return (
        event.action == "state_change"
        and event.case_id is not None
        and ('"role":"lapse"' in event.details or '"action":"lapse"' in event.details)
    )


def audience_orgs(audiences: Sequence[str], case: Any) -> list[str]:
    """The organisations an audience names for one case, in order, each once."""
    targets: list[str] = []
    for audience in audiences:
        if audience in ("applicant", "owner"):
            org = case.org_id
        elif audience == "county":
            org = case.county_code
        elif audience == "city":
            org = case.city_code
        elif audience == "recommender":
            org = case.recommender_id or case.city_code
        elif audience == "province":
            org = PROVINCE
        else:
            raise KeyError(audience)
        if org and org not in targets:
            targets.append(org)
    return targets


_LAPSE_CASE: tuple[Any, ...] = (
    Case.id,
    Case.ref,
    Case.kind,
    Case.org_id,
    Case.county_code,
    Case.city_code,
    Case.recommender_id,
)


def lapse_notices(session: Session, d: Directory, events: Sequence[Any]) -> list[dict[str, Any]]:
    """The notices of lapse events: one per organisation told (the lapse transition's ``notify:``, as for any notice)
    and contact, listing every case of that organisation that lapsed at one instant.

    Each row names its cases by id (``payload["case_ids"]``, in case-number order); compose and
    the pre-send recheck read them as they are then, so a case corrected meanwhile drops off.
    Keyed by campaign, instant, organisation and contact, so reading the same events again
    (reconcile twice, a watermark held back) writes nothing; cases lapsed at the same instant
    by another transaction get a row of their own, suffixed by their first audit seq.
    """
    if not events:
        return []
    ids = sorted({e.case_id for e in events})
    cases: dict[int, Any] = {}
    for start in range(0, len(ids), 900):
        chunk = ids[start : start + 900]
        cases.update(
            (r.id, r) for r in session.exec(select(*_LAPSE_CASE).where(col(Case.id).in_(chunk))).all()
        )
    programs = dict(session.exec(select(Campaign.id, Campaign.program)).all())
    # (campaign, instant, reason, organisation) -> [(ref, case id, seq)]
    groups: dict[tuple[str, datetime, str, str], list[tuple[str, int, int]]] = defaultdict(list)
    labels: dict[str, tuple[str, str, str]] = {}
    for e in events:
        case = cases.get(e.case_id)
        if case is None or e.campaign_id is None:
            continue
        machine = machine_for(case.kind, e.campaign_id)
        lapse = machine.of_role("lapse")
        audiences = lapse[0].notify if lapse else ()
        if not audiences:
            continue
        if case.kind not in labels:
            label = json.loads(e.details).get("label", "lapse")
            labels[case.kind] = (
                label,
                machine.state_label(e.from_value or ""),
                machine.state_label(e.to_value or ""),
            )
        for org in audience_orgs(audiences, case):
            groups[(e.campaign_id, e.at, e.reason, org)].append((case.ref, case.id, e.seq))
    rows: list[dict[str, Any]] = []
    for (campaign_id, at, reason, org), members in groups.items():
        members.sort()
        kind = cases[members[0][1]].kind
        label, from_label, to_label = labels[kind]
        payload = {
            "org": org,
            "case_kind": kind,
            "case_ids": [m[1] for m in members],
            "label": label,
            "from": from_label,
            "to": to_label,
            "reason": reason,
            "actor": _actor_label("system", d),
            "at": at.isoformat(),
        }
        seq_of = {m[1]: m[2] for m in members}
        stamp = at.strftime("%Y%m%dT%H%M%S")
        for c in d.contacts(org, programs.get(campaign_id, "")):
            rows.append(
                {
                    "key": f"nl:{campaign_id}:{stamp}:{org}:{c.id}",
                    "kind": LAPSE_NOTICE,
                    "campaign_id": campaign_id,
                    "stage_id": None,
                    "deadline_version": None,
                    "step": None,
                    "case_id": None,
                    "audit_seq": max(seq_of.values()),
                    "contact_id": c.id,
                    "email_addr": c.email,
                    "urgent": False,
                    "due_at": at,
                    "payload": payload,
                    "_seqs": seq_of,
                }
            )
    return _not_yet_written(session, rows)


def _not_yet_written(session: Session, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop what an earlier run wrote: by key, and for a key taken, the cases its rows list."""
    keys = [r["key"] for r in rows]
    taken: set[str] = set()
    for start in range(0, len(keys), 900):
        taken.update(
            session.exec(
                select(Notification.key).where(col(Notification.key).in_(keys[start : start + 900]))
            ).all()
        )
    out: list[dict[str, Any]] = []
    for row in rows:
        seqs: dict[int, int] = row.pop("_seqs")
        if row["key"] not in taken:
            out.append(row)
            continue
        written = session.exec(
            select(Notification.payload).where(
                (Notification.key == row["key"]) | col(Notification.key).startswith(row["key"] + ":")
            )
        ).all()
        covered = {i for payload in written for i in payload.get("case_ids", [])}
        rest = [i for i in row["payload"]["case_ids"] if i not in covered]
        if rest:
            first = min(seqs[i] for i in rest)
            payload = row["payload"] | {"case_ids": rest}
            out.append(
                row
                | {
                    "key": f"{row['key']}:{first}",
                    "payload": payload,
                    "audit_seq": max(seqs[i] for i in rest),
                }
            )
    return out


def notices_for_event(session: Session, d: Directory, event: AuditEvent) -> list[dict[str, Any]]:
    details = json.loads(event.details)
    campaign = session.get(Campaign, event.campaign_id) if event.campaign_id else None
    program = campaign.program if campaign else ""
    if event.action == "state_change" and event.case_id is not None:
        case = session.get(Case, event.case_id)
        if case is None:
            return []
        action = details.get("action", "")
        machine = machine_for(case.kind, case.campaign_id)
        audiences = machine.notify(action)
        if not audiences:
            return []
        late = details.get("late_for")
        if late:
            # Arrived after the list went in: the province must know too, since only it can
            # return the list for the city to decide.
            audiences = (*audiences, "recommender", "province")
        targets = audience_orgs(audiences, case)
        payload = {
            "ref": case.ref,
            "title": case.title,
            "kind": case.kind,
            "action": action,
            "label": details.get("label", action),
            "from": machine.state_label(event.from_value or ""),
            "to": machine.state_label(event.to_value or ""),
            "reason": event.reason,
            "actor": _actor_label(event.actor, d),
            "at": event.at.isoformat(),
            "defence_at": details.get("defence_at"),
            "late_note": _late_note(late) if late else None,
        }
        return _rows(d, targets, program, "notice", event, payload, case_id=case.id)
    if event.action == "deadline_change" and not details.get("replan"):
        stage_id = event.subject.rsplit("/", 1)[-1]
        if campaign is None:
            return []
        stage = campaign.spec().stage(stage_id)
        # Everyone who still has to act at the stage hears of the new date, and for the
        # province's own stages (preliminary review, defence) the applicants waiting on it.
        rows = session.exec(
            select(Case.org_id, Case.county_code, Case.city_code)
            .where(
                Case.campaign_id == event.campaign_id,
                Case.kind == stage.subject,
                col(Case.state).in_(stage.pending_states),
            )
            .distinct()
        ).all()
        targets = []
        for org_id, county, city in rows:
            if stage.actor == "county":
                candidates = [county]
            elif stage.actor in ("city",) and stage.subject in ("roster", "recommendation"):
                candidates = [org_id]
            elif stage.actor == "province":
                candidates = [org_id, county]
            else:
                candidates = [org_id, county] if not d.contacts(org_id, program) else [org_id]
            if stage.actor in ("county", "enterprise", "park"):
                # The city supervises its counties' (and its enterprises') stages.
                candidates.append(city)
            for org in candidates:
                if org and org not in targets:
                    targets.append(org)
        payload = {
            "stage": stage.id,
            "stage_name": stage.name,
            "from_text": details.get("from_text"),
            "to_text": details.get("to_text"),
            "version": details.get("version"),
            "reason": event.reason,
            "actor": _actor_label(event.actor, d),
            "at": event.at.isoformat(),
        }
        return _rows(d, targets, program, "deadline_notice", event, payload, stage_id=stage.id)
    return []


def _late_note(late: dict[str, Any]) -> str:
    reported_none = late.get("state") in machine_for("recommendation").reported_none
    went_in = "无推荐" if reported_none else "推荐"
    return (
        f"本申报在{went_in}报送省经信厅（{late.get('recommendation')}）之后到达，未在已报送的名单中。"
        "如需补充推荐，请省经信厅退回该推荐，由市级决定补充推荐，或不予推荐并说明理由；"
        "名单重新报送时仍未推荐的，按不予推荐处理。"
    )


def _actor_label(actor: str, d: Directory) -> str:
    """ "严梦玲@330000" as people read it: "严梦玲（浙江省）"."""
    if actor == "system":
        return "系统（自动）"
    name, _, org_id = actor.partition("@")
    return f"{name}（{d.name(org_id)}）" if org_id else name


def _rows(
    d: Directory,
    targets: list[str],
    program: str,
    kind: str,
    event: AuditEvent,
    payload: dict[str, Any],
    *,
    case_id: int | None = None,
    stage_id: str | None = None,
) -> list[dict[str, Any]]:
    out = []
    seen: set[int] = set()
    for org in targets:
        for c in d.contacts(org, program):
            if c.id in seen:
                continue
            seen.add(c.id)  # type: ignore[arg-type]
            out.append(
                {
                    "key": f"n:{event.seq}:{c.id}",
                    "kind": kind,
                    "campaign_id": event.campaign_id,
                    "stage_id": stage_id,
                    "deadline_version": None,
                    "step": None,
                    "case_id": case_id,
                    "audit_seq": event.seq,
                    "contact_id": c.id,
                    "email_addr": c.email,
                    "urgent": False,
                    "payload": payload | {"org": org},
                }
            )
    return out
