"""China's working-day arrangements as loaded legal data: one row per version of a year.

The State Council publishes each year's 节假日安排 in November; ``shenbao calendar load`` stores
it here (source, digest and the text as received), so every machine of a deployment reckons
with the same days, and the audit says who loaded which arrangement when. The calendar the
engine counts with is the packaged one (the ``holidays`` library and calendars/data/workdays.yaml)
with the newest loaded version of each year on top.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Column, Text, UniqueConstraint, inspect
from sqlmodel import Field, Session, SQLModel, col, select

from calendars.timeutil import format_local
from calendars.workdays import Arrangement, WorkCalendar
from models.audit import EventDraft
from models.campaign import Campaign
from models.context import Ctx
from models.deadlines import Moved, replan_cases, replan_stages
from models.types import UTCDateTime


class WorkdayArrangement(SQLModel, table=True):
    __tablename__ = "workday_arrangement"
    __table_args__ = (UniqueConstraint("year", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    year: int = Field(index=True)
    version: int = 1
    source: str = Field(max_length=500)
    digest: str = Field(max_length=64)
    # What was loaded, as given (the YAML or the notice's text), and what it was read as.
    text: str = Field(sa_column=Column(Text, nullable=False))
    days: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    loaded_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    loaded_by: str = Field(max_length=200)


def loaded_arrangements(session: Session) -> list[Arrangement]:
    """The newest loaded version of each year, oldest year first."""
    rows = session.exec(
        select(WorkdayArrangement).order_by(col(WorkdayArrangement.year), col(WorkdayArrangement.version))
    ).all()
    newest: dict[int, WorkdayArrangement] = {}
    for row in rows:
        newest[row.year] = row
    return [
        Arrangement.from_days(row.year, row.days, source=row.source, digest=row.digest)
        for row in newest.values()
    ]


def calendar_with_loaded(session: Session, base: WorkCalendar) -> WorkCalendar:
    """``base`` with every loaded arrangement on top (``base`` itself when none is loaded).

    A database whose schema predates the table has none: the packaged calendar is all there is.
    """
    if not inspect(session.connection()).has_table(WorkdayArrangement.__tablename__):
        return base
    arrangements = loaded_arrangements(session)
    return base.with_arrangements(arrangements) if arrangements else base


@dataclass
class CalendarLoadReport:
    """What loading a year's arrangement did, or (dry run) would do."""

    year: int
    version: int
    source: str
    digest: str
    dry_run: bool
    unchanged: bool = False
    holidays: int = 0
    working_days: int = 0
    moved: list[Moved] = field(default_factory=list)
    # Reminder and escalation instants over the coming months that the new days moved.
    wakeups_before: int = 0
    wakeups_moved: list[tuple[str, str | None, str | None]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "year": self.year,
            "version": self.version,
            "source": self.source,
            "digest": self.digest,
            "dry_run": self.dry_run,
            "unchanged": self.unchanged,
            "holidays": self.holidays,
            "working_days": self.working_days,
            "moved": [m.as_dict() for m in self.moved],
            "wakeups_moved": [{"what": w, "from": a, "to": b} for w, a, b in self.wakeups_moved],
        }


def load_arrangement(
    session: Session,
    ctx: Ctx,
    arrangement: Arrangement,
    text: str,
    base: WorkCalendar,
    *,
    dry_run: bool = False,
    plan: Callable[[Session, WorkCalendar, datetime, datetime], list[Any]] | None = None,
    horizon: timedelta = timedelta(days=400),
) -> CalendarLoadReport:
    """Store a year's arrangement as a new version and re-plan everything counted in working days.

    Relative stage deadlines and per-case deadlines are re-planned (each an audit event, old and
    new); reminders, escalations and calendar feeds follow by themselves, since they are computed
    from the deadlines and the calendar at every tick. The load itself is one audit event naming
    the source and digest. A dry run shows the same and writes nothing. ``plan`` is what the
    reminders and lapses are planned by (notifications.wakeups.wakeups, injected: models do not
    import notifications): run before and after, it shows which of their instants moved.
    """

    def wakeups(session: Session, calendar: WorkCalendar, start: datetime, end: datetime) -> list[Any]:
        return plan(session, calendar, start, end) if plan is not None else []

    previous = session.exec(
        select(WorkdayArrangement)
        .where(WorkdayArrangement.year == arrangement.year)
        .order_by(col(WorkdayArrangement.version).desc())
    ).first()
    report = CalendarLoadReport(
        arrangement.year,
        (previous.version + 1) if previous else 1,
        arrangement.source,
        arrangement.digest,
        dry_run,
        holidays=len(arrangement.holidays),
        working_days=len(arrangement.working_days),
    )
    if previous is not None and previous.digest == arrangement.digest:
        report.unchanged, report.version = True, previous.version
        return report
    before = calendar_with_loaded(session, base)
    after = before.with_arrangements([arrangement])
    ctx.audit.lock(session)
    nested = session.begin_nested()
    try:
        old_wakes = _wake_map(wakeups(session, before, ctx.now, ctx.now + horizon))
        session.add(
            WorkdayArrangement(
                year=arrangement.year,
                version=report.version,
                source=arrangement.source,
                digest=arrangement.digest,
                text=text,
                days=arrangement.days(),
                loaded_at=ctx.now,
                loaded_by=ctx.actor.label,
            )
        )
        ctx.audit.append(
            session,
            EventDraft(
                at=ctx.now,
                actor=ctx.actor.label,
                action="workdays_load",
                subject=f"workdays:{arrangement.year}",
                from_value=previous.digest if previous else None,
                to_value=arrangement.digest,
                reason=f"加载{arrangement.year}年节假日安排：{arrangement.source}",
                details={"year": arrangement.year, "version": report.version, "source": arrangement.source}
                | arrangement.days()
                | ctx.actor.audit_details(),
            ),
        )
        session.flush()
        reason = f"{arrangement.year}年节假日安排加载（第{report.version}版）"
        system = Ctx(now=ctx.now, actor=ctx.actor, audit=ctx.audit, calendar=after)
        for campaign in session.exec(select(Campaign).order_by(col(Campaign.id))).all():
            report.moved += replan_stages(session, system, campaign.id, reason=reason, calendar=after)
        report.moved += replan_cases(session, system, after, reason=reason)
        new_wakes = _wake_map(wakeups(session, after, ctx.now, ctx.now + horizon))
        report.wakeups_before = len(old_wakes)
        for what in sorted(old_wakes.keys() | new_wakes.keys()):
            a, b = old_wakes.get(what), new_wakes.get(what)
            if a != b:
                report.wakeups_moved.append(
                    (what, format_local(a) if a else None, format_local(b) if b else None)
                )
    except BaseException:
        nested.rollback()
        raise
    if dry_run:
        nested.rollback()
    else:
        nested.commit()
    return report


def _wake_map(found: list[Any]) -> dict[str, datetime]:
    out: dict[str, datetime] = {}
    for w in found:
        out.setdefault(w.what, w.at)
    return out
