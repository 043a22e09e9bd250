"""Status from the platforms: exports read, matched, walked and audited on both backends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import select

from calendars.campaign import CampaignFileError
from calendars.timeutil import parse_instant
from models.actions import act, close_windows
from models.audit import AuditEvent, AuditLog, events_for_case
from models.case import Case
from models.db import Database
from models.machines import CLUSTER_APPLICATION, JINGPIN_APPLICATION
from models.registry import load_campaign
from models.sheets import ImportRejected, write_sheet
from models.sync import SyncReport, sync_file, sync_rows, walks
from tests.models.spine import CLUSTER, JINGPIN, actor_for, cluster_case, jingpin_case

HEADERS = ["申报编号", "申报单位", "所在县（市、区）", "细分赛道", "申报状态", "提交时间", "状态时间"]
JP_HEADERS = [
    "申报编号",
    "企业名称",
    "所在县（市、区）",
    "产品名称及型号",
    "申报状态",
    "提交时间",
    "状态时间",
]
IN_WINDOW = parse_instant("2026-06-20T10:00")
NEXT_MORNING = parse_instant("2026-06-26T09:00")  # the application window closed at 06-25 24:00


def sync(
    db: Database,
    make_ctx: Any,
    path: Path,
    *,
    now: Any = NEXT_MORNING,
    dry_run: bool = False,
    campaign: str = CLUSTER,
) -> SyncReport:
    with db.write() as session:
        return sync_file(session, make_ctx(now), campaign, path, dry_run=dry_run)


def make_cases(db: Database, make_ctx: Any, **kw: Any) -> str:
    with db.write() as session:
        return cluster_case(session, make_ctx(parse_instant("2026-06-01T10:00")), **kw).ref


def state_of(db: Database, ref: str) -> str:
    with db.read() as session:
        case = session.exec(select(Case).where(Case.ref == ref)).one()
        return case.state


def counts(db: Database) -> dict[str, int]:
    tables = ["case", "audit_event", "organisation", "stage_deadline", "campaign", "contact", "audit_head"]
    with db.read() as session:
        return {t: session.execute(text(f'SELECT COUNT(*) FROM "{t}"')).scalar_one() for t in tables}


def export(
    tmp_path: Path, rows: list[list[Any]], *, name: str = "平台导出.csv", headers: list[str] = HEADERS
) -> Path:
    return write_sheet(tmp_path / name, headers, rows, title_lines=["数智经信工作台 申报列表导出"])


# -- effective time ---------------------------------------------------------------------------


def test_an_on_time_submission_synced_after_the_lapse_is_corrected_and_submitted(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    ref = make_cases(seeded, make_ctx)
    with seeded.write() as session:
        close_windows(session, make_ctx(parse_instant("2026-06-26T00:00")))
    assert state_of(seeded, ref) == "lapsed"
    path = export(tmp_path, [["P-001", "西湖区", "", "智能终端", "已提交", "2026-06-25 23:50", ""]])

    report = sync(seeded, make_ctx, path)

    assert state_of(seeded, ref) == "submitted"
    [change] = report.changes
    assert change.actions == ["correct_lapse", "submit"] and change.corrected_lapse
    assert change.effective_at == parse_instant("2026-06-25T23:50")
    with seeded.read() as session:
        case = session.exec(select(Case).where(Case.ref == ref)).one()
        assert case.external_id == "P-001"
        events = events_for_case(session, case.id)  # type: ignore[arg-type]
    lapse, correction, submit = [e for e in events if e.action == "state_change"]
    assert (lapse.from_value, lapse.to_value) == ("draft", "lapsed")  # history is not rewritten
    assert (correction.from_value, correction.to_value, correction.actor) == ("lapsed", "draft", "平台同步")
    assert "2026-06-25（周四）23:50" in correction.reason
    assert submit.at == parse_instant("2026-06-25T23:50")  # judged, and recorded, at the platform's time
    platform = json.loads(submit.details)["params"]["platform"]
    assert platform["synced_at"] == NEXT_MORNING.isoformat()
    assert platform["source"]["file"] == path.name and platform["source"]["row"] == 3


def test_a_submission_the_platform_recorded_after_the_deadline_is_refused_and_nothing_is_written(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    late = make_cases(seeded, make_ctx)
    fine = make_cases(seeded, make_ctx, county="拱墅区")
    with seeded.write() as session:
        close_windows(session, make_ctx(parse_instant("2026-06-26T00:00")))
    path = export(
        tmp_path,
        [
            ["P-002", "拱墅区", "", "智能终端", "已提交", "2026-06-25 20:00", ""],
            ["P-001", "西湖区", "", "智能终端", "已提交", "2026-06-26 00:10", ""],
        ],
    )
    before = counts(seeded)

    report = sync(seeded, make_ctx, path)

    assert report.refused is not None and report.refused.row == 4 and report.refused.ref == late
    assert report.refused.rule == "window_closed" and not report.applied
    assert state_of(seeded, late) == state_of(seeded, fine) == "lapsed"  # the good row is not applied either
    after = counts(seeded)
    assert after["audit_event"] == before["audit_event"] + 1  # only the refusal
    with seeded.read() as session:
        last = session.exec(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()  # type: ignore[attr-defined]
    assert last is not None and last.action == "refusal" and "第4行" in last.reason


# -- walking the machine ----------------------------------------------------------------------


def test_it_finds_the_shortest_walks_without_the_engines_own_transitions() -> None:
    [first, *_] = walks(CLUSTER_APPLICATION, "draft", "recommended")
    assert [t.action for t in first] == ["submit", "recommend"]
    paths = [[t.action for t in p] for p in walks(JINGPIN_APPLICATION, "draft", "recommended")]
    assert paths == [["submit", "recommend"], ["submit", "approve", "recommend"]]  # no detours
    assert walks(CLUSTER_APPLICATION, "withdrawn", "recommended") == []
    assert walks(CLUSTER_APPLICATION, "submitted", "draft") == []  # behind: nothing but lapse leads there


def test_a_state_jump_walks_the_machine_action_by_action(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    ref = make_cases(seeded, make_ctx)
    path = export(
        tmp_path, [["", "西湖区", "", "智能终端", "已推荐", "2026-06-10 09:00", "2026-06-18 15:00"]]
    )

    report = sync(seeded, make_ctx, path, now=IN_WINDOW)

    assert state_of(seeded, ref) == "recommended"
    [change] = report.changes
    assert change.actions == ["submit", "recommend"] and change.effective_at == parse_instant(
        "2026-06-18T15:00"
    )
    with seeded.read() as session:
        case = session.exec(select(Case).where(Case.ref == ref)).one()
        assert case.quota_bucket is not None  # the recommendation counted against the city's quota
        steps = [(e.to_value, e.at) for e in events_for_case(session, case.id) if e.action == "state_change"]  # type: ignore[arg-type]
    assert steps == [
        ("submitted", parse_instant("2026-06-10T09:00")),
        ("recommended", parse_instant("2026-06-18T15:00")),
    ]


def test_a_jingpin_jump_goes_through_the_county_when_the_city_recommends(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    with seeded.write() as session:
        case = jingpin_case(session, make_ctx(), enterprise="杭州精工有限公司", product="数控机床 X1")
    path = export(
        tmp_path,
        [
            [
                "JP-9",
                "杭州精工有限公司",
                "西湖区",
                "数控机床 X1",
                "已推荐",
                "2026-06-10 09:00",
                "2026-06-18 15:00",
            ]
        ],
        headers=JP_HEADERS,
    )

    report = sync(seeded, make_ctx, path, now=IN_WINDOW, campaign=JINGPIN)

    assert [c.actions for c in report.changes] == [["submit", "approve", "recommend"]]
    assert state_of(seeded, case.ref) == "recommended"


# -- conflicts, unknown words, new cases -----------------------------------------------------------


def test_a_row_contradicting_the_history_is_a_conflict_and_the_rest_is_applied(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    withdrawn = make_cases(seeded, make_ctx)
    other = make_cases(seeded, make_ctx, county="拱墅区")
    with seeded.write() as session:
        case = session.exec(select(Case).where(Case.ref == withdrawn)).one()
        act(session, make_ctx(IN_WINDOW, actor_for("西湖区")), case, "withdraw", reason="不再申报")
    path = export(
        tmp_path,
        [
            ["", "西湖区", "", "智能终端", "已推荐", "", "2026-06-21 10:00"],
            ["", "拱墅区", "", "智能终端", "已提交", "2026-06-21 09:00", ""],
        ],
    )

    report = sync(seeded, make_ctx, path, now=parse_instant("2026-06-22T09:00"))

    [conflict] = report.conflicts
    assert (
        conflict.ref == withdrawn and "已推荐" in conflict.platform_says and "已撤回" in conflict.shenbao_has
    )
    assert state_of(seeded, withdrawn) == "withdrawn"
    assert state_of(seeded, other) == "submitted" and report.applied and report.needs_attention


def test_an_unknown_status_word_is_a_row_it_cannot_place_naming_the_known_ones(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    ref = make_cases(seeded, make_ctx)
    path = export(tmp_path, [["", "西湖区", "", "智能终端", "待省级复核", "", ""]])

    report = sync(seeded, make_ctx, path, now=IN_WINDOW)

    [unplaced] = report.unplaced
    assert unplaced.file == path.name and unplaced.row == 3
    assert "待省级复核" in unplaced.why and "市级审核中" in unplaced.why
    assert state_of(seeded, ref) == "draft"


def test_a_row_with_no_case_creates_one_and_walks_it_to_the_platforms_state(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    path = export(
        tmp_path, [["P-77", "余杭经济技术开发区", "余杭区", "智能终端", "已提交", "2026-06-19 16:00", ""]]
    )

    report = sync(seeded, make_ctx, path, now=IN_WINDOW)

    [new] = report.new
    assert state_of(seeded, new.ref) == "submitted"
    with seeded.read() as session:
        case = session.exec(select(Case).where(Case.ref == new.ref)).one()
        assert (case.external_id, case.track, case.title) == ("P-77", "智能终端", "余杭经济技术开发区")
        creator = events_for_case(session, case.id)[0]  # type: ignore[arg-type]
    assert creator.action == "create" and creator.actor == "平台同步"


# -- dry run, re-sync, layout ---------------------------------------------------------------------


def test_the_dry_run_shows_the_difference_and_changes_nothing(
    seeded: Database, make_ctx: Any, audit: AuditLog, tmp_path: Path
) -> None:
    ref = make_cases(seeded, make_ctx)
    with seeded.write() as session:
        close_windows(session, make_ctx(parse_instant("2026-06-26T00:00")))
    path = export(
        tmp_path,
        [
            ["P-001", "西湖区", "", "智能终端", "已提交", "2026-06-25 23:50", ""],
            ["P-77", "余杭经济技术开发区", "余杭区", "智能终端", "已提交", "2026-06-19 16:00", ""],
            ["", "拱墅区", "", "智能终端", "不存在的状态", "", ""],
        ],
    )
    before = counts(seeded)

    report = sync(seeded, make_ctx, path, dry_run=True)

    assert counts(seeded) == before
    assert state_of(seeded, ref) == "lapsed"
    with seeded.read() as session:
        # The anchor outside the database names no event of the undone walk.
        assert audit.verify(session).ok
    # The new case is walked too: created 填报中, then submitted at its 提交时间.
    assert [c.actions for c in report.changes] == [["correct_lapse", "submit"], ["submit"]]
    assert len(report.new) == 1 and len(report.unplaced) == 1 and not report.applied
    # What the dry run showed is what the apply does.
    applied = sync(seeded, make_ctx, path)
    assert [c.actions for c in applied.changes] == [
        ["correct_lapse", "submit"],
        ["submit"],
    ] and applied.applied
    assert [n.ref for n in applied.new] == [n.ref for n in report.new]


def test_syncing_the_same_file_twice_changes_nothing(seeded: Database, make_ctx: Any, tmp_path: Path) -> None:
    ref = make_cases(seeded, make_ctx)
    path = export(tmp_path, [["P-001", "西湖区", "", "智能终端", "已提交", "2026-06-19 16:00", ""]])
    first = sync(seeded, make_ctx, path, now=IN_WINDOW)
    assert first.applied and len(first.changes) == 1
    before = counts(seeded)

    again = sync(seeded, make_ctx, path, now=parse_instant("2026-06-21T10:00"))

    assert counts(seeded) == before
    assert again.already_synced_at == IN_WINDOW and not again.changes and again.unchanged == 1
    assert state_of(seeded, ref) == "submitted"


def test_a_changed_export_layout_is_a_campaign_file_change_only(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    from calendars.campaign import CAMPAIGN_DIR

    text_ = (CAMPAIGN_DIR / "2026-cluster-selection.yaml").read_text(encoding="utf-8")
    text_ = text_.replace("status: {label: 申报状态,", "status: {label: 当前环节,").replace(
        "submitted_at: {label: 提交时间,", "submitted_at: {label: 报送时间,"
    )
    text_ = text_.replace("    已提交: submitted\n", "    已提交: submitted\n    已报送待审: submitted\n")
    with seeded.write() as session:
        load_campaign(session, make_ctx(IN_WINDOW), text_, origin="2026-cluster-selection.yaml（新版导出）")
    ref = make_cases(seeded, make_ctx)
    path = export(
        tmp_path,
        [["西湖区", "智能终端", "已报送待审", "2026-06-19 16:00"]],
        headers=["申报单位", "细分赛道", "当前环节", "报送时间"],
    )

    report = sync(seeded, make_ctx, path, now=IN_WINDOW)

    assert [c.ref for c in report.changes] == [ref] and state_of(seeded, ref) == "submitted"
    # The old layout is now the wrong one: its status column is reported missing, naming the file.
    old = export(tmp_path, [["", "西湖区", "", "智能终端", "已提交", "", ""]], name="旧版.csv")
    with pytest.raises(ImportRejected) as info:
        sync(seeded, make_ctx, old, now=IN_WINDOW)
    assert "旧版.csv" in str(info.value) and "当前环节" in str(info.value)


def test_a_status_mapped_to_a_state_the_machine_lacks_is_refused_naming_the_key(
    seeded: Database, make_ctx: Any
) -> None:
    from calendars.campaign import CAMPAIGN_DIR

    text_ = (CAMPAIGN_DIR / "2026-cluster-selection.yaml").read_text(encoding="utf-8")
    text_ = text_.replace("    已提交: submitted\n", "    已提交: handed_in\n")
    before = counts(seeded)
    with pytest.raises(
        CampaignFileError, match=r"x\.yaml: platform\.statuses\.已提交: 第\d+行：未知状态「handed_in」"
    ):
        with seeded.write() as session:
            load_campaign(session, make_ctx(IN_WINDOW), text_, origin="x.yaml")
    assert counts(seeded) == before


def test_a_lapsed_case_the_platform_shows_submitted_without_a_time_is_a_conflict(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    ref = make_cases(seeded, make_ctx)
    with seeded.write() as session:
        close_windows(session, make_ctx(parse_instant("2026-06-26T00:00")))
    path = export(tmp_path, [["", "西湖区", "", "智能终端", "已提交", "", ""]])

    report = sync(seeded, make_ctx, path)

    [conflict] = report.conflicts
    assert conflict.ref == ref and "提交时间" in conflict.why
    assert state_of(seeded, ref) == "lapsed"


def test_a_number_and_a_name_naming_different_cases_is_not_placed(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    first = make_cases(seeded, make_ctx)
    make_cases(seeded, make_ctx, county="拱墅区")
    export(tmp_path, [["P-1", "西湖区", "", "智能终端", "已提交", "2026-06-19 16:00", ""]], name="a.csv")
    sync(seeded, make_ctx, tmp_path / "a.csv", now=IN_WINDOW)
    path = export(
        tmp_path, [["P-1", "拱墅区", "", "智能终端", "已提交", "2026-06-19 16:00", ""]], name="b.csv"
    )

    report = sync(seeded, make_ctx, path, now=IN_WINDOW)

    [unplaced] = report.unplaced
    assert "P-1" in unplaced.why and first in unplaced.why and not report.changes


def test_pushed_rows_are_read_like_the_export(seeded: Database, make_ctx: Any) -> None:
    ref = make_cases(seeded, make_ctx)
    rows = [
        {"申报单位": "西湖区", "细分赛道": "智能终端", "status": "已提交", "提交时间": "2026-06-19 16:00"}
    ]
    with seeded.write() as session:
        report = sync_rows(session, make_ctx(IN_WINDOW), CLUSTER, rows, source="平台推送")
    assert report.applied and [c.ref for c in report.changes] == [ref]
    assert state_of(seeded, ref) == "submitted"


def test_a_platform_section_without_a_status_column_is_refused_naming_the_key() -> None:
    from calendars.campaign import CAMPAIGN_DIR, load_campaign_text

    text_ = (CAMPAIGN_DIR / "2026-jingpin.yaml").read_text(encoding="utf-8")
    text_ = "\n".join(line for line in text_.splitlines() if not line.startswith("    status: {"))
    with pytest.raises(CampaignFileError, match=r"jp\.yaml: .*\n  platform: .*platform\.columns 须有 status"):
        load_campaign_text(text_, origin="jp.yaml")


def test_a_platform_number_too_long_for_its_column_is_a_row_it_cannot_place(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    ref = make_cases(seeded, make_ctx)
    other = make_cases(seeded, make_ctx, county="拱墅区")
    path = export(
        tmp_path,
        [
            ["P" * 100, "西湖区", "", "智能终端", "已提交", "2026-06-19 16:00", ""],
            ["P-2", "拱墅区", "", "智能终端", "已提交", "2026-06-19 16:00", ""],
        ],
    )

    report = sync(seeded, make_ctx, path, now=IN_WINDOW)

    [unplaced] = report.unplaced
    assert unplaced.row == 3 and "申报编号" in unplaced.why and "最多 80 个" in unplaced.why
    assert state_of(seeded, ref) == "draft" and state_of(seeded, other) == "submitted"
