"""The instants a sleeper must wake at: deadlines, reminder steps, escalation rounds, working mornings.

Read from the database (the deadline in force, not the campaign file), so a moved or newly
announced date moves the wake-ups with it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from calendars.timeutil import format_local, local_date, to_local
from models.db import Database
from notifications.wakeups import Wakeup, wakeups
from tests.conftest import CLUSTER, JINGPIN
from tests.notifications.world import CALENDAR, at, move_deadline

START, END = at("2026-05-26T00:00"), at("2026-07-31T00:00")


def wake(db: Database, start: datetime = START, end: datetime = END) -> list[Wakeup]:
    with db.read() as session:
        return wakeups(session, CALENDAR, start, end)


def labelled(found: list[Wakeup], prefix: str) -> list[tuple[str, str]]:
    return [(format_local(w.at), w.what) for w in found if w.what.startswith(prefix)]


def test_it_wakes_at_the_application_deadline_and_every_reminder_step(seeded: Database) -> None:
    found = labelled(wake(seeded), f"{CLUSTER}/application")
    assert found == [
        ("2026-06-18（周四）09:00", f"{CLUSTER}/application 提醒 d-7"),
        ("2026-06-22（周一）09:00", f"{CLUSTER}/application 提醒 d-3wd"),
        ("2026-06-24（周三）09:00", f"{CLUSTER}/application 提醒 d-1wd"),
        ("2026-06-24（周三）10:00", f"{CLUSTER}/application 提醒 d-1wd-city"),
        ("2026-06-25（周四）08:30", f"{CLUSTER}/application 提醒 last-day"),
        ("2026-06-25（周四）18:00", f"{CLUSTER}/application 提醒 last-hours"),
        ("2026-06-26（周五）00:00", f"{CLUSTER}/application 截止"),
    ]


def test_it_wakes_at_every_escalation_round_up_to_the_last(seeded: Database) -> None:
    rounds = [t for t, what in labelled(wake(seeded), f"{JINGPIN}/local_review") if "督办" in what]
    assert rounds == [
        "2026-07-21（周二）09:30",
        "2026-07-23（周四）09:30",
        "2026-07-27（周一）09:30",
        "2026-07-29（周三）09:30",
    ]
    roster = [t for t, what in labelled(wake(seeded), f"{CLUSTER}/roster") if "督办" in what]
    assert (
        roster[0] == "2026-06-08（周一）09:30"
        and roster[-1] == "2026-06-23（周二）09:30"
        and len(roster) == 6
    )


def test_it_wakes_at_0830_on_working_days_only(seeded: Database) -> None:
    mornings = [w.at for w in wake(seeded) if w.what == "上班时间开始"]
    days = {local_date(t) for t in mornings}
    assert all(CALENDAR.is_working_day(d) for d in days)
    assert {to_local(t).strftime("%H:%M") for t in mornings} == {"08:30"}
    assert at("2026-06-18T08:30") in mornings and at("2026-06-22T08:30") in mornings
    assert not {at("2026-06-19T08:30"), at("2026-06-20T08:30"), at("2026-06-21T08:30")} & set(mornings)


def test_it_lists_each_instant_once_in_order_strictly_after_the_start(seeded: Database) -> None:
    start = at("2026-06-18T09:00")
    found = wake(seeded, start, at("2026-06-26T00:00"))
    assert found == sorted(set(found))
    assert min(w.at for w in found) > start and max(w.at for w in found) == at("2026-06-26T00:00")


def test_it_follows_a_moved_deadline(seeded: Database, make_ctx: Any) -> None:
    move_deadline(seeded, make_ctx, "2026-06-10T10:00", CLUSTER, "application", "2026-06-30 24:00")
    found = labelled(wake(seeded), f"{CLUSTER}/application")
    assert ("2026-06-23（周二）09:00", f"{CLUSTER}/application 提醒 d-7") in found
    assert ("2026-07-01（周三）00:00", f"{CLUSTER}/application 截止") in found
    assert not [t for t, _ in found if t.startswith(("2026-06-18", "2026-06-26"))]


def test_it_wakes_for_a_stage_only_once_its_date_is_announced(seeded: Database, make_ctx: Any) -> None:
    assert labelled(wake(seeded, end=at("2026-08-31T00:00")), f"{CLUSTER}/defence") == []
    move_deadline(seeded, make_ctx, "2026-07-17T10:00", CLUSTER, "defence", "2026-08-07 17:30", "答辩安排")
    assert labelled(wake(seeded, end=at("2026-08-31T00:00")), f"{CLUSTER}/defence") == [
        ("2026-08-07（周五）17:30", f"{CLUSTER}/defence 截止")
    ]
