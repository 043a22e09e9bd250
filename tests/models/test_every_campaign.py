"""Every campaign file under calendars/campaigns runs from the file alone.

Data-driven: a new campaign is a new YAML file (and, for the scenario, its sample import file
``<name>.sample.csv`` beside it); nothing here names a campaign. Each file validates; one with
a sample is loaded into a running engine, its sample imported, its applicants reminded before
the window closes, every application submitted (blocked ones refused, 原则上 ones with a
recorded reason), walked to its recommendation, recommended until each recommender's quota is
full (an ``overflow`` quota passing to the next; one more is refused naming the last), walked on
to a final state, and the audit checks.
"""

from __future__ import annotations

from collections import deque
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, func, select

from calendars.campaign import CAMPAIGN_DIR, CampaignSpec, Stage
from calendars.timeutil import local_date, start_of_local_day
from calendars.workdays import load_default_calendar
from models.actions import ActionRefused, act
from models.audit import AuditLog
from models.campaign_check import check_campaign
from models.case import Case
from models.db import Database
from models.forms import read_form
from models.imports import import_cases
from models.machines import Machine, Transition, machine_for
from models.org import Organisation
from models.outbox import Notification
from models.quota import candidates
from models.registry import load_campaign
from models.replay import verify
from notifications.reconcile import reconcile

FILES = sorted(CAMPAIGN_DIR.rglob("*.yaml"))
CALENDAR = load_default_calendar({})
REASON = "按申报材料审核（测试）"


def sample_of(path: Path) -> Path | None:
    return next(
        (p for p in (path.with_name(f"{path.stem}.sample{ext}") for ext in (".csv", ".xlsx")) if p.exists()),
        None,
    )


WITH_SAMPLES = [p for p in FILES if sample_of(p) is not None]


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(CAMPAIGN_DIR)))
def test_every_campaign_file_validates(path: Path) -> None:
    checked = check_campaign(path.read_text(encoding="utf-8"), origin=path.name)
    spec = checked.spec
    # Nor a warning: a shipped file is what a new one is copied from.
    assert checked.problems == [] and checked.warnings == [] and spec is not None
    assert spec.application_kind in spec.kinds or not spec.kinds


def _window(spec: CampaignSpec) -> Stage:
    return next(s for s in spec.stages if s.subject == spec.application_kind and s.window_actions)


def _path(machine: Machine, start: str, targets: set[str]) -> list[Transition] | None:
    """The shortest walk by people's actions (no quota, no engine-only step) into ``targets``."""
    seen, todo = {start}, deque([(start, list[Transition]())])
    while todo:
        state, walked = todo.popleft()
        if state in targets:
            return walked
        for t in machine.allowed(state):
            nxt = t.target or state
            if "quota" in t.guards or set(t.tiers) <= {"system", "platform"} or nxt in seen:
                continue
            seen.add(nxt)
            todo.append((nxt, [*walked, t]))
    return None


def _do(session: Session, ctx: Any, case: Case, t: Transition) -> None:
    params: dict[str, Any] = {"at": ctx.now + timedelta(days=30)} if "defence_time" in t.guards else {}
    try:
        act(session, ctx, case, t.action, reason=REASON, params=params)
    except ActionRefused as exc:
        if exc.rule != "override_required":
            raise
        overrides = {rule: REASON for rule in exc.data["rules"]}
        act(session, ctx, case, t.action, reason=REASON, overrides=overrides, params=params)


