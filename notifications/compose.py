"""Gathering due notifications into one email per recipient (a digest), and re-checking them.

Each notification becomes a *section* of its recipient's email. A section is computed from the
database as it is now, not from what was true when the notification was written: somebody who
submitted in the meantime is not chased. The same computation runs again just before sending
(``recheck``), so a reminder queued at 09:00 for a county that submits at 09:05 is cancelled or
shortened rather than sent.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple
from urllib.parse import quote, urlencode

from sqlalchemy import bindparam, func, insert, or_, update
from sqlmodel import Session, col, select

from calendars.campaign import CampaignSpec, Stage
from calendars.timeutil import (
    format_deadline,
    format_deadline_from,
    format_duration_zh,
    format_local,
    local_date,
    parse_instant,
)
from calendars.workdays import UnknownYearError, WorkCalendar
from models.actions import nothing_to_review
from models.campaign import Campaign, CaseDeadline, deadlines_of
from models.case import PROGRAM_LABELS, Case
from models.channels import C_PENDING, ChannelItem, ChannelMessage
from models.machines import machine_for
from models.org import Contact
from models.outbox import CANCELLED, E_PENDING, PENDING, QUEUED, Email, Notification
from notifications.audience import Directory, acting_org, lookup_keys
from notifications.channels.route import address_of, routes_for
from notifications.mime import build_mime, message_id_for
from notifications.notices import LAPSE_NOTICE
from notifications.receipt_notice import KIND as RECEIPT
from notifications.receipt_notice import attachments as receipt_attachments
from notifications.render import Renderer
from notifications.schedule import WorkingHours, last_day

ITEM_LIMIT = 30  # items listed per section; the rest are counted ("等N项")
STAGE_SCAN_AFTER = 8  # organisations asked about one stage in one run before it is summarised at once
CHASING = ("reminder", "overdue", "supervisor_reminder", "escalation", "stuck")
# Re-checked just before sending: what chases someone, and the lists of lapsed cases (a case the
# platform's sync found submitted on time is corrected meanwhile and drops off its list).
RECHECKED = (*CHASING, LAPSE_NOTICE)
# Cases a lapse list shows in the email; the rest are counted and the board lists them all.
LAPSE_LIST_LIMIT = 100


@dataclass(frozen=True)
class MailIdentity:
    from_addr: str = "shenbao@localhost"
    from_name: str = "申报提醒"
    dashboard_url: str | None = None
    working_hours: tuple[str, str] = ("08:30", "17:30")

    @property
    def domain(self) -> str:
        return self.from_addr.rsplit("@", 1)[-1] or "shenbao.local"


class _Campaigns:
    """What one compose (or recheck) run reads more than once: campaigns, deadlines, and the
    cases still waiting per stage and organisations (every contact of a county asks the same)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._cache: dict[str, tuple[Campaign, CampaignSpec, dict[str, Any]]] = {}
        self._pending: dict[tuple[str, str, tuple[str, ...]], tuple[list[Any], int]] = {}
        self._asked: dict[tuple[str, str], int] = defaultdict(int)
        self._summaries: dict[tuple[str, str], _StageSummary] = {}
        self._cases: dict[int, Any] = {}

    def cases(self, ids: Iterable[int]) -> dict[int, Any]:
        """Cases by id as rows of ``_LAPSE_LINE``, read once per run in chunks (the lists of a
        window closing name 50,000 cases, each in about three lists)."""
        missing = sorted({i for i in ids if i not in self._cases})
        for start in range(0, len(missing), 900):
            chunk = missing[start : start + 900]
            for row in self.session.exec(select(*_LAPSE_LINE).where(col(Case.id).in_(chunk))).all():
                self._cases[row.id] = row
        return self._cases

    def get(self, campaign_id: str) -> tuple[Campaign, CampaignSpec, dict[str, Any]]:
        if campaign_id not in self._cache:
            campaign = self.session.get(Campaign, campaign_id)
            assert campaign is not None
            self._cache[campaign_id] = (campaign, campaign.spec(), deadlines_of(self.session, campaign_id))
        return self._cache[campaign_id]

    def pending(self, campaign_id: str, stage: Stage, orgs: list[str]) -> tuple[list[Any], int]:
        """(the first ``ITEM_LIMIT`` cases waiting at ``stage`` on any of ``orgs``, in ref order, as
        rows of ``_CASE_LINE``; how many wait in all). A section lists the first and states the
        total: no more is read (a city's reminder at a million open cases names 45,000)."""
        key = (campaign_id, stage.id, tuple(orgs))
        if key in self._pending:
            return self._pending[key]
        stage_key = (campaign_id, stage.id)
        self._asked[stage_key] += 1
        if stage.actor != "province" and self._asked[stage_key] > STAGE_SCAN_AFTER:
            # Many organisations asked about one stage (a reminder to every county): one pass over
            # the stage's index for all of them beats queries per county.
            if stage_key not in self._summaries:
                self._summaries[stage_key] = _StageSummary(self.session, campaign_id, stage)
            head, total = self._summaries[stage_key].waiting(orgs)
        else:
            head, total = _pending_cases(self.session, campaign_id, stage, orgs)
        self._pending[key] = (_with_lines(self.session, head), total)
        return self._pending[key]


