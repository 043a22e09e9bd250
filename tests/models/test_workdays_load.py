"""Loading a year's working days as versioned legal data: audited, and everything counted in
working days is re-planned and shown (tests/fixtures/2027-holiday-notice.txt is made up)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import func, select

from calendars.arrangement import read_arrangement
from calendars.timeutil import format_deadline, parse_deadline, parse_instant
from calendars.workdays import WorkCalendar
from models.actions import perform, set_deadline
from models.audit import AuditEvent
from models.campaign import CaseDeadline, get_campaign, stage_deadline
from models.case import Case
from models.context import PLATFORM_SYNC, Actor
from models.db import Database
from models.registry import load_campaign, new_case
from models.workdays import WorkdayArrangement, calendar_with_loaded, load_arrangement
from notifications.wakeups import wakeups

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CAMPAIGN = "2026-relative-test"
OPERATOR = Actor(name="tester", admin_reason="自动化测试")
DECEMBER = parse_instant("2026-12-28T10:00")  # a Monday; 12-29, 12-30, 12-31 are left of 2026


@pytest.fixture
def december(seeded: Database, make_ctx: Any) -> tuple[Database, str]:
    """The test campaign with its city deadline moved to 12-31, and an application returned on 12-28:
    both count working days into 2027, whose arrangement is not known yet."""
    text = (FIXTURES / "relative-deadlines.yaml").read_text(encoding="utf-8")
    with seeded.write() as session:
        load_campaign(session, make_ctx("2026-06-01T09:00"), text, origin="relative-deadlines.yaml")
        spec = get_campaign(session, CAMPAIGN).spec()
        case = new_case(
            session,
            make_ctx("2026-06-01T09:00"),
            spec,
            kind="cluster_application",
            ref="CL25-90001",
            org_id="330106",
            city_code="330100",
            county_code="330106",
            title="西湖区",
            attrs={},
        )
        ref = case.ref
        set_deadline(
            session,
            make_ctx("2026-12-01T10:00"),
            CAMPAIGN,
            "city_recommendation",
            parse_deadline("2026-12-31"),
            "年底",
        )
    perform(seeded, make_ctx("2026-06-10T10:00", PLATFORM_SYNC), ref, "submit")
    perform(seeded, make_ctx(DECEMBER, OPERATOR), ref, "return", reason="材料不全")
    return seeded, ref


def _due(db: Database, stage_id: str) -> str:
    with db.read() as session:
        spec = get_campaign(session, CAMPAIGN).spec()
        value = stage_deadline(session, CAMPAIGN, spec.stage(stage_id)).due_at
    return format_deadline(value) if value else "另行通知"


def _load(db: Database, make_ctx: Any, *, dry_run: bool) -> Any:
    arrangement, text = read_arrangement(FIXTURES / "2027-holiday-notice.txt")
    with db.write() as session:
        return load_arrangement(
            session, make_ctx(DECEMBER), arrangement, text, WorkCalendar(), dry_run=dry_run, plan=wakeups
        )


def test_a_count_into_an_unknown_year_waits_loudly(december: tuple[Database, str]) -> None:
    db, ref = december
    assert _due(db, "county_check") == "2026-12-28（周一）24:00"  # 3 working days before 12-31: all in 2026
    assert _due(db, "city_letters") == "另行通知"  # 2 working days after 12-31: in 2027
    with db.read() as session:
        event = session.exec(
            select(AuditEvent)
            .where(AuditEvent.subject == f"stage:{CAMPAIGN}/city_letters")
            .order_by(AuditEvent.seq.desc())  # type: ignore[attr-defined]
        ).first()
        case = session.exec(select(Case).where(Case.ref == ref)).one()
        row = session.get(CaseDeadline, (case.id, "resubmission"))
    assert (
        event is not None
        and "2027年的节假日安排（含调休）尚未加载：国务院办公厅公布后，用 shenbao calendar load"
        in event.reason
    )
    assert row is not None and row.due_at is None


def test_a_dry_run_shows_what_would_move_and_writes_nothing(
    december: tuple[Database, str], make_ctx: Any
) -> None:
    db, ref = december
    report = _load(db, make_ctx, dry_run=True)
    assert {m.describe() for m in report.moved} == {
        f"{CAMPAIGN} 「补交签章推荐函」：另行通知 → 2027-01-05（周二）17:00",
        f"{CAMPAIGN} {ref} 的「退回后修改重报」：另行通知 → 2027-01-05（周二）24:00",
    }
    assert (f"{CAMPAIGN}/city_letters 截止", None, "2027-01-05（周二）17:00") in report.wakeups_moved
    with db.read() as session:
        assert session.exec(select(func.count()).select_from(WorkdayArrangement)).one() == 0
    assert _due(db, "city_letters") == "另行通知"


def test_loading_is_versioned_audited_and_re_plans(december: tuple[Database, str], make_ctx: Any) -> None:
    db, _ref = december
    report = _load(db, make_ctx, dry_run=False)
    assert report.version == 1 and len(report.moved) == 2
    assert _due(db, "city_letters") == "2027-01-05（周二）17:00"
    with db.read() as session:
        stored = session.exec(select(WorkdayArrangement)).one()
        assert (
            stored.source == "国务院办公厅关于2027年部分节假日安排的通知" and stored.digest == report.digest
        )
        assert calendar_with_loaded(session, WorkCalendar()).is_known_year(2027)
        load = session.exec(select(AuditEvent).where(AuditEvent.action == "workdays_load")).one()
        assert load.to_value == report.digest and json.loads(load.details)["version"] == 1
        assert make_ctx(DECEMBER).audit.verify(session).ok
    again = _load(db, make_ctx, dry_run=False)
    assert again.unchanged and again.moved == []
