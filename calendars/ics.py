"""iCalendar (RFC 5545) feeds of deadlines, written by hand to avoid a dependency.

Coordinators subscribe to a feed in Outlook, WPS or a phone calendar; the feed must therefore be
strictly valid and stable:

* every line ends in CRLF and is folded at 75 octets, never inside a UTF-8 character: a Chinese
  summary is 3 octets a character, and a client that meets half a character shows mojibake or
  drops the event;
* times are written in UTC ("Z"), so no VTIMEZONE block is needed and no client can apply its own
  idea of Asia/Shanghai; X-WR-TIMEZONE only tells clients how to display them;
* an event whose start is a ``date`` is an all-day event (``DTSTART;VALUE=DATE``, DTEND the day
  after): a deadline "6月25日24:00" is shown on 06-25 that way, where an instant at 06-26 00:00
  would be shown on the 26th;
* DTSTAMP comes from the caller, so rendering the same events twice gives the same bytes (feeds
  are cached and compared, and tests need no clock);
* UID and SEQUENCE come from the caller: a moved deadline keeps its UID and bumps SEQUENCE, so
  clients update the event instead of showing the old and the new one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

__all__ = ["IcsAlarm", "IcsEvent", "escape_text", "fold_line", "format_duration", "render_calendar"]

_MAX_LINE_OCTETS = 75
_STATUSES = frozenset({"TENTATIVE", "CONFIRMED", "CANCELLED"})
# RFC 5545 TEXT forbids control characters other than HTAB; a stray one (pasted from a Word
# document) would make strict parsers reject the whole feed.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class IcsAlarm:
    """A display alarm ``before`` the event's start (a negative value means after it).

    An all-day event starts at 00:00 of its day in the calendar app's own time zone, so ``before``
    counts from that midnight: ``-timedelta(hours=9)`` rings at 09:00 on the day.
    """

    before: timedelta
    description: str


@dataclass(frozen=True)
class IcsEvent:
    """One event. A deadline is a zero-length instant: ``end`` None or equal to ``start``.

    With ``start`` a ``date`` the event is all-day; ``end`` is then the last day it covers
    (None: the start day only).
    """

    uid: str
    summary: str
    start: datetime | date
    end: datetime | date | None = None
    description: str = ""
    url: str | None = None
    sequence: int = 0
    alarms: Sequence[IcsAlarm] = field(default_factory=tuple)
    last_modified: datetime | None = None
    status: str | None = None


def escape_text(value: str) -> str:
    """Escape a TEXT value: backslash first, then ``;`` ``,`` and newlines (any convention)."""
    value = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    value = value.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return _CONTROL_RE.sub("", value)


def fold_line(line: str) -> str:
    """Fold one content line to at most 75 octets per physical line, joined by CRLF + space.

    Splits only between characters, so every physical line is valid UTF-8 on its own. The
    leading space of a continuation line counts towards its 75 octets.
    """
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    limit = _MAX_LINE_OCTETS
    for char in line:
        width = len(char.encode("utf-8"))
        if size + width > limit:
            pieces.append("".join(current))
            current, size = [], 0
            limit = _MAX_LINE_OCTETS - 1  # room for the continuation's leading space
        current.append(char)
        size += width
    pieces.append("".join(current))
    return "\r\n ".join(pieces)


def _utc(dt: datetime, what: str) -> str:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"ICS {what} 必须带时区：{dt!r}")
    return dt.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def format_duration(delta: timedelta) -> str:
    """RFC 5545 dur-value: ``P1D``, ``PT2H``, ``P1DT2H30M``, ``-PT15M``, ``PT0S``."""
    sign = "-" if delta < timedelta(0) else ""
    total = int(abs(delta).total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    time_part = "".join(
        f"{amount}{unit}" for amount, unit in ((hours, "H"), (minutes, "M"), (seconds, "S")) if amount
    )
    if not days and not time_part:
        return "PT0S"
    return f"{sign}P{f'{days}D' if days else ''}{f'T{time_part}' if time_part else ''}"


def _no_line_breaks(value: str, what: str) -> str:
    # URI values are not TEXT and cannot be escaped; a line break would inject properties.
    if "\r" in value or "\n" in value:
        raise ValueError(f"ICS {what} 不能包含换行：{value!r}")
    return value


def _span(event: IcsEvent) -> tuple[str, str]:
    """DTSTART and DTEND, property parameters included."""
    if not isinstance(event.start, datetime):
        last = event.start if event.end is None else event.end
        if isinstance(last, datetime):
            raise ValueError(f"ICS 全天事件 {event.uid!r} 的结束也必须是日期")
        if last < event.start:
            raise ValueError(f"ICS 事件 {event.uid!r} 的结束时间早于开始时间")
        # DTEND of an all-day event is exclusive: the day after the last day shown.
        after = last + timedelta(days=1)
        return f"DTSTART;VALUE=DATE:{event.start:%Y%m%d}", f"DTEND;VALUE=DATE:{after:%Y%m%d}"
    if isinstance(event.end, date) and not isinstance(event.end, datetime):
        raise ValueError(f"ICS 事件 {event.uid!r} 的开始是时刻，结束也必须是时刻")
    start = _utc(event.start, "start")
    if event.end is not None and event.end < event.start:
        raise ValueError(f"ICS 事件 {event.uid!r} 的结束时间早于开始时间")
    # DTEND equal to DTSTART rather than DURATION:PT0S: every client tried reads it as an
    # instant, and "end None" and "end == start" then render identically.
    end = start if event.end is None else _utc(event.end, "end")
    return f"DTSTART:{start}", f"DTEND:{end}"


def _event_lines(event: IcsEvent, stamp: str) -> list[str]:
    dtstart, dtend = _span(event)
    if event.sequence < 0:
        raise ValueError(f"ICS 事件 {event.uid!r} 的 SEQUENCE 不能为负")
    lines = [
        "BEGIN:VEVENT",
        f"UID:{escape_text(event.uid)}",
        f"DTSTAMP:{stamp}",
        f"SEQUENCE:{event.sequence}",
        dtstart,
        dtend,
        f"SUMMARY:{escape_text(event.summary)}",
    ]
    if event.description:
        lines.append(f"DESCRIPTION:{escape_text(event.description)}")
    if event.url:
        lines.append(f"URL:{_no_line_breaks(event.url, 'URL')}")
    if event.status is not None:
        status = event.status.upper()
        if status not in _STATUSES:
            raise ValueError(f"ICS STATUS 只能是 {sorted(_STATUSES)}，而不是 {event.status!r}")
        lines.append(f"STATUS:{status}")
    if event.last_modified is not None:
        lines.append(f"LAST-MODIFIED:{_utc(event.last_modified, 'last_modified')}")
    for alarm in event.alarms:
        lines += [
            "BEGIN:VALARM",
            "ACTION:DISPLAY",
            f"DESCRIPTION:{escape_text(alarm.description or event.summary)}",
            f"TRIGGER:{format_duration(-alarm.before)}",
            "END:VALARM",
        ]
    lines.append("END:VEVENT")
    return lines


def render_calendar(
    events: Iterable[IcsEvent],
    *,
    name: str,
    stamp: datetime,
    prodid: str = "-//shenbao//申报//ZH",
) -> str:
    """The whole VCALENDAR as text with CRLF line endings (encode it as UTF-8 to serve it)."""
    stamp_text = _utc(stamp, "stamp")
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{escape_text(prodid)}",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-CALNAME:{escape_text(name)}",
        "X-WR-TIMEZONE:Asia/Shanghai",
    ]
    for event in events:
        lines += _event_lines(event, stamp_text)
    lines.append("END:VCALENDAR")
    return "".join(fold_line(line) + "\r\n" for line in lines)
