"""Where everything stands: counts by city, county and state, stages with their deadlines.

Read-only queries shared by the CLI, the dashboard and the flows. Counting is one GROUP BY on
the (campaign, city, state) index, so a board over 100,000 cases answers in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from calendars.campaign import Stage
from calendars.timeutil import format_deadline
from calendars.workdays import UnknownYearError, WorkCalendar
from models.campaign import Campaign, deadlines_in_force
from models.case import Case
from models.deadlines import planned_stage_due
from models.machines import machine_for
from models.org import Organisation
from models.owing import acting_units, idle_recommenders, owed, without_contacts
from models.reference import load_divisions


@dataclass
class StageView:
    """One stage as a board shows it: the deadline in force, who still owes it, time left."""

    stage: Stage
    due_at: datetime | None
    version: int
    pending: int
    working_days_left: int | None
    now: datetime
    reason: str = ""
    # Why the countdown (and the stage's reminders), or a deadline counted in working days, waits:
    # a year whose working days are not loaded ("2027年的节假日安排尚未加载（shenbao calendar load）").
    waiting: str = ""
    # Recommenders whose list waits here though no application reached them (models.owing): not
    # in ``pending``, reminded that they may report 无推荐.
    idle: int = 0
    # Of the units that owe this stage, those with no contact for the program: nobody there is
    # reminded (None: not counted, the applicants' own stages).
    unreached: int | None = None

    @property
    def closed(self) -> bool:
        return self.due_at is not None and self.now >= self.due_at

    @property
    def due_text(self) -> str:
        """The deadline as boards say it: a date, each case's own (per-case stages), or 另行通知."""
        if self.due_at is not None:
            return format_deadline(self.due_at)
        rule = self.stage.relative
        if rule is not None and rule.per_case:
            return f"按案件各自计算（{rule.describe()}）"
        return "另行通知"

    @property
    def overdue(self) -> bool:
        return self.closed and self.pending > 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage.id,
            "name": self.stage.name,
            "actor": self.stage.actor,
            "subject": self.stage.subject,
            "due_at": self.due_at.isoformat() if self.due_at else None,
            "deadline_version": self.version,
            "deadline_text": self.stage.deadline_text,
            "pending": self.pending,
            "idle_recommenders": self.idle,
            "units_without_contacts": self.unreached,
            "working_days_left": self.working_days_left,
            "overdue": self.overdue,
            "waiting": self.waiting or None,
        }

    @property
    def notes(self) -> list[str]:
        """What the count of 待办 leaves out or cannot do, in the board's words."""
        out = []
        if self.idle:
            out.append(f"另有 {self.idle} 个推荐单位尚无申报到达，可报“无推荐”，不计入待办")
        if self.unreached:
            out.append(f"{self.unreached} 个单位无联系人，未能提醒")
        return out


def stage_views(
    session: Session,
    campaign: Campaign,
    now: datetime,
    calendar: WorkCalendar | None,
    *,
    city: str | None = None,
    county: str | None = None,
    scope: Any = None,
) -> list[StageView]:
    """Each stage with its deadline and how many cases still wait at it (within a city or county,
    or within ``scope``, a filter on cases such as the dashboard's viewer scope)."""
    spec = campaign.spec()
    deadlines = deadlines_in_force(session, campaign.id, spec)
    filters: list[Any] = []
    if scope is not None:
        filters.append(scope)
    if city:
        filters.append(Case.city_code == city)
    if county:
        filters.append(Case.county_code == county)
    query = select(Case.kind, Case.state, func.count()).where(Case.campaign_id == campaign.id, *filters)
    counts = dict(
        ((kind, state), n) for kind, state, n in session.exec(query.group_by(Case.kind, Case.state)).all()
    )
    views = []
    for stage in spec.stages:
        deadline = deadlines[stage.id]
        due = deadline.due_at
        pending = sum(counts.get((stage.subject, s), 0) for s in stage.pending_states)
        # Who owes what: the rule of the reminders and the escalation (models.owing).
        idle = idle_recommenders(session, spec, stage) if pending else set()
        idle_here = 0
        if idle:
            idle_here = session.exec(
                select(func.count())
                .select_from(Case)
                .where(*owed(spec, stage, ()), col(Case.org_id).in_(sorted(idle)), *filters)
            ).one()
            pending -= idle_here
        unreached = None
        units = acting_units(session, spec, stage, idle, *filters) if pending else set()
        if units is not None:
            unreached = len(without_contacts(session, spec.program, units))
        left = None
        waiting = ""
        if due is not None and calendar is not None:
            try:
                left = calendar.working_days_left(now, due)
            except UnknownYearError as exc:
                waiting = exc.short
        elif calendar is not None and stage.relative is not None and not stage.relative.per_case:
            try:
                planned_stage_due(session, campaign.id, spec, stage, calendar)
            except UnknownYearError as exc:
                waiting = exc.short  # counted into that year: 另行通知 until it is loaded
        views.append(
            StageView(
                stage,
                due,
                deadline.version,
                pending,
                left,
                now,
                deadline.reason,
                waiting,
                idle_here,
                unreached,
            )
        )
    return views


