"""The state machines: well-formed, every transition reachable and performable, final means final.

Pure checks run on the declared data; the walk tests perform every (transition, source state)
pair through ``act`` on a real database, as an operator, so every guard is satisfied for real.
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from typing import Any

import pytest

from calendars.timeutil import parse_instant
from models.actions import ActionRefused, act, describe_allowed, get_case
from models.case import Case
from models.letters import check_letter
from models.machines import (
    CLUSTER_APPLICATION,
    JINGPIN_APPLICATION,
    MACHINES,
    RECOMMENDATION,
    ROSTER,
    Machine,
    machine_for,
)
from tests.models.spine import CLUSTER, cluster_case, code, jingpin_case, recommender

ALL = sorted(MACHINES.values(), key=lambda m: m.kind)
TIERS = {"province", "city", "county", "park", "enterprise", "soe_group", "association", "system"}

# A sealed scan as the domain sees it: a checked letter (the edges store the file).
SCAN = b"%PDF-1.4 sealed"


def reachable(machine: Machine) -> set[str]:
    seen, todo = {machine.initial}, deque([machine.initial])
    while todo:
        state = todo.popleft()
        for t in machine.allowed(state):
            if t.target and t.target not in seen:
                seen.add(t.target)
                todo.append(t.target)
    return seen


@pytest.mark.parametrize("machine", ALL, ids=lambda m: m.kind)
def test_it_declares_only_known_states_and_tiers(machine: Machine) -> None:
    assert machine.initial in machine.states
    assert machine.final <= set(machine.states)
    for t in machine.transitions:
        assert set(t.sources) <= set(machine.states), t
        assert t.target is None or t.target in machine.states, t
        assert set(t.tiers) <= TIERS, t


@pytest.mark.parametrize("machine", ALL, ids=lambda m: m.kind)
def test_it_reaches_every_state_from_the_initial_one(machine: Machine) -> None:
    assert reachable(machine) == set(machine.states)


@pytest.mark.parametrize("machine", ALL, ids=lambda m: m.kind)
def test_it_has_a_way_forward_from_every_state_that_is_not_final(machine: Machine) -> None:
    for state in set(machine.states) - machine.final:
        assert machine.allowed(state), f"{machine.kind}: {state} is a dead end but not final"


@pytest.mark.parametrize("machine", [CLUSTER_APPLICATION, JINGPIN_APPLICATION], ids=lambda m: m.kind)
def test_it_has_no_way_out_of_a_final_application_state(machine: Machine) -> None:
    for state in machine.final:
        assert machine.allowed(state) == [], state
        assert describe_allowed(machine, state) == "无（已办结）"


@pytest.mark.parametrize("machine", [RECOMMENDATION, ROSTER], ids=lambda m: m.kind)
def test_it_leaves_a_final_city_task_only_when_the_province_returns_it(machine: Machine) -> None:
    for state in machine.final:
        for t in machine.allowed(state):
            assert (t.action, t.tiers) == ("return", ("province",)), t


@pytest.mark.parametrize("machine", ALL, ids=lambda m: m.kind)
def test_it_asks_for_a_reason_for_every_negative_decision(machine: Machine) -> None:
    negative = {"withdraw", "return", "not_recommend", "fail_preliminary", "reject"}
    for t in machine.transitions:
        if t.action in negative:
            assert t.needs_reason, t.action


def test_it_leaves_lapsing_to_the_system_alone() -> None:
    for machine in (CLUSTER_APPLICATION, JINGPIN_APPLICATION):
        lapse = next(t for t in machine.transitions if t.action == "lapse")
        assert lapse.tiers == ("system",)
        assert lapse.sources == ("draft",)


def test_it_names_the_known_kinds_when_asked_for_an_unknown_one() -> None:
    with pytest.raises(KeyError, match="cluster_application"):
        machine_for("nonsense")


# -- illegal actions: the message names the state and what is allowed ---------------------------


def _pairs_not_allowed() -> list[tuple[Machine, str, str]]:
    out = []
    for machine in ALL:
        # A lapsed application also names its deadline, which needs the database: test_actions.
        for state in [s for s in machine.states if s != "lapsed"]:
            allowed = {t.action for t in machine.allowed(state)}
            for action in sorted(machine.actions() - allowed)[:2]:
                out.append((machine, state, action))
    return out


@pytest.mark.parametrize(
    ("machine", "state", "action"),
    _pairs_not_allowed(),
    ids=lambda v: v.kind if isinstance(v, Machine) else v,
)
def test_it_refuses_an_illegal_action_naming_the_state_and_the_allowed_actions(
    machine: Machine, state: str, action: str, make_ctx: Any
) -> None:
    case = Case(
        ref="CL26-09999",
        campaign_id=CLUSTER,
        kind=machine.kind,
        state=state,
        state_since=datetime(2026, 6, 1, tzinfo=UTC),
        org_id="330106",
        title="t",
        created_at=datetime(2026, 6, 1, tzinfo=UTC),
        updated_at=datetime(2026, 6, 1, tzinfo=UTC),
    )
    with pytest.raises(ActionRefused) as info:
        act(None, make_ctx(), case, action)  # type: ignore[arg-type]  # refused before any query
    message = str(info.value)
    assert info.value.rule == "state"
    assert f"「{machine.state_label(state)}」" in message
    offered = [t for t in machine.allowed(state) if t.tiers != ("system",)]
    # What may be done instead travels as data; each edge lists it in its own words.
    allowed = info.value.data["allowed"]
    assert allowed == [{"action": t.action, "label": t.label} for t in offered]
    # The engine's own actions (lapse at a deadline) are not offered to people.
    assert "lapse" not in [a["action"] for a in allowed]
    assert "--" not in message
    assert case.state == state and case.version == 1


def test_it_refuses_an_action_the_machine_does_not_have_listing_what_is_possible(make_ctx: Any) -> None:
    case = Case(
        ref="CL26-09999",
        campaign_id=CLUSTER,
        kind="cluster_application",
        state="draft",
        state_since=datetime(2026, 6, 1, tzinfo=UTC),
        org_id="330106",
        title="t",
        created_at=datetime(2026, 6, 1, tzinfo=UTC),
        updated_at=datetime(2026, 6, 1, tzinfo=UTC),
    )
    with pytest.raises(ActionRefused, match=r"没有操作 approve.*填报中") as info:
        act(None, make_ctx(), case, "approve")  # type: ignore[arg-type]
    assert info.value.rule == "unknown_action"
    # What is possible travels as data; each edge words it (the CLI lists 提交申报(submit)).
    assert {"action": "submit", "label": "提交申报"} in info.value.data["allowed"]


# -- every declared transition, performed for real ----------------------------------------------

# The actions that lead from the initial state to each state (operators skip tier checks).
PATHS: dict[str, dict[str, list[str]]] = {
    "cluster_application": {
        "draft": [],
        "submitted": ["submit"],
        "returned": ["submit", "return"],
        "withdrawn": ["withdraw"],
        "lapsed": ["lapse"],
        "recommended": ["submit", "recommend"],
        "not_recommended": ["submit", "not_recommend"],
        "prelim_passed": ["submit", "recommend", "pass_preliminary"],
        "prelim_failed": ["submit", "recommend", "fail_preliminary"],
        "defence_scheduled": ["submit", "recommend", "pass_preliminary", "schedule_defence"],
        "defence_held": ["submit", "recommend", "pass_preliminary", "schedule_defence", "hold_defence"],
        "selected": ["submit", "recommend", "pass_preliminary", "schedule_defence", "hold_defence", "select"],
        "not_selected": [
            "submit",
            "recommend",
            "pass_preliminary",
            "schedule_defence",
            "hold_defence",
            "reject",
        ],
    },
    "jingpin_application": {
        "draft": [],
        "submitted": ["submit"],
        "returned": ["submit", "return"],
        "withdrawn": ["withdraw"],
        "lapsed": ["lapse"],
        "county_approved": ["submit", "approve"],
        "recommended": ["submit", "approve", "recommend"],
        "not_recommended": ["submit", "approve", "not_recommend"],
        "prelim_passed": ["submit", "approve", "recommend", "pass_preliminary"],
        "prelim_failed": ["submit", "approve", "recommend", "fail_preliminary"],
        "site_check": ["submit", "approve", "recommend", "pass_preliminary", "start_site_check"],
        "selected": ["submit", "approve", "recommend", "pass_preliminary", "select"],
        "not_selected": ["submit", "approve", "recommend", "pass_preliminary", "reject"],
    },
    "recommendation": {
        "draft": [],
        "submitted": ["submit"],
        "none": ["report_none"],
        "returned": ["submit", "return"],
    },
    "roster": {"pending": [], "submitted": ["submit"], "returned": ["submit", "return"]},
}

DEFENCE_AT = parse_instant("2026-08-10T09:00")


def _params(kind: str, action: str) -> dict[str, Any]:
    if action == "schedule_defence":
        return {"at": DEFENCE_AT}
    if kind == "recommendation" and action in ("attach", "submit", "resubmit"):
        return {"letter": check_letter("杭州市推荐函（签章版）.pdf", SCAN)}
    return {}


def _pairs(kind: str) -> list[tuple[str, str]]:
    return [(t.action, s) for t in MACHINES[kind].transitions for s in t.sources]


@pytest.mark.parametrize("kind", sorted(PATHS))
def test_it_has_a_path_to_every_state_in_the_walk_table(kind: str) -> None:
    machine = MACHINES[kind]
    assert set(PATHS[kind]) == set(machine.states)
    for state, path in PATHS[kind].items():
        current = machine.initial
        for action in path:
            t = machine.find(action, current)
            assert t is not None, (state, path, action)
            current = t.target or current
        assert current == state


def _walk_and_act(session: Any, ctx: Any, case: Case, action: str, source: str) -> Case:
    def step(name: str) -> None:
        # A lapse is the engine's alone (not even an administrator's), as at a real deadline.
        by = ctx.as_system() if name == "lapse" else ctx
        act(session, by, case, name, reason="测试理由", params=_params(case.kind, name))

    for name in PATHS[case.kind][source]:
        step(name)
    assert case.state == source
    step(action)
    return case


def test_it_performs_every_cluster_transition(seeded: Any, make_ctx: Any) -> None:
    ctx = make_ctx()
    with seeded.write() as session:
        for action, source in _pairs("cluster_application"):
            case = _walk_and_act(session, ctx, cluster_case(session, ctx), action, source)
            assert case.state == CLUSTER_APPLICATION.find(action, source).target, (action, source)  # type: ignore[union-attr]


def test_it_performs_every_jingpin_transition(seeded: Any, make_ctx: Any) -> None:
    ctx = make_ctx()
    with seeded.write() as session:
        soe = recommender(session, ctx, "浙江省机电集团有限公司", "soe_group").id
        for action, source in _pairs("jingpin_application"):
            # Only a direct recommender (SOE group, association) may recommend before the county approves.
            rec = soe if (action, source) == ("recommend", "submitted") else None
            case = _walk_and_act(session, ctx, jingpin_case(session, ctx, recommender_id=rec), action, source)
            assert case.state == JINGPIN_APPLICATION.find(action, source).target, (action, source)  # type: ignore[union-attr]


def test_it_performs_every_recommendation_transition(seeded: Any, make_ctx: Any) -> None:
    ctx = make_ctx()
    cities = ["宁波市", "温州市", "嘉兴市", "湖州市", "绍兴市", "金华市", "衢州市", "台州市", "丽水市"]
    with seeded.write() as session:
        for city, (action, source) in zip(cities, _pairs("recommendation"), strict=False):
            case = get_case(session, f"RC26-CL-{code(city)}")
            _walk_and_act(session, ctx, case, action, source)
            assert case.state == (RECOMMENDATION.find(action, source).target or source), (action, source)  # type: ignore[union-attr]
            if action == "attach":
                assert case.letter == "杭州市推荐函（签章版）.pdf"


def test_it_performs_every_roster_transition(seeded: Any, make_ctx: Any) -> None:
    ctx = make_ctx()
    with seeded.write() as session:
        for city, (action, source) in zip(["台州市", "丽水市", "舟山市"], _pairs("roster"), strict=True):
            case = get_case(session, f"RS26-JP-{code(city)}")
            _walk_and_act(session, ctx, case, action, source)
            assert case.state == ROSTER.find(action, source).target, (action, source)  # type: ignore[union-attr]
