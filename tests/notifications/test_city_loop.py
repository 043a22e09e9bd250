"""The city's loop in its mail: what its counties do, deadlines it supervises, 无推荐, late arrivals.

杭州市 (the town of world.py) has applications; 宁波市 has none, in either campaign, and a
contact. Every tick is at a written-out instant; each test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from models.db import Database
from models.letters import check_letter
from models.outbox import CANCELLED
from tests.conftest import CLUSTER, JINGPIN
from tests.models.spine import code, jingpin_case, rec_ref, roster_ref
from tests.notifications.world import (
    act,
    add_contact,
    build_town,
    emails,
    move_deadline,
    notifications,
    tick_at,
)

SCAN = b"%PDF-1.4 sealed"
NOTHING = "本市暂无县（市、区）提交的申报；如确无推荐，请报送“无推荐”"
NOTHING_JP = "本市暂无企业提交的申报；如确无推荐，请报送“无推荐”"


@pytest.fixture
def town(seeded: Database, make_ctx: Any) -> dict[str, Any]:
    world = build_town(seeded, make_ctx)
    world["ids"]["nb"] = add_contact(seeded, "宁波市", "周敏", "zhoumin@nb.example", mobile="13905740001")
    return world


def days(first: str, last: str) -> list[str]:
    """Two ticks a day: the 08:30 last-day reminder and the escalation rounds of the morning."""
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    out = []
    while start <= end:
        out += [f"{start.isoformat()}T08:30", f"{start.isoformat()}T10:30"]
        start += timedelta(days=1)
    return out


def chasing(db: Database, campaign: str, contact: int, kind: str) -> list[Any]:
    return [
        n
        for n in notifications(db, campaign_id=campaign, stage_id="city_recommendation", kind=kind)
        if n.contact_id == contact and n.status != CANCELLED
    ]


# Per campaign: the span from before the recommendation's first reminder to after its last round.
SPANS = {CLUSTER: ("2026-06-24", "2026-07-14"), JINGPIN: ("2026-07-10", "2026-07-31")}


def give_hangzhou_an_application(db: Database, make_ctx: Any, town: dict[str, Any], campaign: str) -> None:
    if campaign == CLUSTER:
        act(db, make_ctx, "2026-06-10T10:00", town["xihu"], "submit", "西湖区")
        return
    with db.write() as session:
        ref = jingpin_case(session, make_ctx("2026-06-01T10:00"), county="西湖区").ref
    act(db, make_ctx, "2026-06-10T10:00", ref, "submit", "西湖区")
    act(db, make_ctx, "2026-06-11T10:00", ref, "approve", "西湖区")


@pytest.mark.parametrize("campaign", [CLUSTER, JINGPIN])
def test_a_city_with_nothing_to_review_is_told_so_and_is_never_counted_late(
    town: dict[str, Any], make_ctx: Any, campaign: str
) -> None:
    db, ids = town["db"], town["ids"]
    give_hangzhou_an_application(db, make_ctx, town, campaign)
    for when in days(*SPANS[campaign]):
        tick_at(db, make_ctx, when)

    # Before: 3 reminders and 5 【逾期】 mails to 宁波市, and 宁波市 named in every escalation.
    assert len(chasing(db, campaign, ids["nb"], "reminder")) == 3
    assert chasing(db, campaign, ids["nb"], "overdue") == []
    escalations = notifications(db, campaign_id=campaign, stage_id="city_recommendation", kind="escalation")
    assert escalations and all(code("宁波市") not in n.payload["orgs"] for n in escalations)
    # 杭州市 had something to review and did not send its list: late, as before.
    assert len(chasing(db, campaign, ids["hz"], "overdue")) == 5
    texts = [e.text_body for e in emails(db, contact_id=ids["nb"])]
    sentence = NOTHING if campaign == CLUSTER else NOTHING_JP
    assert sum(sentence in t for t in texts) == 3
    assert not any(sentence in e.text_body for e in emails(db, contact_id=ids["hz"]))


@pytest.mark.parametrize("campaign", [CLUSTER, JINGPIN])
def test_after_reporting_none_the_city_is_neither_reminded_nor_escalated(
    town: dict[str, Any], make_ctx: Any, campaign: str
) -> None:
    db, ids = town["db"], town["ids"]
    first, last = SPANS[campaign]
    ticks = days(first, last)
    # The first reminder (5 working days before) goes out, then 宁波市 reports 无推荐.
    reported_at = {CLUSTER: "2026-06-29T11:00", JINGPIN: "2026-07-14T11:00"}[campaign]
    for when in (w for w in ticks if w < reported_at):
        tick_at(db, make_ctx, when)
    act(
        db,
        make_ctx,
        reported_at,
        rec_ref(campaign, code("宁波市")),
        "report_none",
        "宁波市",
        reason="本市无申报",
    )
    for when in (w for w in ticks if w > reported_at):
        tick_at(db, make_ctx, when)

    assert [n.step for n in chasing(db, campaign, ids["nb"], "reminder")] == ["d-5wd"]
    assert chasing(db, campaign, ids["nb"], "overdue") == []
    province = ids["prov"] if campaign == CLUSTER else ids["prov_jp"]
    told = [
        n
        for n in notifications(db, kind="notice", contact_id=province)
        if n.payload["action"] == "report_none"
    ]
    assert [(n.payload["org"], n.payload["reason"]) for n in told] == [("330000", "本市无申报")]


def test_the_city_hears_when_its_counties_submit_resubmit_and_withdraw(
    town: dict[str, Any], make_ctx: Any
) -> None:
    db, ids = town["db"], town["ids"]
    act(db, make_ctx, "2026-06-10T10:00", town["xihu"], "submit", "西湖区")
    act(db, make_ctx, "2026-06-11T10:00", town["xihu"], "return", "杭州市", reason="补充佐证材料")
    act(db, make_ctx, "2026-06-12T10:00", town["xihu"], "resubmit", "西湖区")
    act(db, make_ctx, "2026-06-12T11:00", town["yuhang"], "withdraw", "余杭区", reason="产业数据未达标")
    tick_at(db, make_ctx, "2026-06-12T14:00")

    heard = [
        (n.payload["ref"], n.payload["action"])
        for n in notifications(db, kind="notice", contact_id=ids["hz"])
    ]
    assert heard == [(town["xihu"], "submit"), (town["xihu"], "resubmit"), (town["yuhang"], "withdraw")]
    # 宁波市 hears nothing of 杭州市's counties.
    assert notifications(db, kind="notice", contact_id=ids["nb"]) == []
    digest = "\n".join(e.text_body for e in emails(db, contact_id=ids["hz"]))
    assert "撤回申报" in digest and "产业数据未达标" in digest


def test_the_city_hears_when_an_enterprise_in_its_area_submits_a_product(
    town: dict[str, Any], make_ctx: Any
) -> None:
    db, ids = town["db"], town["ids"]
    with db.write() as session:
        ref = jingpin_case(session, make_ctx("2026-06-01T10:00"), county="西湖区").ref
    act(db, make_ctx, "2026-06-10T10:00", ref, "submit", "西湖区")
    tick_at(db, make_ctx, "2026-06-10T14:00")
    heard = [
        (n.payload["ref"], n.payload["action"])
        for n in notifications(db, kind="notice", contact_id=ids["hz"])
    ]
    assert heard == [(ref, "submit")]


def test_the_city_hears_when_a_deadline_it_supervises_moves(town: dict[str, Any], make_ctx: Any) -> None:
    db, ids = town["db"], town["ids"]
    move_deadline(db, make_ctx, "2026-06-15T10:00", CLUSTER, "application", "2026-06-30")
    tick_at(db, make_ctx, "2026-06-15T10:05")
    moved = notifications(db, kind="deadline_notice")
    assert {n.contact_id for n in moved} == {ids["xihu"], ids["yuhang"], ids["hz"]}


def test_an_application_after_the_list_went_in_is_announced_to_the_city_and_the_province(
    town: dict[str, Any], make_ctx: Any
) -> None:
    db, ids = town["db"], town["ids"]
    rc = rec_ref(CLUSTER, code("杭州市"))
    act(
        db,
        make_ctx,
        "2026-06-20T10:00",
        rc,
        "submit",
        "杭州市",
        params={"letter": check_letter("函.pdf", SCAN)},
    )
    act(db, make_ctx, "2026-06-22T10:00", town["xihu"], "submit", "西湖区")
    tick_at(db, make_ctx, "2026-06-22T10:05")

    late = [n for n in notifications(db, kind="notice") if n.payload["ref"] == town["xihu"]]
    assert {n.contact_id for n in late} == {ids["hz"], ids["prov"]}
    assert all(rc in n.payload["late_note"] for n in late)
    for contact in (ids["hz"], ids["prov"]):
        (mail,) = [e for e in emails(db, contact_id=contact) if town["xihu"] in e.text_body]
        assert "之后到达" in mail.text_body and "请注意" in mail.html_body


def board_stage(db: Database, campaign: str, stage_id: str, when: str) -> Any:
    from calendars.timeutil import parse_instant
    from models.campaign import get_campaign
    from models.status import stage_views
    from tests.notifications.world import CALENDAR

    with db.read() as session:
        views = stage_views(session, get_campaign(session, campaign), parse_instant(when), CALENDAR)
    return next(v for v in views if v.stage.id == stage_id)


@pytest.mark.parametrize("campaign", [CLUSTER, JINGPIN])
def test_the_board_counts_as_pending_exactly_the_recommenders_the_escalation_names(
    town: dict[str, Any], make_ctx: Any, campaign: str
) -> None:
    db = town["db"]
    give_hangzhou_an_application(db, make_ctx, town, campaign)
    ticks = days(*SPANS[campaign])
    for when in ticks:
        tick_at(db, make_ctx, when)

    escalations = notifications(db, campaign_id=campaign, stage_id="city_recommendation", kind="escalation")
    escalated = {org for n in escalations for org in n.payload["orgs"]}
    view = board_stage(db, campaign, "city_recommendation", ticks[-1])
    # Before: 待办 11 ⚠ 已逾期 for 11 cities, of which the escalation named only 杭州市.
    assert escalated == {code("杭州市")}
    assert (view.pending, view.overdue, view.idle, view.unreached) == (1, True, 10, 0)
    assert view.notes == ["另有 10 个推荐单位尚无申报到达，可报“无推荐”，不计入待办"]


def test_units_without_any_contact_are_named_on_the_board_and_in_the_escalation(
    seeded: Database, make_ctx: Any
) -> None:
    # 宁波市 and 温州市 owe their roster; only 宁波市 has a contact.
    keep = (roster_ref(CLUSTER, code("宁波市")), roster_ref(CLUSTER, code("温州市")))
    town = build_town(seeded, make_ctx, keep_rosters=keep)
    add_contact(seeded, "宁波市", "周敏", "zhoumin@nb.example", mobile="13905740001")
    tick_at(seeded, make_ctx, "2026-06-08T09:30")

    view = board_stage(seeded, CLUSTER, "roster", "2026-06-08T09:30")
    assert (view.pending, view.overdue, view.unreached) == (2, True, 1)
    assert view.notes == ["1 个单位无联系人，未能提醒"]
    [escalation] = [e for e in emails(seeded, contact_id=town["ids"]["prov"]) if "【督办】" in e.subject]
    assert "2个单位逾期未办理" in escalation.subject
    assert "其中 1 个单位无联系人，未能提醒" in escalation.text_body
    assert "其中 1 个单位无联系人，未能提醒" in escalation.html_body
