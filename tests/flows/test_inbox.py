"""The sync inbox of ``shenbao serve``: exports dropped into a folder are synced and filed away.

A real service (APScheduler, its job store and lock in the test database) over the scenario on
each backend; files are real CSV/XLSX written into a real folder.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from calendars.timeutil import parse_instant
from flows.inbox import check_inbox
from flows.service import Service, ServiceClock, running
from models.audit import AuditEvent
from models.case import Case
from models.db import Database
from models.sheets import write_sheet
from notifications.loopback import LoopbackSMTP
from operations.runtime import Runtime
from tests.flows.test_service import (
    CLUSTER,
    quiet_options,
    scenario_db,  # noqa: F401  (a fixture)
    scenario_runtime,
    wait_for,
)

# The inbox is files and the sync of tests/models/test_sync.py (both backends): SQLite only
# (tests/README.md, rule 4), except one file synced and filed on PostgreSQL too.
pytestmark = pytest.mark.backends("sqlite")

HEADERS = ["申报编号", "申报单位", "细分赛道", "申报状态", "提交时间", "状态时间"]
IN_WINDOW = parse_instant("2026-06-20T11:00")  # 线上申报 is open until 06-25 24:00
SUBMITTED = ["SZJX-2026-0001", "西湖区", "智能终端", "已提交", "2026-06-20 10:30", ""]


@pytest.fixture
def scenario(scenario_db: Database, tmp_path: Path) -> Iterator[Runtime]:  # noqa: F811
    """杭州's scenario (drafts in the open window), a copy of the session's, mail to a loopback server."""
    with LoopbackSMTP() as smtp:
        rt = scenario_runtime(scenario_db, tmp_path, smtp_port=smtp.port)
        yield rt
        rt.db.dispose()


def inbox_of(rt: Runtime) -> Path:
    return rt.settings.resolved_sync_inbox / CLUSTER


def drop(rt: Runtime, name: str, rows: list[list[Any]], *, headers: list[str] = HEADERS) -> Path:
    """An export written completely some time ago (its copy has finished)."""
    folder = inbox_of(rt)
    folder.mkdir(parents=True, exist_ok=True)
    path = write_sheet(folder / name, headers, rows)
    settled = time.time() - 120
    os.utime(path, (settled, settled))
    return path


def case_of(rt: Runtime, number: str) -> Case:
    with rt.db.read() as session:
        return session.execute(select(Case).where(Case.external_id == number)).scalars().one()


def sync_events(rt: Runtime) -> list[AuditEvent]:
    with rt.db.read() as session:
        return list(session.execute(select(AuditEvent).where(AuditEvent.action == "sync")).scalars().all())


def audit_count(rt: Runtime) -> int:
    with rt.db.read() as session:
        return int(session.execute(select(func.count()).select_from(AuditEvent)).scalar_one())


@pytest.mark.backends("sqlite", "postgresql")
def test_the_service_syncs_a_dropped_export_and_files_it_in_done(scenario: Runtime) -> None:
    drop(scenario, "工作台导出.csv", [SUBMITTED])
    options = quiet_options(inbox_seconds=0.2)  # the service's own job picks it up
    with running(Service(scenario, options, ServiceClock.starting_at(IN_WINDOW))):
        done = inbox_of(scenario) / "done" / "工作台导出.csv"
        wait_for(lambda: done.with_name(done.name + ".txt").exists(), what="the file filed in done/")

    assert not (inbox_of(scenario) / "工作台导出.csv").exists()
    assert case_of(scenario, "SZJX-2026-0001").state == "submitted"
    report = done.with_name(done.name + ".txt").read_text(encoding="utf-8")
    assert report.startswith("文件：工作台导出.csv\n批次：2026-cluster-selection\n已同步。")
    assert "→ 已提交" in report
    assert "2026-06-20（周六）10:30" in report  # the platform's time, in Shanghai, with weekday
    [event] = sync_events(scenario)
    requested_by = json.loads(event.details)["requested_by"]
    assert requested_by.startswith("收件箱（放入者未知）@") and str(inbox_of(scenario)) in requested_by


def test_the_same_file_dropped_twice_changes_nothing_the_second_time(scenario: Runtime) -> None:
    inbox = scenario.settings.resolved_sync_inbox
    drop(scenario, "工作台导出.csv", [SUBMITTED])
    [first] = check_inbox(scenario, inbox, now=IN_WINDOW)
    version = case_of(scenario, "SZJX-2026-0001").version
    events = audit_count(scenario)

    drop(scenario, "工作台导出.csv", [SUBMITTED])
    [second] = check_inbox(scenario, inbox, now=parse_instant("2026-06-20T11:05"))

    assert first.ok and second.ok
    assert second.moved_to == inbox_of(scenario) / "done" / "工作台导出-2.csv"  # the first is kept
    assert (inbox_of(scenario) / "done" / "工作台导出.csv").exists()
    assert "已于 2026-06-20（周六）11:00 同步过，结果相同，未作任何改动" in second.summary
    assert case_of(scenario, "SZJX-2026-0001").version == version
    assert audit_count(scenario) == events


def test_a_file_with_a_wrong_layout_goes_to_failed_with_the_reason(scenario: Runtime) -> None:
    inbox = scenario.settings.resolved_sync_inbox
    drop(scenario, "错表.xlsx", [["西湖区", "智能终端"]], headers=["申报单位", "细分赛道"])
    events = audit_count(scenario)

    [outcome] = check_inbox(scenario, inbox, now=IN_WINDOW)

    assert not outcome.ok and outcome.moved_to == inbox_of(scenario) / "failed" / "错表.xlsx"
    why = (inbox_of(scenario) / "failed" / "错表.xlsx.txt").read_text(encoding="utf-8")
    assert "文件格式有误" in why and "错表.xlsx" in why and "申报状态" in why
    assert audit_count(scenario) == events
    assert case_of(scenario, "SZJX-2026-0001").state == "draft"


def test_rows_that_need_a_person_send_the_file_to_failed_and_the_rest_is_applied(scenario: Runtime) -> None:
    inbox = scenario.settings.resolved_sync_inbox
    drop(scenario, "工作台导出.csv", [SUBMITTED, ["", "萧山区", "化纤", "待省级复核", "", ""]])

    [outcome] = check_inbox(scenario, inbox, now=IN_WINDOW)

    assert not outcome.ok and outcome.moved_to.parent.name == "failed"
    why = outcome.moved_to.with_name("工作台导出.csv.txt").read_text(encoding="utf-8")
    assert "部分同步" in why and "无法对应 第3行" in why and "待省级复核" in why
    assert case_of(scenario, "SZJX-2026-0001").state == "submitted"


def test_a_folder_named_after_no_campaign_sends_its_files_to_failed(scenario: Runtime) -> None:
    inbox = scenario.settings.resolved_sync_inbox
    folder = inbox / "2025-cluster"
    folder.mkdir(parents=True)
    path = write_sheet(folder / "导出.csv", HEADERS, [SUBMITTED])
    os.utime(path, (time.time() - 120, time.time() - 120))

    [outcome] = check_inbox(scenario, inbox, now=IN_WINDOW)

    assert not outcome.ok and outcome.moved_to == folder / "failed" / "导出.csv"
    assert "未知的批次：2025-cluster" in (folder / "failed" / "导出.csv.txt").read_text(encoding="utf-8")


def test_a_file_still_being_written_is_left_for_a_later_check(scenario: Runtime) -> None:
    inbox = scenario.settings.resolved_sync_inbox
    folder = inbox_of(scenario)
    folder.mkdir(parents=True)
    fresh = write_sheet(folder / "正在复制.csv", HEADERS, [SUBMITTED])  # modified just now
    # Written under a temporary name, to be renamed when complete (the safe way to drop a file).
    partial = write_sheet(folder / "工作台导出.csv", HEADERS, [SUBMITTED]).rename(
        folder / "工作台导出.csv.part"
    )
    os.utime(partial, (time.time() - 120, time.time() - 120))

    assert check_inbox(scenario, inbox, now=IN_WINDOW) == []
    assert fresh.exists() and partial.exists()
    assert case_of(scenario, "SZJX-2026-0001").state == "draft"

    # The copy finished (its modification time no longer moves): the next check takes it.
    os.utime(fresh, (time.time() - 120, time.time() - 120))
    [outcome] = check_inbox(scenario, inbox, now=IN_WINDOW)
    assert outcome.name == "正在复制.csv" and outcome.ok
    assert partial.exists()  # still not a .csv: never read


def test_a_refused_step_sends_the_whole_file_to_failed_and_only_the_refusal_is_recorded(
    scenario: Runtime,
) -> None:
    inbox = scenario.settings.resolved_sync_inbox
    # The platform recorded the submission ten minutes after 线上申报 closed (06-25 24:00).
    late = ["SZJX-2026-0001", "西湖区", "智能终端", "已提交", "2026-06-26 00:10", ""]
    on_time = ["SZJX-2026-0002", "萧山区", "化纤", "已提交", "2026-06-25 20:00", ""]
    drop(scenario, "工作台导出.csv", [on_time, late])

    [outcome] = check_inbox(scenario, inbox, now=parse_instant("2026-06-26T09:00"))

    assert not outcome.ok and outcome.moved_to.parent.name == "failed"
    why = outcome.moved_to.with_name("工作台导出.csv.txt").read_text(encoding="utf-8")
    assert "整个文件未写入" in why and "第3行" in why and "shenbao deadline set" in why
    assert case_of(scenario, "SZJX-2026-0002").state == "draft"  # the on-time row is not applied either
    with scenario.db.read() as session:
        [refusal] = session.execute(select(AuditEvent).where(AuditEvent.action == "refusal")).scalars().all()
    assert "收件箱（放入者未知）@" in json.loads(refusal.details)["source"]["requested_by"]
    assert sync_events(scenario) == []
