"""A campaign file's dates against the working days (calendars.campaign_calendar): a deadline in a
year not loaded is refused (F1), one on a day off or counted into a year not loaded is a warning (F7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from calendars.arrangement import read_arrangement
from calendars.campaign import CampaignFileError, load_campaign_text
from calendars.campaign_calendar import calendar_findings, explain_findings
from calendars.workdays import WorkCalendar

ROOT = Path(__file__).resolve().parents[2]
SFX = (ROOT / "calendars" / "campaigns" / "available" / "2026-sfx.yaml").read_text(encoding="utf-8")
CITY = "deadline: 2026-09-30\n    deadline_text: 各设区市经信局于2026年9月30日"
CALENDAR = WorkCalendar()


def findings(text: str, calendar: WorkCalendar = CALENDAR) -> tuple[list[str], list[str]]:
    spec = load_campaign_text(text, origin="x.yaml")
    return explain_findings(calendar_findings(spec, calendar), text, "x.yaml")


def test_the_blind_files_dates_say_nothing() -> None:
    assert findings(SFX) == ([], [])


def test_a_deadline_in_a_year_not_loaded_is_refused_naming_the_stage_and_the_command() -> None:
    refused, warnings = findings(SFX.replace(CITY, CITY.replace("2026-09-30", "2027-01-15")))
    assert warnings == []
    [message] = refused
    assert message.startswith(
        "x.yaml: stages[city_recommendation].deadline: 第136行：「设区市推荐并报送推荐函（盖章）」"
    )
    assert "2027-01-15（周五）24:00 在2027年，2027年的节假日安排尚未加载" in message
    assert "请先用 shenbao calendar load 加载国务院办公厅的2027年节假日安排通知" in message
    assert "deadline: null（另行通知）" in message


def test_it_is_accepted_once_the_year_is_loaded() -> None:
    arrangement, _text = read_arrangement(ROOT / "tests" / "fixtures" / "2027-holiday-notice.txt")
    loaded = CALENDAR.with_arrangements([arrangement])
    assert findings(SFX.replace(CITY, CITY.replace("2026-09-30", "2027-01-15")), loaded) == ([], [])


def test_a_deadline_on_a_holiday_is_a_warning_with_its_weekday_and_name() -> None:
    text = SFX.replace('deadline: "2026-09-18 17:00"', 'deadline: "2026-09-25 17:00"')
    refused, [warning] = findings(text)
    assert refused == []
    assert warning == (
        "x.yaml: stages[application].deadline: 第87行：「县（市、区）在线申报（申报书、创建方案及佐证材料）」"
        "截止时间 2026-09-25（周五）17:00 是中秋节假期，不是工作日；通知确写此日的可不改，否则请核对日期"
    )


def test_a_deadline_on_a_weekend_says_so() -> None:
    [warning] = findings(SFX.replace(CITY, CITY.replace("2026-09-30", "2026-09-27")))[1]
    assert "2026-09-27（周日）24:00 是周日（休息日），不是工作日" in warning


def test_a_deadline_counted_into_a_year_not_loaded_is_a_warning() -> None:
    # 公示 counted from the city's 12-31 (no completed_by on it): 2 working days into 2027.
    text = SFX.replace(CITY, CITY.replace("2026-09-30", "2026-12-31")).replace(
        "deadline: {working_days: 5, after: {stage: defence}}",
        "deadline: {working_days: 2, after: {stage: city_recommendation}}",
    )
    refused, [warning] = findings(text)
    assert refused == []
    assert warning.startswith("x.yaml: stages[publicity].deadline: 第162行：「拟命名名单公示」的截止时间")
    assert "要数到2027年，2027年的节假日安排尚未加载：加载前显示为“另行通知”并注明原因" in warning


def test_completed_by_must_name_an_action_of_the_stage_kind() -> None:
    # Else the 答辩 never completes and the 公示 counted from it stays 另行通知 without a word.
    text = SFX.replace("completed_by: hold_defence", "completed_by: hold_defense")
    with pytest.raises(
        CampaignFileError, match=r"stages\[defence\]\.completed_by: 第153行：.*「hold_defense」不是"
    ):
        load_campaign_text(text, origin="x.yaml")
