"""The engine knows states by their role in the machine, never by their names.

tests/fixtures/renamed-states.yaml is the 专精特新 campaign file with every state of its
application machine renamed (pinyin) and its kind and prefix changed. Both files are loaded
into one engine and run through the same season side by side: import, reminders before the
window, submit, the window closing over the drafts, county review, recommend within the
quota, the city's board, the list going in (the undecided declined). Every observation, the
renamed one's states and refs translated back, is the same. The renamed file also lapses a
returned application at its own deadline (5 working days after its return), once, audited.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, func, select

from calendars.campaign import CAMPAIGN_DIR, load_campaign_file
from calendars.workdays import load_default_calendar
from dashboard.queries import city_recommendation
from models.actions import ActionRefused, act, recommendation_case
from models.audit import AuditEvent, AuditLog
from models.campaign import CaseDeadline, get_campaign
from models.case import Case
from models.db import Database
from models.imports import import_cases
from models.letters import Letter
from models.machines import machine_for, machines_of
from models.org import Organisation
from models.outbox import Notification
from models.registry import load_campaign
from models.replay import verify
from notifications.reconcile import reconcile

ORIGINAL = CAMPAIGN_DIR / "available" / "2026-zjtx.yaml"
RENAMED = Path(__file__).resolve().parents[1] / "fixtures" / "renamed-states.yaml"
SAMPLE = CAMPAIGN_DIR / "available" / "2026-zjtx.sample.csv"
# The campaigns loaded here are forgotten after each test (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("campaigns_forgotten")
CALENDAR = load_default_calendar({})
REASON = "按申报材料审核（测试）"
# 舟山: three applications in the sample, a quota of two.
CITY = "330900"
LETTER = Letter(name="推荐函.pdf", sha256="0" * 64, size=1, media_type="application/pdf")

# The renamed file's states, in the original's words.
BACK = {
    "caogao": "draft",
    "yitijiao": "submitted",
    "tuihui": "returned",
    "chehui": "withdrawn",
    "yuqi": "lapsed",
    "xianshen_tongguo": "county_approved",
    "yituijian": "recommended",
    "weituijian": "not_recommended",
    "pingshen_tongguo": "review_passed",
    "pingshen_weitongguo": "review_failed",
    "gongshi": "publicised",
    "yiyi": "objected",
    "rending": "recognised",
    "weirending": "not_recognised",
}


# What the engine derives from a machine's states (models.machines), compared role by role.
STATE_ROLES = ("lapsed", "candidates", "on_list", "undecided", "unreviewed", "declined", "with_recommender")


def test_the_roles_of_the_2026_machines_are_the_sets_the_engine_used_to_name() -> None:
    cluster = machines_of(load_campaign_file(CAMPAIGN_DIR / "2026-cluster-selection.yaml"))
    jingpin = machines_of(load_campaign_file(CAMPAIGN_DIR / "2026-jingpin.yaml"))
    c, j = cluster["cluster_application"], jingpin["jingpin_application"]
    assert c.on_list == {
        "recommended",
        "prelim_passed",
        "prelim_failed",
        "defence_scheduled",
        "defence_held",
        "selected",
        "not_selected",
    }
    assert j.on_list == {
        "recommended",
        "prelim_passed",
        "prelim_failed",
        "site_check",
        "selected",
        "not_selected",
    }
    assert c.lapsed == j.lapsed == {"lapsed"}
    assert c.candidates == {"submitted"} and j.candidates == {"county_approved", "submitted"}
    assert j.unreviewed == {"submitted"} and c.unreviewed == frozenset()
    assert c.undecided == {"submitted", "returned"}
    assert j.undecided == {"submitted", "county_approved", "returned"}
    for m in (c, j):
        assert set(m.states) - m.with_recommender == {"draft", "withdrawn", "lapsed"}
        assert m.declined == {"not_recommended"}
    rec = cluster["recommendation"]
    assert rec.final == {"submitted", "none"} and rec.targets_of("report_none") == {"none"}


def test_the_renamed_machine_has_the_same_roles_under_its_own_names() -> None:
    original = machines_of(load_campaign_file(ORIGINAL))["zjtx_application"]
    renamed = machines_of(load_campaign_file(RENAMED))["qiye_shenqing"]
    for role in STATE_ROLES:
        assert {BACK[s] for s in getattr(renamed, role)} == set(getattr(original, role)), role
    assert BACK[renamed.initial] == original.initial


def test_uses_quota_in_the_file_overrides_what_the_machine_implies() -> None:
    text = RENAMED.read_text(encoding="utf-8").replace(
        "    initial: caogao\n", "    initial: caogao\n    uses_quota: [yituijian]\n", 1
    )
    from calendars.campaign import load_campaign_text

    renamed = machines_of(load_campaign_text(text, origin="t"))["qiye_shenqing"]
    assert renamed.on_list == {"yituijian"}
    bad = text.replace("uses_quota: [yituijian]", "uses_quota: [yituijian, tuijian]")
    with pytest.raises(Exception, match="uses_quota 中的「tuijian」不在 states 中"):
        load_campaign_text(bad, origin="t")


def _season(db: Database, make_ctx: Any, path: Path, actions: dict[str, str] | None = None) -> dict[str, Any]:
    """One campaign's season, as a dict of what one sees, in the original's words. ``actions``:
    the file's id of each of the original's actions it renamed (tests/models/test_action_roles.py)."""
    seen: dict[str, Any] = {}

    def do(action: str) -> str:
        return (actions or {}).get(action, action)

    with db.write() as session:
        campaign, _ = load_campaign(session, make_ctx(), path.read_text(encoding="utf-8"), origin=path.name)
    spec = campaign.spec()
    kind = spec.application_kind
    machine = machine_for(kind, spec.id)
    prefix = machine.prefix

    def word(state: str) -> str:
        return BACK.get(state, state)

    def ref(r: str) -> str:
        return r.replace(prefix, "XX", 1) if r.startswith(prefix) else r.replace(spec.id, "ID")

    window = spec.stage("application")
    assert window.deadline is not None
    now = window.deadline - timedelta(days=20)
    with db.write() as session:
        import_cases(session, make_ctx(now), spec.id, SAMPLE)

    # Reminders before the window closes.
    for days_before in (8, 4, 1):
        with db.write() as session:
            reconcile(session, make_ctx(window.deadline - timedelta(days=days_before, hours=-10)), CALENDAR)
    with db.read() as session:
        seen["reminded"] = session.exec(
            select(func.count()).where(
                Notification.campaign_id == spec.id, Notification.stage_id == window.id
            )
        ).one()

    # Everyone submits but the first two (杭州); blocked applications are refused and stay drafts.
    refused: list[str] = []
    with db.write() as session:
        cases = session.exec(
            select(Case).where(Case.campaign_id == spec.id, Case.kind == kind).order_by(Case.ref)
        ).all()
        for case in cases[2:]:
            try:
                act(session, make_ctx(now), case, do("submit"))
            except ActionRefused as exc:
                if exc.rule != "override_required":
                    refused.append(f"{ref(case.ref)}:{exc.rule}")
                    continue
                overrides = {r: REASON for r in exc.data["rules"]}
                act(session, make_ctx(now), case, do("submit"), overrides=overrides)
    seen["refused"] = refused

    # The window closes over the drafts: they lapse by themselves, into the lapse's state.
    with db.write() as session:
        report = reconcile(session, make_ctx(window.deadline + timedelta(hours=1)), CALENDAR)
    seen["lapsed"] = sorted(ref(r) for r in report.lapsed)
    later = window.deadline + timedelta(days=1)
    with db.write() as session:
        lapsed_case = session.exec(select(Case).where(Case.ref == report.lapsed[0])).one()
        try:
            act(session, make_ctx(later), lapsed_case, do("submit"))
        except ActionRefused as exc:
            seen["submit_after_lapse"] = exc.rule

    # The county passes all but one, which it returns; the city recommends within its quota.
    with db.write() as session:
        submitted = session.exec(
            select(Case)
            .where(
                Case.campaign_id == spec.id,
                Case.kind == kind,
                col(Case.state).in_(sorted(machine.sources_of(do("approve")))),
            )
            .order_by(Case.ref)
        ).all()
        act(session, make_ctx(later), submitted[0], do("return"), reason=REASON)
        for case in submitted[1:]:
            act(session, make_ctx(later), case, do("approve"))
    outcomes: list[str] = []
    with db.write() as session:
        for case in session.exec(
            select(Case)
            .where(Case.campaign_id == spec.id, Case.kind == kind, Case.city_code == CITY)
            .order_by(Case.ref)
        ).all():
            if case.state not in machine.candidates:
                continue
            try:
                act(session, make_ctx(later), case, do("recommend"))
                outcomes.append(f"{ref(case.ref)}:ok")
            except ActionRefused as exc:
                outcomes.append(f"{ref(case.ref)}:{exc.rule}")
    seen["recommend"] = outcomes

    # The city's board: where it may recommend, its list, and the quota used.
    with db.read() as session:
        city = session.get(Organisation, CITY)
        assert city is not None
        board = city_recommendation(session, get_campaign(session, spec.id), city)
        seen["board"] = {
            "candidates": [ref(c.ref) for c in board.candidates],
            "recommended": [ref(c.ref) for c in board.recommended],
            "quotas": [(q.name, q.limit, q.used) for q in board.quotas],
        }

    # The list goes in: every undecided application of the city is declined by the engine.
    with db.write() as session:
        rec = recommendation_case(session, spec.id, CITY)
        assert rec is not None
        act(session, make_ctx(later), rec, "submit", params={"letter": LETTER})
        states = session.exec(
            select(Case.ref, Case.state)
            .where(Case.campaign_id == spec.id, Case.kind == kind)
            .order_by(Case.ref)
        ).all()
    seen["states"] = [(ref(r), word(s)) for r, s in states]
    # Who was told what: the lapse notices of the window closing, the state changes' notices.
    with db.write() as session:
        reconcile(session, make_ctx(later + timedelta(hours=1)), CALENDAR)
    with db.read() as session:
        seen["notices"] = session.exec(
            select(Notification.kind, func.count())
            .where(Notification.campaign_id == spec.id)
            .group_by(Notification.kind)
            .order_by(Notification.kind)
        ).all()
    return seen


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_a_machine_with_other_state_names_runs_the_same_season(
    seeded: Database, make_ctx: Any, audit: AuditLog
) -> None:
    original = _season(seeded, make_ctx, ORIGINAL)
    renamed = _season(seeded, make_ctx, RENAMED)
    assert renamed == original
    # The season did something worth comparing.
    assert (
        original["reminded"] > 0 and original["lapsed"] and original["submit_after_lapse"] == "window_closed"
    )
    assert any(o.endswith(":quota") for o in original["recommend"])
    assert any(o.endswith(":ok") for o in original["recommend"])
    assert "not_recommended" in {s for _r, s in original["states"]}
    assert original["board"]["recommended"]
    with seeded.snapshot() as session:
        assert verify(session, audit).problems == []


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_a_returned_application_lapses_at_its_own_deadline_once(
    seeded: Database, make_ctx: Any, audit: AuditLog
) -> None:
    with seeded.write() as session:
        campaign, _ = load_campaign(session, make_ctx(), RENAMED.read_text(encoding="utf-8"), origin="t")
    spec = campaign.spec()
    opened = spec.stage("application").deadline - timedelta(days=20)  # type: ignore[operator]
    with seeded.write() as session:
        import_cases(session, make_ctx(opened), spec.id, SAMPLE)
        case = session.exec(select(Case).where(Case.campaign_id == spec.id).order_by(Case.ref)).first()
        assert case is not None
        act(session, make_ctx(opened), case, "submit")
        ref = case.ref
    # Returned on Tuesday 2026-07-14: due at the end of the 5th working day, Tue 07-21 24:00.
    returned_at = "2026-07-14T10:00"
    with seeded.write() as session:
        case = session.exec(select(Case).where(Case.ref == ref)).one()
        act(session, make_ctx(returned_at), case, "return", reason=REASON)
        row = session.get(CaseDeadline, (case.id, "resubmission"))
        assert row is not None and row.due_at is not None
        due = row.due_at
    assert due.isoformat() == "2026-07-21T16:00:00+00:00"
    with seeded.write() as session:
        assert ref not in reconcile(session, make_ctx(due - timedelta(microseconds=1)), CALENDAR).lapsed
    with seeded.write() as session:
        assert reconcile(session, make_ctx(due), CALENDAR).lapsed == [ref]
    with seeded.write() as session:
        assert reconcile(session, make_ctx(due + timedelta(hours=2)), CALENDAR).lapsed == []
    with seeded.read() as session:
        case = session.exec(select(Case).where(Case.ref == ref)).one()
        assert case.state == "yuqi"
        lapses = session.exec(
            select(AuditEvent).where(
                AuditEvent.case_id == case.id,
                AuditEvent.action == "state_change",
                AuditEvent.to_value == "yuqi",
            )
        ).all()
    assert len(lapses) == 1
    assert lapses[0].from_value == "tuihui" and lapses[0].actor == "system"
    assert (
        "2026-07-21（周二）24:00" in lapses[0].reason and json.loads(lapses[0].details)["action"] == "lapse"
    )
    with seeded.snapshot() as session:
        assert verify(session, audit).problems == []


def test_validate_tells_the_author_what_each_state_means_to_the_engine(tmp_path: Path) -> None:
    from tests.flows.test_cli import Shenbao

    out = Shenbao(tmp_path / "home")("campaign", "validate", str(RENAMED)).stdout
    line = next(x for x in out.splitlines() if x.strip().startswith("qiye_shenqing 各状态的作用"))
    assert "逾期关闭后 yuqi" in line and "可推荐 xianshen_tongguo" in line
    assert "在推荐名单上（占名额） yituijian、pingshen_tongguo" in line and "未推荐 weituijian" in line
