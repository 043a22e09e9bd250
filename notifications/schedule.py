"""When reminders and escalations fall due: pure arithmetic on a deadline and the work calendar.

Days are counted in local time (Asia/Shanghai) and converted back to UTC. A deadline such as
"2026-06-25 24:00" has its *last day* on 06-25: "3 working days before" counts back from that
day, not from 06-26. Non-urgent mail waits for working hours on a working day; urgent mail
(the last-day reminders) may go out at any hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from calendars.campaign import EscalationPolicy, ReminderStep
from calendars.timeutil import local_date, local_time_on, to_local
from calendars.workdays import UnknownYearError, WorkCalendar


def _hhmm(text: str) -> tuple[int, int]:
    hh, mm = text.split(":")
    return int(hh), int(mm)


@dataclass(frozen=True)
class WorkingHours:
    start: time
    end: time

    @classmethod
    def parse(cls, pair: tuple[str, str]) -> WorkingHours:
        (h1, m1), (h2, m2) = _hhmm(pair[0]), _hhmm(pair[1])
        return cls(time(h1, m1), time(h2, m2))

    def contains(self, instant: datetime, calendar: WorkCalendar) -> bool:
        local = to_local(instant)
        return calendar.is_working_day(local.date()) and self.start <= local.time() < self.end

    def next_open(self, instant: datetime, calendar: WorkCalendar) -> datetime:
        """``instant`` if within working hours, else the start of the next working period.

        In a year whose working days are not loaded, by the clock alone (weekends and holidays
        not known): a mail held to the next morning is better than a tick that stops."""
        try:
            if self.contains(instant, calendar):
                return instant
            local = to_local(instant)
            day = local.date()
            if calendar.is_working_day(day) and local.time() < self.start:
                return local_time_on(day, self.start.hour, self.start.minute)
            day = calendar.next_working_day(day)
            return local_time_on(day, self.start.hour, self.start.minute)
        except UnknownYearError:
            local = to_local(instant)
            if self.start <= local.time() < self.end:
                return instant
            day = local.date() if local.time() < self.start else local.date() + timedelta(days=1)
            return local_time_on(day, self.start.hour, self.start.minute)

    def last_open_before(self, instant: datetime, calendar: WorkCalendar) -> datetime:
        """The latest instant within working hours at or before ``instant``."""
        if self.contains(instant, calendar):
            return instant
        local = to_local(instant)
        day = local.date()
        if calendar.is_working_day(day) and local.time() >= self.end:
            return local_time_on(day, self.end.hour, self.end.minute) - timedelta(minutes=1)
        day = calendar.previous_working_day(day)
        return local_time_on(day, self.end.hour, self.end.minute) - timedelta(minutes=1)


def last_day(deadline: datetime) -> date:
    """The local date on which the deadline falls due: 06-25 for "06-25 24:00"."""
    return local_date(deadline - timedelta(microseconds=1))


def reminder_time(
    step: ReminderStep, deadline: datetime, calendar: WorkCalendar, hours: WorkingHours
) -> datetime:
    """The instant a reminder step falls due for ``deadline``."""
    if step.unit == "hours":
        at = deadline - timedelta(hours=step.before)
        return at if step.urgent else hours.last_open_before(at, calendar)
    day = last_day(deadline)
    if step.unit == "working_days":
        if step.before:
            day = calendar.add_working_days(day, -step.before)
    else:
        day = day - timedelta(days=step.before)
    if not step.urgent and not calendar.is_working_day(day):
        # A calendar-day reminder landing on a weekend or holiday goes out on the working day
        # before it: earlier, never later, than the coordinator was promised.
        day = calendar.working_day_on_or_before(day)
    hh, mm = _hhmm(step.at)
    return local_time_on(day, hh, mm)


def latest_due_step(
    steps: list[tuple[ReminderStep, datetime]], now: datetime
) -> tuple[ReminderStep, datetime] | None:
    """Of the steps already due at ``now``, the latest one: a late tick sends one, not a burst."""
    due = [(s, t) for s, t in steps if t <= now]
    return max(due, key=lambda st: st[1]) if due else None


def escalation_rounds(
    policy: EscalationPolicy, deadline: datetime, calendar: WorkCalendar, until: datetime
) -> list[datetime]:
    """The instants of escalation rounds 1..max_rounds that fall at or before ``until``.

    Round 1 is at ``policy.at`` (09:30) on the first working day whose ``at`` is not earlier than
    ``deadline + first_after_hours`` (plain hours): a deadline of Friday 24:00 is escalated on
    Monday at 09:30, one of Wednesday 08:00 on Wednesday at 09:30. Each later round is
    ``repeat_every_working_days`` working days after the one before, at the same time.

    Raises :class:`UnknownYearError` only when a round at or before ``until`` cannot be counted:
    rounds of a December deadline that would fall in a year not loaded yet are simply not due yet
    (a working day counted into year Y falls on or after Y's first day)."""
    hh, mm = _hhmm(policy.at)
    rounds: list[datetime] = []
    try:
        first = deadline + timedelta(hours=policy.first_after_hours)
        local = to_local(first)
        day = local.date()
        if not calendar.is_working_day(day) or local.time() > time(hh, mm):
            day = (
                calendar.next_working_day(day)
                if calendar.is_working_day(day)
                else calendar.working_day_on_or_after(day)
            )
        for _ in range(policy.max_rounds):
            at = local_time_on(day, hh, mm)
            if at > until:
                break
            rounds.append(at)
            day = calendar.add_working_days(day, policy.repeat_every_working_days)
    except UnknownYearError as exc:
        if local_date(until) >= date(exc.year, 1, 1):
            raise
    return rounds