# What a section shows of a case: loading whole rows (JSON attrs and all) for the thousand
# drafts of a county cost most of a 100,000-case compose.
_CASE_LINE = (Case.id, Case.ref, Case.title, Case.kind, Case.state, Case.track)
_LAPSE_LINE = (*_CASE_LINE, Case.county_code)


class _Ref(NamedTuple):
    """A waiting case as the index gives it: its id and number (a section loads the rest of the
    cases it lists, ``_with_lines``)."""

    id: int
    ref: str


def _waiting(campaign_id: str, stage: Stage) -> Any:
    """The cases waiting at ``stage``: a range of ``ix_case_pending``."""
    return (
        Case.campaign_id == campaign_id,
        Case.kind == stage.subject,
        Case.state.in_(stage.pending_states),  # type: ignore[attr-defined]
    )


def _key_columns(stage: Stage) -> list[Any]:
    """The columns a waiting case is found by (the SQL of ``audience.lookup_keys``)."""
    if stage.actor == "county":
        return [Case.county_code, Case.org_id]
    if stage.actor == "city" and stage.subject not in ("roster", "recommendation"):
        return [Case.city_code]
    return [Case.org_id]


def _acting_column(stage: Stage) -> Any:
    """``audience.acting_org`` in SQL (an empty county or city counts as none, as there)."""
    if stage.actor == "county":
        return func.coalesce(func.nullif(Case.county_code, ""), Case.org_id)
    if stage.actor == "city" and stage.subject not in ("roster", "recommendation"):
        return func.coalesce(func.nullif(Case.city_code, ""), Case.org_id)
    return Case.org_id


def _first_refs(session: Session, where: Any) -> list[_Ref]:
    rows = session.exec(select(Case.id, Case.ref).where(*where).order_by(Case.ref).limit(ITEM_LIMIT)).all()
    return [_Ref(i, r) for i, r in rows]


def _pending_cases(
    session: Session, campaign_id: str, stage: Stage, orgs: list[str]
) -> tuple[list[_Ref], int]:
    """(first ``ITEM_LIMIT`` refs, total) of the cases waiting at ``stage`` on any of ``orgs``,
    counted and cut in SQL: what a few organisations ask, and the pre-send recheck."""
    base = _waiting(campaign_id, stage)
    if stage.actor == "province":
        total = session.exec(select(func.count()).select_from(Case).where(*base)).one()
        return _first_refs(session, base), int(total)
    columns = _key_columns(stage)
    if len(orgs) <= 500:  # within SQLite's limits: one condition, so a case matched twice counts once
        found = or_(*(c.in_(orgs) for c in columns))
        total = session.exec(select(func.count()).select_from(Case).where(*base, found)).one()
        return _first_refs(session, (*base, found)), int(total)
    # A county forwarding for thousands of enterprises: the numbers of every match, once each.
    seen: dict[int, str] = {}
    for start in range(0, len(orgs), 500):
        chunk = orgs[start : start + 500]
        query = select(Case.id, Case.ref).where(*base, or_(*(c.in_(chunk) for c in columns)))
        seen.update(session.exec(query).all())  # type: ignore[arg-type]
    head = sorted(seen.items(), key=lambda kv: kv[1])[:ITEM_LIMIT]
    return [_Ref(i, r) for i, r in head], len(seen)


class _StageSummary:
    """What a run needs to know about the cases waiting at one stage, for every organisation
    that asks: counts per (applicant, county, city) from one GROUP BY and, per acting
    organisation, its first ``ITEM_LIMIT`` refs from one window function, both over
    ``ix_case_pending`` alone. Before, every waiting case's id and ref were read into Python
    (half a million at a million open cases) and every one of them remembered as "shown"."""

    def __init__(self, session: Session, campaign_id: str, stage: Stage) -> None:
        self.session, self.stage = session, stage
        self.where = _waiting(campaign_id, stage)
        groups = session.exec(
            select(Case.org_id, Case.county_code, Case.city_code, func.count())
            .where(*self.where)
            .group_by(Case.org_id, Case.county_code, Case.city_code)
        ).all()
        self.counts: list[int] = []
        self.acting: list[str] = []
        self.groups_of: dict[str, list[int]] = defaultdict(list)  # organisation -> its groups
        for g, (org_id, county, city, count) in enumerate(groups):
            self.counts.append(int(count))
            self.acting.append(acting_org(stage, org_id, county, city))
            for key in lookup_keys(stage, org_id, county, city):
                self.groups_of[key].append(g)
        acting = _acting_column(stage)
        ranked = (
            select(
                Case.id,
                Case.ref,
                acting.label("acting"),
                func.row_number().over(partition_by=acting, order_by=Case.ref).label("rn"),
            )
            .where(*self.where)
            .subquery()
        )
        self.heads: dict[str, list[_Ref]] = defaultdict(list)
        rows = session.exec(
            select(ranked.c.id, ranked.c.ref, ranked.c.acting)
            .where(ranked.c.rn <= ITEM_LIMIT)
            .order_by(ranked.c.acting, ranked.c.ref)
        ).all()
        for case_id, ref, org in rows:
            self.heads[org].append(_Ref(case_id, ref))

    def waiting(self, orgs: list[str]) -> tuple[list[_Ref], int]:
        asked = set(orgs)
        groups = {g for o in asked for g in self.groups_of.get(o, ())}
        total = sum(self.counts[g] for g in groups)
        found: dict[int, _Ref] = {}
        for org in asked:
            for line in self.heads.get(org, ()):
                found[line.id] = line
        # An organisation listed by more than its acting one (a park at a county stage) whose
        # acting organisation was not asked too: its own first cases, from its own rows.
        for org in sorted(
            {o for o in asked for g in self.groups_of.get(o, ()) if self.acting[g] not in asked}
        ):
            for line in _first_refs(self.session, (*self.where, Case.org_id == org)):
                found[line.id] = line
        return sorted(found.values(), key=lambda c: c.ref)[:ITEM_LIMIT], total


