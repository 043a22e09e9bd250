"""The city's side of the recommendation: 无推荐, late arrivals, taking a case off a returned list.

Each test runs on SQLite and PostgreSQL; a refused action leaves the cases as they were and
only its refusal in the audit.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from calendars.timeutil import parse_instant
from models.actions import ActionRefused, get_case
from models.db import Database
from models.letters import check_letter
from tests.conftest import built_world
from tests.models.spine import CLUSTER, JINGPIN, code, events, rec_ref, snapshot, state_of
from tests.models.test_actions import RISING, SCAN, do, import_hangzhou, refused, submit_all

REVIEW = parse_instant("2026-06-28T10:00")
EARLY = parse_instant("2026-06-20T10:00")


@pytest.fixture
def hz(seeded: Database, request: pytest.FixtureRequest) -> dict[str, str]:
    """杭州市's cluster applications imported on 06-01 (test_actions' world): name -> case ref."""
    return built_world(request, "models-hangzhou", import_hangzhou)


def submit_list(db: Database, make_ctx: Any, city: str, when: Any = REVIEW) -> str:
    rc = rec_ref(CLUSTER, code(city))
    do(db, make_ctx, rc, "submit", who=city, at=when, params={"letter": check_letter("函.pdf", SCAN)})
    return rc


@pytest.mark.parametrize("campaign", [CLUSTER, JINGPIN])
def test_a_city_with_nothing_to_review_reports_none_with_a_reason(
    seeded: Database, make_ctx: Any, campaign: str
) -> None:
    rc = rec_ref(campaign, code("宁波市"))
    do(seeded, make_ctx, rc, "report_none", who="宁波市", at=REVIEW, reason="本市无符合条件的申报")
    assert state_of(seeded, rc) == "none"
    last = events(seeded, subject=f"case:{rc}")[-1]
    assert (last.action, last.from_value, last.to_value, last.reason) == (
        "state_change",
        "draft",
        "none",
        "本市无符合条件的申报",
    )
    # The province can send it back like any list that went in.
    do(seeded, make_ctx, rc, "return", who="浙江省", at=REVIEW, reason="请核实")
    assert state_of(seeded, rc) == "returned"


def test_it_refuses_none_without_a_reason(seeded: Database, make_ctx: Any) -> None:
    rc = rec_ref(CLUSTER, code("宁波市"))
    exc = refused(do, seeded, make_ctx, rc, "report_none", who="宁波市", at=REVIEW)
    assert exc.rule == "reason_required"
    assert state_of(seeded, rc) == "draft"


def test_it_refuses_none_while_the_city_has_recommended_an_application(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    submit_all(seeded, make_ctx, hz, "西湖区")
    do(seeded, make_ctx, hz["西湖区"], "recommend", who="杭州市", at=REVIEW)
    rc = rec_ref(CLUSTER, code("杭州市"))
    before = len(events(seeded))
    exc = refused(do, seeded, make_ctx, rc, "report_none", who="杭州市", at=REVIEW, reason="无")
    assert exc.rule == "list_not_empty"
    assert hz["西湖区"] in str(exc) and "无推荐" in str(exc)
    assert (state_of(seeded, rc), state_of(seeded, hz["西湖区"])) == ("draft", "recommended")
    after = events(seeded)[before:]
    assert [(e.action, json.loads(e.details)["rule"]) for e in after] == [("refusal", "list_not_empty")]


def test_reporting_none_closes_the_choice_over_undecided_applications(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    submit_all(seeded, make_ctx, hz, "西湖区")
    rc = rec_ref(CLUSTER, code("杭州市"))
    do(seeded, make_ctx, rc, "report_none", who="杭州市", at=REVIEW, reason="均未达到择优推荐要求")
    assert state_of(seeded, hz["西湖区"]) == "not_recommended"


def test_it_takes_a_case_off_a_returned_list_and_releases_its_quota(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    submit_all(seeded, make_ctx, hz, *RISING)
    for name in RISING[:3]:
        do(seeded, make_ctx, hz[name], "recommend", who="杭州市", at=REVIEW)
    rc = submit_list(seeded, make_ctx, "杭州市")
    do(seeded, make_ctx, rc, "return", who="浙江省", at=REVIEW, reason="请调整“新星”推荐")
    do(
        seeded,
        make_ctx,
        hz["余杭区"],
        "withdraw_recommendation",
        who="杭州市",
        at=REVIEW,
        reason="改推钱塘区",
    )
    assert snapshot(seeded, hz["余杭区"])[0::3] == ("submitted", None)
    last = events(seeded, subject=f"case:{hz['余杭区']}")[-1]
    assert json.loads(last.details)["released_quota"] == "rising_star:330100"
    # The released place is free again: three rising stars at most, and it can be taken.
    do(seeded, make_ctx, hz["余杭区"], "recommend", who="杭州市", at=REVIEW)
    assert snapshot(seeded, hz["余杭区"])[0::3] == ("recommended", "rising_star:330100")


def test_it_refuses_to_take_a_case_off_a_list_that_went_in(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    submit_all(seeded, make_ctx, hz, "西湖区")
    do(seeded, make_ctx, hz["西湖区"], "recommend", who="杭州市", at=REVIEW)
    submit_list(seeded, make_ctx, "杭州市")
    before = len(events(seeded))
    exc = refused(
        do, seeded, make_ctx, hz["西湖区"], "withdraw_recommendation", who="杭州市", at=REVIEW, reason="调整"
    )
    assert exc.rule == "recommendation_submitted"
    assert snapshot(seeded, hz["西湖区"])[0::3] == ("recommended", "cluster:330100")
    assert [e.action for e in events(seeded)[before:]] == ["refusal"]


def test_only_the_case_s_recommender_takes_it_off_the_list(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    submit_all(seeded, make_ctx, hz, "西湖区")
    do(seeded, make_ctx, hz["西湖区"], "recommend", who="杭州市", at=REVIEW)
    exc = refused(
        do, seeded, make_ctx, hz["西湖区"], "withdraw_recommendation", who="西湖区", at=REVIEW, reason="调整"
    )
    assert exc.rule == "tier"
    assert state_of(seeded, hz["西湖区"]) == "recommended"


def test_an_application_arriving_after_the_list_went_in_is_marked_late_and_waits_for_the_city(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    rc = submit_list(seeded, make_ctx, "杭州市", EARLY)
    do(seeded, make_ctx, hz["建德市"], "submit", who="建德市", at=parse_instant("2026-06-22T10:00"))
    last = events(seeded, subject=f"case:{hz['建德市']}")[-1]
    assert json.loads(last.details)["late_for"] == {"recommendation": rc, "state": "submitted"}
    with pytest.raises(ActionRefused):
        do(seeded, make_ctx, hz["建德市"], "not_recommend", who="杭州市", at=REVIEW, reason="不推荐")
    do(seeded, make_ctx, rc, "return", who="浙江省", at=REVIEW, reason="建德市申报晚到，请市级决定")
    # The city leaves it out, explicitly and with its reason.
    do(
        seeded,
        make_ctx,
        hz["建德市"],
        "not_recommend",
        who="杭州市",
        at=REVIEW,
        reason="晚于推荐报送，不再推荐",
    )
    do(seeded, make_ctx, rc, "resubmit", who="杭州市", at=REVIEW)
    with seeded.read() as session:
        assert get_case(session, hz["建德市"]).state == "not_recommended"


def test_an_application_before_the_list_went_in_is_not_marked_late(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    do(seeded, make_ctx, hz["建德市"], "submit", who="建德市", at=EARLY)
    last = events(seeded, subject=f"case:{hz['建德市']}")[-1]
    assert "late_for" not in json.loads(last.details)
