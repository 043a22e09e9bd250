"""Reconcile at a given ``now``: reminders to whoever still acts, escalations, lapses, re-planning, notices.

杭州市 with two counties (西湖区, 余杭区) applying for a cluster, contacts for both counties, the
city and the province; both cities' roster tasks are done so the roster stage stays quiet. Each
test runs on SQLite and PostgreSQL; every instant is written out.
"""

from __future__ import annotations

from typing import Any

import pytest

from models.db import Database
from models.outbox import CANCELLED, PENDING, QUEUED
from notifications.reconcile import tick
from tests.conftest import CLUSTER, JINGPIN, built_world
from tests.models.spine import events, jingpin_case
from tests.notifications.world import (
    CALENDAR,
    IDENTITY,
    RENDERER,
    SYSTEM,
    act,
    at,
    move_deadline,
    notifications,
    reconcile_at,
    row_counts,
    tick_at,
    town_world,
)


@pytest.fixture
def town(seeded: Database, request: pytest.FixtureRequest) -> dict[str, Any]:
    return built_world(request, "town", town_world)


def application_rows(db: Database, **where: Any) -> list[Any]:
    return notifications(db, campaign_id=CLUSTER, stage_id="application", **where)


def test_it_reminds_only_the_county_that_still_has_a_draft(town: dict[str, Any], make_ctx: Any) -> None:
    db, ids = town["db"], town["ids"]
    act(db, make_ctx, "2026-06-17T15:00", town["yuhang"], "submit", "余杭区")

    report = reconcile_at(db, make_ctx, "2026-06-18T09:00")

    [row] = application_rows(db)
    assert (row.kind, row.step, row.contact_id, row.email_addr) == (
        "reminder",
        "d-7",
        ids["xihu"],
        "lina@xihu.example",
    )
    assert row.key == f"rr:{CLUSTER}:application:v1:d-7:{ids['xihu']}"
    assert (row.due_at, row.created_at, row.status, row.deadline_version) == (
        at("2026-06-18T09:00"),
        at("2026-06-18T09:00"),
        PENDING,
        1,
    )
    assert row.payload["orgs"] == ["330106"]
    assert report.written["reminder"] == 1


def test_it_writes_nothing_before_the_first_step_is_due(town: dict[str, Any], make_ctx: Any) -> None:
    reconcile_at(town["db"], make_ctx, "2026-06-18T08:59")
    assert application_rows(town["db"]) == []


def test_it_writes_nothing_new_when_ticked_again_at_the_same_instant_or_later(
    town: dict[str, Any], make_ctx: Any
) -> None:
    db = town["db"]
    first = tick_at(db, make_ctx, "2026-06-18T09:00")
    before = row_counts(db)

    again = tick_at(db, make_ctx, "2026-06-18T09:00")
    later = tick_at(db, make_ctx, "2026-06-18T16:00")

    assert first.written["reminder"] == 2 and first.emails == 2
    assert again.nothing_new and later.nothing_new
    assert row_counts(db) == before


def test_it_writes_the_same_rows_after_a_tick_that_crashed_before_committing(
    town: dict[str, Any], make_ctx: Any
) -> None:
    db = town["db"]
    with pytest.raises(RuntimeError), db.write() as session:
        tick(session, make_ctx("2026-06-18T09:00", SYSTEM), CALENDAR, IDENTITY, RENDERER)
        raise RuntimeError("the process died before the commit")
    assert application_rows(db) == []

    tick_at(db, make_ctx, "2026-06-18T09:30")

    assert sorted((n.step, n.contact_id, n.due_at) for n in application_rows(db)) == sorted(
        [
            ("d-7", town["ids"]["xihu"], at("2026-06-18T09:00")),
            ("d-7", town["ids"]["yuhang"], at("2026-06-18T09:00")),
        ]
    )


def test_it_sends_the_latest_step_only_when_it_wakes_late(town: dict[str, Any], make_ctx: Any) -> None:
    db = town["db"]
    tick_at(db, make_ctx, "2026-06-23T11:00")  # slept through d-7 (06-18) and d-3wd (06-22)
    assert {n.step for n in application_rows(db)} == {"d-3wd"}