def _with_lines(session: Session, cases: list[Any]) -> list[Any]:
    """The cases a section lists (at most ``ITEM_LIMIT``, in ref order) as ``_CASE_LINE`` rows."""
    head = [c.id for c in cases[:ITEM_LIMIT]]
    if not head:
        return []
    lines = {row.id: row for row in session.exec(select(*_CASE_LINE).where(col(Case.id).in_(head))).all()}
    return [lines[c.id] for c in cases[:ITEM_LIMIT] if c.id in lines]


def _countdown(calendar: WorkCalendar, now: datetime, due: datetime | None) -> dict[str, Any]:
    if due is None:
        return {
            "deadline_text": "另行通知",
            "working_days_left": None,
            "remaining": None,
            "overdue": False,
            "due_today": False,
            "last_working_day": False,
            "when_text": "另行通知",
            "countdown_text": None,
        }
    try:
        left: int | None = calendar.working_days_left(now, due)
    except UnknownYearError:
        left = None
    remaining = format_duration_zh(due - now)
    # "还剩 0 个工作日" also holds on a Friday before a Sunday deadline: only the deadline's own
    # day is 今日截止; a last working day before it says so, and when the deadline really is.
    due_today = now < due and local_date(now) == last_day(due)
    last_working_day = left == 0 and now < due and not due_today
    if due_today:
        countdown: str | None = f"今天截止，距截止还有{remaining}"
    elif last_working_day:
        countdown = f"今天是截止前最后一个工作日，距截止还有{remaining}"
    elif left is not None:
        countdown = f"还剩 {left} 个工作日，{remaining}"
    else:
        countdown = None
    return {
        "deadline_text": format_deadline(due),
        "working_days_left": left,
        "remaining": remaining,
        "overdue": now >= due,
        "due_today": due_today,
        "last_working_day": last_working_day,
        "when_text": format_deadline_from(now, due) if last_working_day else format_deadline(due),
        "countdown_text": countdown,
    }


