"""Reconcile: look at the database at ``now`` and write whatever is due and not yet written.

Level-triggered, like a Kubernetes controller: nothing here remembers what it did last time
except through the outbox's unique keys and one audit watermark. Running it twice, after a
crash, or an hour late writes the same rows. In order:

1. windows close by themselves (drafts lapse at 2026-06-25 24:00; models.actions.close_windows);
2. notifications planned for an old deadline version are cancelled, with the reason;
3. for every stage with a deadline: the latest reminder step already due, to whoever still has
   to act (and, where the campaign says so, to one tier up); after the deadline, the latest
   escalation round one tier up (two tiers from ``ladder_after`` on);
4. state changes and deadline moves recorded in the audit since the watermark become notices;
5. (compose) pending notifications are gathered into one email per recipient.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, update
from sqlmodel import Session, col, select

from calendars.campaign import CampaignSpec, Stage
from calendars.timeutil import format_deadline, local_date, start_of_local_day
from calendars.workdays import UnknownYearError, WorkCalendar
from models.actions import close_windows
from models.audit import AuditEvent, AuditHead, EventDraft
from models.campaign import Campaign, deadlines_of
from models.case import Case
from models.context import Ctx
from models.deadlines import open_case_deadlines
from models.org import Organisation
from models.outbox import CANCELLED, PENDING, Notification, ReconcileCursor, ReconcilePlan
from models.owing import idle_recommenders
from notifications.audience import Directory, acting_org
from notifications.notices import is_lapse, lapse_notices, notices_for_event
from notifications.schedule import WorkingHours, escalation_rounds, latest_due_step, reminder_time


@dataclass
class TickReport:
    now: datetime
    lapsed: list[str] = field(default_factory=list)
    written: Counter[str] = field(default_factory=Counter)
    cancelled: int = 0
    emails: int = 0
    channels: Counter[str] = field(default_factory=Counter)  # 浙政钉/robot/SMS messages written
    # Stages whose reminders or escalations wait for a year's working days ("campaign/stage" →
    # why): that stage waits, every other stage and campaign goes on.
    waiting: dict[str, str] = field(default_factory=dict)

    @property
    def nothing_new(self) -> bool:
        return not (
            self.lapsed
            or sum(self.written.values())
            or self.cancelled
            or self.emails
            or sum(self.channels.values())
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "lapsed": self.lapsed,
            "written": dict(self.written),
            "cancelled": self.cancelled,
            "emails": self.emails,
            "channels": dict(self.channels),
            "waiting": dict(self.waiting),
        }


# -- who still has to act at a stage -------------------------------------------------------------


@dataclass(frozen=True)
class PendingGroup:
    """Applicants with cases waiting at a stage, counted per (organisation, county, city)."""

    org_id: str
    county_code: str | None
    city_code: str | None
    cases: int
    tier: str | None  # the applicant's tier (a park is reminded too, see parks_by_county)


def pending_groups(session: Session, campaign_id: str, stage: Stage) -> list[PendingGroup]:
    """Who has cases waiting at ``stage``, aggregated in SQL: one GROUP BY over the covering
    index ``ix_case_pending`` (no case row is read), the applicant's tier joined to the groups
    rather than to every case. At a million open cases this is a few thousand rows."""
    groups = (
        select(Case.org_id, Case.county_code, Case.city_code, func.count().label("cases"))
        .where(
            Case.campaign_id == campaign_id, Case.kind == stage.subject, Case.state.in_(stage.pending_states)
        )  # type: ignore[attr-defined]
        .group_by(Case.org_id, Case.county_code, Case.city_code)
        .subquery()
    )
    rows = session.exec(
        select(groups.c.org_id, groups.c.county_code, groups.c.city_code, groups.c.cases, Organisation.tier)
        .select_from(groups)
        .outerjoin(Organisation, Organisation.id == groups.c.org_id)
    ).all()
    return [PendingGroup(*row) for row in rows]


def parks_by_county(
    session: Session, campaign_id: str, stage: Stage, groups: list[PendingGroup] | None = None
) -> dict[str, set[str]]:
    """Parks (开发区、园区管委会) with cases waiting at a county stage, by county.

    The county's bureau files on the provincial platform, so it is the acting organisation; a
    park that applied is reminded too, through its own contacts, about its own applications.
    """
    if stage.actor != "county":
        return {}
    out: dict[str, set[str]] = defaultdict(set)
    for g in pending_groups(session, campaign_id, stage) if groups is None else groups:
        if g.tier == "park" and g.county_code:
            out[g.county_code].add(g.org_id)
    return dict(out)


def pending_by_org(
    session: Session, campaign_id: str, stage: Stage, groups: list[PendingGroup] | None = None
) -> dict[str, int]:
    """Acting organisation -> number of cases still waiting on it at ``stage``.

    The acting organisation depends on who the stage's actor is (``audience.acting_org``, the
    one rule): the applicant's county for county stages, the applicant itself for an
    enterprise, the case's owner for a city's own tasks.
    """
    out: dict[str, int] = defaultdict(int)
    for g in pending_groups(session, campaign_id, stage) if groups is None else groups:
        out[acting_org(stage, g.org_id, g.county_code, g.city_code)] += g.cases
    return dict(out)


def _recipients(d: Directory, org_id: str, program: str) -> tuple[list[Any], str | None]:
    """The org's own contacts; an enterprise or park without any is reached through its county.

    Government bodies (counties, cities) are expected to be on the roster: when one is not,
    nobody is reminded on its behalf, and the escalation after the deadline says so.
    """
    contacts = d.contacts(org_id, program)
    org = d.org(org_id)
    if contacts or org is None or org.tier not in ("enterprise", "park"):
        return contacts, None
    up = d.supervisor(org_id)
    return d.contacts(up, program), up


# -- writing notifications ----------------------------------------------------------------------


@dataclass
class _Planned:
    key: str
    kind: str
    contact_id: int
    email: str
    due_at: datetime
    urgent: bool
    step: str | None
    orgs: set[str]


class _Writer:
    """Collects planned rows for one (campaign, stage, version) and inserts the new ones."""

    def __init__(self, session: Session, ctx: Ctx, campaign_id: str, stage_id: str, version: int) -> None:
        self.session, self.ctx = session, ctx
        self.campaign_id, self.stage_id, self.version = campaign_id, stage_id, version
        self.rows: dict[str, _Planned] = {}

    def plan(
        self, key: str, kind: str, contact: Any, due_at: datetime, urgent: bool, step: str | None, org: str
    ) -> None:
        row = self.rows.get(key)
        if row is None:
            self.rows[key] = _Planned(key, kind, contact.id, contact.email, due_at, urgent, step, {org})
        else:
            row.orgs.add(org)

    def flush(self, report: TickReport) -> None:
        if not self.rows:
            return
        existing = set(
            self.session.exec(
                select(Notification.key).where(
                    Notification.campaign_id == self.campaign_id,
                    Notification.stage_id == self.stage_id,
                    Notification.deadline_version == self.version,
                )
            ).all()
        )
        new = [r for k, r in self.rows.items() if k not in existing]
        if not new:
            return
        self.session.execute(
            insert(Notification),
            [
                {
                    "key": r.key,
                    "kind": r.kind,
                    "campaign_id": self.campaign_id,
                    "stage_id": self.stage_id,
                    "deadline_version": self.version,
                    "step": r.step,
                    "case_id": None,
                    "audit_seq": None,
                    "contact_id": r.contact_id,
                    "email_addr": r.email,
                    "urgent": r.urgent,
                    "due_at": r.due_at,
                    "created_at": self.ctx.now,
                    "status": PENDING,
                    "status_reason": "",
                    "email_id": None,
                    "payload": {"orgs": sorted(r.orgs)},
                }
                for r in new
            ],
        )
        report.written.update(r.kind for r in new)


class _Plans:
    """Which steps were planned in full against which audit head (``outbox.ReconcilePlan``).

    Every change a plan depends on (a case created, moved or lapsed; a contact, an
    organisation, a campaign file loaded) is an audit event, so the head's ``seq`` read once
    after the lapses is the version of everything a plan reads. A step planned against the
    same version is skipped; anything recorded since, or a new step, plans again in full.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.seq = session.exec(select(AuditHead.seq).where(AuditHead.id == 1)).first() or 0
        self.marks = {
            (m.campaign_id, m.stage_id, m.rule): m for m in session.exec(select(ReconcilePlan)).all()
        }

    def planned(self, campaign_id: str, stage_id: str, signatures: dict[str, str]) -> bool:
        for rule, signature in signatures.items():
            mark = self.marks.get((campaign_id, stage_id, rule))
            if mark is None or mark.signature != signature or mark.audit_seq != self.seq:
                return False
        return True

    def record(self, campaign_id: str, stage_id: str, signatures: dict[str, str]) -> None:
        for rule, signature in signatures.items():
            mark = self.marks.get((campaign_id, stage_id, rule))
            if mark is None:
                mark = ReconcilePlan(campaign_id=campaign_id, stage_id=stage_id, rule=rule, signature="")
                self.marks[(campaign_id, stage_id, rule)] = mark
            mark.signature, mark.audit_seq = signature, self.seq
            self.session.add(mark)

    def passed_own_event(self, seq: int) -> None:
        """Reconcile's own record of the run is no change to what it planned: when it is the
        only event since the plans were made, they stay current (else the next pass would
        plan everything again after every pass that cancelled something)."""
        if seq != self.seq + 1:
            return  # someone else wrote in between (PostgreSQL): plan again next time
        for mark in self.marks.values():
            if mark.audit_seq == self.seq:
                mark.audit_seq = seq
                self.session.add(mark)


