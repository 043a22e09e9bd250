from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import icalendar
import pytest

from calendars.ics import IcsAlarm, IcsEvent, escape_text, fold_line, format_duration, render_calendar
from calendars.timeutil import LOCAL_TZ, parse_deadline

STAMP = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)
DEADLINE = parse_deadline("2026-06-25 24:00")


def render(*events: IcsEvent, name: str = "申报截止时间") -> str:
    return render_calendar(list(events), name=name, stamp=STAMP)


def unfold(text: str) -> list[str]:
    return text.replace("\r\n ", "").split("\r\n")[:-1]


def event(**overrides: Any) -> IcsEvent:
    fields: dict[str, Any] = {
        "uid": "stage-42@shenbao",
        "summary": "集群遴选：县级网上申报截止",
        "start": DEADLINE,
    }
    fields.update(overrides)
    return IcsEvent(**fields)


def test_it_ends_every_line_with_crlf() -> None:
    text = render(event())
    assert text.endswith("\r\n")
    assert "\n" not in text.replace("\r\n", "")


def test_it_wraps_events_in_a_vcalendar_with_name_and_timezone() -> None:
    lines = unfold(render(event()))
    assert lines[0] == "BEGIN:VCALENDAR" and lines[-1] == "END:VCALENDAR"
    assert "VERSION:2.0" in lines
    assert "PRODID:-//shenbao//申报//ZH" in lines
    assert "X-WR-CALNAME:申报截止时间" in lines
    assert "X-WR-TIMEZONE:Asia/Shanghai" in lines


def test_it_writes_times_in_utc_z_form() -> None:
    assert "DTSTART:20260625T160000Z" in unfold(render(event()))


def test_it_uses_the_injected_stamp_as_dtstamp() -> None:
    assert "DTSTAMP:20260601T000000Z" in unfold(render(event()))


def test_it_renders_a_deadline_without_end_as_a_zero_length_instant() -> None:
    lines = unfold(render(event()))
    assert "DTEND:20260625T160000Z" in lines


def test_it_renders_end_equal_to_start_like_end_none() -> None:
    assert render(event(end=DEADLINE)) == render(event())


def test_it_renders_the_same_bytes_twice() -> None:
    assert render(event()) == render(event())


def test_it_folds_a_long_chinese_summary_at_75_octets_without_splitting_characters() -> None:
    summary = "浙江省先进制造业集群核心区协同区遴选县级网上申报截止提醒" * 6
    text = render(event(summary=summary))
    for physical in text.split("\r\n"):
        raw = physical.encode("utf-8")
        assert len(raw) <= 75
        raw.decode("utf-8")  # raises if a character was cut in half
    assert f"SUMMARY:{summary}" in unfold(text)


def test_it_folds_with_a_leading_space_on_continuation_lines() -> None:
    folded = fold_line("DESCRIPTION:" + "a" * 200)
    assert all(part.startswith(" ") for part in folded.split("\r\n")[1:])
    assert folded.replace("\r\n ", "") == "DESCRIPTION:" + "a" * 200


def test_it_leaves_short_lines_unfolded() -> None:
    assert fold_line("SUMMARY:短") == "SUMMARY:短"


def test_it_escapes_text_values() -> None:
    assert escape_text("a\\b;c,d\ne\r\nf") == "a\\\\b\\;c\\,d\\ne\\nf"


def test_it_escapes_the_summary_and_description_in_the_feed() -> None:
    lines = unfold(render(event(summary="初审;答辩,通知", description="第一行\n第二行")))
    assert "SUMMARY:初审\\;答辩\\,通知" in lines
    assert "DESCRIPTION:第一行\\n第二行" in lines


def test_it_drops_control_characters_from_text() -> None:
    assert escape_text("a\x07b\tc") == "ab\tc"


def test_it_renders_alarms_with_negative_triggers() -> None:
    alarms = [
        IcsAlarm(timedelta(days=3), "还有3天截止"),
        IcsAlarm(timedelta(hours=2, minutes=30), "还有2.5小时"),
    ]
    lines = unfold(render(event(alarms=alarms)))
    assert lines.count("BEGIN:VALARM") == 2
    assert "TRIGGER:-P3D" in lines
    assert "TRIGGER:-PT2H30M" in lines
    assert "ACTION:DISPLAY" in lines
    assert "DESCRIPTION:还有3天截止" in lines


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(days=1, hours=2), "P1DT2H"),
        (-timedelta(minutes=15), "-PT15M"),
        (timedelta(0), "PT0S"),
        (timedelta(seconds=30), "PT30S"),
    ],
)
def test_it_formats_durations_per_rfc_5545(delta: timedelta, expected: str) -> None:
    assert format_duration(delta) == expected


def test_it_writes_sequence_status_url_and_last_modified() -> None:
    lines = unfold(
        render(
            event(
                sequence=2,
                status="confirmed",
                url="https://example.org/c/1",
                last_modified=datetime(2026, 6, 2, 8, 0, tzinfo=UTC),
            )
        )
    )
    assert "SEQUENCE:2" in lines
    assert "STATUS:CONFIRMED" in lines
    assert "URL:https://example.org/c/1" in lines
    assert "LAST-MODIFIED:20260602T080000Z" in lines


def test_it_rejects_an_unknown_status() -> None:
    with pytest.raises(ValueError, match="STATUS"):
        render(event(status="DONE"))


def test_it_rejects_naive_times() -> None:
    with pytest.raises(ValueError, match="时区"):
        render(event(start=datetime(2026, 6, 25, 16, 0)))


def test_it_rejects_an_end_before_the_start() -> None:
    with pytest.raises(ValueError, match="结束时间"):
        render(event(end=DEADLINE - timedelta(hours=1)))


def test_it_rejects_a_url_with_a_line_break() -> None:
    with pytest.raises(ValueError, match="URL"):
        render(event(url="https://example.org/\r\nX-EVIL:1"))


def shown_dates(text: str) -> list[tuple[str, list[date]]]:
    """Each event's summary and the local days a calendar app in Shanghai shows it on."""
    shown = []
    for component in icalendar.Calendar.from_ical(text).walk("VEVENT"):
        start, end = component.decoded("DTSTART"), component.decoded("DTEND")
        if isinstance(start, datetime):
            days = [start.astimezone(LOCAL_TZ).date()]
        else:
            days = [start + timedelta(days=i) for i in range((end - start).days)]
        shown.append((str(component["SUMMARY"]), days))
    return shown


def test_it_shows_an_all_day_event_on_its_own_day_only() -> None:
    text = render(event(start=date(2026, 6, 25)))
    assert "DTSTART;VALUE=DATE:20260625" in unfold(text)
    assert shown_dates(text) == [("集群遴选：县级网上申报截止", [date(2026, 6, 25)])]


def test_it_counts_the_alarms_of_an_all_day_event_from_its_midnight() -> None:
    alarms = [IcsAlarm(timedelta(days=1, hours=15), "还有3天"), IcsAlarm(-timedelta(hours=9), "今天")]
    lines = unfold(render(event(start=date(2026, 6, 25), alarms=alarms)))
    assert "TRIGGER:-P1DT15H" in lines and "TRIGGER:PT9H" in lines


def test_it_rejects_an_all_day_event_ending_at_an_instant() -> None:
    with pytest.raises(ValueError, match="全天事件"):
        render(event(start=date(2026, 6, 25), end=DEADLINE))