def section_for(
    session: Session,
    d: Directory,
    campaigns: _Campaigns,
    calendar: WorkCalendar,
    n: Any,  # a Notification, or its row as compose reads it
    contact: Contact,
    now: datetime,
) -> dict[str, Any] | None:
    """What one notification says now, or None when there is nothing left to say."""
    payload = n.payload or {}
    if n.kind == LAPSE_NOTICE:
        return _lapse_section(d, campaigns, n)
    if n.kind in ("notice", "deadline_notice", "audit_checkpoint", RECEIPT):
        section = dict(payload)
        section["kind"], section["urgent"] = n.kind, False
        if section.get("at"):
            section["at_text"] = format_local(parse_instant(section["at"]))
        if n.campaign_id:
            _campaign, spec, _ = campaigns.get(n.campaign_id)
            section["campaign_name"] = spec.name
        return section
    assert n.campaign_id and n.stage_id
    _campaign, spec, deadlines = campaigns.get(n.campaign_id)
    stage = spec.stage(n.stage_id)
    if stage.relative is not None and stage.relative.per_case:
        return _case_reminder(session, spec, stage, calendar, n, now)
    row = deadlines.get(stage.id)
    if row is None or row.version != n.deadline_version:
        return None
    if n.kind in ("reminder", "supervisor_reminder") and row.due_at is not None and now >= row.due_at:
        # A reminder held past its deadline (server down, retries) would announce a deadline
        # that is over ("还剩 -1 个工作日"); the overdue notice and the escalation speak now.
        return None
    base = {
        "kind": n.kind,
        "campaign_name": spec.name,
        "program": PROGRAM_LABELS.get(spec.program, spec.program),
        "stage_name": stage.name,
        "stage_id": stage.id,
        "instructions": stage.instructions,
        "deadline_note": stage.basis(row.due_at),
        "step": n.step,
        "urgent": n.urgent,
    }
    base |= _countdown(calendar, now, row.due_at)
    orgs = list(payload.get("orgs", []))
    if n.kind in ("reminder", "overdue"):
        cases, total = campaigns.pending(n.campaign_id, stage, orgs)
        if not total:
            return None
        forwarded = [o for o in orgs if o != contact.org_id]
        base |= {
            "items": [_item(c, spec) for c in cases[:ITEM_LIMIT]],
            "total": total,
            "more": max(0, total - ITEM_LIMIT),
            "forwarded": [d.name(o) for o in forwarded],
            # What the mail shows (shown_in): the listed cases and the total, not every case.
            "shown": [c.ref for c in cases[:ITEM_LIMIT]],
            "shown_counts": [total],
        }
        base["nothing_to_review"] = (
            _nothing_to_review_text(session, d, n.campaign_id, spec, orgs)
            if n.kind == "reminder" and stage.subject == "recommendation"
            else None
        )
        return base
    # supervisor_reminder / escalation: who below still has not acted, with how to reach them
    late = []
    shown: list[str] = []
    counts: list[int] = []
    for org_id in orgs:
        cases, total = campaigns.pending(n.campaign_id, stage, [org_id])
        if not total:
            continue
        shown += [c.ref for c in cases[:5]]
        counts.append(total)
        people = d.contacts(org_id, spec.program)
        org = d.org(org_id)
        if not people and org is not None and org.tier in ("enterprise", "park"):
            people = d.contacts(d.supervisor(org_id), spec.program)  # reach it through its county
        late.append(
            {
                "org": d.name(org_id),
                "count": total,
                "refs": [f"{c.ref} {c.title}" for c in cases[:5]],
                "more": max(0, total - 5),
                "contacts": [
                    {"name": p.name, "title": p.title, "mobile": p.mobile, "email": p.email} for p in people
                ],
            }
        )
    if not late:
        return None
    round_no = int(n.step[1:]) if n.kind == "escalation" and n.step and n.step.startswith("r") else None
    # Units nobody could be reminded at: the province hears how many, not only a count of late ones.
    no_contact = sum(1 for u in late if not u["contacts"])
    return base | {
        "late": late,
        "round": round_no,
        "no_contact": no_contact,
        "shown": sorted(shown),
        "shown_counts": counts,
    }


def _lapse_section(d: Directory, campaigns: _Campaigns, n: Any) -> dict[str, Any] | None:
    """The cases of one organisation that lapsed at one instant, as they are now: a case
    corrected since (the platform had it submitted on time) is left out; none left, nothing to say.

    A county reads its list whole (rarely more than a few dozen); a city or the province reads
    how many per county first, then the cases by county, up to LAPSE_LIST_LIMIT, and the board's
    link for the rest.
    """
    payload = n.payload or {}
    assert n.campaign_id
    _campaign, spec, _ = campaigns.get(n.campaign_id)
    ids = list(payload.get("case_ids", []))
    found = campaigns.cases(ids)
    # Still lapsed: in a state its machine's lapse leads to (corrected ones have left it).
    lapsed = {
        kind: machine_for(kind, n.campaign_id).lapsed for kind in {found[i].kind for i in ids if i in found}
    }
    still = [found[i] for i in ids if i in found and found[i].state in lapsed[found[i].kind]]
    if not still:
        return None
    org_id = payload.get("org", "")
    org = d.org(org_id)
    tier = org.tier if org is not None else ""
    by_county = tier in ("city", "province")
    shown = [c.id for c in still]  # in case-number order, as the list was written
    if by_county:
        still.sort(key=lambda c: (c.county_code or "", c.ref))
    counts = Counter(c.county_code for c in still) if by_county else Counter()
    scope = {"county": "county", "city": "city"}.get(tier)
    query = {"state": still[0].state} | ({scope: org_id} if scope else {})
    return {
        "kind": LAPSE_NOTICE,
        "urgent": False,
        "campaign_name": spec.name,
        "org_name": d.name(org_id),
        "label": payload.get("label", ""),
        "from": payload.get("from", ""),
        "to": payload.get("to", ""),
        "reason": payload.get("reason", ""),
        "actor": payload.get("actor", ""),
        "at_text": format_local(parse_instant(payload["at"])) if payload.get("at") else "",
        "total": len(still),
        "items": [
            {
                "ref": c.ref,
                "title": c.title,
                "track": spec.column_label("track", c.track),
                "county": d.name(c.county_code) if by_county else "",
            }
            for c in still[:LAPSE_LIST_LIMIT]
        ],
        "more": max(0, len(still) - LAPSE_LIST_LIMIT),
        "counties": [
            {"name": d.name(code), "count": k}
            for code, k in sorted(counts.items(), key=lambda kv: kv[0] or "")
        ]
        if len(counts) > 1
        else [],
        "board_path": f"/campaigns/{quote(n.campaign_id, safe='')}/board?{urlencode(query)}",
        "shown": shown,
    }


