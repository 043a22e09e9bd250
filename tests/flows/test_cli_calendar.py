"""``shenbao calendar load``: a year's 节假日安排 from the notice's text, dry run first."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.flows.conftest import copy_home
from tests.flows.test_cli import Shenbao

NOTICE = Path(__file__).resolve().parents[1] / "fixtures" / "2027-holiday-notice.txt"


@pytest.fixture
def sb(tmp_path: Path, initialised_home: Path) -> Shenbao:
    copy_home(initialised_home, tmp_path / "home")
    return Shenbao(tmp_path / "home")


def test_it_loads_a_notice_after_a_dry_run_and_says_what_moved(sb: Shenbao) -> None:
    dry = sb("calendar", "load", str(NOTICE), "--dry-run").stdout
    assert "（试运行，未写入）2027年节假日安排第1版：放假 25 天，调休上班 5 天" in dry
    assert "国务院办公厅关于2027年部分节假日安排的通知" in dry and "截止时间：无变化" in dry
    assert sb.json("calendar", "load", str(NOTICE), "--dry-run")["version"] == 1  # nothing was stored
    done = sb("calendar", "load", str(NOTICE)).stdout
    assert "2027年节假日安排第1版" in done and "试运行" not in done
    assert "内容相同，未作改动" in sb("calendar", "load", str(NOTICE)).stdout


def test_a_notice_it_cannot_read_exits_2_naming_the_line(sb: Shenbao, tmp_path: Path) -> None:
    bad = tmp_path / "通知.txt"
    bad.write_text(NOTICE.read_text(encoding="utf-8").replace("共9天", "共8天"), encoding="utf-8")
    result = sb("calendar", "load", str(bad), code=2)
    assert "第 8 行（春节）" in result.stderr and "通知写的是共8天" in result.stderr


def test_a_campaign_due_in_a_year_not_loaded_is_refused_until_calendar_load(
    sb: Shenbao, tmp_path: Path
) -> None:
    sfx = Path(__file__).resolve().parents[2] / "calendars" / "campaigns" / "available" / "2026-sfx.yaml"
    file = tmp_path / "2026-sfx.yaml"
    file.write_text(
        sfx.read_text(encoding="utf-8").replace(
            "deadline: 2026-09-30\n    deadline_text: 各设区市经信局于2026年9月30日",
            "deadline: 2027-01-15\n    deadline_text: 各设区市经信局于2027年1月15日",
        ),
        encoding="utf-8",
    )
    said = "stages[city_recommendation].deadline: 第136行：「设区市推荐并报送推荐函（盖章）」截止时间 2027-01-15（周五）24:00 在2027年"
    assert said in sb("campaign", "validate", str(file), code=2).stderr
    refused = sb("campaign", "load", str(file), code=2).stderr
    assert (
        said in refused and "请先用 shenbao calendar load 加载国务院办公厅的2027年节假日安排通知" in refused
    )
    moved = sb(
        "deadline", "set", "2026-cluster-selection", "defence", "2027-01-11", "--reason", "答辩", code=3
    )
    assert (
        "「现场答辩」截止时间 2027-01-11（周一）24:00 在2027年：2027年的节假日安排（含调休）尚未加载"
        in moved.stderr
    )

    # A December deadline whose later escalation rounds fall in 2027: the load says they are planned now.
    sb("deadline", "set", "2026-jingpin", "local_review", "2026-12-29", "--reason", "年底")
    loaded = sb("calendar", "load", str(NOTICE)).stdout
    assert "2026-jingpin/local_review 督办第2轮：无 → 2027-01-" in loaded
    assert "格式正确" in sb("campaign", "validate", str(file)).stdout
    sb("campaign", "load", str(file))
    shown = sb("campaign", "show", "2026-sfx").stdout
    assert "2027-01-15（周五）24:00" in shown and "尚未加载" not in shown
    sb("deadline", "set", "2026-cluster-selection", "defence", "2027-01-11", "--reason", "答辩")
