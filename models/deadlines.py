"""Relative deadlines, planned: "N working days after / before" another stage or a case's event.

A stage whose file says ``deadline: {working_days: 5, after: {stage: publish}}`` has no date of
its own; its StageDeadline row is planned here from its anchor and re-planned whenever the
anchor moves (the province sets the anchor's date, the anchor's completion event happens again,
a year's working days are loaded). Per-case deadlines (``after: {action: return}``) live in
``case_deadline``, one row per case and stage, re-planned when the case meets the action again.
Every re-plan is an audit event naming the old and the new deadline (``deadline_change`` for a
stage, as a move by the province is, so the replay checks both; ``case_deadline`` for a case).

Everything downstream (guards, lapses, reminders, wake-ups, boards, calendar feeds) reads the
planned rows through :func:`models.campaign.stage_deadline`, so none of it knows a deadline was
relative.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from calendars.campaign import CampaignSpec, Stage
from calendars.timeutil import format_deadline, local_date
from calendars.workdays import UnknownYearError, WorkCalendar, load_default_calendar
from models.audit import EventDraft
from models.campaign import CaseDeadline, StageDeadline, deadline_in_force, get_campaign
from models.case import Case
from models.context import Ctx


def calendar_of(session: Session, ctx: Ctx) -> WorkCalendar:
    """The calendar the edge injected, else the packaged one with the loaded arrangements."""
    if ctx.calendar is not None:
        return ctx.calendar
    from models.workdays import calendar_with_loaded

    return calendar_with_loaded(session, load_default_calendar())


def _last_day(due: datetime) -> Any:
    # "06-25 24:00" falls due on 06-25: counting starts from that day, not from 06-26.
    return local_date(due - timedelta(microseconds=1))


@dataclass(frozen=True)
class Moved:
    """One deadline a re-plan changed, for the audit and for the person who caused it."""

    campaign_id: str
    stage_id: str
    stage_name: str
    old: datetime | None
    new: datetime | None
    case_ref: str | None = None

    @property
    def what(self) -> str:
        return f"{self.case_ref} 的「{self.stage_name}」" if self.case_ref else f"「{self.stage_name}」"

    def describe(self) -> str:
        old = format_deadline(self.old) if self.old else "另行通知"
        new = format_deadline(self.new) if self.new else "另行通知"
        return f"{self.campaign_id} {self.what}：{old} → {new}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign_id,
            "stage": self.stage_id,
            "case": self.case_ref,
            "from": self.old.isoformat() if self.old else None,
            "to": self.new.isoformat() if self.new else None,
        }


def planned_stage_due(
    session: Session, campaign_id: str, spec: CampaignSpec, stage: Stage, calendar: WorkCalendar
) -> tuple[datetime | None, str]:
    """What ``stage``'s relative deadline comes to now, and from what (None: its anchor has no date yet)."""
    rule = stage.relative
    assert rule is not None and rule.anchor.stage is not None
    anchor = spec.stage(rule.anchor.stage)
    row = session.get(StageDeadline, (campaign_id, anchor.id))
    if rule.after is not None and anchor.completed_by:
        done = row.completed_at if row is not None else None
        if done is None:
            return None, f"「{anchor.name}」尚未完成"
        return rule.due(local_date(done), calendar), f"「{anchor.name}」完成于 {format_deadline(done)}"
    anchor_due = deadline_in_force(anchor, row).due_at
    if anchor_due is None:
        return None, f"「{anchor.name}」截止时间另行通知"
    return rule.due(_last_day(anchor_due), calendar), f"「{anchor.name}」截止 {format_deadline(anchor_due)}"


