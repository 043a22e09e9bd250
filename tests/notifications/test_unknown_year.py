"""A year whose working days are not loaded (2027 here) holds back only what is counted into it.

Finding F1: a stage due in 2027, or escalation rounds of a late-December deadline running into
2027, stopped reconcile for the whole database (every campaign, every stage). Now that stage's
reminders and rounds wait, the tick says why, and everything else goes on.
"""

from __future__ import annotations

from typing import Any

import pytest

from calendars.timeutil import parse_deadline
from models.campaign import StageDeadline, get_campaign
from models.db import Database
from models.deadlines import record_stage_deadline
from tests.conftest import JINGPIN, built_world
from tests.models.spine import jingpin_case
from tests.notifications.world import act, at, move_deadline, notifications, reconcile_at, town_world


@pytest.fixture
def town(seeded: Database, request: pytest.FixtureRequest) -> dict[str, Any]:
    return built_world(request, "town", town_world)


@pytest.fixture
def submitted(town: dict[str, Any], make_ctx: Any) -> dict[str, Any]:
    """西湖区's 精品 application submitted: 西湖区 owes local_review (escalated to 杭州市)."""
    db = town["db"]
    with db.write() as session:
        ref = jingpin_case(session, make_ctx("2026-06-01T10:00"), county="西湖区").ref
    act(db, make_ctx, "2026-06-10T10:00", ref, "submit", "西湖区")
    return town


def test_a_december_deadline_is_escalated_while_the_rounds_in_2027_wait(
    submitted: dict[str, Any], make_ctx: Any
) -> None:
    db, ids = submitted["db"], submitted["ids"]
    move_deadline(db, make_ctx, "2026-12-01T10:00", JINGPIN, "local_review", "2026-12-29")

    report = reconcile_at(db, make_ctx, "2026-12-31T10:00")  # round 2 would be in 2027

    rows = notifications(db, campaign_id=JINGPIN, stage_id="local_review", kind="escalation")
    assert [(n.step, n.contact_id, n.due_at) for n in rows] == [("r1", ids["hz"], at("2026-12-30T09:30"))]
    assert report.waiting == {}  # nothing due by now needed 2027


def test_a_stage_due_in_an_unknown_year_waits_and_says_why(submitted: dict[str, Any], make_ctx: Any) -> None:
    db = submitted["db"]
    ctx = make_ctx("2026-11-02T10:00")
    with db.write() as session:
        # As a database loaded before validate/load/deadline set refused such a date holds it.
        stage = get_campaign(session, JINGPIN).spec().stage("local_review")
        row = session.get(StageDeadline, (JINGPIN, "local_review"))
        assert row is not None
        record_stage_deadline(session, ctx, JINGPIN, stage, row, parse_deadline("2027-01-15"), "测试")

    report = reconcile_at(db, make_ctx, "2027-01-18T10:00")  # its escalation rounds: 2027

    assert report.waiting == {
        f"{JINGPIN}/local_review": "2027年的节假日安排尚未加载（shenbao calendar load）"
    }
    assert notifications(db, campaign_id=JINGPIN, stage_id="local_review", kind="escalation") == []
