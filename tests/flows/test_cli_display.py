"""What the CLI shows of campaigns written blind from FORMAT.md (issue 13, findings F6, F10, F11,
F13): their kinds, choices, per-case deadlines and events by the names their files give them,
never by ids or placeholders.

One world per session: 首台（套） (a returned application whose own resubmission deadline lapses)
and 示范县 (choices with labels, no track) loaded beside the built-in campaigns.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import Result

from tests.flows.conftest import checkpoint_wal, copy_home
from tests.flows.test_cli import Shenbao

ROOT = Path(__file__).resolve().parents[2]
AVAILABLE = ROOT / "calendars" / "campaigns" / "available"
BLIND = ROOT / "tests" / "fixtures" / "blind"
LATE = "2026-09-16T10:00"


@pytest.fixture(scope="session")
def blind_world(initialised_home: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    """The home after ST26-00019 was returned on 09-08 and lapsed at its own deadline (09-15
    24:00), and the refusal of its resubmission on 09-16."""
    home = tmp_path_factory.mktemp("blind") / "home"
    copy_home(initialised_home, home)
    sb = Shenbao(home)
    sb("campaign", "load", str(AVAILABLE / "2026-sttt.yaml"), now="2026-07-28T09:00")
    sb("campaign", "load", str(AVAILABLE / "2026-sfx.yaml"), now="2026-07-28T09:00")
    sb(
        "case",
        "import",
        str(AVAILABLE / "2026-sttt.sample.csv"),
        "--campaign",
        "2026-sttt",
        now="2026-08-03T09:00",
    )
    sb(
        "contacts",
        "import",
        str(BLIND / "2026-sttt" / "省厅通讯录.csv"),
        "--source",
        "省厅",
        now="2026-08-05T10:00",
    )
    sb(
        "case",
        "import",
        str(AVAILABLE / "2026-sfx.sample.csv"),
        "--campaign",
        "2026-sfx",
        now="2026-08-18T09:00",
    )
    sb(
        "case",
        "act",
        "ST26-00019",
        "submit",
        "--as",
        "温州乐清智能电器有限公司",
        "--by",
        "叶乐平",
        now="2026-08-20T10:00",
    )
    sb(
        "case",
        "act",
        "ST26-00019",
        "return",
        "--reason",
        "缺检测报告",
        "--as",
        "乐清市",
        "--by",
        "胡斌",
        now="2026-09-08T10:00",
    )
    sb("tick", now="2026-09-16T09:00")
    refused = sb(
        "case",
        "act",
        "ST26-00019",
        "resubmit",
        "--as",
        "温州乐清智能电器有限公司",
        "--by",
        "叶乐平",
        now=LATE,
        code=3,
    )
    checkpoint_wal(home / "shenbao.db")
    return home, refused


@pytest.fixture
def blind(blind_world: tuple[Path, Result]) -> Shenbao:
    """Read-only commands on the session's world (nothing here writes)."""
    return Shenbao(blind_world[0])


def test_a_refusal_after_a_cases_own_deadline_names_that_date(blind_world: tuple[Path, Result]) -> None:
    message = blind_world[1].stderr
    assert "当前状态为「逾期未提交」" in message
    assert "已于 2026-09-15（周二）24:00 截止" in message and "截止时间 截止" not in message


def test_case_show_gives_the_cases_own_deadline(blind: Shenbao) -> None:
    out = blind("case", "show", "ST26-00019", now=LATE).stdout
    assert "本案件「退回修改后重新提交」截止：2026-09-15（周二）24:00" in out
    [deadline] = blind.json("case", "show", "ST26-00019", now=LATE)["case_deadlines"]
    assert (deadline["stage"], deadline["due_text"]) == ("resubmission", "2026-09-15（周二）24:00")


def test_case_show_shows_choices_by_label_and_no_track_the_form_lacks(blind: Shenbao) -> None:
    out = blind("case", "show", "SF26-00011", now=LATE).stdout
    assert "赛道" not in out and "None" not in out
    assert "  申报类别：提升类" in out and "  主导产业类别：高端装备" in out
    assert "upgrade" not in out and "equipment" not in out
    shown = blind.json("case", "show", "SF26-00011", now=LATE)
    assert shown["attrs"]["category"] == "upgrade" and shown["attrs_shown"]["category"] == "提升类"