def test_it_lapses_drafts_exactly_once_when_the_window_closes_at_2400(
    town: dict[str, Any], make_ctx: Any
) -> None:
    db, ids = town["db"], town["ids"]
    act(db, make_ctx, "2026-06-24T15:00", town["yuhang"], "submit", "余杭区")

    before = tick_at(db, make_ctx, "2026-06-25T23:00")
    closing = tick_at(db, make_ctx, "2026-06-26T00:00")
    again = tick_at(db, make_ctx, "2026-06-26T00:00")
    morning = tick_at(db, make_ctx, "2026-06-26T09:30")

    assert (before.lapsed, closing.lapsed, again.lapsed, morning.lapsed) == ([], [town["xihu"]], [], [])
    lapse_notices = notifications(db, kind="lapse_notice")
    assert sorted(n.contact_id for n in lapse_notices) == sorted([ids["xihu"], ids["hz"]])
    lapses = [e for e in events(db, action="state_change") if e.to_value == "lapsed"]
    assert {tuple(n.payload["case_ids"]) for n in lapse_notices} == {(lapses[0].case_id,)}
    assert {n.created_at for n in lapse_notices} == {at("2026-06-26T00:00")}
    assert not [n for n in notifications(db, kind="notice") if n.payload.get("action") == "lapse"]
    assert [(e.subject, e.at) for e in lapses] == [(f"case:{town['xihu']}", at("2026-06-26T00:00"))]


def test_it_cancels_unsent_reminders_of_a_moved_deadline_with_the_reason(
    town: dict[str, Any], make_ctx: Any
) -> None:
    db = town["db"]
    reconcile_at(db, make_ctx, "2026-06-18T09:00")  # d-7 written, not yet mailed
    move_deadline(db, make_ctx, "2026-06-18T11:00", CLUSTER, "application", "2026-06-30 24:00")

    report = reconcile_at(db, make_ctx, "2026-06-18T11:00")

    old = application_rows(db, kind="reminder")
    assert len(old) == 2 and report.cancelled == 2
    assert {(n.status, n.status_reason) for n in old} == {
        (CANCELLED, "截止时间已调整为 2026-06-30（周二）24:00（第2版）")
    }


def test_it_replans_reminders_under_the_new_deadline_version(town: dict[str, Any], make_ctx: Any) -> None:
    db, ids = town["db"], town["ids"]
    reconcile_at(db, make_ctx, "2026-06-18T09:00")
    move_deadline(db, make_ctx, "2026-06-18T11:00", CLUSTER, "application", "2026-06-30 24:00")
    reconcile_at(db, make_ctx, "2026-06-18T11:00")

    reconcile_at(db, make_ctx, "2026-06-22T09:00")  # the old d-3wd: nothing under version 2 yet
    reconcile_at(db, make_ctx, "2026-06-23T09:00")  # d-7 of 06-30

    fresh = [n for n in application_rows(db, kind="reminder") if n.deadline_version == 2]
    assert sorted(n.key for n in fresh) == sorted(
        f"rr:{CLUSTER}:application:v2:d-7:{ids[c]}" for c in ("xihu", "yuhang")
    )
    assert {n.due_at for n in fresh} == {at("2026-06-23T09:00")}


def test_it_tells_those_still_acting_that_the_deadline_moved(town: dict[str, Any], make_ctx: Any) -> None:
    db, ids = town["db"], town["ids"]
    act(db, make_ctx, "2026-06-17T15:00", town["yuhang"], "submit", "余杭区")
    move_deadline(
        db, make_ctx, "2026-06-18T11:00", CLUSTER, "application", "2026-06-30 24:00", "平台升级，统一延期"
    )

    reconcile_at(db, make_ctx, "2026-06-18T11:00")
    reconcile_at(db, make_ctx, "2026-06-18T12:00")

    # 余杭区 has submitted: nothing to tell it; 杭州市 supervises the stage and hears once.
    [notice, city] = notifications(db, kind="deadline_notice")
    assert (notice.contact_id, city.contact_id) == (ids["xihu"], ids["hz"])
    assert (notice.payload["from_text"], notice.payload["to_text"], notice.payload["version"]) == (
        "2026-06-25（周四）24:00",
        "2026-06-30（周二）24:00",
        2,
    )
    assert notice.payload["reason"] == "平台升级，统一延期"


def test_it_reminds_the_city_the_working_day_before_naming_the_late_county(
    town: dict[str, Any], make_ctx: Any
) -> None:
    db, ids = town["db"], town["ids"]
    act(db, make_ctx, "2026-06-23T15:00", town["yuhang"], "submit", "余杭区")

    reconcile_at(db, make_ctx, "2026-06-24T10:00")

    [row] = application_rows(db, kind="supervisor_reminder")
    assert (row.contact_id, row.step, row.due_at, row.payload["orgs"]) == (
        ids["hz"],
        "d-1wd-city",
        at("2026-06-24T10:00"),
        ["330106"],
    )
    # The county's own d-1wd reminder of 09:00 is there too, and only for the county still acting.
    assert [(n.contact_id, n.step) for n in application_rows(db, kind="reminder")] == [(ids["xihu"], "d-1wd")]


