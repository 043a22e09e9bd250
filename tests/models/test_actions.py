"""Acting on cases: a whole cluster campaign, 精品 review order, permissions, refusals, deadlines.

The cluster tests follow 杭州市 through the notice's steps with ``cluster_hangzhou.csv``
(see ``tests/fixtures/scenario/make_samples.py`` for what each row is for); every test runs on
SQLite and on PostgreSQL, and the clock is always passed in.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from calendars.timeutil import parse_deadline, parse_instant
from models.actions import ActionRefused, close_windows, get_case, perform, set_deadline
from models.campaign import StageDeadline
from models.context import Actor
from models.db import Database
from models.imports import import_cases
from models.letters import check_letter
from models.status import list_cases
from tests.conftest import built_world
from tests.models.spine import (
    AFTER_APPLICATION,
    CLUSTER,
    IN_WINDOW,
    JINGPIN,
    actor_for,
    cluster_case,
    code,
    events,
    jingpin_case,
    n_events,
    rec_ref,
    recommender,
    snapshot,
    state_of,
)

SCENARIO = Path(__file__).resolve().parents[1] / "fixtures" / "scenario"
# Domain tests act past the tier checks explicitly, as an administrator would (and say why).
OPERATOR = Actor(name="tester", admin_reason="自动化测试")
PARK = "杭州未来科技城管委会"
RISING = ["余杭区", "滨江区", "临平区", "钱塘区"]
REVIEW = parse_instant("2026-06-28T10:00")  # after the application window, before 07-03
LATER = parse_instant("2026-07-15T10:00")  # the province's 初审 and 答辩

# A sealed scan as the domain sees it: a checked letter (the edges store the file).
SCAN = b"%PDF-1.4 sealed"


def import_hangzhou(db: Database, make_ctx: Any, folder: Path) -> dict[str, str]:
    """杭州市's cluster applications imported on 06-01; applicant name -> case ref."""
    with db.write() as session:
        import_cases(session, make_ctx(IN_WINDOW), CLUSTER, SCENARIO / "cluster_hangzhou.csv")
    with db.read() as session:
        return {c.title: c.ref for c in list_cases(session, CLUSTER, kind="cluster_application")}


@pytest.fixture
def hz(seeded: Database, request: pytest.FixtureRequest) -> dict[str, str]:
    # Imported once per session and backend, copied per test (tests/conftest.py's built_world).
    return built_world(request, "models-hangzhou", import_hangzhou)


def do(
    db: Database,
    make_ctx: Any,
    ref: str,
    action: str,
    *,
    who: str | Actor | None = None,
    at: datetime = IN_WINDOW,
    **kwargs: Any,
) -> Any:
    actor = actor_for(who) if isinstance(who, str) else (who or OPERATOR)
    return perform(db, make_ctx(at, actor), ref, action, **kwargs)


def submit_all(db: Database, make_ctx: Any, hz: dict[str, str], *names: str) -> None:
    for name in names:
        do(
            db,
            make_ctx,
            hz[name],
            "submit",
            who=None if name == PARK else name,
            overrides={"revenue_threshold": "园区软件产业增速快"} if name == PARK else None,
        )


def refused(fn: Any, *args: Any, **kwargs: Any) -> ActionRefused:
    with pytest.raises(ActionRefused) as info:
        fn(*args, **kwargs)
    return info.value


# -- application window ---------------------------------------------------------------------------


