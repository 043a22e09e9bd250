from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from calendars.timeutil import (
    LOCAL_TZ,
    format_date,
    format_deadline,
    format_deadline_from,
    format_duration_zh,
    format_local,
    local_date,
    local_time_on,
    parse_deadline,
    parse_instant,
    start_of_local_day,
    to_local,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# -- parse_instant -------------------------------------------------------------------------------


def test_it_parses_iso_with_offset() -> None:
    assert parse_instant("2026-06-20T09:00:00+08:00") == utc(2026, 6, 20, 1, 0)


def test_it_parses_iso_with_z() -> None:
    assert parse_instant("2026-06-20T01:00:00Z") == utc(2026, 6, 20, 1, 0)


@pytest.mark.parametrize("text", ["2026-06-20 09:00", "2026-06-20T09:00", " 2026-06-20 09:00 "])
def test_it_reads_naive_text_as_shanghai_time(text: str) -> None:
    assert parse_instant(text) == utc(2026, 6, 20, 1, 0)


def test_it_parses_seconds() -> None:
    assert parse_instant("2026-06-20 09:00:30") == utc(2026, 6, 20, 1, 0, 30)


def test_it_reads_a_bare_date_as_local_midnight() -> None:
    assert parse_instant("2026-06-20") == utc(2026, 6, 19, 16, 0)


def test_it_returns_aware_utc() -> None:
    assert parse_instant("2026-06-20 09:00").tzinfo is UTC


@pytest.mark.parametrize(
    "text", ["", "tomorrow", "2026/06/20", "2026-13-01", "2026-06-20 25:00", "20260620T0900"]
)
def test_it_rejects_bad_instants_naming_text_and_forms(text: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_instant(text)
    assert repr(text) in str(excinfo.value)
    assert "可用格式" in str(excinfo.value)


def test_it_rejects_24_00_as_an_instant() -> None:
    with pytest.raises(ValueError, match="24"):
        parse_instant("2026-06-25 24:00")


# -- parse_deadline ------------------------------------------------------------------------------


def test_it_reads_24_00_as_first_instant_of_next_day() -> None:
    assert parse_deadline("2026-06-25 24:00") == start_of_local_day(date(2026, 6, 26))


def test_it_reads_a_date_only_deadline_as_end_of_that_day() -> None:
    assert parse_deadline("2026-07-03") == start_of_local_day(date(2026, 7, 4))


def test_it_reads_a_yaml_date_as_end_of_that_day() -> None:
    assert parse_deadline(date(2026, 7, 3)) == utc(2026, 7, 3, 16, 0)


def test_it_reads_an_exact_local_deadline() -> None:
    assert parse_deadline("2026-07-03 17:30") == utc(2026, 7, 3, 9, 30)


def test_it_reads_an_iso_deadline_with_offset() -> None:
    assert parse_deadline("2026-07-03T17:30:00+08:00") == utc(2026, 7, 3, 9, 30)


def test_it_reads_a_naive_yaml_datetime_deadline_as_local() -> None:
    assert parse_deadline(datetime(2026, 7, 3, 17, 30)) == utc(2026, 7, 3, 9, 30)


def test_it_rejects_24_30() -> None:
    with pytest.raises(ValueError, match="2026-06-25 24:30"):
        parse_deadline("2026-06-25 24:30")


def test_it_rejects_a_bad_deadline_naming_the_24_00_form() -> None:
    with pytest.raises(ValueError, match="24:00"):
        parse_deadline("6月25日")


# -- conversions ---------------------------------------------------------------------------------


def test_it_converts_to_shanghai_without_dst_in_summer_and_winter() -> None:
    assert to_local(utc(2026, 7, 1, 0, 0)).utcoffset() == timedelta(hours=8)
    assert to_local(utc(2026, 1, 1, 0, 0)).utcoffset() == timedelta(hours=8)


def test_it_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="时区"):
        to_local(datetime(2026, 6, 20, 9, 0))


def test_it_takes_the_local_date_not_the_utc_date() -> None:
    assert local_date(utc(2026, 6, 19, 16, 0)) == date(2026, 6, 20)


def test_it_builds_start_of_local_day_in_utc() -> None:
    assert start_of_local_day(date(2026, 6, 26)) == utc(2026, 6, 25, 16, 0)


def test_it_builds_a_local_time_on_a_day() -> None:
    assert local_time_on(date(2026, 7, 3), 17, 30) == utc(2026, 7, 3, 9, 30)


def test_it_accepts_24_00_in_local_time_on() -> None:
    assert local_time_on(date(2026, 6, 25), 24, 0) == start_of_local_day(date(2026, 6, 26))


def test_it_keeps_local_tz_as_shanghai() -> None:
    assert str(LOCAL_TZ) == "Asia/Shanghai"


# -- formatting ----------------------------------------------------------------------------------


def test_it_formats_local_time_with_weekday() -> None:
    assert format_local(utc(2026, 6, 20, 1, 0)) == "2026-06-20（周六）09:00"


def test_it_formats_a_date_with_weekday() -> None:
    assert format_date(date(2026, 6, 25)) == "2026-06-25（周四）"


def test_it_formats_a_midnight_deadline_as_24_00_of_the_day_before() -> None:
    assert format_deadline(parse_deadline("2026-06-25 24:00")) == "2026-06-25（周四）24:00"


def test_it_formats_a_non_midnight_deadline_like_local_time() -> None:
    assert format_deadline(parse_deadline("2026-07-03 17:30")) == "2026-07-03（周五）17:30"


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(days=3, hours=5, minutes=59), "3天5小时"),
        (timedelta(days=2), "2天"),
        (timedelta(hours=5, minutes=12), "5小时12分钟"),
        (timedelta(minutes=45, seconds=59), "45分钟"),
        (timedelta(seconds=30), "不到1分钟"),
        (-timedelta(days=2, hours=3), "已逾期2天3小时"),
    ],
)
def test_it_formats_durations_in_chinese(delta: timedelta, expected: str) -> None:
    assert format_duration_zh(delta) == expected


@pytest.mark.parametrize(
    ("now", "deadline", "said"),
    [
        ("2026-06-26 09:00", "2026-06-28 24:00", "本周日（6月28日）24:00"),
        ("2026-06-26 09:00", "2026-06-29 17:30", "下周一（6月29日）17:30"),
        ("2026-06-28 23:00", "2026-06-28 24:00", "本周日（6月28日）24:00"),
        ("2026-06-26 09:00", "2026-07-10 24:00", "2026-07-10（周五）24:00"),
    ],
)
def test_it_says_a_near_deadline_by_its_week_and_a_far_one_by_its_date(
    now: str, deadline: str, said: str
) -> None:
    assert format_deadline_from(parse_instant(now), parse_deadline(deadline)) == said