def _cancel(session: Session, report: TickReport, reason: str, *conditions: Any) -> None:
    result = session.execute(
        update(Notification)
        .where(Notification.status == PENDING, *conditions)
        .values(status=CANCELLED, status_reason=reason)
    )
    report.cancelled += result.rowcount or 0  # type: ignore[attr-defined]


def _plan_stage(
    session: Session,
    ctx: Ctx,
    d: Directory,
    plans: _Plans,
    calendar: WorkCalendar,
    spec: CampaignSpec,
    stage: Stage,
    due: datetime,
    version: int,
    report: TickReport,
) -> None:
    now = ctx.now
    if stage.opens is not None and now < stage.opens:
        return
    hours = WorkingHours.parse(spec.working_hours)
    latest_steps: dict[str, tuple[Any, datetime]] = {}
    if now < due and stage.reminders:
        for audience in ("actor", "supervisor"):
            steps = []
            for s in stage.reminders:
                if s.audience != audience:
                    continue
                try:
                    steps.append((s, reminder_time(s, due, calendar, hours)))
                except UnknownYearError as exc:
                    # This step waits for its year; the steps that can be counted still go.
                    report.waiting[f"{spec.id}/{stage.id}"] = exc.short
            latest = latest_due_step(steps, now)
            if latest is not None:
                latest_steps[audience] = latest
    policy = stage.escalation
    rounds: list[datetime] = []
    stuck_cutoff: datetime | None = None
    try:
        if policy is not None and now >= due and (stage.closes is None or now < stage.closes):
            rounds = escalation_rounds(policy, due, calendar, until=now)
        if policy is not None and policy.stuck_after_working_days and now < due:
            stuck_cutoff = start_of_local_day(
                calendar.add_working_days(local_date(now), -policy.stuck_after_working_days)
                + timedelta(days=1)
            )
    except UnknownYearError as exc:
        # A round count is unknown until its year is loaded: no round is better than a wrong one.
        report.waiting[f"{spec.id}/{stage.id}"] = exc.short
        rounds, stuck_cutoff = [], None
    if not (latest_steps or rounds or stuck_cutoff):
        # Nothing of this stage can be due yet: its open cases need not be read at all (most
        # stages most of the time; it keeps a tick over 100,000 open cases cheap).
        return
    # What this pass would plan: the same step, round and stuck day as a plan made against the
    # same audit head can only find keys that exist. Then the open cases are not read at all.
    signatures = {audience: f"v{version}:{step.id}" for audience, (step, _at) in latest_steps.items()}
    if rounds:
        signatures["escalation"] = f"v{version}:r{len(rounds)}"
    if stuck_cutoff is not None:
        signatures["stuck"] = f"v{version}:{stuck_cutoff.isoformat()}"
    if plans.planned(spec.id, stage.id, signatures):
        return
    plans.record(spec.id, stage.id, signatures)
    groups = pending_groups(session, spec.id, stage)
    pending = pending_by_org(session, spec.id, stage, groups)
    if not pending:
        return
    d.preload(pending)
    writer = _Writer(session, ctx, spec.id, stage.id, version)
    prefix = f"{spec.id}:{stage.id}:v{version}"

    if latest_steps:
        parks = parks_by_county(session, spec.id, stage, groups) if "actor" in latest_steps else {}
        for audience, (step, at) in latest_steps.items():
            for org_id in pending:
                target = org_id if audience == "actor" else d.supervisor(org_id)
                if target is None:
                    continue
                contacts, _forwarded_to = _recipients(d, target, spec.program)
                kind = "reminder" if audience == "actor" else "supervisor_reminder"
                for c in contacts:
                    writer.plan(
                        f"{kind[0]}r:{prefix}:{step.id}:{c.id}", kind, c, at, step.urgent, step.id, org_id
                    )
                if audience == "actor":
                    for park in sorted(parks.get(org_id, ())):
                        for c in d.contacts(park, spec.program):
                            writer.plan(
                                f"rr:{prefix}:{step.id}:{c.id}", kind, c, at, step.urgent, step.id, park
                            )
            # A newer step supersedes an older one not yet mailed: one reminder, the current one.
            kind = "reminder" if audience == "actor" else "supervisor_reminder"
            _cancel(
                session,
                report,
                "已被更新的提醒取代",
                Notification.campaign_id == spec.id,
                Notification.stage_id == stage.id,
                Notification.kind == kind,
                Notification.step != step.id,
            )

    if policy is not None:
        if rounds:
            k, at = len(rounds), rounds[-1]
            step_id = f"r{k}"
            # Nothing reached an idle recommender: not late (nor 待办 on the board, the same
            # rule), and its reminders said it may report 无推荐.
            idle = idle_recommenders(session, spec, stage)
            for org_id in pending:
                if org_id in idle:
                    continue
                up = d.supervisor(org_id)
                targets = [up] if up else []
                if k >= policy.ladder_after and up:
                    up2 = d.supervisor(up)
                    if up2:
                        targets.append(up2)
                for target in targets:
                    for c in d.contacts(target, spec.program):
                        writer.plan(
                            f"e:{prefix}:{step_id}:{c.id}", "escalation", c, at, False, step_id, org_id
                        )
                for c in d.contacts(org_id, spec.program):
                    writer.plan(f"o:{prefix}:{step_id}:{c.id}", "overdue", c, at, False, step_id, org_id)
            _cancel(
                session,
                report,
                "已被新一轮督办取代",
                Notification.campaign_id == spec.id,
                Notification.stage_id == stage.id,
                Notification.kind.in_(("escalation", "overdue")),  # type: ignore[attr-defined]
                Notification.step != step_id,
            )
    if stuck_cutoff is not None:
        _plan_stuck(session, d, spec, stage, stuck_cutoff, writer, prefix, now)
    writer.flush(report)


