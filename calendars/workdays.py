"""China's official working-day arrangement (法定节假日 + 调休), for deadline arithmetic.

Weekends are not simply days off in China: each year the State Council moves working days onto
some Saturdays and Sundays (调休) to build long holidays. Counting "3 working days before the
deadline" with a Monday-to-Friday rule is wrong several times a year, so this module only answers
for years whose arrangement is *known*, and raises :class:`UnknownYearError` otherwise. A wrong
reminder date sent to eleven cities is worse than a loud error that someone fixes by loading the
year's notice (``shenbao calendar load``).

Sources, in order:
1. the ``holidays`` library (``holidays.China``): statutory holidays, 补假 and the swapped
   weekend working days it records in ``weekend_workdays``. A year counts as known from the
   library only if it has swapped working days for that year: the library computes holidays for
   any year (2027 already), but without 调休 data those years are a guess.
2. an override file (default ``calendars/data/workdays.yaml``, or ``SHENBAO_WORKDAYS_FILE``):
   per year, extra holidays, extra working days, removals, and ``official_years`` declaring
   which years the file (together with the library) describes completely.

Queries are hot (reconcile asks for every case, every stage, every rule step), so each year is
resolved once into a set and a sorted list of working days, and every query is a set lookup or a
bisection.

What the library says about a year is also kept across processes, in a small JSON file per year
and library version (``calendars.usercache``): importing ``holidays``' country table and computing a year was most of
what a cold ``shenbao status`` added to the CLI's start-up. Only the library's answer is cached;
the override file and loaded arrangements are applied on top in every process, so an edit to
them counts at once, and a year without 调休 data is still refused (an empty cached answer).
"""

from __future__ import annotations

import importlib.util
import os
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from calendars import usercache
from calendars.timeutil import local_date

__all__ = [
    "CACHE_DIR_ENV",
    "DEFAULT_WORKDAYS_FILE",
    "WORKDAYS_FILE_ENV",
    "Arrangement",
    "UnknownYearError",
    "WorkCalendar",
    "WorkdayOverrides",
    "WorkdaysFileError",
    "YearOverride",
    "load_default_calendar",
]

DEFAULT_WORKDAYS_FILE = Path(__file__).resolve().parent / "data" / "workdays.yaml"
WORKDAYS_FILE_ENV = "SHENBAO_WORKDAYS_FILE"
CACHE_DIR_ENV = usercache.CACHE_DIR_ENV


class UnknownYearError(LookupError):
    """A query needs a year whose official arrangement (with 调休) is not known.

    The remedy is the same for every reader, staff or operator: load the State Council's notice
    for that year (``shenbao calendar load``), after which everything counted into it is
    re-planned. :attr:`short` is the reason as boards and tick reports show it."""

    def __init__(self, year: int, overrides_file: Path | None = None) -> None:
        self.year = year
        self.overrides_file = overrides_file
        self.short = f"{year}年的节假日安排尚未加载（shenbao calendar load）"
        message = (
            f"{year}年的节假日安排（含调休）尚未加载：国务院办公厅公布后，用 "
            f"shenbao calendar load 通知文本.txt 加载{year}年的节假日安排（加载后截止时间、提醒与督办随即重新计算）"
        )
        if overrides_file is not None and overrides_file != DEFAULT_WORKDAYS_FILE:
            # An operator's own file (SHENBAO_WORKDAYS_FILE) may be where the year was meant to be.
            message += f"；本机的工作日文件 {overrides_file} 也未声明 {year} 年（official_years）"
        super().__init__(message)