def test_history_names_every_event_and_action_in_chinese(blind: Shenbao) -> None:
    out = blind("history", "ST26-00019", now=LATE).stdout
    assert "案件截止时间" in out and "case_deadline" not in out
    assert "「退回修改」后重新计算" in out and "2026-09-15（周二）24:00" in out and "「return」" not in out
    # The refused action by its label, as the machine names it.
    assert "修改后重新提交" in out and "resubmit" not in out


def test_campaign_show_and_status_name_the_per_case_rule_by_the_actions_label(blind: Shenbao) -> None:
    for args in (("campaign", "show", "2026-sttt"), ("status", "--campaign", "2026-sttt")):
        out = blind(*args, now=LATE).stdout
        assert "本案件最近一次「退回修改」之后第 5 个工作日" in out and "「return」" not in out


def test_kind_options_take_the_kinds_of_the_loaded_campaigns(blind: Shenbao) -> None:
    listed = blind.json("case", "list", "--kind", "sttt_application", "--limit", "3", now=LATE)
    assert {c["kind"] for c in listed} == {"sttt_application"}
    by_label = blind.json("case", "list", "--kind", "首台（套）装备认定申报", "--limit", "3", now=LATE)
    assert by_label == listed
    [report] = json.loads(blind("status", "--kind", "sttt_application", "--json", now=LATE).stdout)
    assert report["campaign"] == "2026-sttt"
    wrong = blind("status", "--kind", "shoutai", now=LATE, code=2).stderr
    assert "没有案件类型「shoutai」" in wrong and "sttt_application（首台（套）装备认定申报）" in wrong
    other = blind(
        "case", "list", "--campaign", "2026-sttt", "--kind", "cluster_application", now=LATE, code=2
    )
    assert "批次 2026-sttt 的案件类型为" in other.stderr


def test_roster_list_names_a_third_programs_contacts(blind: Shenbao) -> None:
    out = blind("roster", "list", "--city", "杭州市", now=LATE).stdout
    works = {
        line.split("│")[3].strip(): line.split("│")[7].strip()
        for line in out.splitlines()
        if "申报联系人" in line
    }
    assert works["郑晓峰"] == "首台套" and works["陈晓东"] == "示范县创建", out


def test_a_contact_on_every_loaded_program_is_listed_as_working_on_all() -> None:
    from flows.cli import _works_on

    names = {"cluster": "集群遴选", "jingpin": "制造精品", "sttt": "首台套"}
    assert _works_on([], names) == "全部"
    assert _works_on(["cluster", "jingpin", "sttt"], names) == "全部"  # a roster's 「全部」, as stored
    assert _works_on(["cluster", "sttt"], names) == "集群遴选、首台套"


def test_campaign_form_lists_the_other_spellings_of_a_choice(blind: Shenbao) -> None:
    out = blind("campaign", "form", "2026-sfx", now=LATE).stdout
    assert "也认：创建→创建类、提升→提升类" in out
    category = next(
        f for f in blind.json("campaign", "form", "2026-sfx", now=LATE)["fields"] if f["key"] == "category"
    )
    assert category["synonyms"] == {"创建": "创建类", "提升": "提升类"}


def test_campaign_load_reports_every_change_campaign_diff_shows(
    blind_world: tuple[Path, Result], tmp_path: Path
) -> None:
    copy_home(blind_world[0], tmp_path / "home")
    sb = Shenbao(tmp_path / "home")
    v2 = str(BLIND / "2026-sttt" / "v2-changed.yaml")
    diff = sb("campaign", "diff", str(AVAILABLE / "2026-sttt.yaml"), v2, now=LATE).stdout
    loaded = sb("campaign", "load", v2, now=LATE).stdout
    for line in diff.splitlines():
        assert line.removeprefix("- ") in loaded, (line, loaded)
    assert "推荐名额（quotas）[city].limits.330900：2 → 3" in loaded and "last-day" in loaded


def test_state_options_take_a_state_of_the_loaded_machines_by_id_or_label(blind: Shenbao) -> None:
    by_label = blind.json("case", "list", "--campaign", "2026-sttt", "--state", "逾期未提交", now=LATE)
    assert "ST26-00019" in {c["ref"] for c in by_label} and {c["state"] for c in by_label} == {"lapsed"}
    wrong = blind("case", "list", "--kind", "sttt_application", "--state", "逾期", now=LATE, code=2).stderr
    assert "没有状态「逾期」" in wrong and "lapsed（逾期未提交）" in wrong
