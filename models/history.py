"""A case's timeline as people read it: each audit event named in Chinese, with what it did.

The one reading of a case's events for the CLI (``shenbao history``) and the dashboard (the case
page, ``/cases/{ref}/history``): an event kind, an action or a state is never shown by its id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from models.audit import AuditEvent
from models.case import Case
from models.machines import machine_for

# Every kind of audit event the engine writes (``EventDraft(action=…)``); a case's timeline holds
# the first six, the others are named too for the audit pages that list the whole log.
EVENT_NAMES = {
    "create": "新建",
    "state_change": "状态变化",
    "update": "更新",
    "override": "说明理由",
    "refusal": "被拒绝",
    "case_deadline": "案件截止时间",
    "deadline_change": "截止时间调整",
    "import": "导入",
    "campaign_load": "加载批次",
    "sync": "平台同步",
    "workdays_load": "加载节假日安排",
    "reconcile": "提醒对账",
    "outbox_requeue": "重新发送",
    "re_anchor": "重新锚定",
    "key_rotate": "更换审计密钥",
}


def event_name(action: str) -> str:
    return EVENT_NAMES.get(action, action)


@dataclass
class HistoryItem:
    seq: int
    at: datetime
    actor: str
    action: str
    action_label: str
    what: str
    from_label: str
    to_label: str
    reason: str
    details: dict[str, Any]


def case_history(session: Session, case: Case) -> list[HistoryItem]:
    machine = machine_for(case.kind, case.campaign_id)
    events = session.exec(
        select(AuditEvent).where(AuditEvent.case_id == case.id).order_by(col(AuditEvent.seq))
    ).all()
    items = []
    for e in events:
        details = json.loads(e.details or "{}")
        what = details.get("label") or ""
        from_label = machine.state_label(e.from_value) if e.from_value else ""
        to_label = machine.state_label(e.to_value) if e.to_value else ""
        if e.action == "override":
            what = f"规则 {e.from_value}：{details.get('finding', '')}"
            from_label = to_label = ""
        elif e.action == "refusal":
            action = details.get("action", "")
            what = next((t.label for t in machine.transitions if t.action == action), action)
        elif e.action == "create":
            what = "新建案件"
        elif e.action == "case_deadline":
            # Its values are instants, not states: the dates as the notice writes them.
            what = details.get("stage_name", "")
            from_label = details.get("from_text", "") if e.from_value else ""
            to_label = details.get("to_text", "")
        items.append(
            HistoryItem(
                e.seq,
                e.at,
                e.actor,
                e.action,
                event_name(e.action),
                what,
                from_label,
                to_label,
                e.reason,
                details,
            )
        )
    return items