def _plan_stuck(
    session: Session,
    d: Directory,
    spec: CampaignSpec,
    stage: Stage,
    cutoff: datetime,
    writer: _Writer,
    prefix: str,
    now: datetime,
) -> None:
    """Before the deadline, a case waiting too long at one organisation is escalated once
    (waiting since before ``cutoff``: a range over ``ix_case_pending``'s ``state_since``).

    Keyed by the case and the instant it entered its state, so a case that moves on and comes
    back (returned, resubmitted) can be escalated again, but never twice for one stay.
    """
    stuck = session.exec(
        select(Case.id, Case.org_id, Case.county_code, Case.city_code, Case.state_since).where(
            Case.campaign_id == spec.id,
            Case.kind == stage.subject,
            Case.state.in_(stage.pending_states),
            Case.state_since < cutoff,
        )  # type: ignore[attr-defined]
    ).all()
    for case_id, org_id, county, city, since in stuck:
        acting = acting_org(stage, org_id, county, city)
        up = d.supervisor(acting)
        for c in d.contacts(up, spec.program):
            writer.plan(
                f"s:{prefix}:{case_id}:{int(since.timestamp())}:{c.id}",
                "stuck",
                c,
                now,
                False,
                f"stuck-{case_id}",
                acting,
            )


def _plan_case_deadlines(
    session: Session,
    ctx: Ctx,
    d: Directory,
    calendar: WorkCalendar,
    spec: CampaignSpec,
    stage: Stage,
    report: TickReport,
) -> None:
    """Reminders of each case's own deadline (``deadline: {working_days: 5, after: {action: …}}``),
    to whoever acts for the case: the latest step already due, keyed by the case deadline's
    version so that a case returned again is reminded afresh and its old reminders go."""
    now = ctx.now
    if not stage.reminders:
        return
    hours = WorkingHours.parse(spec.working_hours)
    rows: list[dict[str, Any]] = []
    for case, row in open_case_deadlines(session, spec.id, stage):
        if row.due_at is None or now >= row.due_at:
            continue
        prefix = f"cr:{spec.id}:{stage.id}:{case.id}:v{row.version}"
        _cancel(
            session,
            report,
            f"案件截止时间已重新计算（第{row.version}版）",
            Notification.campaign_id == spec.id,
            Notification.stage_id == stage.id,
            Notification.case_id == case.id,
            col(Notification.key).not_like(f"{prefix}:%"),
        )
        try:
            steps = [
                (s, reminder_time(s, row.due_at, calendar, hours))
                for s in stage.reminders
                if s.audience == "actor"
            ]
        except UnknownYearError as exc:
            report.waiting[f"{spec.id}/{stage.id}"] = exc.short
            continue
        latest = latest_due_step(steps, now)
        if latest is None:
            continue
        step, at = latest
        acting = acting_org(stage, case.org_id, case.county_code, case.city_code)
        contacts, _up = _recipients(d, acting, spec.program)
        for c in contacts:
            rows.append(
                {
                    "key": f"{prefix}:{step.id}:{c.id}",
                    "kind": "reminder",
                    "campaign_id": spec.id,
                    "stage_id": stage.id,
                    "deadline_version": None,
                    "step": step.id,
                    "case_id": case.id,
                    "audit_seq": None,
                    "contact_id": c.id,
                    "email_addr": c.email,
                    "urgent": step.urgent,
                    "due_at": at,
                    "created_at": now,
                    "status": PENDING,
                    "status_reason": "",
                    "email_id": None,
                    "payload": {"orgs": [acting], "case_deadline_version": row.version},
                }
            )
    if not rows:
        return
    keys = [r["key"] for r in rows]
    existing: set[str] = set()
    for start in range(0, len(keys), 900):
        existing.update(
            session.exec(
                select(Notification.key).where(col(Notification.key).in_(keys[start : start + 900]))
            ).all()
        )
    new = [r for r in rows if r["key"] not in existing]
    if new:
        session.execute(insert(Notification), new)
        report.written.update(r["kind"] for r in new)


