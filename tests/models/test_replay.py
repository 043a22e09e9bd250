"""The replay: every case's state and every stage's deadline must be what the audit events imply.

The database is changed the way an intruder (or a careless fix by hand) would: plain SQL on the
tables, writing no event, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

from calendars.timeutil import parse_deadline, parse_instant
from models.actions import ActionRefused, close_windows, perform, set_deadline
from models.audit import AuditLog, VerifyReport
from models.campaign import get_campaign
from models.db import Database
from models.imports import import_cases
from models.letters import check_letter
from models.registry import load_campaign
from models.replay import verify
from models.status import list_cases
from tests.models.spine import (
    AFTER_APPLICATION,
    CLUSTER,
    IN_WINDOW,
    actor_for,
    cluster_case,
    code,
    rec_ref,
    state_of,
)

SCENARIO = Path(__file__).resolve().parents[1] / "fixtures" / "scenario"
REVIEW = parse_instant("2026-06-28T10:00")


@pytest.fixture
def lived(seeded: Database, make_ctx: Any) -> dict[str, str]:
    """杭州市's applications through the notice's steps: every kind of event that changes state.

    Imported (bulk creation), submitted, returned and resubmitted, a refusal, drafts lapsing when
    the application window closes, recommendations, a deadline announced and moved, and the city's
    submission marking the undecided ones not recommended.
    """
    with seeded.write() as session:
        import_cases(session, make_ctx(IN_WINDOW), CLUSTER, SCENARIO / "cluster_hangzhou.csv")
    with seeded.read() as session:
        hz = {c.title: c.ref for c in list_cases(session, CLUSTER, kind="cluster_application")}

    def do(ref: str, action: str, who: str | None = None, at: Any = IN_WINDOW, **kw: Any) -> None:
        ctx = make_ctx(at, actor_for(who)) if who else make_ctx(at)
        perform(seeded, ctx, ref, action, **kw)

    for county in ("西湖区", "富阳区", "余杭区", "建德市"):
        do(hz[county], "submit")
    do(hz["建德市"], "return", "杭州市", reason="补充佐证材料")
    do(hz["建德市"], "resubmit")
    do(hz["余杭区"], "return", "杭州市", reason="材料不全")
    with pytest.raises(ActionRefused):
        do(hz["西湖区"], "select")
    with seeded.write() as session:
        assert close_windows(session, make_ctx(AFTER_APPLICATION))
        set_deadline(
            session, make_ctx(REVIEW), CLUSTER, "defence", parse_deadline("2026-08-14 17:00"), "答辩通知"
        )
        set_deadline(
            session, make_ctx(REVIEW), CLUSTER, "defence", parse_deadline("2026-08-15 17:00"), "改期"
        )
    do(hz["西湖区"], "recommend", "杭州市", at=REVIEW)
    do(hz["建德市"], "recommend", "杭州市", at=REVIEW)
    do(
        rec_ref(CLUSTER, code("杭州市")),
        "submit",
        "杭州市",
        at=REVIEW,
        params={"letter": check_letter("推荐函.pdf", b"%PDF-1.4 sealed")},
    )
    assert state_of(seeded, hz["富阳区"]) == state_of(seeded, hz["余杭区"]) == "not_recommended"
    assert state_of(seeded, hz["桐庐县"]) == "lapsed"
    return hz


def check(db: Database, audit: AuditLog) -> VerifyReport:
    with db.snapshot() as session:
        return verify(session, audit)


def sql(db: Database, statement: str, **params: Any) -> None:
    with db.writer.begin() as conn:
        conn.execute(text(statement), params)


def about(report: VerifyReport) -> set[tuple[str, str]]:
    return {(p.kind, p.subject) for p in report.problems}


def test_it_passes_a_database_that_only_the_engine_changed(
    seeded: Database, lived: dict[str, str], audit: AuditLog
) -> None:
    report = check(seeded, audit)
    assert report.ok, report.problems
    assert report.cases >= len(lived) and report.stages == 11 and report.stages_unchecked == 0


def test_it_names_a_case_whose_state_was_changed_without_an_event(
    seeded: Database, lived: dict[str, str], audit: AuditLog
) -> None:
    sql(seeded, "UPDATE \"case\" SET state = 'selected' WHERE ref = 'CL26-00002'")
    report = check(seeded, audit)
    assert about(report) == {("state", "case:CL26-00002")}
    (problem,) = report.problems
    assert "CL26-00002" in problem.message and "selected" in problem.message
    assert problem.seq > 0 and f"第 {problem.seq} 条事件" in problem.message


def test_it_names_a_stage_whose_deadline_was_changed_without_an_event(
    seeded: Database, lived: dict[str, str], audit: AuditLog
) -> None:
    later = "2026-07-10 16:00:00" if seeded.is_sqlite else "2026-07-10 16:00:00+00"
    sql(
        seeded,
        "UPDATE stage_deadline SET due_at = :at WHERE campaign_id = :c AND stage_id = 'city_recommendation'",
        at=later,
        c=CLUSTER,
    )
    report = check(seeded, audit)
    assert about(report) == {("deadline", f"stage:{CLUSTER}/city_recommendation")}
    assert "2026-07-10（周五）24:00" in report.problems[0].message  # what the table says, in local time
    assert "2026-07-03（周五）24:00" in report.problems[0].message  # what the events imply


def test_it_names_a_moved_deadline_put_back_by_hand(
    seeded: Database, lived: dict[str, str], audit: AuditLog
) -> None:
    sql(
        seeded,
        "UPDATE stage_deadline SET version = 2 WHERE campaign_id = :c AND stage_id = 'defence'",
        c=CLUSTER,
    )
    assert about(check(seeded, audit)) == {("deadline", f"stage:{CLUSTER}/defence")}


def test_it_finds_a_changed_state_that_a_later_action_hid(
    seeded: Database, make_ctx: Any, audit: AuditLog
) -> None:
    with seeded.write() as session:
        ref = cluster_case(session, make_ctx()).ref
    # Never submitted: set to submitted by hand, then recommended the ordinary way. The table
    # now agrees with the newest event; the event's own starting point does not.
    sql(seeded, "UPDATE \"case\" SET state = 'submitted' WHERE ref = :ref", ref=ref)
    perform(seeded, make_ctx(REVIEW, actor_for("杭州市")), ref, "recommend")
    report = check(seeded, audit)
    assert about(report) == {("state_gap", f"case:{ref}")}
    assert "「填报中」（draft）" in report.problems[0].message


def test_it_names_a_case_whose_version_was_changed(
    seeded: Database, lived: dict[str, str], audit: AuditLog
) -> None:
    ref = lived["西湖区"]
    sql(seeded, 'UPDATE "case" SET version = version + 1 WHERE ref = :ref', ref=ref)
    assert about(check(seeded, audit)) == {("version", f"case:{ref}")}


def test_it_names_a_case_inserted_without_an_event(
    seeded: Database, lived: dict[str, str], audit: AuditLog
) -> None:
    columns = "ref, campaign_id, kind, state, state_since, org_id, city_code, county_code, title, brand_aligned, attrs, findings, version, created_at, updated_at"
    sql(
        seeded,
        f"INSERT INTO \"case\" ({columns}) SELECT 'CL26-09999', campaign_id, kind, 'recommended', state_since, org_id, "
        "city_code, county_code, title, brand_aligned, attrs, findings, 1, created_at, updated_at "
        'FROM "case" WHERE ref = :ref',
        ref=lived["西湖区"],
    )
    assert about(check(seeded, audit)) == {("state", "case:CL26-09999")}


def test_it_names_a_campaign_file_changed_in_the_table(
    seeded: Database, lived: dict[str, str], audit: AuditLog
) -> None:
    sql(
        seeded,
        "UPDATE campaign SET spec_text = spec_text || :extra WHERE id = :c",
        extra="\n# 名额放宽\n",
        c=CLUSTER,
    )
    assert about(check(seeded, audit)) == {("campaign", f"campaign:{CLUSTER}")}


def test_it_replays_the_deadline_of_a_stage_added_by_a_reloaded_campaign_file(
    seeded: Database, make_ctx: Any, audit: AuditLog
) -> None:
    with seeded.read() as session:
        spec = yaml.safe_load(get_campaign(session, CLUSTER).spec_text)
    spec["stages"].append(
        {
            "id": "archive",
            "name": "归档",
            "actor": "province",
            "subject": "cluster_application",
            "pending_states": ["selected"],
            "deadline": "2026-12-31",
        }
    )
    with seeded.write() as session:
        text_now = yaml.safe_dump(spec, allow_unicode=True, sort_keys=False)
        _, changes = load_campaign(session, make_ctx(REVIEW), text_now, origin="cluster.yaml")
    assert "新增环节 archive" in changes
    report = check(seeded, audit)
    assert report.ok, report.problems
    sql(seeded, "DELETE FROM stage_deadline WHERE stage_id = 'archive'")
    assert about(check(seeded, audit)) == {("deadline_missing", f"stage:{CLUSTER}/archive")}