@dataclass
class Board:
    """Counts of cases by a grouping (city, county or state) and state."""

    campaign_id: str
    kind: str
    group_by: str
    states: list[str]
    rows: list[tuple[str, str, dict[str, int]]] = field(default_factory=list)  # (code, label, counts)

    def total(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _code, _label, counts in self.rows:
            for state, n in counts.items():
                out[state] = out.get(state, 0) + n
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign_id,
            "kind": self.kind,
            "group_by": self.group_by,
            "states": self.states,
            "rows": [
                {"code": c, "name": label, "counts": counts, "total": sum(counts.values())}
                for c, label, counts in self.rows
            ],
            "total": self.total(),
        }


def board(
    session: Session,
    campaign_id: str,
    kind: str,
    *,
    city: str | None = None,
    county: str | None = None,
    state: str | None = None,
) -> Board:
    """Cities × states; with ``city``, that city's counties × states; with ``county``, its applicants."""
    machine = machine_for(kind, campaign_id)
    filters = [Case.campaign_id == campaign_id, Case.kind == kind]
    if state:
        filters.append(Case.state == state)
    divisions = load_divisions()
    if county:
        group_col, group_by = Case.org_id, "applicant"
        filters.append(Case.county_code == county)
    elif city:
        group_col, group_by = Case.county_code, "county"
        filters.append(Case.city_code == city)
    else:
        group_col, group_by = Case.city_code, "city"
    result = session.exec(
        select(group_col, Case.state, func.count()).where(*filters).group_by(group_col, Case.state)
    ).all()
    by_group: dict[str, dict[str, int]] = {}
    for code, st, n in result:
        by_group.setdefault(code or "-", {})[st] = n
    out = Board(campaign_id, kind, group_by, list(machine.states))
    if group_by == "city":
        order = [(c.code, c.name) for c in divisions.cities]
        order += [(code, code) for code in sorted(by_group) if code not in {c for c, _ in order}]
    elif group_by == "county":
        order = [(c.code, c.name) for c in divisions.counties_of(city)] if city else []
        order += [(code, code) for code in sorted(by_group) if code not in {c for c, _ in order}]
    else:
        names = dict(
            session.exec(
                select(Organisation.id, Organisation.name).where(col(Organisation.id).in_(list(by_group)))
            ).all()
        )
        order = sorted(((code, names.get(code, code)) for code in by_group), key=lambda x: x[1])
    for code, label in order:
        out.rows.append((code, label, by_group.get(code, {})))
    return out


def list_cases(
    session: Session,
    campaign_id: str | None = None,
    *,
    kind: str | None = None,
    city: str | None = None,
    county: str | None = None,
    state: str | None = None,
    limit: int = 200,
) -> list[Case]:
    query = select(Case)
    if campaign_id:
        query = query.where(Case.campaign_id == campaign_id)
    if kind:
        query = query.where(Case.kind == kind)
    if city:
        query = query.where(Case.city_code == city)
    if county:
        query = query.where(Case.county_code == county)
    if state:
        query = query.where(Case.state == state)
    return list(session.exec(query.order_by(Case.ref).limit(limit)))
