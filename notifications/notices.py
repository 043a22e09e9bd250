"""State changes and deadline moves that someone must hear about, as data.

The audit record is the source: a notice is a pure function of one audit event, so a notice
can never be lost between the action and the outbox; reconcile turns events past its watermark
into notices, keyed by the event's sequence number and the recipient.
"""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import Session, col, select

from models.audit import AuditEvent
from models.campaign import Campaign
from models.case import Case
from models.machines import machine_for
from notifications.audience import PROVINCE, Directory

# Who hears of a state change is data: each transition's ``notify:`` in the campaign file (the
# applicant, its county, its city, the case's recommender — its city, or the SOE group /
# association it is filed through —, the case's owner, the province).


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
        targets: list[str] = []
        for audience in audiences:
            org = {
                "applicant": case.org_id,
                "county": case.county_code,
                "city": case.city_code,
                "recommender": case.recommender_id or case.city_code,
                "owner": case.org_id,
                "province": PROVINCE,
            }[audience]
            if org and org not in targets:
                targets.append(org)
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
    went_in = "无推荐" if late.get("state") == "none" else "推荐"
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
