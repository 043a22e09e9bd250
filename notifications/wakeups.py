"""The instants that matter: when something could become due, so a sleeper knows when to wake.

Every deadline (a window closes exactly at 24:00), every reminder step, every escalation round,
and the opening of working hours (when mail held back over night or a holiday may go). The
scheduler service plans its date jobs from this list and the simulation steps through it; both
still run the level-triggered reconcile at each instant, so a missed wake-up only delays.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlmodel import Session, select

from calendars.timeutil import local_date, local_time_on, start_of_local_day
from calendars.workdays import UnknownYearError, WorkCalendar
from models.campaign import Campaign, deadlines_in_force
from models.deadlines import open_case_deadlines
from notifications.schedule import WorkingHours, escalation_rounds, reminder_time


@dataclass(frozen=True, order=True)
class Wakeup:
    at: datetime
    what: str


def wakeups(session: Session, calendar: WorkCalendar, start: datetime, end: datetime) -> list[Wakeup]:
    found: set[Wakeup] = set()
    hours_pairs: set[tuple[str, str]] = set()
    for campaign in session.exec(select(Campaign)).all():
        spec = campaign.spec()
        hours_pairs.add(spec.working_hours)
        hours = WorkingHours.parse(spec.working_hours)
        deadlines = deadlines_in_force(session, campaign.id, spec)
        for stage in spec.stages:
            if stage.relative is not None and stage.relative.per_case:
                # Each case's own deadline (N working days after its return), with its reminders.
                for case, row in open_case_deadlines(session, campaign.id, stage):
                    if row.due_at is None:
                        continue
                    found.add(Wakeup(row.due_at, f"{campaign.id}/{stage.id} {case.ref} 截止"))
                    for step in stage.reminders:
                        try:
                            at = reminder_time(step, row.due_at, calendar, hours)
                        except UnknownYearError:
                            continue
                        found.add(Wakeup(at, f"{campaign.id}/{stage.id} {case.ref} 提醒 {step.id}"))
                continue
            due = deadlines[stage.id].due_at
            if due is None:
                continue
            found.add(Wakeup(due, f"{campaign.id}/{stage.id} 截止"))
            for step in stage.reminders:
                try:
                    at = reminder_time(step, due, calendar, hours)
                except UnknownYearError:
                    continue
                found.add(Wakeup(at, f"{campaign.id}/{stage.id} 提醒 {step.id}"))
            if stage.escalation is not None:
                horizon = min(end, stage.closes) if stage.closes else end
                try:
                    rounds = escalation_rounds(stage.escalation, due, calendar, until=horizon)
                except UnknownYearError as exc:
                    # The rounds before the year not loaded still wake the service; the rest are
                    # planned when it is loaded.
                    before = start_of_local_day(date(exc.year, 1, 1)) - timedelta(microseconds=1)
                    try:
                        rounds = escalation_rounds(stage.escalation, due, calendar, until=before)
                    except UnknownYearError:
                        rounds = []
                for i, at in enumerate(rounds, 1):
                    found.add(Wakeup(at, f"{campaign.id}/{stage.id} 督办第{i}轮"))
    for pair in hours_pairs or {("08:30", "17:30")}:
        hh, mm = (int(x) for x in pair[0].split(":"))
        day = local_date(start)
        while local_time_on(day, hh, mm) <= end:
            try:
                working = calendar.is_working_day(day)
            except UnknownYearError:
                break
            if working:
                found.add(Wakeup(local_time_on(day, hh, mm), "上班时间开始"))
            day += timedelta(days=1)
    return sorted(w for w in found if start < w.at <= end)
