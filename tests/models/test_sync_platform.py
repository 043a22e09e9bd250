"""Syncing 2026-wlgc (未来工厂), whose applications are known only from 企业之家网's exports: what the
blind author of that campaign found (briefs/findings-platform.md P1, P5, P6, P9, P11, P12).

The campaign lapses a returned application at its own resubmission deadline (3 working days after
the return), so a lapse is not always a draft's: these tests use its file and sample as they are.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlmodel import select

from calendars.campaign import CAMPAIGN_DIR
from models.actions import close_windows
from models.audit import AuditEvent, events_for_case
from models.case import Case
from models.db import Database
from models.imports import import_cases
from models.registry import load_campaign
from models.sync import SyncReport, sync_rows
from tests.conftest import built_world

# The same on both databases (no SQL of its own): SQLite only, to keep the suite cheap.
pytestmark = pytest.mark.backends("sqlite")

WLGC = "2026-wlgc"
FILE = CAMPAIGN_DIR / "available" / "2026-wlgc.yaml"
SAMPLE = CAMPAIGN_DIR / "available" / "2026-wlgc.sample.csv"
YUHANG = {
    "申报编号": "WLGC2026-0002",
    "企业名称": "杭州余杭新材料股份有限公司",
    "统一社会信用代码": "91330110MA2K0W1A4C",
}


def _wlgc(db: Database, make_ctx: Any, folder: Any) -> dict[str, Any]:
    with db.write() as session:
        load_campaign(
            session, make_ctx("2026-07-06T09:00"), FILE.read_text(encoding="utf-8"), origin=FILE.name
        )
    with db.write() as session:
        import_cases(session, make_ctx("2026-07-20T09:00"), WLGC, SAMPLE)
    return {"db": db}


@pytest.fixture
def wlgc(seeded: Database, request: pytest.FixtureRequest) -> Database:
    return built_world(request, "sync-wlgc", _wlgc)["db"]


def push(db: Database, make_ctx: Any, now: str, *rows: dict[str, str], dry_run: bool = False) -> SyncReport:
    with db.write() as session:
        return sync_rows(session, make_ctx(now), WLGC, list(rows), source="企业之家网导出", dry_run=dry_run)


def case_of(db: Database, number: str) -> Case:
    with db.read() as session:
        return session.exec(select(Case).where(Case.campaign_id == WLGC, Case.external_id == number)).one()


def _returned_then_lapsed(db: Database, make_ctx: Any) -> None:
    """WG26-00002: submitted 07-29, returned 08-07 16:00, lapsed at 08-12 24:00 (3 working days)."""
    push(db, make_ctx, "2026-08-03T09:00", YUHANG | {"申报状态": "已提交", "提交时间": "2026-07-29 15:30"})
    returned = {"申报状态": "退回修改", "状态时间": "2026-08-07 16:00", "提交时间": "2026-07-29 15:30"}
    push(db, make_ctx, "2026-08-10T09:00", YUHANG | returned)
    with db.write() as session:
        close_windows(session, make_ctx("2026-08-13T00:05"), campaign_id=WLGC)
    assert case_of(db, "WLGC2026-0002").state == "lapsed"


# -- P1: an old export does not undo a lapse ------------------------------------------------


def test_an_old_export_still_showing_the_return_leaves_the_resubmission_lapse_standing(
    wlgc: Database, make_ctx: Any
) -> None:
    _returned_then_lapsed(wlgc, make_ctx)
    stale = {"申报状态": "退回修改", "状态时间": "2026-08-07 16:00", "提交时间": "2026-07-29 15:30"}

    report = push(wlgc, make_ctx, "2026-08-17T08:05", YUHANG | stale)

    assert report.changes == [] and report.conflicts == [] and report.unchanged == 1
    assert case_of(wlgc, "WLGC2026-0002").state == "lapsed"


def test_the_first_submission_is_no_proof_against_a_resubmission_lapse(wlgc: Database, make_ctx: Any) -> None:
    _returned_then_lapsed(wlgc, make_ctx)
    first = {"申报状态": "已提交", "提交时间": "2026-07-29 15:30"}  # an export from before the return

    report = push(wlgc, make_ctx, "2026-08-17T08:05", YUHANG | first)

    assert report.changes == [] and case_of(wlgc, "WLGC2026-0002").state == "lapsed"
    [conflict] = report.conflicts
    assert "2026-07-29（周三）15:30" in conflict.why and "早于" in conflict.why and "退回修改" in conflict.why


def test_a_resubmission_in_time_undoes_the_lapse_back_to_the_return_and_resubmits(
    wlgc: Database, make_ctx: Any
) -> None:
    _returned_then_lapsed(wlgc, make_ctx)
    resubmitted = {"申报状态": "已提交", "状态时间": "2026-08-12 15:00", "提交时间": "2026-08-12 15:00"}

    report = push(wlgc, make_ctx, "2026-08-17T08:05", YUHANG | resubmitted)

    [change] = report.changes
    assert change.actions == ["correct_lapse", "resubmit"] and change.corrected_lapse
    case = case_of(wlgc, "WLGC2026-0002")
    assert case.state == "submitted"
    with wlgc.read() as session:
        changes = [e for e in events_for_case(session, case.id) if e.action == "state_change"]  # type: ignore[arg-type]
    assert [(e.from_value, e.to_value) for e in changes[-3:]] == [
        ("returned", "lapsed"),
        ("lapsed", "returned"),
        ("returned", "submitted"),
    ]


def ident(number: str) -> dict[str, str]:
    """The row's 申报编号, 企业名称 and 统一社会信用代码, as the sample has them."""
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()[2:]
    name, code = next(line.split(",")[:2] for line in lines if line.endswith("," + number))
    return {"申报编号": number, "企业名称": name, "统一社会信用代码": code}


