"""Reading a year's 节假日安排: the notice's usual wording, and the YAML form."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from calendars.arrangement import parse_notice, parse_yaml, read_arrangement
from calendars.workdays import UnknownYearError, WorkCalendar, WorkdaysFileError

NOTICE = Path(__file__).resolve().parents[1] / "fixtures" / "2027-holiday-notice.txt"


def test_it_reads_the_notice_s_usual_wording() -> None:
    arrangement, text = read_arrangement(NOTICE)
    assert arrangement.year == 2027
    assert arrangement.source == "国务院办公厅关于2027年部分节假日安排的通知"
    assert len(arrangement.holidays) == 25  # 1 + 9 + 1 + 5 + 1 + 1 + 7
    assert arrangement.holidays[date(2027, 2, 5)] == "春节"
    assert arrangement.holidays[date(2027, 5, 5)] == "劳动节"  # "5月1日（周六）至5日（周三）"
    assert sorted(arrangement.working_days) == [
        date(2027, 2, 20),
        date(2027, 4, 25),
        date(2027, 5, 8),
        date(2027, 9, 26),
        date(2027, 10, 9),
    ]
    assert len(arrangement.digest) == 64 and "（虚构的测试样例" in text


def test_the_year_stays_unknown_until_its_arrangement_is_on_the_calendar() -> None:
    with pytest.raises(UnknownYearError):
        WorkCalendar().is_working_day(date(2027, 1, 4))
    calendar = WorkCalendar().with_arrangements([read_arrangement(NOTICE)[0]])
    assert not calendar.is_working_day(date(2027, 1, 1))
    assert calendar.is_working_day(date(2027, 2, 20))  # a Saturday worked (调休)
    assert calendar.holiday_name(date(2027, 10, 4)) == "国庆节"
    assert calendar.add_working_days(date(2026, 12, 31), 1) == date(2027, 1, 4)


def test_a_weekday_that_does_not_match_the_date_names_the_line() -> None:
    text = NOTICE.read_text(encoding="utf-8").replace(
        "三、清明节：4月5日（周一）", "三、清明节：4月5日（周二）"
    )
    with pytest.raises(WorkdaysFileError, match=r"第 9 行（清明节）：4月5日 是周一，通知写的是周二"):
        parse_notice(text, origin="通知.txt")


def test_a_day_count_that_does_not_match_the_range_is_an_error() -> None:
    text = NOTICE.read_text(encoding="utf-8").replace("共9天", "共8天")
    with pytest.raises(WorkdaysFileError, match="共 9 天，通知写的是共8天"):
        parse_notice(text, origin="通知.txt")


def test_a_holiday_item_it_cannot_read_is_never_skipped() -> None:
    text = NOTICE.read_text(encoding="utf-8").replace(
        "五、端午节：6月9日（周三）放假，共1天。", "五、端午节：端午当天放假。"
    )
    with pytest.raises(WorkdaysFileError, match="第 11 行（端午节）：读不出放假日期"):
        parse_notice(text, origin="通知.txt")


def test_a_worked_weekday_is_refused() -> None:
    text = NOTICE.read_text(encoding="utf-8").replace("2月20日（周六）上班", "2月22日（周一）上班")
    with pytest.raises(WorkdaysFileError, match="本来就是工作日"):
        parse_notice(text, origin="通知.txt")


def test_the_yaml_form_says_the_same_as_data() -> None:
    arrangement = parse_yaml(
        "year: 2027\nsource: 国办发明电〔2026〕X号\nholidays: {2027-01-01: 元旦}\nworking_days: {2027-02-20: 春节调休上班}\n",
        origin="2027.yaml",
    )
    assert arrangement.holidays == {date(2027, 1, 1): "元旦"}
    assert arrangement.working_days == {date(2027, 2, 20): "春节调休上班"}
    with pytest.raises(WorkdaysFileError, match="source 不能为空"):
        parse_yaml("year: 2027\nholidays: {2027-01-01: 元旦}\n", origin="2027.yaml")
    with pytest.raises(WorkdaysFileError, match="不在2027年内"):
        parse_yaml("year: 2027\nsource: x\nholidays: {2026-12-31: 元旦}\n", origin="2027.yaml")