class WorkdaysFileError(ValueError):
    """The override file is missing or malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class YearOverride:
    """Corrections for one year, applied on top of the library."""

    holidays: Mapping[date, str] = field(default_factory=dict)
    working_days: Mapping[date, str] = field(default_factory=dict)
    # Library entries (holiday or swapped working day) to drop; the date then follows the plain
    # weekday rule unless ``holidays``/``working_days`` say otherwise.
    removals: frozenset[date] = frozenset()
    # For a year the library gets badly wrong: ignore it entirely and list every day off here.
    ignore_library: bool = False


@dataclass(frozen=True)
class WorkdayOverrides:
    """The parsed override file."""

    official_years: frozenset[int] = frozenset()
    years: Mapping[int, YearOverride] = field(default_factory=dict)
    source: Path | None = None

    @classmethod
    def from_file(cls, path: Path) -> WorkdayOverrides:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise WorkdaysFileError(f"无法读取节假日文件 {path}：{exc}") from exc
        try:
            raw = yaml.load(
                text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            )  # libyaml when present
        except yaml.YAMLError as exc:
            raise WorkdaysFileError(f"节假日文件 {path} 不是合法的 YAML：{exc}") from exc
        return cls.from_mapping(raw or {}, source=path)

    @classmethod
    def from_mapping(cls, raw: Any, *, source: Path | None = None) -> WorkdayOverrides:
        where = str(source) if source else "节假日覆盖数据"
        if not isinstance(raw, Mapping):
            raise WorkdaysFileError(f"{where}：顶层必须是映射（official_years / years）")
        unknown_keys = set(raw) - {"official_years", "years"}
        if unknown_keys:
            raise WorkdaysFileError(f"{where}：未知的键 {sorted(map(str, unknown_keys))}")
        official = raw.get("official_years") or []
        if not isinstance(official, list) or not all(isinstance(y, int) for y in official):
            raise WorkdaysFileError(f"{where}：official_years 必须是年份列表，例如 [2027]")
        years: dict[int, YearOverride] = {}
        for year, section in (raw.get("years") or {}).items():
            if not isinstance(year, int):
                raise WorkdaysFileError(f"{where}：years 下的键必须是年份数字，而不是 {year!r}")
            years[year] = _parse_year_section(year, section or {}, where)
        return cls(official_years=frozenset(official), years=years, source=source)


def _parse_date(value: Any, year: int, where: str) -> date:
    if isinstance(value, datetime) or not isinstance(value, date | str):
        raise WorkdaysFileError(f"{where}：{year} 年中的 {value!r} 不是日期（应写作 {year}-01-01）")
    try:
        day = value if isinstance(value, date) else date.fromisoformat(value.strip())
    except ValueError:
        raise WorkdaysFileError(f"{where}：{year} 年中的 {value!r} 不是日期") from None
    if day.year != year:
        # A date filed under the wrong year would silently never be looked at.
        raise WorkdaysFileError(f"{where}：日期 {day} 写在了 {year} 年下面，请放到 {day.year} 年")
    return day


def _parse_named_dates(raw: Any, year: int, key: str, where: str) -> dict[date, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise WorkdaysFileError(f"{where}：{year}.{key} 必须是「日期: 名称」映射")
    return {_parse_date(k, year, where): str(v) for k, v in raw.items()}


def _parse_year_section(year: int, section: Any, where: str) -> YearOverride:
    if not isinstance(section, Mapping):
        raise WorkdaysFileError(f"{where}：years.{year} 必须是映射")
    unknown_keys = set(section) - {"holidays", "working_days", "removals", "ignore_library"}
    if unknown_keys:
        raise WorkdaysFileError(f"{where}：years.{year} 下未知的键 {sorted(map(str, unknown_keys))}")
    extra_holidays = _parse_named_dates(section.get("holidays"), year, "holidays", where)
    extra_working = _parse_named_dates(section.get("working_days"), year, "working_days", where)
    both = sorted(set(extra_holidays) & set(extra_working))
    if both:
        raise WorkdaysFileError(f"{where}：{both[0]} 同时被列为假日和工作日")
    removals_raw = section.get("removals") or []
    if not isinstance(removals_raw, list):
        raise WorkdaysFileError(f"{where}：years.{year}.removals 必须是日期列表")
    return YearOverride(
        holidays=extra_holidays,
        working_days=extra_working,
        removals=frozenset(_parse_date(v, year, where) for v in removals_raw),
        ignore_library=bool(section.get("ignore_library", False)),
    )


@dataclass(frozen=True)
class Arrangement:
    """One year's State Council arrangement, complete: every day off and every weekend worked.

    Loaded as legal data (``shenbao calendar load``); it replaces whatever the library and the
    override file say about that year, and makes the year known.
    """

    year: int
    holidays: Mapping[date, str]
    working_days: Mapping[date, str]
    source: str = ""
    digest: str = ""

    def __post_init__(self) -> None:
        for day in [*self.holidays, *self.working_days]:
            if day.year != self.year:
                raise WorkdaysFileError(f"{self.year}年的节假日安排中出现了 {day}（不在{self.year}年内）")
        both = sorted(set(self.holidays) & set(self.working_days))
        if both:
            raise WorkdaysFileError(f"{self.year}年的节假日安排中 {both[0]} 同时被列为放假和上班")
        if not self.holidays:
            raise WorkdaysFileError(f"{self.year}年的节假日安排中没有任何放假日")

    def days(self) -> dict[str, dict[str, str]]:
        """As stored (JSON): ISO dates to names."""
        return {
            "holidays": {d.isoformat(): n for d, n in sorted(self.holidays.items())},
            "working_days": {d.isoformat(): n for d, n in sorted(self.working_days.items())},
        }

    @classmethod
    def from_days(
        cls, year: int, days: Mapping[str, Any], *, source: str = "", digest: str = ""
    ) -> Arrangement:
        return cls(
            year,
            {date.fromisoformat(k): str(v) for k, v in (days.get("holidays") or {}).items()},
            {date.fromisoformat(k): str(v) for k, v in (days.get("working_days") or {}).items()},
            source=source,
            digest=digest,
        )


@dataclass(frozen=True)
class _ResolvedYear:
    working: frozenset[date]
    # Sorted ordinals of ``working``, for bisection in counting and stepping.
    working_ordinals: tuple[int, ...]
    holiday_names: Mapping[date, str]


def _library_year(year: int) -> tuple[dict[date, str], set[date]]:
    """(holidays of ``year`` with Chinese names, swapped weekend working days in ``year``)."""
    version = _library_version()
    name = f"workdays/holidays-china-{year}-{version}.json"
    raw = usercache.read_json(name) if version else None
    if isinstance(raw, dict):
        try:
            return (
                {date.fromisoformat(k): str(v) for k, v in raw["holidays"].items()},
                {date.fromisoformat(d) for d in raw["swapped"]},
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            pass  # unreadable: the library answers, and the entry is written again
    import holidays  # here, not at the top: a cached year needs neither the import nor the work

    lib = holidays.China(years=year, language="zh_CN")
    names = {d: str(name) for d, name in lib.items() if d.year == year}
    # weekend_workdays is filled from the library's whole table, not just ``years``; a
    # cross-year swap (a late-December Saturday worked for New Year) lands in its own year.
    swapped = {d for d in lib.weekend_workdays if d.year == year}
    if version:
        usercache.write_json(
            name,
            {
                "holidays": {d.isoformat(): n for d, n in sorted(names.items())},
                "swapped": sorted(d.isoformat() for d in swapped),
            },
        )
    return names, swapped


@lru_cache(maxsize=1)
def _library_version() -> str | None:
    """The installed ``holidays`` release, from its dist-info folder's name: reading it through
    ``importlib.metadata`` (or importing the package) costs more than the cache saves. None when
    it cannot be told (then nothing is cached)."""
    try:
        spec = importlib.util.find_spec("holidays")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(next(iter(spec.submodule_search_locations)))
    try:
        found = sorted(p.name for p in package.parent.glob("holidays-*.dist-info"))
        china = (package / "countries" / "china.py").stat()
    except OSError:
        return None
    if len(found) != 1:
        return None  # two installs side by side: which one answers is not ours to guess
    # The release, and the China table's file itself (an edited or re-installed copy).
    return f"{found[0][len('holidays-') : -len('.dist-info')]}-{china.st_size}-{china.st_mtime_ns}"


class WorkCalendar:
    """Working days in mainland China, by the State Council's yearly arrangement.

    Conventions, chosen so that the notice's wording maps onto one call:

    * ``add_working_days(d, n)`` counts working days strictly after ``d`` (``n > 0``) or strictly
      before it (``n < 0``): "3 working days before X" is ``add_working_days(X, -3)``, and the
      result is a working day even when ``d`` is not. ``n == 0`` returns ``d`` unchanged.
    * ``working_days_between(a, b)`` counts working days in the half-open range ``(a, b]``, so it
      is the inverse of ``add_working_days`` for working-day results.

    Every query that touches a year whose arrangement is not known raises
    :class:`UnknownYearError`.
    """

    def __init__(
        self,
        overrides: WorkdayOverrides | Path | str | None = DEFAULT_WORKDAYS_FILE,
    ) -> None:
        if overrides is None:
            overrides = WorkdayOverrides()
        elif not isinstance(overrides, WorkdayOverrides):
            overrides = WorkdayOverrides.from_file(Path(overrides))
        self._overrides = overrides
        self._years: dict[int, _ResolvedYear] = {}

    def with_arrangements(self, arrangements: list[Arrangement]) -> WorkCalendar:
        """This calendar with each arrangement replacing its year entirely (and making it known)."""
        years = dict(self._overrides.years)
        for a in arrangements:
            years[a.year] = YearOverride(
                holidays=dict(a.holidays), working_days=dict(a.working_days), ignore_library=True
            )
        return WorkCalendar(
            WorkdayOverrides(
                official_years=self._overrides.official_years | {a.year for a in arrangements},
                years=years,
                source=self._overrides.source,
            )
        )

    # -- per-year resolution ------------------------------------------------------------------

    def is_known_year(self, year: int) -> bool:
        """Whether queries for ``year`` are answered (official data exists) or raise."""
        try:
            self._year(year)
        except UnknownYearError:
            return False
        return True

    def _year(self, year: int) -> _ResolvedYear:
        resolved = self._years.get(year)
        if resolved is None:
            resolved = self._resolve(year)
            self._years[year] = resolved
        return resolved

    def _resolve(self, year: int) -> _ResolvedYear:
        if not 1 <= year <= 9999:
            raise UnknownYearError(year, self._overrides.source)
        override = self._overrides.years.get(year, YearOverride())
        names: dict[date, str] = {}
        swapped: set[date] = set()
        if not override.ignore_library:
            names, swapped = _library_year(year)
        if year not in self._overrides.official_years and not swapped:
            raise UnknownYearError(year, self._overrides.source)

        for day in override.removals:
            names.pop(day, None)
            swapped.discard(day)
        for day, name in override.holidays.items():
            names[day] = name
            swapped.discard(day)
        for day in override.working_days:
            names.pop(day, None)
            swapped.add(day)

        working: set[date] = set()
        day = date(year, 1, 1)
        one = timedelta(days=1)
        while day.year == year:
            if day in swapped or (day.weekday() < 5 and day not in names):
                working.add(day)
            day += one
        return _ResolvedYear(
            working=frozenset(working),
            working_ordinals=tuple(sorted(d.toordinal() for d in working)),
            holiday_names=names,
        )

    # -- single days ---------------------------------------------------------------------------

    def is_working_day(self, d: date) -> bool:
        return d in self._year(d.year).working

    def holiday_name(self, d: date) -> str | None:
        """The holiday's Chinese name (e.g. ``端午节``), or None for a working day or plain weekend.

        A swapped working Saturday has no name here: it is a working day.
        """
        resolved = self._year(d.year)
        if d in resolved.working:
            return None
        return resolved.holiday_names.get(d)

    # -- stepping ------------------------------------------------------------------------------

    def add_working_days(self, d: date, n: int) -> date:
        """The ``n``-th working day strictly after ``d`` (``n > 0``) or strictly before (``n < 0``).

        ``n == 0`` returns ``d`` itself, working day or not.
        """
        year = d.year
        ordinals = self._year(year).working_ordinals
        if n == 0:
            return d
        if n > 0:
            index = bisect_right(ordinals, d.toordinal())
            remaining = n
            while index + remaining > len(ordinals):
                remaining -= len(ordinals) - index
                year += 1
                ordinals = self._year(year).working_ordinals
                index = 0
            return date.fromordinal(ordinals[index + remaining - 1])
        index = bisect_left(ordinals, d.toordinal())
        remaining = -n
        while index - remaining < 0:
            remaining -= index
            year -= 1
            ordinals = self._year(year).working_ordinals
            index = len(ordinals)
        return date.fromordinal(ordinals[index - remaining])

    def next_working_day(self, d: date) -> date:
        """The first working day strictly after ``d``."""
        return self.add_working_days(d, 1)

    def previous_working_day(self, d: date) -> date:
        """The last working day strictly before ``d``."""
        return self.add_working_days(d, -1)

    def working_day_on_or_after(self, d: date) -> date:
        """``d`` if it is a working day, else the next one (e.g. a due date that falls on 国庆)."""
        return d if self.is_working_day(d) else self.next_working_day(d)

    def working_day_on_or_before(self, d: date) -> date:
        """``d`` if it is a working day, else the previous one (e.g. "remind by the last workday")."""
        return d if self.is_working_day(d) else self.previous_working_day(d)

    # -- counting ------------------------------------------------------------------------------

    def working_days_between(self, a: date, b: date) -> int:
        """Working days in ``(a, b]``; negative (minus the count in ``(b, a]``) when ``b < a``."""
        if b < a:
            return -self.working_days_between(b, a)
        low, high = a.toordinal(), b.toordinal()
        count = 0
        for year in range(a.year, b.year + 1):
            ordinals = self._year(year).working_ordinals
            count += bisect_right(ordinals, high) - bisect_right(ordinals, low)
        return count

    def working_days_left(self, now: datetime, deadline: datetime) -> int:
        """The countdown shown in e-mails: working days after today up to the deadline's last day.

        The deadline's last day is the local date of the last instant before it (a
        2026-06-26 00:00 deadline, "6月25日24:00", has 06-25 as its last day). The result is
        ``working_days_between(local_date(now), last_day)``: 0 on the last day itself (and on
        non-working days just before it that have no working day left in between), 1 the working
        day before, and so on. Once ``now`` has reached the deadline it is negative: -1 on the
        rest of the last day and until the next working day ends, then -2, ... (never 0, so
        "overdue" is never mistaken for "due today").
        """
        last_day = local_date(deadline - timedelta(microseconds=1))
        left = self.working_days_between(local_date(now), last_day)
        if now >= deadline:
            return min(left, -1)
        return left


@lru_cache(maxsize=8)
def _calendar_for(path: Path) -> WorkCalendar:
    return WorkCalendar(path)


def load_default_calendar(environ: Mapping[str, str] | None = None) -> WorkCalendar:
    """The calendar the edges inject: ``SHENBAO_WORKDAYS_FILE`` if set, else the packaged file.

    Cached per file, since a calendar is immutable and resolving a year builds a set; a process
    picks up edits to the file on restart.
    """
    env = os.environ if environ is None else environ
    configured = env.get(WORKDAYS_FILE_ENV, "").strip()
    if not configured:
        return _calendar_for(DEFAULT_WORKDAYS_FILE)
    path = Path(configured).expanduser().resolve()
    if not path.is_file():
        raise WorkdaysFileError(f"{WORKDAYS_FILE_ENV}={configured!r}：文件不存在")
    return _calendar_for(path)
