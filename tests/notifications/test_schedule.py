"""When reminders and escalation rounds fall due: pure arithmetic, the calendar and the clock passed in.

2026 around the application deadline (06-25 24:00, a Thursday): 06-19 is 端午 (a Friday off),
06-20/21 the weekend, so "3 working days before" the 25th is Monday 06-22, not 06-20.
"""

from __future__ import annotations

import pytest

from calendars.campaign import EscalationPolicy, ReminderStep
from calendars.timeutil import format_local, parse_deadline
from calendars.workdays import UnknownYearError
from notifications.schedule import WorkingHours, escalation_rounds, last_day, latest_due_step, reminder_time
from tests.notifications.world import CALENDAR, at

HOURS = WorkingHours.parse(("08:30", "17:30"))
APPLICATION = parse_deadline("2026-06-25 24:00")  # 2026-06-26 00:00 local
ROSTER = parse_deadline("2026-06-05")  # by the end of Friday 06-05


def due(step: ReminderStep, deadline=APPLICATION) -> str:  # type: ignore[no-untyped-def]
    return format_local(reminder_time(step, deadline, CALENDAR, HOURS))


def test_it_takes_the_day_before_midnight_as_the_last_day() -> None:
    assert last_day(APPLICATION).isoformat() == "2026-06-25"
    assert last_day(parse_deadline("2026-07-03 17:30")).isoformat() == "2026-07-03"


def test_it_counts_calendar_days_back_from_the_last_day() -> None:
    assert due(ReminderStep(id="d-7", before=7)) == "2026-06-18（周四）09:00"


def test_it_counts_working_days_back_across_duanwu_and_the_weekend() -> None:
    assert due(ReminderStep(id="d-1wd", before=1, unit="working_days")) == "2026-06-24（周三）09:00"
    assert due(ReminderStep(id="d-3wd", before=3, unit="working_days")) == "2026-06-22（周一）09:00"
    assert due(ReminderStep(id="d-4wd", before=4, unit="working_days")) == "2026-06-18（周四）09:00"
    assert (
        due(ReminderStep(id="d-5wd", before=5, unit="working_days", at="10:00")) == "2026-06-17（周三）10:00"
    )


def test_it_counts_hours_back_from_the_deadline_instant_for_an_urgent_step() -> None:
    step = ReminderStep(id="last-hours", before=6, unit="hours", urgent=True)
    assert due(step) == "2026-06-25（周四）18:00"


def test_it_pulls_a_non_urgent_hour_step_back_into_working_hours() -> None:
    assert due(ReminderStep(id="h-6", before=6, unit="hours")) == "2026-06-25（周四）17:29"
    # 24 hours before Saturday noon is noon on 端午: the last working minute before it is Thursday's.
    saturday_noon = parse_deadline("2026-06-20 12:00")
    assert due(ReminderStep(id="h-24", before=24, unit="hours"), saturday_noon) == "2026-06-18（周四）17:29"


def test_it_sends_an_urgent_last_day_reminder_at_0830_even_on_a_holiday() -> None:
    on_duanwu = parse_deadline("2026-06-19 24:00")
    step = ReminderStep(id="last-day", before=0, at="08:30", urgent=True)
    assert due(step, on_duanwu) == "2026-06-19（周五）08:30"
    assert CALENDAR.holiday_name(last_day(on_duanwu)) == "端午节"


def test_it_moves_a_non_urgent_reminder_off_a_holiday_to_the_working_day_before() -> None:
    on_duanwu = parse_deadline("2026-06-19 24:00")
    assert due(ReminderStep(id="d-0", before=0), on_duanwu) == "2026-06-18（周四）09:00"
    # One calendar day before Sunday 06-21 is Saturday: back over the weekend and 端午 to Thursday.
    assert (
        due(ReminderStep(id="d-1", before=1), parse_deadline("2026-06-21 24:00")) == "2026-06-18（周四）09:00"
    )


def test_it_lands_a_working_day_step_on_a_working_day_when_the_deadline_is_on_a_weekend() -> None:
    saturday = parse_deadline("2026-06-20 24:00")
    assert due(ReminderStep(id="d-1wd", before=1, unit="working_days"), saturday) == "2026-06-18（周四）09:00"


def test_it_picks_the_latest_step_already_due_so_a_late_tick_sends_one_reminder() -> None:
    steps = [
        ReminderStep(id="d-7", before=7),
        ReminderStep(id="d-3wd", before=3, unit="working_days"),
        ReminderStep(id="d-1wd", before=1, unit="working_days"),
    ]
    timed = [(s, reminder_time(s, APPLICATION, CALENDAR, HOURS)) for s in steps]
    assert latest_due_step(timed, at("2026-06-18T08:59")) is None
    assert latest_due_step(timed, at("2026-06-18T09:00"))[0].id == "d-7"  # type: ignore[index]
    # A tick that wakes only on 06-23 sends the d-3wd reminder, not d-7 and d-3wd in a burst.
    assert latest_due_step(timed, at("2026-06-23T15:00"))[0].id == "d-3wd"  # type: ignore[index]