def shown_in(section: dict[str, Any]) -> dict[str, Any]:
    """What a section shows that can go stale before it is sent: the cases it lists (refs; a
    lapse list: ids) and the totals it states (a digest's 「共N项」, each late organisation's
    count). The pre-send recheck re-renders when this differs from ``shown_of``: a listed case
    acted on since drops off, an unlisted one changes the total."""
    return {"shown": list(section.get("shown", [])), "shown_counts": section.get("shown_counts")}


def shown_of(n: Any) -> dict[str, Any]:
    """``shown_in`` of a notification's section when its message was composed (kept in its
    payload; a lapse list written before: its cases)."""
    payload = n.payload or {}
    return {
        "shown": list(payload.get("shown", payload.get("case_ids", []))),
        "shown_counts": payload.get("shown_counts"),
    }


def _nothing_to_review_text(
    session: Session, d: Directory, campaign_id: str, spec: CampaignSpec, orgs: list[str]
) -> str | None:
    """For a recommender no application has reached: the reminder says so, and what to do."""
    for org_id in orgs:
        if nothing_to_review(session, campaign_id, org_id):
            org = d.org(org_id)
            if org is not None and org.tier == "city":
                sender = spec.form.applicant_tier_label if spec.form is not None else "申报单位"
                return f"本市暂无{sender}提交的申报；如确无推荐，请报送“无推荐”"
            return "本单位暂无提交的申报；如确无推荐，请报送“无推荐”"
    return None


def _case_reminder(
    session: Session, spec: Any, stage: Stage, calendar: WorkCalendar, n: Notification, now: datetime
) -> dict[str, Any] | None:
    """A reminder of one case's own deadline (N working days after its return): still owed, still
    the version it was planned for, not yet past."""
    row = session.get(CaseDeadline, (n.case_id, stage.id)) if n.case_id is not None else None
    case = session.get(Case, n.case_id) if n.case_id is not None else None
    planned = (n.payload or {}).get("case_deadline_version")
    if row is None or case is None or row.due_at is None or row.version != planned:
        return None
    if case.state not in stage.pending_states or now >= row.due_at:
        return None
    base = {
        "kind": n.kind,
        "campaign_name": spec.name,
        "program": PROGRAM_LABELS.get(spec.program, spec.program),
        "stage_name": stage.name,
        "stage_id": stage.id,
        "instructions": stage.instructions,
        "deadline_note": stage.deadline_text or (stage.relative.describe() if stage.relative else ""),
        "step": n.step,
        "urgent": n.urgent,
        "items": [_item(case, spec)],
        "total": 1,
        "more": 0,
        "forwarded": [],
        "shown": [case.ref],
        "nothing_to_review": None,
    }
    return base | _countdown(calendar, now, row.due_at)


def _item(case: Any, spec: Any) -> dict[str, str]:
    # The campaign's own machine and form: another campaign may name the same kind's states, or
    # the track's choices, otherwise.
    return {
        "ref": case.ref,
        "title": case.title,
        "state": machine_for(case.kind, spec.id).state_label(case.state),
        "track": spec.column_label("track", case.track),
    }


GROUP_NOTICES_FROM = 3  # this many identical state changes read better as one list than as boxes