def test_it_escalates_a_late_county_to_the_city_then_also_to_the_province(
    town: dict[str, Any], make_ctx: Any
) -> None:
    db, ids = town["db"], town["ids"]
    with db.write() as session:
        ref = jingpin_case(session, make_ctx("2026-06-01T10:00"), county="西湖区").ref
    act(db, make_ctx, "2026-06-10T10:00", ref, "submit", "西湖区")
    # local_review: due 07-20 (end of day), rounds every 2 working days from 07-21 09:30, the
    # province copied from round 2 on, at most 4 rounds.
    for when in ("2026-07-21T09:30", "2026-07-23T09:30"):
        tick_at(db, make_ctx, when)

    rows = notifications(db, campaign_id=JINGPIN, stage_id="local_review")
    by_round = {(n.step, n.kind, n.contact_id, n.due_at) for n in rows if n.kind in ("escalation", "overdue")}
    r1, r2 = at("2026-07-21T09:30"), at("2026-07-23T09:30")
    # 严梦玲 works on the cluster campaign only: the 精品 province contact is 陈诗瑶.
    assert by_round == {
        ("r1", "escalation", ids["hz"], r1),
        ("r1", "overdue", ids["xihu"], r1),
        ("r2", "escalation", ids["hz"], r2),
        ("r2", "escalation", ids["prov_jp"], r2),
        ("r2", "overdue", ids["xihu"], r2),
    }
    assert {tuple(n.payload["orgs"]) for n in rows if n.kind == "escalation"} == {("330106",)}


def test_it_stops_escalating_once_the_county_has_acted(town: dict[str, Any], make_ctx: Any) -> None:
    db = town["db"]
    with db.write() as session:
        ref = jingpin_case(session, make_ctx("2026-06-01T10:00"), county="西湖区").ref
    act(db, make_ctx, "2026-06-10T10:00", ref, "submit", "西湖区")
    tick_at(db, make_ctx, "2026-07-21T09:30")
    act(db, make_ctx, "2026-07-22T11:00", ref, "approve", "西湖区")

    for when in ("2026-07-23T09:30", "2026-07-27T09:30", "2026-07-29T09:30"):
        tick_at(db, make_ctx, when)

    steps = {
        n.step for n in notifications(db, stage_id="local_review") if n.kind in ("escalation", "overdue")
    }
    assert steps == {"r1"}


def test_it_notifies_the_applicant_once_when_the_city_returns_its_application(
    town: dict[str, Any], make_ctx: Any
) -> None:
    db, ids = town["db"], town["ids"]
    act(db, make_ctx, "2026-06-17T15:00", town["xihu"], "submit", "西湖区")
    act(db, make_ctx, "2026-06-29T10:00", town["xihu"], "return", "杭州市", reason="佐证材料不全")

    tick_at(db, make_ctx, "2026-06-29T10:05")
    tick_at(db, make_ctx, "2026-06-29T10:05")
    tick_at(db, make_ctx, "2026-06-30T09:00")

    returns = [n for n in notifications(db, kind="notice") if n.payload["action"] == "return"]
    assert [(n.contact_id, n.status, n.payload["reason"]) for n in returns] == [
        (ids["xihu"], QUEUED, "佐证材料不全")
    ]
    assert returns[0].due_at == at("2026-06-29T10:00")


def test_it_writes_a_notice_stamped_ahead_of_the_tick_once_its_time_comes(
    town: dict[str, Any], make_ctx: Any
) -> None:
    # Two machines, one clock ahead: the return is recorded first (seq n) but stamped 12:00, the
    # recommendation after it (seq n+1) stamped 10:00. The 11:00 tick writes the recommendation's
    # notice; the watermark must not pass the return, whose notice is due at 12:00.
    db, ids = town["db"], town["ids"]
    act(db, make_ctx, "2026-06-17T15:00", town["xihu"], "submit", "西湖区")
    act(db, make_ctx, "2026-06-17T15:00", town["yuhang"], "submit", "余杭区")
    act(db, make_ctx, "2026-06-29T12:00", town["xihu"], "return", "杭州市", reason="请补充材料")
    act(db, make_ctx, "2026-06-29T10:00", town["yuhang"], "recommend", "杭州市")

    def decisions() -> set[tuple[int, str]]:
        # The city's own notices of the submissions are not what this is about.
        return {(n.contact_id, n.payload["action"]) for n in notifications(db, kind="notice")} - {
            (ids["hz"], "submit")
        }

    tick_at(db, make_ctx, "2026-06-29T11:00")
    early = decisions()
    tick_at(db, make_ctx, "2026-06-29T12:30")
    tick_at(db, make_ctx, "2026-06-29T13:00")

    assert early == {(ids["yuhang"], "recommend")}
    assert decisions() == {(ids["yuhang"], "recommend"), (ids["xihu"], "return")}


