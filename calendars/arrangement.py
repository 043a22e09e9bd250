"""Reading a year's 节假日安排: a YAML file, or the State Council notice's own text.

The notice (国务院办公厅关于YYYY年部分节假日安排的通知) has been worded the same way for years::

    一、元旦：1月1日（周五）放假，共1天。
    二、春节：2月6日（农历腊月三十）至2月13日（农历正月初七）放假调休，共8天。2月14日（周日）上班。

Each item is read strictly: the range must hold as many days as "共N天" says, and a weekday
written in brackets must be that date's weekday. A line that looks like an item but cannot be
read is an error naming it, never skipped: a missed 调休 Saturday moves every deadline after it.
The YAML form says the same thing as data::

    year: 2027
    source: 国务院办公厅关于2027年部分节假日安排的通知（国办发明电〔2026〕X号）
    holidays: {2027-01-01: 元旦, …}       # every day off that is not a plain weekend day, or all
    working_days: {2027-02-20: 春节调休上班}  # weekend days that are worked
"""

from __future__ import annotations

import hashlib
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

from calendars.timeutil import WEEKDAYS_ZH
from calendars.workdays import Arrangement, WorkdaysFileError

_TITLE = re.compile(r"关于\s*(\d{4})\s*年部分节假日安排的通知")
_ITEM = re.compile(r"^\s*[一二三四五六七八九十]+、\s*([^：:]+)[：:](.*)$")
# 1月1日（周五）, 2月6日（农历腊月三十）: the bracket is optional and only a 周X in it is checked.
_DAY = r"(?:(\d{1,2})月)?(\d{1,2})日(?:[（(]([^）)]*)[）)])?"
_OFF = re.compile(rf"{_DAY}(?:\s*至\s*{_DAY})?\s*放假(?:调休)?\s*[，,]\s*共\s*(\d+)\s*天")
_WORKED = re.compile(rf"((?:{_DAY}\s*[、，,和及]?\s*)+)上班")
_ONE_DAY = re.compile(_DAY)


def _day(
    year: int, month: str | None, day: str, bracket: str | None, month_before: int | None, where: str
) -> date:
    m = int(month) if month else month_before
    if m is None:
        raise WorkdaysFileError(f"{where}：日期缺少月份")
    try:
        d = date(year, m, int(day))
    except ValueError:
        raise WorkdaysFileError(f"{where}：{m}月{day}日 不是有效日期") from None
    if bracket and bracket.startswith("周") and bracket not in WEEKDAYS_ZH:
        raise WorkdaysFileError(f"{where}：无法识别的星期「{bracket}」")
    if bracket in WEEKDAYS_ZH and WEEKDAYS_ZH[d.weekday()] != bracket:
        raise WorkdaysFileError(
            f"{where}：{d.month}月{d.day}日 是{WEEKDAYS_ZH[d.weekday()]}，通知写的是{bracket}（年份是否正确？）"
        )
    return d