def grouped(sections: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge notices of the same change (e.g. forty drafts lapsing at 24:00) into one section."""

    def key(s: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(
            s.get(k) for k in ("campaign_name", "action", "label", "to", "reason", "actor", "late_note")
        )

    members: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for s in sections:
        if s["kind"] == "notice":
            members.setdefault(key(s), []).append(s)
    out: list[dict[str, Any]] = []
    emitted: set[tuple[Any, ...]] = set()
    for s in sections:
        group = members.get(key(s)) if s["kind"] == "notice" else None
        if group is None or len(group) < GROUP_NOTICES_FROM:
            out.append(s)
        elif key(s) not in emitted:
            emitted.add(key(s))
            first = group[0]
            out.append(
                {
                    "kind": "notice_group",
                    "urgent": False,
                    "campaign_name": first.get("campaign_name"),
                    "label": first.get("label"),
                    "to": first.get("to"),
                    "reason": first.get("reason"),
                    "actor": first.get("actor"),
                    "at_text": first.get("at_text"),
                    "total": len(group),
                    "items": [
                        {
                            "ref": m.get("ref"),
                            "title": m.get("title"),
                            "from": m.get("from"),
                            "defence_at": m.get("defence_at"),
                        }
                        for m in group
                    ],
                }
            )
    return out


def _render(
    renderer: Renderer,
    identity: MailIdentity,
    contact: Contact,
    org_name: str,
    sections: list[dict[str, Any]],
    now: datetime,
) -> tuple[str, str, str]:
    sections = grouped(sections)
    context = {
        "contact": contact,
        "org_name": org_name,
        "sections": sections,
        "now_text": format_local(now),
        "dashboard_url": identity.dashboard_url,
        "from_name": identity.from_name,
    }
    return renderer.render(context)


def _write_message(
    email: Email,
    renderer: Renderer,
    identity: MailIdentity,
    contact: Contact,
    org_name: str,
    sections: list[dict[str, Any]],
    now: datetime,
) -> None:
    """Render the sections and store subject, bodies and the finished MIME bytes on the email."""
    email.subject, email.text_body, email.html_body = _render(
        renderer, identity, contact, org_name, sections, now
    )
    email.raw = build_mime(
        message_id=email.message_id,
        from_addr=identity.from_addr,
        from_name=identity.from_name,
        to_addr=email.to_addr,
        to_name=email.to_name,
        subject=email.subject,
        text=email.text_body,
        html=email.html_body,
        date=now,
        extra_headers={"X-Shenbao-Key": email.key},
        attachments=receipt_attachments(sections),
    )


def compose(
    session: Session, now: datetime, calendar: WorkCalendar, identity: MailIdentity, renderer: Renderer
) -> int:
    """Turn every pending, due notification into emails, one per recipient. Returns emails written."""
    return compose_all(session, now, calendar, identity, renderer)[0]


def compose_all(
    session: Session, now: datetime, calendar: WorkCalendar, identity: MailIdentity, renderer: Renderer
) -> tuple[int, Counter[str]]:
    """Turn every pending, due notification into messages: one email per recipient, and on each
    other channel one message per person (zzd, SMS) or per robot (a group) per run. Each
    notification takes the channels its person has for it (notifications/channels/route.py).
    Returns (emails written, channel messages written by channel).

    Reads the notifications as plain rows and writes emails and notification states with Core
    executemany at the end: a window closing puts thousands of notifications into hundreds of
    emails, and an ORM flush per email (each flushing the rows it touched) cost most of it.
    """
    channel_counts: Counter[str] = Counter()
    table = Notification.__table__  # type: ignore[attr-defined]
    pending = session.execute(
        select(table)
        .where(table.c.status == PENDING, table.c.due_at <= now)
        .order_by(table.c.contact_id, table.c.id)
    ).all()
    if not pending:
        return 0, channel_counts
    by_contact: dict[int, list[Any]] = defaultdict(list)
    for n in pending:
        by_contact[n.contact_id].append(n)
    d = Directory(session)
    campaigns = _Campaigns(session)
    lapse_ids = {i for n in pending if n.kind == LAPSE_NOTICE for i in (n.payload or {}).get("case_ids", [])}
    cases = campaigns.cases(lapse_ids)
    # One query for every organisation a section will name (a county forwarding for thousands
    # of enterprises, the counties of a city's lapse list), not a lookup each.
    d.preload(
        {o for n in pending for o in (n.payload or {}).get("orgs", [])}
        | {(n.payload or {}).get("org", "") for n in pending if n.kind == LAPSE_NOTICE}
        | {c.county_code for c in cases.values() if c.county_code}
        | {c.org_id for c in map(d.contact, by_contact) if c is not None}
    )
    hours = WorkingHours.parse(identity.working_hours)
    changes: list[dict[str, Any]] = []  # notification id, status, reason, email index
    shown: list[dict[str, Any]] = []  # notification id, payload with what its email shows
    emails: list[Email] = []
    # (channel, address) -> what goes there this run: one message per destination (a digest).
    elsewhere: dict[tuple[str, str], list[tuple[Contact, Any, dict[str, Any]]]] = defaultdict(list)
    for contact_id, notes in by_contact.items():
        contact = d.contact(contact_id)
        if contact is None or not contact.active:
            changes += [{"nid": n.id, "st": CANCELLED, "sr": "联系人已停用", "mail": None} for n in notes]
            continue
        sections = []
        kept: list[Any] = []
        for n in notes:
            section = section_for(session, d, campaigns, calendar, n, contact, now)
            if section is None:
                changes.append(
                    {
                        "nid": n.id,
                        "st": CANCELLED,
                        "sr": "发送前复核：已办结或截止时间已调整，无需再发",
                        "mail": None,
                    }
                )
                continue
            now_shown = shown_in(section)
            if now_shown != shown_of(n):
                shown.append({"nid": n.id, "pl": dict(n.payload or {}) | now_shown})
            # A receipt is a file to keep: it goes by email whatever channel the person prefers.
            routes = ("email",) if n.kind == RECEIPT else routes_for(contact, n.urgent)
            for channel in routes:
                if channel != "email":
                    elsewhere[(channel, address_of(contact, channel))].append((contact, n, section))
            if "email" in routes:
                sections.append(section)
                kept.append(n)
            else:
                changes.append({"nid": n.id, "st": QUEUED, "sr": "", "mail": None})
        if not kept:
            continue
        key = (
            "m:"
            + str(contact_id)
            + ":"
            + hashlib.sha1("|".join(n.key for n in kept).encode()).hexdigest()[:20]
        )
        urgent = any(n.urgent for n in kept)
        email = Email(
            key=key,
            message_id=message_id_for(key, identity.domain),
            contact_id=contact_id,
            to_addr=contact.email,
            to_name=contact.name,
            urgent=urgent,
            kinds=",".join(sorted({n.kind for n in kept})),
            created_at=now,
            # Quiet hours: only the last-day reminders go out at night or on a holiday.
            next_attempt_at=now if urgent else hours.next_open(now, calendar),
            status=E_PENDING,
        )
        _write_message(email, renderer, identity, contact, d.name(contact.org_id), sections, now)
        changes += [{"nid": n.id, "st": QUEUED, "sr": "", "mail": len(emails)} for n in kept]
        emails.append(email)
    email_ids: list[int] = []
    if emails:
        etable = Email.__table__  # type: ignore[attr-defined]
        email_ids = list(
            session.execute(
                insert(etable).returning(etable.c.id, sort_by_parameter_order=True),
                [e.model_dump(exclude={"id"}) for e in emails],
            ).scalars()
        )
    if changes:
        session.execute(
            update(table)
            .where(table.c.id == bindparam("nid"))
            .values(status=bindparam("st"), status_reason=bindparam("sr"), email_id=bindparam("eid")),
            [
                {
                    "nid": c["nid"],
                    "st": c["st"],
                    "sr": c["sr"],
                    "eid": None if c["mail"] is None else email_ids[c["mail"]],
                }
                for c in changes
            ],
        )
    if shown:
        session.execute(
            update(table)
            .where(table.c.id == bindparam("nid"))
            .values(payload=bindparam("pl", type_=table.c.payload.type)),
            shown,
        )
    for (channel, address), parts in elsewhere.items():
        write_channel_message(session, channel, address, parts, identity, renderer, hours, calendar, now)
        channel_counts[channel] += 1
    session.flush()
    return len(emails), channel_counts


def render_channel(
    renderer: Renderer, channel: str, to_name: str, sections: list[dict[str, Any]], dashboard_url: str | None
) -> tuple[str, str, str | None]:
    """(title, text, link) of one channel message: DingTalk markdown for 浙政钉 and robots, a short
    SMS text (notifications/channels/content.py)."""
    # content.py builds on this module's grouping; imported here, where it is needed.
    from notifications.channels.content import dingtalk_markdown, link_for, sms_text

    if channel == "sms":
        link = link_for(dashboard_url, grouped(list(sections)))
        text = sms_text(renderer, sections, link=link)
        return text[:60], text, link
    out = dingtalk_markdown(renderer, sections, contact_name=to_name, dashboard_url=dashboard_url)
    return out.title, out.text, out.link


def write_channel_message(
    session: Session,
    channel: str,
    address: str,
    parts: list[tuple[Contact, Any, dict[str, Any]]],  # a Notification or its row
    identity: MailIdentity,
    renderer: Renderer,
    hours: WorkingHours,
    calendar: WorkCalendar,
    now: datetime,
) -> ChannelMessage:
    """One message on ``channel`` to ``address`` carrying ``parts`` (their notifications become
    its items). The key derives from the notifications' keys, as an email's does."""
    first = parts[0][0]
    notes = [n for _c, n, _s in parts]
    key = f"c:{channel}:{address}:" + hashlib.sha1("|".join(n.key for n in notes).encode()).hexdigest()[:20]
    to_name = "各位同事" if channel == "robot" else first.name
    title, text, link = render_channel(
        renderer, channel, to_name, [s for _c, _n, s in parts], identity.dashboard_url
    )
    urgent = any(n.urgent for n in notes)
    message = ChannelMessage(
        key=key,
        channel=channel,
        address=address,
        contact_id=first.id,
        to_name=to_name,
        title=title[:200],
        text=text,
        link=link,
        urgent=urgent,
        kinds=",".join(sorted({n.kind for n in notes})),
        items=len({n.id for n in notes}),
        created_at=now,
        next_attempt_at=now if urgent else hours.next_open(now, calendar),
        status=C_PENDING,
    )
    session.add(message)
    session.flush()
    assert message.id is not None
    session.add_all(
        ChannelItem(message_id=message.id, notification_id=int(n_id or 0)) for n_id in {n.id for n in notes}
    )
    return message


class Rechecker:
    """The dispatcher's last look before sending: keep, re-render with fewer items, or cancel.

    ``prepare`` reads what a claimed batch needs at once (its notifications, recipients, the
    organisations and contacts its sections name, campaigns and open cases) and returns the
    check for each email of it; called directly it checks one email.
    """

    def __init__(self, calendar: WorkCalendar, identity: MailIdentity, renderer: Renderer) -> None:
        self.calendar = calendar
        self.identity = identity
        self.renderer = renderer

    def __call__(self, session: Session, email: Email, now: datetime) -> bytes | Literal["keep"] | None:
        return self.prepare(session, [email], now)(session, email, now)

    def prepare(
        self, session: Session, emails: list[Email], now: datetime
    ) -> Callable[[Session, Email, datetime], bytes | Literal["keep"] | None]:
        ids = [e.id for e in emails]
        notes_of: dict[int | None, list[Notification]] = defaultdict(list)
        for start in range(0, len(ids), 900):
            query = (
                select(Notification)
                .where(Notification.email_id.in_(ids[start : start + 900]))  # type: ignore[union-attr]
                .order_by(Notification.id)  # type: ignore[arg-type]
            )
            for n in session.exec(query).all():
                notes_of[n.email_id].append(n)
        d = Directory(session, everyone=False)
        d.load_contacts((), [e.contact_id for e in emails])
        named = {o for notes in notes_of.values() for n in notes for o in (n.payload or {}).get("orgs", [])}
        recipients = {c.org_id for c in map(d.contact, {e.contact_id for e in emails}) if c is not None}
        campaigns = _Campaigns(session)
        lapses = [n for notes in notes_of.values() for n in notes if n.kind == LAPSE_NOTICE]
        cases = campaigns.cases(i for n in lapses for i in (n.payload or {}).get("case_ids", []))
        listed = {(n.payload or {}).get("org", "") for n in lapses} | {
            c.county_code for c in cases.values() if c.county_code
        }
        d.preload(named | recipients | listed)
        # Enterprises without contacts are reached through their county (section_for).
        d.load_contacts(named | {d.supervisor(o) for o in named} | recipients)

        def check(session: Session, email: Email, now: datetime) -> bytes | Literal["keep"] | None:
            return self._check(session, email, now, notes_of.get(email.id, []), d, campaigns)

        return check

    def _check(
        self,
        session: Session,
        email: Email,
        now: datetime,
        notes: list[Notification],
        d: Directory,
        campaigns: _Campaigns,
    ) -> bytes | Literal["keep"] | None:
        if not any(n.kind in RECHECKED for n in notes):
            return "keep"
        contact = d.contact(email.contact_id)
        if contact is None:
            return None
        sections, changed = [], False
        for n in notes:
            section = section_for(session, d, campaigns, self.calendar, n, contact, now)
            if section is None:
                changed = True
                n.status, n.status_reason = CANCELLED, "发送前复核：已办结或截止时间已调整，无需再发"
                session.add(n)
                continue
            if shown_in(section) != shown_of(n):
                changed = True
            sections.append(section)
        if not sections:
            return None
        if not changed:
            return "keep"
        _write_message(email, self.renderer, self.identity, contact, d.name(contact.org_id), sections, now)
        session.add(email)
        return email.raw


def recheck(
    session: Session,
    email: Email,
    now: datetime,
    calendar: WorkCalendar,
    identity: MailIdentity,
    renderer: Renderer,
) -> bytes | Literal["keep"] | None:
    """Just before sending: keep, re-render with fewer items, or cancel (None). One email; the
    dispatcher uses :class:`Rechecker` to read what a whole batch needs at once."""
    return Rechecker(calendar, identity, renderer)(session, email, now)


class ChannelRechecker:
    """The same last look for a 浙政钉, robot or SMS message, through the notifications it carries
    (``channel_item``): ``"keep"``, a new (title, text) when part of it is done, or None (cancel,
    nothing left to say). One way through: the sections are the same ``section_for`` the email's
    recheck computes."""

    def __init__(self, calendar: WorkCalendar, identity: MailIdentity, renderer: Renderer) -> None:
        self.calendar = calendar
        self.identity = identity
        self.renderer = renderer

    def __call__(
        self, session: Session, message: ChannelMessage, now: datetime
    ) -> tuple[str, str] | Literal["keep"] | None:
        notes = list(
            session.exec(
                select(Notification)
                .join(ChannelItem, ChannelItem.notification_id == Notification.id)  # type: ignore[arg-type]
                .where(col(ChannelItem.message_id) == message.id)
                .order_by(Notification.id)  # type: ignore[arg-type]
            ).all()
        )
        if not any(n.kind in CHASING for n in notes):
            return "keep"
        d = Directory(session, everyone=False)
        d.load_contacts((), [n.contact_id for n in notes])
        named = {o for n in notes for o in (n.payload or {}).get("orgs", [])}
        d.preload(named | {c.org_id for c in map(d.contact, {n.contact_id for n in notes}) if c is not None})
        d.load_contacts(named | {d.supervisor(o) for o in named})
        campaigns = _Campaigns(session)
        sections, changed = [], False
        for n in notes:
            contact = d.contact(n.contact_id)
            section = (
                None
                if contact is None
                else section_for(session, d, campaigns, self.calendar, n, contact, now)
            )
            if section is None:
                changed = True
                continue
            if shown_in(section) != shown_of(n):
                changed = True
            sections.append(section)
        if not sections:
            return None
        if not changed:
            return "keep"
        title, text, _link = render_channel(
            self.renderer, message.channel, message.to_name, sections, self.identity.dashboard_url
        )
        return title, text