# -- the pass with nothing new (issue 10: a million open cases) ------------------------------------


def plan_marks(db: Database) -> dict[tuple[str, str], tuple[str, int]]:
    from sqlmodel import select

    from models.outbox import ReconcilePlan

    with db.read() as session:
        return {
            (m.stage_id, m.rule): (m.signature, m.audit_seq)
            for m in session.exec(select(ReconcilePlan).where(ReconcilePlan.campaign_id == CLUSTER))
        }


def test_it_skips_a_planned_step_while_nothing_is_recorded_and_writes_the_next_step_when_it_comes_due(
    town: dict[str, Any], make_ctx: Any
) -> None:
    db, ids = town["db"], town["ids"]
    act(db, make_ctx, "2026-06-17T15:00", town["yuhang"], "submit", "余杭区")
    reconcile_at(db, make_ctx, "2026-06-18T09:00")
    planned = plan_marks(db)[("application", "actor")]
    assert planned[0] == "v1:d-7"

    again = reconcile_at(db, make_ctx, "2026-06-18T11:00")  # the same step, no event since: skipped
    assert not again.written and plan_marks(db)[("application", "actor")] == planned

    later = reconcile_at(db, make_ctx, "2026-06-23T12:00")  # d-3wd is due, d-1wd (06-24 09:00) not yet
    assert plan_marks(db)[("application", "actor")][0] == "v1:d-3wd"
    rows = [n for n in application_rows(db) if n.kind == "reminder"]
    assert [(n.step, n.contact_id, n.status) for n in rows] == [
        ("d-7", ids["xihu"], CANCELLED),  # superseded by the newer step, never mailed
        ("d-3wd", ids["xihu"], PENDING),
    ]
    assert later.written["reminder"] == 1


def test_it_plans_the_same_step_again_when_a_case_is_recorded_after_the_plan(
    town: dict[str, Any], make_ctx: Any
) -> None:
    from tests.models.spine import cluster_case

    db, ids = town["db"], town["ids"]
    act(db, make_ctx, "2026-06-17T15:00", town["yuhang"], "submit", "余杭区")
    reconcile_at(db, make_ctx, "2026-06-18T09:00")
    assert {n.contact_id for n in application_rows(db)} == {ids["xihu"]}

    with db.write() as session:  # 余杭区 files a second application after the 09:00 pass
        cluster_case(session, make_ctx("2026-06-18T09:30"), county="余杭区", subtrack="工业软件")
    report = reconcile_at(db, make_ctx, "2026-06-18T10:00")

    assert report.written["reminder"] == 1
    assert {(n.step, n.contact_id) for n in application_rows(db)} == {
        ("d-7", ids["xihu"]),
        ("d-7", ids["yuhang"]),
    }


def test_the_aggregate_in_sql_counts_what_the_per_case_rule_counts(
    town: dict[str, Any], make_ctx: Any
) -> None:
    from collections import Counter

    from sqlmodel import select

    from models.campaign import Campaign
    from models.case import Case
    from models.org import Organisation
    from notifications.audience import acting_org
    from notifications.reconcile import parks_by_county, pending_by_org
    from tests.models.spine import cluster_case

    db = town["db"]
    with db.write() as session:
        ctx = make_ctx("2026-06-02T10:00")
        for county, applicant, subtrack in (
            ("西湖区", "杭州西湖云谷产业园", "智能终端"),
            ("西湖区", "杭州西湖云谷产业园", "工业软件"),
            ("余杭区", "余杭未来科技城管委会", "智能终端"),
        ):
            cluster_case(session, ctx, county=county, applicant=applicant, subtrack=subtrack)
        jingpin_case(session, ctx, county="余杭区")
    with db.read() as session:
        for campaign in session.exec(select(Campaign)):
            for stage in campaign.spec().stages:
                cases = session.exec(
                    select(Case).where(
                        Case.campaign_id == campaign.id,
                        Case.kind == stage.subject,
                        Case.state.in_(stage.pending_states),  # type: ignore[attr-defined]
                    )
                ).all()
                per_case = Counter(acting_org(stage, c.org_id, c.county_code, c.city_code) for c in cases)
                assert pending_by_org(session, campaign.id, stage) == dict(per_case), stage.id
                parks: dict[str, set[str]] = {}
                for c in cases:
                    org = session.get(Organisation, c.org_id)
                    if stage.actor == "county" and org is not None and org.tier == "park" and c.county_code:
                        parks.setdefault(c.county_code, set()).add(c.org_id)
                assert parks_by_county(session, campaign.id, stage) == parks, stage.id
    with db.read() as session:  # the comparison covered parks, not only counties
        assert session.exec(select(Organisation).where(Organisation.tier == "park")).first() is not None