@pytest.mark.parametrize("path", WITH_SAMPLES, ids=lambda p: p.stem)
# The same on both databases: SQLite only, to keep the suite cheap.
@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_a_campaign_runs_from_its_file_alone(
    path: Path, seeded: Database, make_ctx: Any, audit: AuditLog
) -> None:
    text = path.read_text(encoding="utf-8")
    sample = sample_of(path)
    assert sample is not None
    with seeded.write() as session:
        campaign, _changes = load_campaign(session, make_ctx(), text, origin=path.name)
    spec = campaign.spec()
    machine = machine_for(spec.application_kind, spec.id)
    window = _window(spec)
    assert window.deadline is not None
    opens = window.opens or start_of_local_day(spec.issued)
    now = opens + timedelta(days=1, hours=2)

    # The sample, all rows or none.
    assert spec.form is not None
    rows = read_form(spec.form, sample)
    with seeded.write() as session:
        summary = import_cases(session, make_ctx(now), spec.id, sample)
    assert len(summary.created) == len(rows)

    # Before the window closes, applicants who have not submitted are reminded (their contacts
    # come from the sample): reconcile in the last days, as the service would.
    for days_before in (8, 4, 2, 1):
        with seeded.write() as session:
            reconcile(session, make_ctx(window.deadline - timedelta(days=days_before, hours=-10)), CALENDAR)
    with seeded.read() as session:
        reminded = session.exec(
            select(func.count()).where(
                Notification.campaign_id == spec.id, Notification.stage_id == window.id
            )
        ).one()
    assert reminded > 0 or not window.reminders

    # Everyone submits within the window: blocked applications are refused, 原则上 ones pass
    # with a recorded reason.
    submitted: list[str] = []
    with seeded.write() as session:
        for case in session.exec(
            select(Case).where(Case.campaign_id == spec.id, Case.kind == machine.kind)
        ).all():
            t = machine.find(window.window_actions[0], case.state)
            assert t is not None
            try:
                _do(session, make_ctx(now), case, t)
                submitted.append(case.ref)
            except ActionRefused as exc:
                assert exc.rule == "eligibility", exc
                assert any(f.severity == "block" for f in exc.findings)
    assert submitted

    # Walked to where a recommender decides, then recommended until each quota is full. A
    # recommendation takes the first of its quotas with a free place (one marked overflow passes
    # to the next when full); when every one is full it is refused naming the last.
    ready = {s for t in machine.transitions if "quota" in t.guards for s in t.sources}
    recommend = next(t for t in machine.transitions if "quota" in t.guards)
    with seeded.write() as session:
        for ref in submitted:
            case = session.exec(select(Case).where(Case.ref == ref)).one()
            walk = _path(machine, case.state, ready)
            assert walk is not None, f"{ref}: no way from {case.state} to {ready}"
            for t in walk:
                _do(session, make_ctx(now), case, t)
    taken: dict[str, int] = {}  # places used so far, by quota bucket
    recommended: list[str] = []
    for ref in submitted:
        with seeded.read() as session:
            case = session.exec(select(Case).where(Case.ref == ref)).one()
            recommender = session.get(Organisation, case.recommender_id or case.city_code)
            applicable = candidates(session, spec, case, recommender)
        free = [q for q in applicable if q.limit is None or taken.get(q.bucket, 0) < q.limit]
        try:
            with seeded.write() as session:
                case = session.exec(select(Case).where(Case.ref == ref)).one()
                _do(session, make_ctx(now), case, recommend)
                bucket = case.quota_bucket
        except ActionRefused as exc:
            assert exc.rule == "quota" and not free, exc
            assert applicable[-1].name in str(exc) and "名额" in str(exc)
            continue
        assert free and bucket == free[0].bucket, (ref, bucket, [q.bucket for q in applicable])
        taken[bucket] = taken.get(bucket, 0) + 1
        recommended.append(ref)
    assert recommended

    # The tiers above finish the recommended cases: each reaches a final state.
    with seeded.write() as session:
        for ref in recommended:
            case = session.exec(select(Case).where(Case.ref == ref)).one()
            walk = _path(machine, case.state, set(machine.final))
            assert walk is not None, f"{ref}: no way from {case.state} to a final state"
            for t in walk:
                _do(session, make_ctx(now), case, t)
            assert case.state in machine.final

    with seeded.snapshot() as session:
        report = verify(session, audit)
    assert report.problems == [], report.problems
    assert local_date(now) <= local_date(window.deadline)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_it_knows_a_campaign_loaded_from_its_own_file_in_a_new_process(
    seeded: Database, make_ctx: Any
) -> None:
    """A command in a fresh process sees a loaded campaign's kinds through the database."""
    if not WITH_SAMPLES:
        pytest.skip("no campaign file with a sample beyond the built-in ones")
    from models import machines

    path = WITH_SAMPLES[0]
    with seeded.write() as session:
        campaign, _ = load_campaign(session, make_ctx(), path.read_text(encoding="utf-8"), origin=path.name)
    kind = campaign.spec().application_kind
    machines._BY_CAMPAIGN.pop(campaign.id, None)  # as if this process had never parsed it
    fresh = Database(seeded.url)
    try:
        assert machine_for(kind).kind == kind
    finally:
        fresh.dispose()