def parse_notice(text: str, *, origin: str, year: int | None = None) -> Arrangement:
    """The arrangement a notice's text states; errors name ``origin`` and the item."""
    title = _TITLE.search(text)
    if title is None and year is None:
        raise WorkdaysFileError(
            f"{origin}：找不到标题「国务院办公厅关于YYYY年部分节假日安排的通知」，无法确定年份"
        )
    year = int(title.group(1)) if title else year
    assert year is not None
    holidays: dict[date, str] = {}
    working: dict[date, str] = {}
    items = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        item = _ITEM.match(line)
        if item is None:
            continue
        name, body = item.group(1).strip(), item.group(2)
        where = f"{origin} 第 {lineno} 行（{name}）"
        off = _OFF.search(body)
        if off is None:
            if "放假" not in body:
                continue  # a numbered paragraph of the notice's closing remarks, not a holiday
            raise WorkdaysFileError(
                f"{where}：读不出放假日期，应形如「1月1日（周五）放假，共1天」或「2月6日至2月13日放假调休，共8天」"
            )
        m1, d1, b1, m2, d2, b2, total = off.groups()
        first = _day(year, m1, d1, b1, None, where)
        last = _day(year, m2, d2, b2, first.month, where) if d2 else first
        if last < first:
            raise WorkdaysFileError(f"{where}：放假结束日 {last} 早于开始日 {first}")
        span = (last - first).days + 1
        if span != int(total):
            raise WorkdaysFileError(f"{where}：{first} 至 {last} 共 {span} 天，通知写的是共{total}天")
        day = first
        while day <= last:
            holidays[day] = name
            day += timedelta(days=1)
        rest = body[off.end() :]
        worked = _WORKED.search(rest)
        if worked is None and "上班" in rest:
            raise WorkdaysFileError(
                f"{where}：读不出调休上班的日期，应形如「2月14日（周六）、2月28日（周六）上班」"
            )
        if worked is not None:
            for m, d, b in _ONE_DAY.findall(worked.group(1)):
                w = _day(year, m or None, d, b or None, first.month, where)
                if w.weekday() < 5:
                    raise WorkdaysFileError(
                        f"{where}：调休上班日 {w}（{WEEKDAYS_ZH[w.weekday()]}）本来就是工作日"
                    )
                working[w] = f"{name}调休上班"
        items += 1
    if not items:
        raise WorkdaysFileError(
            f"{origin}：没有读到任何节假日条目（应形如「一、元旦：1月1日（周五）放假，共1天。」）"
        )
    source = title.group(0) if title else f"{year}年部分节假日安排"
    source = f"国务院办公厅{source}" if not source.startswith("国务院") else source
    return Arrangement(year, holidays, working, source=source, digest=digest_of(text))


def parse_yaml(text: str, *, origin: str) -> Arrangement:
    try:
        raw: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise WorkdaysFileError(f"{origin}：不是合法的 YAML：{exc}") from exc
    if not isinstance(raw, dict):
        raise WorkdaysFileError(f"{origin}：顶层应为映射（year、source、holidays、working_days）")
    unknown = set(raw) - {"year", "source", "holidays", "working_days"}
    if unknown:
        raise WorkdaysFileError(
            f"{origin}：未知的键 {sorted(map(str, unknown))}（可用：year、source、holidays、working_days）"
        )
    year = raw.get("year")
    if not isinstance(year, int):
        raise WorkdaysFileError(f"{origin}：year 应为年份数字，例如 2027")
    if not str(raw.get("source") or "").strip():
        raise WorkdaysFileError(f"{origin}：source 不能为空：请写明依据的通知（标题和文号）")

    def named(key: str) -> dict[date, str]:
        section = raw.get(key) or {}
        if not isinstance(section, dict):
            raise WorkdaysFileError(f"{origin}：{key} 应为「日期: 名称」映射")
        out: dict[date, str] = {}
        for k, v in section.items():
            try:
                day = k if isinstance(k, date) else date.fromisoformat(str(k).strip())
            except ValueError:
                raise WorkdaysFileError(
                    f"{origin}：{key} 中的 {k!r} 不是日期（应写作 {year}-01-01）"
                ) from None
            out[day] = str(v)
        return out

    return Arrangement(
        year,
        named("holidays"),
        named("working_days"),
        source=str(raw["source"]).strip(),
        digest=digest_of(text),
    )


def read_arrangement(path: Path) -> tuple[Arrangement, str]:
    """The arrangement in ``path`` (``.yaml``/``.yml`` as data, anything else as the notice's text)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WorkdaysFileError(f"{path}：无法读取：{exc.strerror}") from exc
    except UnicodeDecodeError:
        raise WorkdaysFileError(f"{path}：不是 UTF-8 文本") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        return parse_yaml(text, origin=str(path)), text
    return parse_notice(text, origin=str(path)), text


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