def test_it_submits_an_application_inside_the_window(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    at = parse_instant("2026-06-25T23:59")
    do(seeded, make_ctx, hz["西湖区"], "submit", who="西湖区", at=at)
    state, version, updated_at, _ = snapshot(seeded, hz["西湖区"])
    assert (state, version, updated_at) == ("submitted", 2, at)
    last = events(seeded, subject=f"case:{hz['西湖区']}")[-1]
    assert (last.action, last.from_value, last.to_value, last.actor) == (
        "state_change",
        "draft",
        "submitted",
        "测试员@330106",
    )


def test_it_refuses_a_submission_after_the_window_naming_the_deadline(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    exc = refused(do, seeded, make_ctx, hz["桐庐县"], "submit", who="桐庐县", at=AFTER_APPLICATION)
    assert exc.rule == "window_closed"
    assert "2026-06-25（周四）24:00" in str(exc)
    assert state_of(seeded, hz["桐庐县"]) == "draft"


def test_a_person_cannot_record_an_action_before_the_cases_latest_event(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    ref = hz["西湖区"]
    do(seeded, make_ctx, ref, "submit", who="西湖区", at=parse_instant("2026-06-20T10:00"))
    exc = refused(
        do,
        seeded,
        make_ctx,
        ref,
        "withdraw",
        who="西湖区",
        at=parse_instant("2026-06-19T10:00"),
        reason="撤回",
    )
    assert exc.rule == "before_history"
    assert "最近一条记录在 2026-06-20（周六）10:00" in str(exc) and "2026-06-19（周五）10:00" in str(exc)
    assert state_of(seeded, ref) == "submitted"
    # The same instant as the latest event is not before it.
    do(seeded, make_ctx, ref, "withdraw", who="西湖区", at=parse_instant("2026-06-20T10:00"), reason="撤回")
    assert state_of(seeded, ref) == "withdrawn"


def test_it_refuses_a_submission_before_the_window_opens(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    exc = refused(do, seeded, make_ctx, hz["桐庐县"], "submit", at=parse_instant("2026-05-25T23:00"))
    assert exc.rule == "window_not_open"
    assert "2026-05-26（周二）00:00" in str(exc)


def test_it_lapses_drafts_when_the_window_closes_and_only_once(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    submit_all(seeded, make_ctx, hz, *[n for n in hz if n != "桐庐县"])
    with seeded.write() as session:
        assert close_windows(session, make_ctx(parse_instant("2026-06-25T23:59"))) == []
    with seeded.write() as session:
        lapsed = [c.ref for c in close_windows(session, make_ctx(AFTER_APPLICATION))]
    assert lapsed == [hz["桐庐县"]]
    assert state_of(seeded, hz["桐庐县"]) == "lapsed"
    with seeded.write() as session:
        assert close_windows(session, make_ctx(parse_instant("2026-06-27T09:00"))) == []
    lapse = events(seeded, subject=f"case:{hz['桐庐县']}")[-1]
    assert (lapse.actor, lapse.to_value) == ("system", "lapsed")
    assert "2026-06-25（周四）24:00" in lapse.reason


def test_it_lapses_nothing_of_the_other_campaign_at_the_cluster_deadline(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    with seeded.write() as session:
        jp = jingpin_case(session, make_ctx()).ref
    with seeded.write() as session:
        close_windows(session, make_ctx(AFTER_APPLICATION))
    assert state_of(seeded, jp) == "draft"  # 精品 is open until 07-10 24:00


def test_it_refuses_to_submit_a_lapsed_application_naming_its_state(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    with seeded.write() as session:
        close_windows(session, make_ctx(AFTER_APPLICATION))
    exc = refused(do, seeded, make_ctx, hz["桐庐县"], "submit", at=AFTER_APPLICATION)
    assert exc.rule == "window_closed"
    assert "「逾期未提交」" in str(exc) and exc.data["allowed"] == []
    assert "2026-06-25（周四）24:00" in str(exc)


def test_it_lets_a_human_not_lapse_a_case(seeded: Database, make_ctx: Any, hz: dict[str, str]) -> None:
    exc = refused(do, seeded, make_ctx, hz["桐庐县"], "lapse", who="杭州市", at=AFTER_APPLICATION)
    assert exc.rule == "system_only"


def test_not_even_an_administrator_lapses_a_draft_early(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    admin = Actor(name="张伟", admin_reason="清理测试数据")
    exc = refused(do, seeded, make_ctx, hz["桐庐县"], "lapse", who=admin)
    assert exc.rule == "system_only" and state_of(seeded, hz["桐庐县"]) == "draft"


# -- who acts -----------------------------------------------------------------------------------------


def test_a_person_of_no_organisation_is_refused_and_only_the_refusal_is_recorded(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    ref = hz["西湖区"]
    before = snapshot(seeded, ref)
    exc = refused(do, seeded, make_ctx, ref, "submit", who=Actor(name="root"))
    assert exc.rule == "actor_missing" and exc.data == {"person": "root"}
    assert snapshot(seeded, ref) == before
    last = events(seeded, subject=f"case:{ref}")[-1]
    assert (last.action, last.actor) == ("refusal", "root")


def test_an_administrator_acts_only_on_record_with_the_reason(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    ref = hz["西湖区"]
    do(seeded, make_ctx, ref, "submit", who=Actor(name="张伟", admin_reason="县局系统故障，代为提交"))
    last = events(seeded, subject=f"case:{ref}")[-1]
    details = json.loads(last.details)
    assert last.actor == "admin:张伟" and last.to_value == "submitted"
    assert (details["admin"], details["admin_reason"]) == (True, "县局系统故障，代为提交")


# -- return for revision ----------------------------------------------------------------------------


def test_it_returns_an_application_for_revision_and_takes_it_back(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    ref = hz["建德市"]
    do(seeded, make_ctx, ref, "submit", who="建德市")
    do(seeded, make_ctx, ref, "return", who="杭州市", at=REVIEW, reason="实施方案缺少2026-2028年目标表")
    assert state_of(seeded, ref) == "returned"
    returned = events(seeded, subject=f"case:{ref}")[-1]
    assert returned.reason == "实施方案缺少2026-2028年目标表"
    assert returned.actor == "测试员@330100"
    do(seeded, make_ctx, ref, "resubmit", who="建德市", at=REVIEW)  # no window on a resubmission
    assert state_of(seeded, ref) == "submitted"


def test_it_refuses_a_return_without_a_reason(seeded: Database, make_ctx: Any, hz: dict[str, str]) -> None:
    do(seeded, make_ctx, hz["建德市"], "submit", who="建德市")
    exc = refused(do, seeded, make_ctx, hz["建德市"], "return", who="杭州市", reason="  ")
    # The domain says what is missing; each edge says how to give it (no CLI flag in here).
    assert exc.rule == "reason_required" and "理由" in str(exc) and "--" not in str(exc)


def test_it_lets_the_applicant_withdraw_with_a_reason(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    do(seeded, make_ctx, hz["富阳区"], "withdraw", who="富阳区", reason="本年度不再申报")
    assert state_of(seeded, hz["富阳区"]) == "withdrawn"


# -- recommendation and the 新星 quota -----------------------------------------------------------------


def test_it_records_the_quota_a_recommendation_uses(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    submit_all(seeded, make_ctx, hz, "西湖区", "余杭区")
    do(seeded, make_ctx, hz["西湖区"], "recommend", who="杭州市", at=REVIEW)
    do(seeded, make_ctx, hz["余杭区"], "recommend", who="杭州市", at=REVIEW)
    assert snapshot(seeded, hz["西湖区"])[3] == "cluster:330100"
    assert snapshot(seeded, hz["余杭区"])[3] == "rising_star:330100"


def test_it_refuses_a_fourth_rising_star_naming_the_quota_and_what_is_used(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    submit_all(seeded, make_ctx, hz, *RISING)
    for name in RISING[:3]:
        do(seeded, make_ctx, hz[name], "recommend", who="杭州市", at=REVIEW)
    exc = refused(do, seeded, make_ctx, hz["钱塘区"], "recommend", who="杭州市", at=REVIEW)
    assert exc.rule == "quota"
    message = str(exc)
    assert "杭州市“新星”产业群推荐数量不超过3个" in message
    assert "上限 3 个，已使用 3 个" in message
    for name in RISING[:3]:
        assert hz[name] in message
    assert snapshot(seeded, hz["钱塘区"])[0::3] == ("submitted", None)


def test_it_does_not_count_another_citys_rising_stars(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    submit_all(seeded, make_ctx, hz, *RISING[:3])
    for name in RISING[:3]:
        do(seeded, make_ctx, hz[name], "recommend", who="杭州市", at=REVIEW)
    with seeded.write() as session:
        nb = cluster_case(
            session,
            make_ctx(),
            county="鄞州区",
            zone="rising_star",
            cluster="高端装备",
            subtrack="精密泵阀",
            x_system="无",
            revenue="12",
        ).ref
    do(seeded, make_ctx, nb, "submit", who="鄞州区")
    do(seeded, make_ctx, nb, "recommend", who="宁波市", at=REVIEW)
    assert state_of(seeded, nb) == "recommended"


def test_it_does_not_limit_core_and_collaborative_recommendations(seeded: Database, make_ctx: Any) -> None:
    ctx = make_ctx()
    with seeded.write() as session:
        refs = [
            cluster_case(session, ctx, county=c).ref
            for c in ("上城区", "拱墅区", "西湖区", "滨江区", "萧山区")
        ]
    for ref in refs:
        do(seeded, make_ctx, ref, "submit")
        do(seeded, make_ctx, ref, "recommend", who="杭州市", at=REVIEW)
    assert {state_of(seeded, r) for r in refs} == {"recommended"}


def test_it_requires_the_sealed_letter_before_the_recommendation_is_submitted(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    rc = rec_ref(CLUSTER, code("杭州市"))
    exc = refused(do, seeded, make_ctx, rc, "submit", who="杭州市", at=REVIEW)
    assert exc.rule == "letter_missing" and "推荐函" in str(exc)
    do(
        seeded,
        make_ctx,
        rc,
        "attach",
        who="杭州市",
        at=REVIEW,
        params={"letter": check_letter("杭经信〔2026〕12号.pdf", SCAN)},
    )
    assert snapshot(seeded, rc)[:2] == ("draft", 2)  # attaching keeps the state, bumps the version
    do(seeded, make_ctx, rc, "submit", who="杭州市", at=REVIEW)
    assert state_of(seeded, rc) == "submitted"


def test_it_keeps_the_letter_given_with_the_submission(seeded: Database, make_ctx: Any) -> None:
    rc = rec_ref(CLUSTER, code("温州市"))
    do(
        seeded,
        make_ctx,
        rc,
        "submit",
        who="温州市",
        at=REVIEW,
        params={"letter": check_letter("温经信推荐函.pdf", SCAN)},
    )
    with seeded.read() as session:
        assert get_case(session, rc).letter == "温经信推荐函.pdf"


def test_a_letter_s_name_alone_is_not_a_sealed_letter(seeded: Database, make_ctx: Any) -> None:
    rc = rec_ref(CLUSTER, code("温州市"))
    for action in ("attach", "submit"):
        exc = refused(do, seeded, make_ctx, rc, action, who="温州市", at=REVIEW, params={"letter": "函.pdf"})
        assert exc.rule == "letter_missing"
    with seeded.read() as session:
        assert get_case(session, rc).letter is None


def test_it_refuses_an_attach_without_a_file_name(seeded: Database, make_ctx: Any) -> None:
    rc = rec_ref(CLUSTER, code("温州市"))
    do(seeded, make_ctx, rc, "attach", who="温州市", params={"letter": check_letter("函.pdf", SCAN)})
    exc = refused(do, seeded, make_ctx, rc, "attach", who="温州市")
    assert exc.rule == "letter_missing"
    with seeded.read() as session:
        assert get_case(session, rc).letter == "函.pdf"


def test_it_marks_undecided_applications_not_recommended_when_the_city_submits(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    submit_all(seeded, make_ctx, hz, "西湖区", "富阳区", "余杭区", "建德市")
    do(seeded, make_ctx, hz["建德市"], "return", who="杭州市", at=REVIEW, reason="补充佐证材料")
    do(seeded, make_ctx, hz["西湖区"], "recommend", who="杭州市", at=REVIEW)
    do(seeded, make_ctx, hz["余杭区"], "recommend", who="杭州市", at=REVIEW)
    with seeded.write() as session:
        nb = cluster_case(session, make_ctx(), county="鄞州区").ref
    do(seeded, make_ctx, nb, "submit")
    rc = rec_ref(CLUSTER, code("杭州市"))
    do(
        seeded,
        make_ctx,
        rc,
        "submit",
        who="杭州市",
        at=REVIEW,
        params={"letter": check_letter("推荐函.pdf", SCAN)},
    )
    assert state_of(seeded, hz["富阳区"]) == "not_recommended"
    cascade = events(seeded, subject=f"case:{hz['富阳区']}")[-1]
    assert cascade.actor == "system" and rc in cascade.reason and "杭州市" in cascade.reason
    assert state_of(seeded, hz["西湖区"]) == state_of(seeded, hz["余杭区"]) == "recommended"
    assert state_of(seeded, hz["建德市"]) == "not_recommended"  # being revised, not on the list
    assert state_of(seeded, hz["桐庐县"]) == "draft"
    assert state_of(seeded, nb) == "submitted"  # another city's application


def test_it_refuses_further_recommendations_once_the_city_has_submitted(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    early = parse_instant("2026-06-20T10:00")  # the city sends its list before the window closes
    rc = rec_ref(CLUSTER, code("杭州市"))
    do(
        seeded,
        make_ctx,
        rc,
        "submit",
        who="杭州市",
        at=early,
        params={"letter": check_letter("推荐函.pdf", SCAN)},
    )
    do(seeded, make_ctx, hz["建德市"], "submit", who="建德市", at=parse_instant("2026-06-22T10:00"))
    exc = refused(do, seeded, make_ctx, hz["建德市"], "recommend", who="杭州市", at=REVIEW)
    assert exc.rule == "recommendation_submitted"
    assert rc in str(exc) and "2026-06-20（周六）10:00" in str(exc)


def test_it_lets_the_city_adjust_after_the_province_returns_its_recommendation(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    rc = rec_ref(CLUSTER, code("杭州市"))
    early = parse_instant("2026-06-20T10:00")
    do(
        seeded,
        make_ctx,
        rc,
        "submit",
        who="杭州市",
        at=early,
        params={"letter": check_letter("函.pdf", SCAN)},
    )
    do(seeded, make_ctx, hz["建德市"], "submit", who="建德市", at=parse_instant("2026-06-22T10:00"))
    do(seeded, make_ctx, rc, "return", who="浙江省", at=REVIEW, reason="请补报建德市")
    do(seeded, make_ctx, hz["建德市"], "recommend", who="杭州市", at=REVIEW)
    do(seeded, make_ctx, rc, "resubmit", who="杭州市", at=REVIEW)
    assert (state_of(seeded, rc), state_of(seeded, hz["建德市"])) == ("submitted", "recommended")


def test_it_lets_the_city_decline_an_application_it_returned(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    submit_all(seeded, make_ctx, hz, "建德市")
    do(seeded, make_ctx, hz["建德市"], "return", who="杭州市", at=REVIEW, reason="补充佐证材料")
    do(seeded, make_ctx, hz["建德市"], "not_recommend", who="杭州市", at=REVIEW, reason="逾期未补正")
    assert state_of(seeded, hz["建德市"]) == "not_recommended"


# -- the province: 初审, 答辩, 评审 ------------------------------------------------------------------


@pytest.fixture
def recommended(seeded: Database, make_ctx: Any, hz: dict[str, str]) -> dict[str, str]:
    submit_all(seeded, make_ctx, hz, "西湖区", "萧山区")
    for name in ("西湖区", "萧山区"):
        do(seeded, make_ctx, hz[name], "recommend", who="杭州市", at=REVIEW)
    do(
        seeded,
        make_ctx,
        rec_ref(CLUSTER, "330100"),
        "submit",
        who="杭州市",
        at=REVIEW,
        params={"letter": check_letter("函.pdf", SCAN)},
    )
    return hz


def test_it_records_preliminary_pass_and_fail(
    seeded: Database, make_ctx: Any, recommended: dict[str, str]
) -> None:
    do(seeded, make_ctx, recommended["西湖区"], "pass_preliminary", who="浙江省", at=LATER)
    do(
        seeded,
        make_ctx,
        recommended["萧山区"],
        "fail_preliminary",
        who="浙江省",
        at=LATER,
        reason="佐证材料不全",
    )
    assert state_of(seeded, recommended["西湖区"]) == "prelim_passed"
    assert state_of(seeded, recommended["萧山区"]) == "prelim_failed"


def test_it_needs_a_time_to_schedule_a_defence(
    seeded: Database, make_ctx: Any, recommended: dict[str, str]
) -> None:
    ref = recommended["西湖区"]
    do(seeded, make_ctx, ref, "pass_preliminary", who="浙江省", at=LATER)
    exc = refused(do, seeded, make_ctx, ref, "schedule_defence", who="浙江省", at=LATER)
    assert exc.rule == "defence_time" and "--" not in str(exc)
    at = parse_instant("2026-08-10T09:00")
    do(seeded, make_ctx, ref, "schedule_defence", who="浙江省", at=LATER, params={"at": at})
    with seeded.read() as session:
        assert get_case(session, ref).defence_at == at
    assert "2026-08-10（周一）09:00" in events(seeded, subject=f"case:{ref}")[-1].details


def test_it_reschedules_a_defence_and_then_holds_it_and_selects(
    seeded: Database, make_ctx: Any, recommended: dict[str, str]
) -> None:
    ref = recommended["西湖区"]
    do(seeded, make_ctx, ref, "pass_preliminary", who="浙江省", at=LATER)
    do(seeded, make_ctx, ref, "schedule_defence", at=LATER, params={"at": parse_instant("2026-08-10T09:00")})
    do(seeded, make_ctx, ref, "schedule_defence", at=LATER, params={"at": parse_instant("2026-08-12T14:00")})
    do(seeded, make_ctx, ref, "hold_defence", who="浙江省", at=parse_instant("2026-08-12T17:00"))
    do(seeded, make_ctx, ref, "select", who="浙江省", at=parse_instant("2026-09-01T10:00"))
    assert state_of(seeded, ref) == "selected"


def test_it_rejects_after_the_defence_with_a_reason(
    seeded: Database, make_ctx: Any, recommended: dict[str, str]
) -> None:
    ref = recommended["萧山区"]
    do(seeded, make_ctx, ref, "pass_preliminary", at=LATER)
    do(seeded, make_ctx, ref, "schedule_defence", at=LATER, params={"at": parse_instant("2026-08-10T09:00")})
    do(seeded, make_ctx, ref, "hold_defence", at=LATER)
    exc = refused(do, seeded, make_ctx, ref, "reject", who="浙江省", at=LATER)
    assert exc.rule == "reason_required"
    do(seeded, make_ctx, ref, "reject", who="浙江省", at=LATER, reason="综合评分未进入前列")
    assert state_of(seeded, ref) == "not_selected"


# -- permissions --------------------------------------------------------------------------------------


def test_it_refuses_another_citys_coordinator_naming_the_jurisdiction(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    submit_all(seeded, make_ctx, hz, "西湖区")
    exc = refused(do, seeded, make_ctx, hz["西湖区"], "recommend", who="宁波市", at=REVIEW)
    assert exc.rule == "jurisdiction"
    assert "宁波市" in str(exc) and hz["西湖区"] in str(exc) and "管辖" in str(exc)


def test_it_refuses_another_countys_coordinator(seeded: Database, make_ctx: Any, hz: dict[str, str]) -> None:
    exc = refused(do, seeded, make_ctx, hz["西湖区"], "submit", who="萧山区")
    assert exc.rule == "jurisdiction" and "萧山区" in str(exc)


def test_it_refuses_a_county_that_tries_to_recommend(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    submit_all(seeded, make_ctx, hz, "西湖区")
    exc = refused(do, seeded, make_ctx, hz["西湖区"], "recommend", who="西湖区", at=REVIEW)
    assert exc.rule == "tier"
    assert "设区市" in str(exc) and "西湖区（县（市、区））" in str(exc)


def test_it_refuses_a_city_that_tries_the_provinces_review(
    seeded: Database, make_ctx: Any, recommended: dict[str, str]
) -> None:
    exc = refused(do, seeded, make_ctx, recommended["西湖区"], "pass_preliminary", who="杭州市", at=LATER)
    assert exc.rule == "tier" and "省级" in str(exc)


def test_it_lets_a_park_committee_submit_its_own_application(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    with seeded.read() as session:
        park = get_case(session, hz[PARK]).org_id
    actor = Actor(name="园区联络员", org_id=park, tier="park")
    do(seeded, make_ctx, hz[PARK], "submit", who=actor, overrides={"revenue_threshold": "软件业增速快"})
    assert state_of(seeded, hz[PARK]) == "submitted"
    exc = refused(do, seeded, make_ctx, hz["西湖区"], "submit", who=actor)
    assert exc.rule == "jurisdiction"


def test_it_lets_the_county_of_a_park_act_for_it(seeded: Database, make_ctx: Any, hz: dict[str, str]) -> None:
    do(seeded, make_ctx, hz[PARK], "submit", who="余杭区", overrides={"revenue_threshold": "软件业增速快"})
    assert state_of(seeded, hz[PARK]) == "submitted"


def test_it_refuses_an_actor_whose_organisation_does_not_exist(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    exc = refused(
        do, seeded, make_ctx, hz["西湖区"], "submit", who=Actor(name="x", org_id="NOPE", tier="county")
    )
    assert exc.rule == "actor_unknown" and "NOPE" in str(exc)


# -- refusals change nothing but the audit -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "action", "who", "at", "rule"),
    [
        ("桐庐县", "submit", "桐庐县", AFTER_APPLICATION, "window_closed"),
        ("西湖区", "recommend", "杭州市", IN_WINDOW, "state"),
        ("西湖区", "submit", "萧山区", IN_WINDOW, "jurisdiction"),
        (PARK, "submit", None, IN_WINDOW, "override_required"),
        ("西湖区", "withdraw", "西湖区", IN_WINDOW, "reason_required"),
    ],
)
def test_it_leaves_a_refused_case_unchanged_and_records_one_refusal(
    seeded: Database,
    make_ctx: Any,
    hz: dict[str, str],
    name: str,
    action: str,
    who: str | None,
    at: datetime,
    rule: str,
) -> None:
    ref = hz[name]
    before, count = snapshot(seeded, ref), n_events(seeded)
    exc = refused(do, seeded, make_ctx, ref, action, who=who, at=at)
    assert exc.rule == rule
    assert snapshot(seeded, ref) == before
    assert n_events(seeded) == count + 1
    refusal = events(seeded)[-1]
    assert (refusal.action, refusal.subject, refusal.from_value, refusal.to_value) == (
        "refusal",
        f"case:{ref}",
        before[0],
        before[0],
    )
    assert refusal.reason == str(exc)
    assert f'"rule":"{rule}"' in refusal.details


def test_it_refuses_a_quota_breach_without_touching_the_case(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    submit_all(seeded, make_ctx, hz, *RISING)
    for name in RISING[:3]:
        do(seeded, make_ctx, hz[name], "recommend", who="杭州市", at=REVIEW)
    before, count = snapshot(seeded, hz["钱塘区"]), n_events(seeded)
    refused(do, seeded, make_ctx, hz["钱塘区"], "recommend", who="杭州市", at=REVIEW)
    assert snapshot(seeded, hz["钱塘区"]) == before
    assert n_events(seeded) == count + 1


# -- 精品: review order and direct recommenders --------------------------------------------------------


def test_it_requires_county_approval_before_the_city_recommends(seeded: Database, make_ctx: Any) -> None:
    with seeded.write() as session:
        ref = jingpin_case(session, make_ctx(), county="定海区").ref
    do(seeded, make_ctx, ref, "submit")
    exc = refused(do, seeded, make_ctx, ref, "recommend", who="舟山市")
    assert exc.rule == "not_reviewed" and "县级" in str(exc)
    do(seeded, make_ctx, ref, "approve", who="定海区")
    do(seeded, make_ctx, ref, "recommend", who="舟山市")
    assert snapshot(seeded, ref)[0::3] == ("recommended", "city:330900")


def test_it_lets_an_soe_group_recommend_without_county_review(seeded: Database, make_ctx: Any) -> None:
    with seeded.write() as session:
        soe = recommender(session, make_ctx(), "浙江省能源集团有限公司", "soe_group")
        ref = jingpin_case(session, make_ctx(), county="上城区", recommender_id=soe.id).ref
    do(seeded, make_ctx, ref, "submit")
    do(seeded, make_ctx, ref, "recommend", who=Actor(name="国资联络员", org_id=soe.id, tier="soe_group"))
    assert snapshot(seeded, ref)[0::3] == ("recommended", f"soe:{soe.id}")


def test_it_refuses_an_soe_group_acting_on_a_product_it_does_not_recommend(
    seeded: Database, make_ctx: Any
) -> None:
    with seeded.write() as session:
        soe = recommender(session, make_ctx(), "浙江省能源集团有限公司", "soe_group")
        ref = jingpin_case(session, make_ctx(), county="上城区").ref
    do(seeded, make_ctx, ref, "submit")
    do(seeded, make_ctx, ref, "approve", who="上城区")
    exc = refused(
        do, seeded, make_ctx, ref, "recommend", who=Actor(name="x", org_id=soe.id, tier="soe_group")
    )
    assert exc.rule == "jurisdiction"


def test_it_refuses_a_city_recommending_a_product_an_soe_group_recommends(
    seeded: Database, make_ctx: Any
) -> None:
    with seeded.write() as session:
        soe = recommender(session, make_ctx(), "浙江省能源集团有限公司", "soe_group")
        ref = jingpin_case(session, make_ctx(), county="上城区", recommender_id=soe.id).ref
    do(seeded, make_ctx, ref, "submit")
    do(seeded, make_ctx, ref, "approve", who="上城区")
    exc = refused(do, seeded, make_ctx, ref, "recommend", who="杭州市")
    assert exc.rule == "jurisdiction"
    assert snapshot(seeded, ref)[3] is None


def test_it_cascades_a_city_recommendation_only_over_the_citys_own_products(
    seeded: Database, make_ctx: Any
) -> None:
    with seeded.write() as session:
        soe = recommender(session, make_ctx(), "浙江省能源集团有限公司", "soe_group")
        own = jingpin_case(session, make_ctx(), county="上城区").ref
        direct = jingpin_case(session, make_ctx(), county="上城区", recommender_id=soe.id).ref
    for ref in (own, direct):
        do(seeded, make_ctx, ref, "submit")
        do(seeded, make_ctx, ref, "approve", who="上城区")
    do(
        seeded,
        make_ctx,
        rec_ref(JINGPIN, "330100"),
        "submit",
        who="杭州市",
        params={"letter": check_letter("汇总表.pdf", SCAN)},
    )
    assert (state_of(seeded, own), state_of(seeded, direct)) == ("not_recommended", "county_approved")


def test_it_refuses_a_jingpin_submission_after_07_10(seeded: Database, make_ctx: Any) -> None:
    with seeded.write() as session:
        ref = jingpin_case(session, make_ctx()).ref
    do(seeded, make_ctx, ref, "submit", at=parse_instant("2026-07-10T23:00"))
    with seeded.write() as session:
        late = jingpin_case(session, make_ctx()).ref
    exc = refused(do, seeded, make_ctx, late, "submit", at=parse_instant("2026-07-11T00:00"))
    assert "2026-07-10（周五）24:00" in str(exc)


# -- deadlines ----------------------------------------------------------------------------------------


def _deadline(db: Database, campaign: str, stage: str) -> StageDeadline:
    with db.read() as session:
        row = session.get(StageDeadline, (campaign, stage))
        assert row is not None
        return row


def test_it_moves_a_deadline_with_a_new_version_and_an_audit_event(seeded: Database, make_ctx: Any) -> None:
    new, when = parse_deadline("2026-06-30 24:00"), parse_instant("2026-06-20T10:00")
    with seeded.write() as session:
        set_deadline(session, make_ctx(when), CLUSTER, "application", new, "系统故障，申报延期")
    row = _deadline(seeded, CLUSTER, "application")
    assert (row.due_at, row.version, row.changed_at, row.reason) == (new, 2, when, "系统故障，申报延期")
    moved = events(seeded, action="deadline_change")[-1]
    assert moved.subject == f"stage:{CLUSTER}/application"
    assert moved.from_value == parse_deadline("2026-06-25 24:00").isoformat()
    assert moved.to_value == new.isoformat()
    assert "2026-06-30（周二）24:00" in moved.details and "2026-06-25（周四）24:00" in moved.details


def test_it_accepts_submissions_until_a_moved_deadline(
    seeded: Database, make_ctx: Any, hz: dict[str, str]
) -> None:
    with seeded.write() as session:
        set_deadline(session, make_ctx(), CLUSTER, "application", parse_deadline("2026-06-30"), "延期")
    with seeded.write() as session:
        assert close_windows(session, make_ctx(AFTER_APPLICATION)) == []
    do(seeded, make_ctx, hz["桐庐县"], "submit", at=parse_instant("2026-06-30T20:00"))
    assert state_of(seeded, hz["桐庐县"]) == "submitted"


def test_it_announces_a_date_for_a_stage_that_was_to_be_announced(seeded: Database, make_ctx: Any) -> None:
    assert _deadline(seeded, CLUSTER, "defence").due_at is None
    with seeded.write() as session:
        set_deadline(
            session, make_ctx(), CLUSTER, "defence", parse_deadline("2026-08-15 17:00"), "答辩安排通知"
        )
    row = _deadline(seeded, CLUSTER, "defence")
    assert (row.due_at, row.version) == (parse_deadline("2026-08-15 17:00"), 2)
    assert events(seeded, action="deadline_change")[-1].from_value is None


def test_it_refuses_to_set_the_same_deadline_again(seeded: Database, make_ctx: Any) -> None:
    count = n_events(seeded)
    with seeded.write() as session:
        exc = refused(
            set_deadline,
            session,
            make_ctx(),
            CLUSTER,
            "application",
            parse_deadline("2026-06-25 24:00"),
            "重复",
        )
    assert exc.rule == "deadline_unchanged" and "2026-06-25（周四）24:00" in str(exc)
    assert n_events(seeded) == count and _deadline(seeded, CLUSTER, "application").version == 1


def test_it_refuses_a_deadline_change_without_a_reason(seeded: Database, make_ctx: Any) -> None:
    with seeded.write() as session:
        exc = refused(
            set_deadline, session, make_ctx(), CLUSTER, "application", parse_deadline("2026-06-30"), ""
        )
    assert exc.rule == "reason_required"


def test_it_names_the_known_stages_for_an_unknown_one(seeded: Database, make_ctx: Any) -> None:
    with seeded.write() as session, pytest.raises(KeyError, match="city_recommendation"):
        set_deadline(session, make_ctx(), CLUSTER, "nonsense", None, "x")
