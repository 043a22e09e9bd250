from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from calendars.timeutil import parse_deadline, parse_instant
from calendars.workdays import (
    CACHE_DIR_ENV,
    DEFAULT_WORKDAYS_FILE,
    WORKDAYS_FILE_ENV,
    UnknownYearError,
    WorkCalendar,
    WorkdaysFileError,
    load_default_calendar,
)


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own library cache, so that the pinned arrangements below are checked
    against the library itself, not against a file an earlier run left."""
    cache = tmp_path / "cache"
    monkeypatch.setenv(CACHE_DIR_ENV, str(cache))
    return cache


# The State Council's arrangements, typed in from the notices, independent of the library:
# (first day off, last day off) per holiday, and the weekend days that are worked (调休).
OFFICIAL = {
    2025: {
        "days_off": [
            (date(2025, 1, 1), date(2025, 1, 1)),  # 元旦
            (date(2025, 1, 28), date(2025, 2, 4)),  # 春节
            (date(2025, 4, 4), date(2025, 4, 6)),  # 清明节
            (date(2025, 5, 1), date(2025, 5, 5)),  # 劳动节
            (date(2025, 5, 31), date(2025, 6, 2)),  # 端午节
            (date(2025, 10, 1), date(2025, 10, 8)),  # 国庆节、中秋节
        ],
        "worked_weekends": [
            date(2025, 1, 26),
            date(2025, 2, 8),
            date(2025, 4, 27),
            date(2025, 9, 28),
            date(2025, 10, 11),
        ],
    },
    2026: {
        "days_off": [
            (date(2026, 1, 1), date(2026, 1, 3)),  # 元旦
            (date(2026, 2, 15), date(2026, 2, 23)),  # 春节
            (date(2026, 4, 4), date(2026, 4, 6)),  # 清明节
            (date(2026, 5, 1), date(2026, 5, 5)),  # 劳动节
            (date(2026, 6, 19), date(2026, 6, 21)),  # 端午节
            (date(2026, 9, 25), date(2026, 9, 27)),  # 中秋节
            (date(2026, 10, 1), date(2026, 10, 7)),  # 国庆节
        ],
        "worked_weekends": [
            date(2026, 1, 4),
            date(2026, 2, 14),
            date(2026, 2, 28),
            date(2026, 5, 9),
            date(2026, 9, 20),
            date(2026, 10, 10),
        ],
    },
}


def official_working_days(year: int) -> set[date]:
    days_off: set[date] = set()
    for first, last in OFFICIAL[year]["days_off"]:
        day = first
        while day <= last:
            days_off.add(day)
            day += timedelta(days=1)
    working = set()
    day = date(year, 1, 1)
    while day.year == year:
        if day in OFFICIAL[year]["worked_weekends"] or (day.weekday() < 5 and day not in days_off):
            working.add(day)
        day += timedelta(days=1)
    return working


def all_days(year: int) -> list[date]:
    return [
        date(year, 1, 1) + timedelta(days=i) for i in range((date(year + 1, 1, 1) - date(year, 1, 1)).days)
    ]


@pytest.fixture(scope="module")
def cal() -> WorkCalendar:
    return WorkCalendar(DEFAULT_WORKDAYS_FILE)


def write_overrides(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "workdays.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# -- the official arrangements -------------------------------------------------------------------


@pytest.mark.parametrize("year", [2025, 2026])
def test_it_matches_the_state_council_arrangement_for_every_day_of(cal: WorkCalendar, year: int) -> None:
    expected = official_working_days(year)
    wrong = [d for d in all_days(year) if cal.is_working_day(d) != (d in expected)]
    assert wrong == []


def test_it_treats_dragon_boat_2026_as_a_holiday(cal: WorkCalendar) -> None:
    assert not cal.is_working_day(date(2026, 6, 19))


def test_it_treats_saturday_2026_10_10_as_a_working_day(cal: WorkCalendar) -> None:
    assert cal.is_working_day(date(2026, 10, 10))


def test_it_treats_sunday_2026_09_20_as_a_working_day(cal: WorkCalendar) -> None:
    assert cal.is_working_day(date(2026, 9, 20))


def test_it_treats_spring_festival_2026_swapped_saturdays_as_working_days(cal: WorkCalendar) -> None:
    assert cal.is_working_day(date(2026, 2, 14)) and cal.is_working_day(date(2026, 2, 28))


def test_it_names_holidays_in_chinese(cal: WorkCalendar) -> None:
    assert cal.holiday_name(date(2026, 6, 19)) == "端午节"
    assert cal.holiday_name(date(2026, 10, 1)) == "国庆节"
    assert cal.holiday_name(date(2026, 9, 25)) == "中秋节"


def test_it_gives_no_holiday_name_to_a_swapped_working_day(cal: WorkCalendar) -> None:
    assert cal.holiday_name(date(2026, 10, 10)) is None


def test_it_gives_no_holiday_name_to_a_plain_weekend(cal: WorkCalendar) -> None:
    assert cal.holiday_name(date(2026, 6, 27)) is None


# -- stepping ------------------------------------------------------------------------------------


def test_it_steps_over_dragon_boat_2026(cal: WorkCalendar) -> None:
    assert cal.add_working_days(date(2026, 6, 18), 1) == date(2026, 6, 22)


def test_it_counts_back_three_working_days_before_a_deadline_across_dragon_boat(cal: WorkCalendar) -> None:
    # 06-22 Mon, 06-18 Thu and 06-17 Wed are the three working days before 06-23.
    assert cal.add_working_days(date(2026, 6, 23), -3) == date(2026, 6, 17)


def test_it_steps_over_national_day_2026(cal: WorkCalendar) -> None:
    assert cal.add_working_days(date(2026, 9, 30), 1) == date(2026, 10, 8)


def test_it_lands_on_the_swapped_saturday_after_national_day_2026(cal: WorkCalendar) -> None:
    assert cal.add_working_days(date(2026, 9, 30), 3) == date(2026, 10, 10)


def test_it_lands_on_the_swapped_sunday_before_national_day_2026(cal: WorkCalendar) -> None:
    assert cal.add_working_days(date(2026, 9, 18), 1) == date(2026, 9, 20)


def test_it_steps_back_over_national_day_2026(cal: WorkCalendar) -> None:
    assert cal.add_working_days(date(2026, 10, 8), -1) == date(2026, 9, 30)


def test_it_counts_strictly_after_a_non_working_start(cal: WorkCalendar) -> None:
    assert cal.add_working_days(date(2026, 6, 20), 1) == date(2026, 6, 22)


def test_it_returns_the_same_day_for_zero_working_days(cal: WorkCalendar) -> None:
    assert cal.add_working_days(date(2026, 6, 20), 0) == date(2026, 6, 20)


def test_it_steps_across_a_year_boundary(cal: WorkCalendar) -> None:
    assert cal.add_working_days(date(2026, 1, 5), -2) == date(2025, 12, 31)


def test_it_finds_strict_next_and_previous_working_days(cal: WorkCalendar) -> None:
    assert cal.next_working_day(date(2026, 6, 18)) == date(2026, 6, 22)
    assert cal.previous_working_day(date(2026, 6, 22)) == date(2026, 6, 18)


def test_it_keeps_a_working_day_for_on_or_after_and_on_or_before(cal: WorkCalendar) -> None:
    assert cal.working_day_on_or_after(date(2026, 6, 18)) == date(2026, 6, 18)
    assert cal.working_day_on_or_before(date(2026, 6, 18)) == date(2026, 6, 18)


def test_it_moves_a_holiday_for_on_or_after_and_on_or_before(cal: WorkCalendar) -> None:
    assert cal.working_day_on_or_after(date(2026, 10, 1)) == date(2026, 10, 8)
    assert cal.working_day_on_or_before(date(2026, 10, 1)) == date(2026, 9, 30)


# -- counting ------------------------------------------------------------------------------------


def test_it_counts_working_days_in_a_half_open_range(cal: WorkCalendar) -> None:
    assert cal.working_days_between(date(2026, 6, 18), date(2026, 6, 22)) == 1


def test_it_counts_negative_when_the_range_is_reversed(cal: WorkCalendar) -> None:
    assert cal.working_days_between(date(2026, 6, 22), date(2026, 6, 18)) == -1


def test_it_inverts_add_working_days_with_working_days_between(cal: WorkCalendar) -> None:
    start = date(2026, 9, 15)
    assert cal.working_days_between(start, cal.add_working_days(start, 10)) == 10


def test_it_counts_the_working_days_of_2026(cal: WorkCalendar) -> None:
    assert cal.working_days_between(date(2025, 12, 31), date(2026, 12, 31)) == len(
        official_working_days(2026)
    )


def test_it_counts_working_days_left_before_a_24_00_deadline(cal: WorkCalendar) -> None:
    # Thu 06-18 -> 06-22, 06-23, 06-24, 06-25 (06-19 端午 and the weekend do not count).
    assert cal.working_days_left(parse_instant("2026-06-18 10:00"), parse_deadline("2026-06-25 24:00")) == 4


def test_it_counts_zero_working_days_left_on_the_last_day(cal: WorkCalendar) -> None:
    assert cal.working_days_left(parse_instant("2026-06-25 23:59"), parse_deadline("2026-06-25 24:00")) == 0


def test_it_counts_negative_working_days_left_once_overdue_the_same_day(cal: WorkCalendar) -> None:
    assert cal.working_days_left(parse_instant("2026-07-03 18:00"), parse_deadline("2026-07-03 17:30")) == -1


def test_it_counts_negative_working_days_left_days_after_the_deadline(cal: WorkCalendar) -> None:
    assert cal.working_days_left(parse_instant("2026-06-29 09:00"), parse_deadline("2026-06-25 24:00")) == -2


# -- unknown years -------------------------------------------------------------------------------


def test_it_raises_for_2028(cal: WorkCalendar) -> None:
    with pytest.raises(UnknownYearError, match="2028年"):
        cal.is_working_day(date(2028, 3, 1))


def test_it_raises_for_2027_although_the_library_has_its_holidays(cal: WorkCalendar) -> None:
    with pytest.raises(UnknownYearError) as excinfo:
        cal.holiday_name(date(2027, 1, 1))
    assert excinfo.value.year == 2027
    # Staff are sent to the command that loads the year, not to a source file (finding F1).
    assert "用 shenbao calendar load 通知文本.txt 加载2027年的节假日安排" in str(excinfo.value)
    assert "calendars/data/workdays.yaml" not in str(excinfo.value)
    assert excinfo.value.short == "2027年的节假日安排尚未加载（shenbao calendar load）"


def test_it_raises_when_stepping_into_an_unknown_year(cal: WorkCalendar) -> None:
    with pytest.raises(UnknownYearError, match="2027"):
        cal.add_working_days(date(2026, 12, 28), 5)


def test_it_raises_when_counting_into_an_unknown_year(cal: WorkCalendar) -> None:
    with pytest.raises(UnknownYearError, match="2027"):
        cal.working_days_between(date(2026, 12, 1), date(2027, 1, 5))


def test_it_reports_which_years_are_known(cal: WorkCalendar) -> None:
    assert [cal.is_known_year(y) for y in (2025, 2026, 2027, 2028)] == [True, True, False, False]


# -- the override file ---------------------------------------------------------------------------


def test_it_makes_a_year_known_when_the_file_declares_it_official(tmp_path: Path) -> None:
    cal = WorkCalendar(write_overrides(tmp_path, "official_years: [2027]\n"))
    assert cal.is_working_day(date(2027, 1, 4))


def test_it_applies_working_days_holidays_and_removals_from_the_file(tmp_path: Path) -> None:
    path = write_overrides(
        tmp_path,
        "official_years: [2027]\n"
        "years:\n"
        "  2027:\n"
        "    holidays: {2027-02-11: 春节}\n"
        "    working_days: {2027-02-20: 春节调休上班}\n"
        "    removals: [2027-05-04]\n",
    )
    cal = WorkCalendar(path)
    assert cal.holiday_name(date(2027, 2, 11)) == "春节"
    assert cal.is_working_day(date(2027, 2, 20))
    assert cal.is_working_day(date(2027, 5, 4))


def test_it_corrects_a_known_library_year_from_the_file(tmp_path: Path) -> None:
    cal = WorkCalendar(write_overrides(tmp_path, "years:\n  2026:\n    holidays: {2026-06-22: 测试假日}\n"))
    assert cal.add_working_days(date(2026, 6, 18), 1) == date(2026, 6, 23)


def test_it_keeps_a_year_unknown_when_the_file_has_entries_but_no_official_flag(tmp_path: Path) -> None:
    cal = WorkCalendar(write_overrides(tmp_path, "years:\n  2027:\n    working_days: {2027-02-20: 调休}\n"))
    with pytest.raises(UnknownYearError):
        cal.is_working_day(date(2027, 2, 20))


def test_it_ignores_the_library_for_a_year_when_asked(tmp_path: Path) -> None:
    path = write_overrides(tmp_path, "official_years: [2027]\nyears:\n  2027:\n    ignore_library: true\n")
    assert WorkCalendar(path).is_working_day(date(2027, 10, 4))


def test_it_names_the_custom_file_in_the_unknown_year_error(tmp_path: Path) -> None:
    path = write_overrides(tmp_path, "official_years: []\n")
    with pytest.raises(UnknownYearError, match=str(path)):
        WorkCalendar(path).is_working_day(date(2028, 1, 3))


def test_it_rejects_a_date_filed_under_the_wrong_year(tmp_path: Path) -> None:
    with pytest.raises(WorkdaysFileError, match="2028"):
        WorkCalendar(write_overrides(tmp_path, "years:\n  2027:\n    holidays: {2028-01-01: 元旦}\n"))


def test_it_rejects_a_date_listed_as_holiday_and_working_day(tmp_path: Path) -> None:
    text = "years:\n  2027:\n    holidays: {2027-02-20: a}\n    working_days: {2027-02-20: b}\n"
    with pytest.raises(WorkdaysFileError, match="2027-02-20"):
        WorkCalendar(write_overrides(tmp_path, text))


def test_it_rejects_unknown_keys_in_the_file(tmp_path: Path) -> None:
    with pytest.raises(WorkdaysFileError, match="offical_years"):
        WorkCalendar(write_overrides(tmp_path, "offical_years: [2027]\n"))


def test_it_loads_the_file_named_by_the_environment(tmp_path: Path) -> None:
    path = write_overrides(tmp_path, "official_years: [2027]\n")
    cal = load_default_calendar({WORKDAYS_FILE_ENV: str(path)})
    assert cal.is_known_year(2027)


def test_it_loads_the_packaged_file_without_the_environment_variable() -> None:
    assert not load_default_calendar({}).is_known_year(2027)


def test_it_names_the_setting_when_the_environment_file_is_missing(tmp_path: Path) -> None:
    with pytest.raises(WorkdaysFileError, match=WORKDAYS_FILE_ENV):
        load_default_calendar({WORKDAYS_FILE_ENV: str(tmp_path / "missing.yaml")})


def _cached(cache: Path, year: int) -> Path:
    (found,) = (cache / "workdays").glob(f"holidays-china-{year}-*.json")
    return found


def test_a_year_the_library_computed_is_read_back_from_the_cache(own_cache: Path) -> None:
    assert WorkCalendar().holiday_name(date(2026, 10, 1)) == "国庆节"
    # What the next process reads is the file, not the library: a day written into it shows.
    path = _cached(own_cache, 2026)
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["holidays"]["2026-03-03"] = "缓存中的假日"
    path.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    again = WorkCalendar()
    assert again.holiday_name(date(2026, 3, 3)) == "缓存中的假日"
    assert not again.is_working_day(date(2026, 2, 16)) and again.is_working_day(date(2026, 2, 14))


def test_the_override_file_still_applies_over_a_cached_year(own_cache: Path, tmp_path: Path) -> None:
    WorkCalendar().is_working_day(date(2026, 3, 3))  # cached now
    path = tmp_path / "w.yaml"
    path.write_text("years:\n  2026:\n    holidays:\n      2026-03-03: 本地假日\n", encoding="utf-8")
    assert WorkCalendar(path).holiday_name(date(2026, 3, 3)) == "本地假日"


def test_a_cached_year_without_official_data_is_still_refused(own_cache: Path) -> None:
    assert not WorkCalendar().is_known_year(2031)
    assert json.loads(_cached(own_cache, 2031).read_text(encoding="utf-8"))["swapped"] == []
    with pytest.raises(UnknownYearError, match="2031年"):
        WorkCalendar().is_working_day(date(2031, 5, 6))


def test_an_unreadable_cache_file_is_recomputed_and_rewritten(own_cache: Path) -> None:
    WorkCalendar().is_working_day(date(2026, 1, 5))
    path = _cached(own_cache, 2026)
    path.write_text("{not json", encoding="utf-8")
    assert WorkCalendar().holiday_name(date(2026, 10, 1)) == "国庆节"
    assert "国庆节" in json.loads(path.read_text(encoding="utf-8"))["holidays"].values()


def test_a_cached_year_needs_no_holidays_import(own_cache: Path) -> None:
    # A fresh interpreter is the point: the import is what a cold `shenbao status` saved.
    code = (
        "import sys, datetime\nfrom calendars.workdays import WorkCalendar\n"
        "WorkCalendar().working_days_between(datetime.date(2026, 6, 1), datetime.date(2026, 6, 30))\n"
        "print('holidays' in sys.modules)"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    ]
    assert runs == ["True", "False"]
