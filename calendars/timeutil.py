"""Instants for machines, Shanghai wall-clock for people.

Everything stored or compared is an aware UTC ``datetime``; everything shown to a person, and
every piece of day arithmetic, happens in Asia/Shanghai. This module is the only place that
converts between the two, so the rest of the code never meets a naive datetime.

Nothing here reads the clock: ``now`` always comes from the caller (the edges read it once, or
take ``--now`` / ``SHENBAO_NOW`` through :func:`parse_instant`).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

__all__ = [
    "LOCAL_TZ",
    "UTC",
    "WEEKDAYS_ZH",
    "format_date",
    "format_deadline",
    "format_deadline_from",
    "format_duration_zh",
    "format_local",
    "local_date",
    "local_time_on",
    "parse_deadline",
    "parse_instant",
    "start_of_local_day",
    "to_local",
]

LOCAL_TZ = ZoneInfo("Asia/Shanghai")

WEEKDAYS_ZH: tuple[str, ...] = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")

# One strict grammar instead of datetime.fromisoformat: fromisoformat also takes ISO week dates
# and basic formats ("20260620T0900"), and a typo in SHENBAO_NOW that still parses silently moves
# the simulated clock. Month/day may be written without a leading zero, as notices often do.
_INSTANT_RE = re.compile(
    r"""
    (?P<y>\d{4})-(?P<mo>\d{1,2})-(?P<d>\d{1,2})
    (?:
        [T\ ]+(?P<h>\d{1,2}):(?P<mi>\d{2})
        (?::(?P<s>\d{2})(?:\.(?P<frac>\d{1,6}))?)?
        \s*(?P<tz>Z|z|[+-]\d{2}:?\d{2})?
    )?
    """,
    re.VERBOSE,
)

_INSTANT_FORMS = (
    "2026-06-20T09:00:00+08:00、2026-06-20T01:00:00Z（带时区的 ISO 8601）；"
    "2026-06-20 09:00、2026-06-20T09:00、2026-06-20 09:00:30（北京时间）；"
    "2026-06-20（当天北京时间 00:00）"
)
_DEADLINE_FORMS = (
    "2026-06-25 24:00（即 6 月 26 日 00:00）；2026-07-03（当天结束，即次日 00:00）；"
    "2026-07-03 17:30（北京时间）；2026-07-03T17:30:00+08:00（带时区的 ISO 8601）"
)


def _require_aware(dt: datetime) -> None:
    # A naive datetime is ambiguous (UTC from the database? Shanghai from a person?); guessing
    # shifts deadlines by eight hours, so it is refused rather than interpreted.
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"拒绝没有时区的 datetime：{dt!r}；请使用带时区的时间（存储一律为 UTC）")


def _parse_offset(text: str) -> timedelta:
    if text in ("Z", "z"):
        return timedelta(0)
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))


def _parse(text: str, *, forms: str, allow_24: bool) -> tuple[date, datetime | None]:
    """Split ``text`` into (local date, exact instant or None when only a date was written)."""
    cleaned = text.strip()
    match = _INSTANT_RE.fullmatch(cleaned)
    if match is None:
        raise ValueError(f"无法识别的时间：{text!r}；可用格式：{forms}")
    try:
        day = date(int(match["y"]), int(match["mo"]), int(match["d"]))
        if match["h"] is None:
            return day, None
        hour, minute = int(match["h"]), int(match["mi"])
        second = int(match["s"] or 0)
        micro = int((match["frac"] or "0").ljust(6, "0"))
        zone: tzinfo = timezone(_parse_offset(match["tz"])) if match["tz"] else LOCAL_TZ
        if hour == 24:
            # "24:00" is how notices write "end of the day"; 24:30 is not a time anywhere.
            if not allow_24 or minute or second or micro:
                raise ValueError("24 点只允许写作 24:00")
            next_midnight = datetime.combine(day + timedelta(days=1), time(0), zone)
            return day, next_midnight.astimezone(UTC)
        local = datetime.combine(day, time(hour, minute, second, micro), zone)
    except ValueError as exc:
        raise ValueError(f"无效的时间：{text!r}（{exc}）；可用格式：{forms}") from None
    return day, local.astimezone(UTC)


def parse_instant(text: str) -> datetime:
    """Parse ``--now`` / ``SHENBAO_NOW``: an instant, written with or without an offset.

    Text without an offset is Shanghai wall-clock time (that is what a coordinator types);
    a bare date means 00:00 local on that day. Returns an aware UTC datetime.
    """
    day, instant = _parse(text, forms=_INSTANT_FORMS, allow_24=False)
    if instant is None:
        return start_of_local_day(day)
    return instant


def parse_deadline(value: str | date | datetime) -> datetime:
    """Parse a deadline the way a notice writes it; returns the first instant it is over (UTC).

    * ``"2026-06-25 24:00"`` -> 2026-06-26 00:00 local (the notice's "6月25日24:00").
    * ``"2026-07-03"`` or ``date(2026, 7, 3)`` (as YAML loads it) -> "by the end of 07-03",
      i.e. 2026-07-04 00:00 local: a whole-day deadline is open all of that day.
    * ``"2026-07-03 17:30"`` -> exactly that local time; an ISO text with offset is taken as is.
    * A ``datetime`` (YAML turns ``2026-07-03 17:30:00`` into one) is local if naive: PyYAML only
      makes naive datetimes from text that had no offset, so the writer meant wall-clock time.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=LOCAL_TZ).astimezone(UTC)
        return value.astimezone(UTC)
    if isinstance(value, date):
        return start_of_local_day(value + timedelta(days=1))
    if not isinstance(value, str):
        raise ValueError(f"无法识别的截止时间：{value!r}；可用格式：{_DEADLINE_FORMS}")
    day, instant = _parse(value, forms=_DEADLINE_FORMS, allow_24=True)
    if instant is None:
        return start_of_local_day(day + timedelta(days=1))
    return instant