def replan_stages(
    session: Session,
    ctx: Ctx,
    campaign_id: str,
    *,
    after_stage: str | None = None,
    reason: str,
    calendar: WorkCalendar | None = None,
) -> list[Moved]:
    """Re-plan the relative stage deadlines of a campaign (only those counting from
    ``after_stage``, directly or not, when given); each change is a ``deadline_change`` event."""
    spec = get_campaign(session, campaign_id).spec()
    stages = (
        spec.dependents(after_stage)
        if after_stage is not None
        else [s for s in _in_anchor_order(spec) if s.relative is not None and not s.relative.per_case]
    )
    moved: list[Moved] = []
    if not stages:
        return moved
    calendar = calendar or calendar_of(session, ctx)
    for stage in stages:
        try:
            due, basis = planned_stage_due(session, campaign_id, spec, stage, calendar)
        except UnknownYearError as exc:
            # A count into a year whose arrangement is not loaded has no answer: the deadline
            # becomes 另行通知, saying why, rather than keep a date counted from the old anchor.
            due, basis = None, str(exc)
        row = session.get(StageDeadline, (campaign_id, stage.id))
        if row is None:
            row = StageDeadline(
                campaign_id=campaign_id, stage_id=stage.id, due_at=None, version=1, changed_at=ctx.now
            )
        old = row.due_at
        if old == due:
            continue
        why = f"{reason}：{stage.relative.describe() if stage.relative else ''}（{basis}）"
        relative = stage.relative.model_dump(exclude_none=True) if stage.relative else None
        record_stage_deadline(
            session, ctx, campaign_id, stage, row, due, why[:500], details={"relative": relative}
        )
        moved.append(Moved(campaign_id, stage.id, stage.name, old, due))
    session.flush()
    return moved


def _in_anchor_order(spec: CampaignSpec) -> list[Stage]:
    """Stages with an anchor after the anchor itself, so one pass plans a chain."""
    done: list[Stage] = []
    pending = list(spec.stages)
    while pending:
        for stage in list(pending):
            anchor = stage.relative.anchor.stage if stage.relative else None
            if anchor is None or anchor in {s.id for s in done}:
                done.append(stage)
                pending.remove(stage)
    return done


def stage_completed(session: Session, ctx: Ctx, spec: CampaignSpec, case: Case, action: str) -> list[Moved]:
    """``action`` on ``case`` completes every stage declaring it (``completed_by``): record when,
    and re-plan the stages that count from that completion."""
    moved: list[Moved] = []
    for stage in spec.stages:
        if stage.completed_by != action or stage.subject != case.kind:
            continue
        row = session.get(StageDeadline, (spec.id, stage.id))
        if row is None:
            row = StageDeadline(
                campaign_id=spec.id, stage_id=stage.id, due_at=stage.deadline, version=1, changed_at=ctx.now
            )
        row.completed_at = ctx.now
        session.add(row)
        session.flush()
        moved += replan_stages(
            session, ctx, spec.id, after_stage=stage.id, reason=f"「{stage.name}」完成（{case.ref}）"
        )
    return moved


# -- per case ---------------------------------------------------------------------------------


def case_deadline(session: Session, case: Case, stage: Stage) -> datetime | None:
    """A per-case stage's deadline for ``case`` (None: the case has not met the action yet)."""
    row = session.get(CaseDeadline, (case.id, stage.id))
    return row.due_at if row is not None else None


def case_met(session: Session, ctx: Ctx, spec: CampaignSpec, case: Case, action: str) -> list[Moved]:
    """``action`` on ``case`` (re)starts every per-case deadline counting from it; audited."""
    moved: list[Moved] = []
    calendar: WorkCalendar | None = None
    for stage in spec.stages:
        rule = stage.relative
        if rule is None or rule.anchor.action != action or stage.subject != case.kind:
            continue
        calendar = calendar or calendar_of(session, ctx)
        try:
            due: datetime | None = rule.due(local_date(ctx.now), calendar)
        except UnknownYearError:
            due = None  # counted once the year's arrangement is loaded (replan_cases)
        moved += _write_case_deadline(
            session, ctx, spec, stage, case, due, ctx.now, reason=f"「{rule.anchor.action_label}」后重新计算"
        )
    return moved