def recommended(number: str) -> dict[str, str]:
    return ident(number) | {
        "申报状态": "市级推荐",
        "提交时间": "2026-08-03 10:00",
        "状态时间": "2026-08-17 08:00",
    }


# -- P8: the advice for a refused step fits the rule refused ----------------------------------


def test_a_recommendation_over_the_quota_refuses_the_file_advising_on_the_quota_not_the_deadline(
    wlgc: Database, make_ctx: Any
) -> None:
    numbers = [
        "WLGC2026-0001",
        "WLGC2026-0002",
        "WLGC2026-0003",
        "WLGC2026-0005",
        "WLGC2026-0006",
    ]  # 杭州市: 4

    report = push(wlgc, make_ctx, "2026-08-17T09:00", *(recommended(n) for n in numbers))

    refused = report.refused
    assert refused is not None and refused.rule == "quota" and refused.row == 5
    assert "名额" in refused.advice and "campaign load" in refused.advice
    assert "deadline set" not in refused.advice
    assert case_of(wlgc, "WLGC2026-0001").state == "draft"  # all or nothing


# -- P12: a row it cannot place names the column ----------------------------------------------


def test_an_unknown_status_word_and_an_unknown_county_name_their_columns(
    wlgc: Database, make_ctx: Any
) -> None:
    new = {
        "企业名称": "宁波前湾新材料有限公司",
        "统一社会信用代码": "91330200MA2K0W1C5C",
        "所在县（市、区）": "前湾新区",
    }

    report = push(
        wlgc,
        make_ctx,
        "2026-08-10T09:00",
        ident("WLGC2026-0010") | {"申报状态": "待补正材料"},
        new | {"申报状态": "已提交", "提交时间": "2026-08-07 11:00"},
    )

    status, county = report.unplaced
    assert status.row == 1 and status.why.startswith("「申报状态」：未知的平台状态「待补正材料」")
    assert county.row == 2 and county.why.startswith("「所在县（市、区）」：未知的地区：前湾新区")


# -- P5: the platform's word on who filed, with the conditions it fails on record ----------------


def test_a_submission_failing_a_condition_is_synced_listed_with_its_findings_and_audited(
    wlgc: Database, make_ctx: Any
) -> None:
    qianjiang = ident("WLGC2026-0004") | {
        "申报状态": "已提交",
        "提交时间": "2026-08-04 09:30",
    }  # revenue 4200 < 5000

    report = push(wlgc, make_ctx, "2026-08-10T09:00", qianjiang)

    case = case_of(wlgc, "WLGC2026-0004")
    assert case.state == "submitted"
    [unqualified] = report.unqualified
    assert unqualified.ref == case.ref and unqualified.row == 1
    assert any(f.startswith("✗ [revenue]") for f in unqualified.findings)
    with wlgc.read() as session:
        submit = [e for e in events_for_case(session, case.id) if e.action == "state_change"][-1]  # type: ignore[arg-type]
        sync = session.exec(select(AuditEvent).where(AuditEvent.action == "sync")).one()
    assert "不符合的申报条件" in submit.reason and "[revenue]" in submit.reason
    assert [u["ref"] for u in json.loads(sync.details)["unqualified"]] == [case.ref]


# -- P11: a case the platform alone knows keeps what the export says --------------------------