# -- notices from the audit log --------------------------------------------------------------------


NOTICE_CURSOR = "notices"


def _write_notices(session: Session, ctx: Ctx, d: Directory, report: TickReport) -> None:
    cursor = session.get(ReconcileCursor, NOTICE_CURSOR)
    if cursor is None:
        cursor = ReconcileCursor(name=NOTICE_CURSOR, value=0)
    # Plain rows, not instances: a window closing is 50,000 events read once. Everything up to
    # the head is looked at once: the cursor then moves past events that make no notice too (a
    # million case creations by an import), or every pass would read them all.
    head = session.exec(select(AuditHead.seq).where(AuditHead.id == 1)).first() or 0
    table = AuditEvent.__table__  # type: ignore[attr-defined]
    events = session.execute(
        select(*(table.c[name] for name in _EVENT_COLUMNS))
        .where(
            table.c.seq > cursor.value,
            table.c.seq <= head,
            table.c.action.in_(("state_change", "deadline_change")),
        )
        .order_by(table.c.seq)
    ).all()
    # An event stamped after now (another machine's clock ahead, an action entered with --now)
    # is written when its time comes: the watermark stops short of it, and the events after it
    # that are written now are recognised by their keys when they are read again.
    later = next((e.seq for e in events if e.at > ctx.now), None)
    due = [e for e in events if e.at <= ctx.now]
    lapses: list[Any] = []
    others: list[Any] = []
    for e in due:
        (lapses if is_lapse(e) else others).append(e)
    rows = [r | _NEW for r in lapse_notices(session, d, lapses)]
    # The cases and campaigns the other events name, read in a few queries and held here while
    # notices_for_event finds them in the session's identity map (which holds them only weakly).
    case_ids = sorted({e.case_id for e in others if e.case_id is not None})
    held: list[Any] = list(session.exec(select(Campaign)).all()) if others else []
    for start in range(0, len(case_ids), 900):
        held += session.exec(select(Case).where(Case.id.in_(case_ids[start : start + 900]))).all()  # type: ignore[union-attr]
    per_event: list[dict[str, Any]] = []
    seen: set[str] = set()
    for event in others:
        for notice in notices_for_event(session, d, event):
            if notice["key"] in seen:
                continue
            seen.add(notice["key"])
            per_event.append(notice | _NEW | {"due_at": event.at})
    if per_event:
        seqs = sorted({r["audit_seq"] for r in per_event})
        existing: set[str] = set()
        for start in range(0, len(seqs), 900):
            existing.update(
                session.exec(
                    select(Notification.key).where(Notification.audit_seq.in_(seqs[start : start + 900]))  # type: ignore[union-attr]
                ).all()
            )
        rows += [r for r in per_event if r["key"] not in existing]
    del held
    if rows:
        for r in rows:
            r["created_at"] = ctx.now
        # In chunks: PostgreSQL takes at most 65,535 parameters per statement.
        for start in range(0, len(rows), 2000):
            session.execute(insert(Notification), rows[start : start + 2000])
        report.written.update(r["kind"] for r in rows)
    watermark = later - 1 if later is not None else head
    if watermark != cursor.value:
        cursor.value = watermark
        session.add(cursor)