def rounds(policy: EscalationPolicy, deadline=ROSTER, until: str = "2026-12-31T00:00") -> list[str]:  # type: ignore[no-untyped-def]
    return [format_local(t) for t in escalation_rounds(policy, deadline, CALENDAR, until=at(until))]


def test_it_escalates_every_n_working_days_from_the_first_working_morning_after_the_deadline() -> None:
    policy = EscalationPolicy(first_after_hours=1, repeat_every_working_days=2, max_rounds=6, ladder_after=3)
    assert rounds(policy) == [
        "2026-06-08（周一）09:30",  # the deadline passes on a Saturday at 00:00
        "2026-06-10（周三）09:30",
        "2026-06-12（周五）09:30",
        "2026-06-16（周二）09:30",
        "2026-06-18（周四）09:30",
        "2026-06-23（周二）09:30",  # over 端午 and the weekend
    ]


def test_it_lists_only_the_rounds_reached_by_now() -> None:
    policy = EscalationPolicy(first_after_hours=1, repeat_every_working_days=2, max_rounds=6)
    assert rounds(policy, until="2026-06-10T09:29") == ["2026-06-08（周一）09:30"]
    assert rounds(policy, until="2026-06-10T09:30")[-1] == "2026-06-10（周三）09:30"
    assert rounds(policy, until="2026-06-08T09:00") == []


def test_it_stops_after_max_rounds() -> None:
    policy = EscalationPolicy(repeat_every_working_days=1, max_rounds=3)
    assert rounds(policy, parse_deadline("2026-07-03")) == [
        "2026-07-06（周一）09:30",
        "2026-07-07（周二）09:30",
        "2026-07-08（周三）09:30",
    ]


def test_it_escalates_the_same_morning_when_the_deadline_passed_at_midnight_on_a_working_day() -> None:
    policy = EscalationPolicy(first_after_hours=1)
    assert rounds(policy, APPLICATION)[0] == "2026-06-26（周五）09:30"


def test_it_waits_for_the_next_working_morning_after_an_evening_deadline_before_a_holiday() -> None:
    policy = EscalationPolicy(first_after_hours=1)
    assert rounds(policy, parse_deadline("2026-06-18 17:30"))[0] == "2026-06-22（周一）09:30"


def test_it_opens_working_hours_on_the_next_working_morning() -> None:
    assert format_local(HOURS.next_open(at("2026-06-18T22:00"), CALENDAR)) == "2026-06-22（周一）08:30"
    assert format_local(HOURS.next_open(at("2026-06-22T07:00"), CALENDAR)) == "2026-06-22（周一）08:30"
    assert HOURS.next_open(at("2026-06-22T10:00"), CALENDAR) == at("2026-06-22T10:00")
    assert not HOURS.contains(at("2026-06-19T10:00"), CALENDAR)  # 端午
    assert not HOURS.contains(at("2026-06-22T17:30"), CALENDAR)


def test_first_after_hours_are_plain_hours_then_the_next_escalation_time_on_a_working_day() -> None:
    # FORMAT.md §2 says exactly this: deadline + N hours, then the first `at` (09:30) not before it.
    wednesday_8 = parse_deadline("2026-07-01 08:00")
    assert rounds(EscalationPolicy(first_after_hours=1), wednesday_8)[0] == "2026-07-01（周三）09:30"
    assert rounds(EscalationPolicy(first_after_hours=4), wednesday_8)[0] == "2026-07-02（周四）09:30"
    friday_night = parse_deadline("2026-07-03 24:00")
    assert rounds(EscalationPolicy(first_after_hours=1), friday_night)[0] == "2026-07-06（周一）09:30"
    assert (
        rounds(EscalationPolicy(first_after_hours=1, at="14:00"), friday_night)[0]
        == "2026-07-06（周一）14:00"
    )


def test_rounds_of_a_december_deadline_stop_short_of_a_year_not_loaded() -> None:
    # 2027's arrangement is not known: the 12-30 round is due, the next ones wait for it (finding F1:
    # a tick on 12-31 used to fail for the whole database).
    policy = EscalationPolicy(first_after_hours=1, repeat_every_working_days=2, max_rounds=6)
    assert rounds(policy, parse_deadline("2026-12-29"), until="2026-12-31T23:00") == [
        "2026-12-30（周三）09:30"
    ]
    with pytest.raises(UnknownYearError, match="2027年的节假日安排"):
        rounds(policy, parse_deadline("2026-12-29"), until="2027-01-06T10:00")


def test_in_a_year_not_loaded_working_hours_follow_the_clock_alone() -> None:
    # A notice composed in 2027 before its arrangement is loaded waits for the morning, not for ever.
    assert format_local(HOURS.next_open(at("2027-01-04T22:00"), CALENDAR)) == "2027-01-05（周二）08:30"
    assert format_local(HOURS.next_open(at("2027-01-04T10:00"), CALENDAR)) == "2027-01-04（周一）10:00"