def test_a_case_created_from_the_platform_keeps_the_exports_fields_and_names_what_it_lacks(
    wlgc: Database, make_ctx: Any
) -> None:
    xiaoshan = {
        "申报编号": "WLGC2026-0022",
        "企业名称": "杭州萧山智控科技有限公司",
        "统一社会信用代码": "91330109MA2K0W1C4B",
        "所在县（市、区）": "萧山区",
        "申报类别": "智能工厂",
        "申报状态": "已提交",
        "提交时间": "2026-08-07 10:00",
    }

    report = push(wlgc, make_ctx, "2026-08-10T09:00", xiaoshan)

    [new] = report.new
    case = case_of(wlgc, "WLGC2026-0022")
    assert case.title == new.title == "杭州萧山智控科技有限公司：（平台导出无工厂（车间）名称）"
    assert case.attrs["category"] == "smart_factory" and case.category == "smart_factory"
    assert case.attrs["county"] == "萧山区" and case.attrs["credit_code"] == "91330109MA2K0W1C4B"
    in_principle = [f for f in case.findings if f["severity"] == "in_principle"]
    assert in_principle and all("平台已受理" in f["override"] for f in in_principle)  # its reason, on record


# -- P6: a backward move is never guessed -----------------------------------------------------


def test_a_recommended_case_the_platform_shows_submitted_is_a_conflict_keeping_its_quota_place(
    wlgc: Database, make_ctx: Any
) -> None:
    push(wlgc, make_ctx, "2026-08-17T09:00", recommended("WLGC2026-0001"))
    assert case_of(wlgc, "WLGC2026-0001").quota_bucket is not None
    back = ident("WLGC2026-0001") | {
        "申报状态": "已提交",
        "状态时间": "2026-08-18 09:00",
        "提交时间": "2026-08-03 10:00",
    }

    report = push(wlgc, make_ctx, "2026-08-18T10:00", back)

    assert report.changes == []
    [conflict] = report.conflicts
    assert "撤销推荐" in conflict.why and "须人工核实" in conflict.why
    case = case_of(wlgc, "WLGC2026-0001")
    assert case.state == "recommended" and case.quota_bucket is not None


# Compares the platform's times with the audit's, which each backend returns in its own way.
@pytest.mark.backends("sqlite", "postgresql")
def test_an_export_older_than_the_cases_last_change_is_a_conflict_not_a_walk(
    wlgc: Database, make_ctx: Any
) -> None:
    approved = {"申报状态": "县级审核通过", "状态时间": "2026-08-06 10:00", "提交时间": "2026-07-28 10:12"}
    push(wlgc, make_ctx, "2026-08-10T09:00", ident("WLGC2026-0001") | approved)
    older = {
        "申报状态": "已提交",
        "状态时间": "2026-07-28 10:12",
        "提交时间": "2026-07-28 10:12",
    }  # the 0803 export

    report = push(wlgc, make_ctx, "2026-08-10T09:30", ident("WLGC2026-0001") | older)

    assert report.changes == [] and case_of(wlgc, "WLGC2026-0001").state == "county_approved"
    [conflict] = report.conflicts
    assert "早于 shenbao 记录的最后一次变化" in conflict.why and "2026-08-06（周四）10:00" in conflict.why


# -- P9: a case gone from a later export is told -------------------------------------------------


def test_a_case_missing_from_a_later_export_is_listed_within_the_cities_it_covers(
    wlgc: Database, make_ctx: Any
) -> None:
    draft = {"申报状态": "填报中", "状态时间": "2026-07-21 09:00"}
    submitted = {"申报状态": "已提交", "提交时间": "2026-07-30 11:00"}
    push(
        wlgc,
        make_ctx,
        "2026-08-03T09:00",
        ident("WLGC2026-0001") | submitted,
        ident("WLGC2026-0003") | draft,
        ident("WLGC2026-0008") | submitted,  # 宁波市
    )

    report = push(wlgc, make_ctx, "2026-08-10T09:00", ident("WLGC2026-0001") | submitted)

    assert [(a.ref, a.state_label, a.last_file) for a in report.absent] == [
        (case_of(wlgc, "WLGC2026-0003").ref, "填报中", "企业之家网导出")
    ]  # 宁波市's case is not this 杭州 export's business
    assert report.changes == [] and not report.needs_attention  # told, not acted on


def test_a_date_without_a_time_on_the_day_of_the_last_change_is_not_an_old_export(
    wlgc: Database, make_ctx: Any
) -> None:
    submitted = {"申报状态": "已提交", "状态时间": "2026-08-04 09:30", "提交时间": "2026-08-04 09:30"}
    push(wlgc, make_ctx, "2026-08-05T09:00", ident("WLGC2026-0001") | submitted)
    approved = {"申报状态": "县级审核通过", "状态时间": "2026-08-04"}  # the platform gave the day only

    report = push(wlgc, make_ctx, "2026-08-05T10:00", ident("WLGC2026-0001") | approved)

    assert report.conflicts == [] and case_of(wlgc, "WLGC2026-0001").state == "county_approved"
