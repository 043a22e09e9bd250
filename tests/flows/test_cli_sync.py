"""``shenbao sync`` as a coordinator runs it: dry run, apply, re-sync, a conflict, audit verify."""

from __future__ import annotations

import json
from pathlib import Path

from models.sheets import write_sheet
from tests.flows.conftest import copy_home
from tests.flows.test_cli import SCENARIO, Shenbao

CLUSTER = "2026-cluster-selection"
HEADERS = ["申报编号", "申报单位", "细分赛道", "申报状态", "提交时间", "状态时间"]
SYNCED = "2026-06-26T09:00"  # the morning after the window closed at 06-25 24:00


def _prepare(initialised_home: Path, home: Path, tmp_path: Path) -> Path:
    copy_home(initialised_home, home)  # as `shenbao init` leaves it
    sb = Shenbao(home)
    sb("case", "import", str(SCENARIO / "cluster_hangzhou.csv"), "--campaign", CLUSTER)
    sb("tick", now="2026-06-26T00:05")  # the window closes: the drafts lapse
    return write_sheet(
        tmp_path / "工作台导出.xlsx",
        HEADERS,
        [
            ["SZJX-2026-0001", "西湖区", "智能终端", "已提交", "2026-06-25 23:50", ""],
            ["", "萧山区", "化纤", "待省级复核", "", ""],
        ],
    )


def test_sync_shows_the_difference_applies_it_once_and_keeps_the_audit_valid(
    tmp_path: Path, initialised_home: Path
) -> None:
    home = tmp_path / "home"
    path = _prepare(initialised_home, home, tmp_path)
    sb = Shenbao(home)

    dry = sb("sync", str(path), "--campaign", CLUSTER, "--dry-run", now=SYNCED, code=3)
    assert "纠正逾期关闭" in dry.stdout and "提交申报" in dry.stdout
    assert "2026-06-25（周四）23:50" in dry.stdout
    assert "待省级复核" in dry.stdout and "试运行，未写入" in dry.stdout
    listed = sb.json("case", "list", "--campaign", CLUSTER, "--kind", "cluster_application", now=SYNCED)
    assert {c["state"] for c in listed} == {"lapsed"}

    applied = json.loads(sb("sync", str(path), "--campaign", CLUSTER, "--json", now=SYNCED, code=3).stdout)
    assert applied["applied"] and [c["actions"] for c in applied["changes"]] == [["correct_lapse", "submit"]]
    assert applied["unplaced"][0]["row"] == 3 and not applied["ok"]

    # The unplaceable row still needs a person: shown again (exit 3), nothing written.
    again = sb("sync", str(path), "--campaign", CLUSTER, now="2026-06-26T10:00", code=3)
    assert "该文件已于 2026-06-26（周五）09:00 同步过" in again.stdout and "待省级复核" in again.stdout

    verify = sb("audit", "verify", now=None)
    assert "2026" not in verify.stderr


def test_sync_names_the_file_and_column_when_the_layout_is_wrong(
    tmp_path: Path, initialised_home: Path
) -> None:
    home = tmp_path / "home"
    _prepare(initialised_home, home, tmp_path)
    bad = write_sheet(tmp_path / "错表.csv", ["申报单位", "细分赛道"], [["西湖区", "智能终端"]])
    result = Shenbao(home)("sync", str(bad), "--campaign", CLUSTER, now=SYNCED, code=2)
    assert "错表.csv" in result.stderr and "申报状态" in result.stderr