# What notices read of an event (not its hashes).
_EVENT_COLUMNS = (
    "seq",
    "at",
    "actor",
    "action",
    "subject",
    "case_id",
    "campaign_id",
    "from_value",
    "to_value",
    "reason",
    "details",
)
_NEW = {"status": PENDING, "status_reason": "", "email_id": None}


# -- the tick ------------------------------------------------------------------------------------


def reconcile(session: Session, ctx: Ctx, calendar: WorkCalendar) -> TickReport:
    """Steps 1–4: closings, cancellations, reminders, escalations, notices. No email composed."""
    report = TickReport(now=ctx.now)
    report.lapsed = [c.ref for c in close_windows(session, ctx)]
    session.flush()
    plans = _Plans(session)  # after the lapses: they are changes the plans must see
    d = Directory(session)
    for campaign in session.exec(select(Campaign).order_by(Campaign.id)).all():
        spec = campaign.spec()
        deadlines = deadlines_of(session, campaign.id)
        for stage in spec.stages:
            if stage.relative is not None and stage.relative.per_case:
                _plan_case_deadlines(session, ctx, d, calendar, spec, stage, report)
                continue
            row = deadlines.get(stage.id)
            if row is None:
                continue
            due_text = format_deadline(row.due_at) if row.due_at else "另行通知"
            _cancel(
                session,
                report,
                f"截止时间已调整为 {due_text}（第{row.version}版）",
                Notification.campaign_id == campaign.id,
                Notification.stage_id == stage.id,
                Notification.deadline_version.is_not(None),  # type: ignore[union-attr]
                Notification.deadline_version != row.version,
            )
            if row.due_at is not None:
                _plan_stage(session, ctx, d, plans, calendar, spec, stage, row.due_at, row.version, report)
    _write_notices(session, ctx, d, report)
    if report.lapsed or report.cancelled:
        # The lapses are audited one by one by close_windows; this records what the run did.
        own = ctx.audit.append(
            session,
            EventDraft(
                at=ctx.now,
                actor=ctx.actor.label,
                action="reconcile",
                subject="reconcile",
                reason="定时对账",
                details=report.as_dict(),
            ),
        )
        plans.passed_own_event(own.seq)
    return report


def tick(session: Session, ctx: Ctx, calendar: WorkCalendar, identity: Any, renderer: Any) -> TickReport:
    """One reconcile pass and the emails it implies, in the caller's unit of work."""
    from notifications.compose import compose_all

    report = reconcile(session, ctx, calendar)
    session.flush()
    report.emails, report.channels = compose_all(session, ctx.now, calendar, identity, renderer)
    return report