def _write_case_deadline(
    session: Session,
    ctx: Ctx,
    spec: CampaignSpec,
    stage: Stage,
    case: Case,
    due: datetime | None,
    anchor_at: datetime,
    *,
    reason: str,
) -> list[Moved]:
    assert case.id is not None
    row = session.get(CaseDeadline, (case.id, stage.id))
    old = row.due_at if row is not None else None
    if row is None:
        row = CaseDeadline(
            case_id=case.id,
            stage_id=stage.id,
            campaign_id=spec.id,
            due_at=due,
            anchor_at=anchor_at,
            version=1,
            changed_at=ctx.now,
        )
    elif old == due and row.anchor_at == anchor_at:
        return []
    else:
        row.due_at, row.anchor_at, row.version, row.changed_at = due, anchor_at, row.version + 1, ctx.now
    session.add(row)
    to_text = format_deadline(due) if due else "待节假日安排公布后计算"
    rule = stage.relative.describe() if stage.relative else ""
    ctx.audit.append(
        session,
        EventDraft(
            at=ctx.now,
            actor=ctx.actor.label,
            action="case_deadline",
            subject=f"case:{case.ref}",
            case_id=case.id,
            campaign_id=spec.id,
            from_value=old.isoformat() if old else None,
            to_value=due.isoformat() if due else None,
            # The date itself, not only the rule: the timeline is read by people.
            reason=f"{reason}：「{stage.name}」截止时间为 {to_text}（{rule}）",
            details={
                "stage": stage.id,
                "stage_name": stage.name,
                "version": row.version,
                "from_text": format_deadline(old) if old else "无",
                "to_text": to_text,
            }
            | ctx.actor.audit_details(),
        ),
    )
    return [Moved(spec.id, stage.id, stage.name, old, due, case_ref=case.ref)] if old != due else []


def replan_cases(session: Session, ctx: Ctx, calendar: WorkCalendar, *, reason: str) -> list[Moved]:
    """Re-count every open per-case deadline from its anchor (after the working days changed)."""
    moved: list[Moved] = []
    specs: dict[str, CampaignSpec] = {}
    rows = session.exec(
        select(CaseDeadline).order_by(col(CaseDeadline.campaign_id), col(CaseDeadline.case_id))
    ).all()
    for row in rows:
        spec = specs.get(row.campaign_id) or get_campaign(session, row.campaign_id).spec()
        specs[row.campaign_id] = spec
        stage = spec.stage(row.stage_id)
        case = session.get(Case, row.case_id)
        if case is None or stage.relative is None or case.state not in stage.pending_states:
            continue  # done at this stage: its deadline is history
        try:
            due = stage.relative.due(local_date(row.anchor_at), calendar)
        except UnknownYearError:
            continue
        moved += _write_case_deadline(session, ctx, spec, stage, case, due, row.anchor_at, reason=reason)
    return moved


def open_case_deadlines(session: Session, campaign_id: str, stage: Stage) -> list[tuple[Case, CaseDeadline]]:
    """Cases still owing a per-case stage, with their deadline."""
    rows = session.exec(
        select(Case, CaseDeadline)
        .join(CaseDeadline, col(CaseDeadline.case_id) == col(Case.id))
        .where(
            CaseDeadline.campaign_id == campaign_id,
            CaseDeadline.stage_id == stage.id,
            col(Case.state).in_(stage.pending_states),
        )
        .order_by(col(Case.id))
    ).all()
    return [(c, d) for c, d in rows]


def record_stage_deadline(
    session: Session,
    ctx: Ctx,
    campaign_id: str,
    stage: Stage,
    row: StageDeadline,
    due: datetime | None,
    reason: str,
    *,
    details: dict[str, Any] | None = None,
) -> None:
    """Give a stage's deadline row a new version due at ``due`` and record it: the one shape of a
    ``deadline_change`` event, whoever moves it (a person, a relative re-plan, a reloaded file).
    Reminders are keyed by the version, so a new version re-plans them even on the same date."""
    old = row.due_at
    row.due_at, row.version, row.changed_at, row.reason = due, row.version + 1, ctx.now, reason
    session.add(row)
    ctx.audit.append(
        session,
        EventDraft(
            at=ctx.now,
            actor=ctx.actor.label,
            action="deadline_change",
            subject=f"stage:{campaign_id}/{stage.id}",
            campaign_id=campaign_id,
            from_value=old.isoformat() if old else None,
            to_value=due.isoformat() if due else None,
            reason=reason,
            details={
                "stage": stage.name,
                "version": row.version,
                "from_text": format_deadline(old) if old else "另行通知",
                "to_text": format_deadline(due) if due else "另行通知",
            }
            | (details or {})
            | ctx.actor.audit_details(),
        ),
    )