def to_local(dt: datetime) -> datetime:
    """The same instant as Shanghai wall-clock time (aware)."""
    _require_aware(dt)
    return dt.astimezone(LOCAL_TZ)


def local_date(dt: datetime) -> date:
    """The Shanghai calendar date of an instant (01:00 UTC and 17:00 UTC are different days)."""
    return to_local(dt).date()


def start_of_local_day(d: date) -> datetime:
    """00:00 Shanghai on ``d``, as UTC (16:00 UTC the day before; Shanghai has no DST)."""
    return datetime.combine(d, time(0), LOCAL_TZ).astimezone(UTC)


def local_time_on(d: date, hh: int, mm: int = 0) -> datetime:
    """``hh:mm`` Shanghai time on ``d``, as UTC. ``24:00`` is accepted and means next day 00:00."""
    if hh == 24 and mm == 0:
        return start_of_local_day(d + timedelta(days=1))
    return datetime.combine(d, time(hh, mm), LOCAL_TZ).astimezone(UTC)


def format_date(d: date) -> str:
    """``2026-06-25（周四）``: the weekday is shown because people plan by it."""
    return f"{d.isoformat()}（{WEEKDAYS_ZH[d.weekday()]}）"


def format_local(dt: datetime) -> str:
    """``2026-06-20（周六）09:00`` in Shanghai time."""
    local = to_local(dt)
    return f"{format_date(local.date())}{local:%H:%M}"


def format_deadline(dt: datetime) -> str:
    """Like :func:`format_local`, but local midnight is written as the notice writes it.

    A deadline at 2026-06-26 00:00 is shown ``2026-06-25（周四）24:00``: "the 26th 00:00" makes
    people think they still have the 26th.
    """
    local = to_local(dt)
    if local.time() == time(0):
        return f"{format_date(local.date() - timedelta(days=1))}24:00"
    return format_local(dt)


def format_deadline_from(now: datetime, dt: datetime) -> str:
    """A deadline as said on the day ``now``: ``本周日（6月28日）24:00``, ``下周一（6月29日）17:00``.

    Said on a Friday, "2026-06-28（周日）24:00" is easily misread as today's; naming the week
    makes plain that the weekend is still to come. Further away than next week: the full date.
    """
    local = to_local(dt)
    day, hhmm = local.date(), f"{local:%H:%M}"
    if local.time() == time(0):
        day, hhmm = day - timedelta(days=1), "24:00"
    today = local_date(now)
    weeks = (day - timedelta(days=day.weekday()) - (today - timedelta(days=today.weekday()))).days // 7
    if weeks not in (0, 1):
        return format_deadline(dt)
    return f"{('本', '下')[weeks]}{WEEKDAYS_ZH[day.weekday()]}（{day.month}月{day.day}日）{hhmm}"


def format_duration_zh(delta: timedelta) -> str:
    """A countdown for people: ``3天5小时``, ``5小时12分钟``, ``45分钟``; overdue: ``已逾期2天3小时``.

    Two largest units only, truncated, never rounded up: a countdown must not promise time
    that is not there.
    """
    if delta < timedelta(0):
        return "已逾期" + format_duration_zh(-delta)
    total_minutes = int(delta.total_seconds() // 60)
    days, rest = divmod(total_minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}天{hours}小时" if hours else f"{days}天"
    if hours:
        return f"{hours}小时{minutes}分钟" if minutes else f"{hours}小时"
    if minutes:
        return f"{minutes}分钟"
    return "不到1分钟"
