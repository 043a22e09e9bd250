"""Cell parsers (text, email, phone, numbers with their unit, percent, counts, yes/no, dates,
enumerations) and the row reader that records every problem of a row instead of stopping."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from models.sheet_reading import (
    CellValue,
    ImportProblem,
    ImportRejected,
    Sheet,
    SheetRow,
    _as_text,
    _nfkc,
)

# --------------------------------------------------------------------------------------------
# Value parsers: each takes a non-empty cell and returns a value or raises _Bad(message).
# --------------------------------------------------------------------------------------------


class _Bad(ValueError):
    pass


_T = TypeVar("_T")

_EMAIL = re.compile(r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}$")


def _text_value(value: CellValue) -> str:
    return re.sub(r"\s+", " ", _as_text(value)).strip()


def _email(value: CellValue) -> str:
    shown = _as_text(value)
    s = _nfkc(shown).strip()
    s = s.removeprefix("mailto:")
    if not _EMAIL.match(s) or ".." in s:
        raise _Bad(f"邮箱格式不正确：{shown} (应如 name@example.gov.cn)")
    local, domain = s.rsplit("@", 1)
    return f"{local}@{domain.lower()}"


@dataclass(frozen=True, slots=True)
class _Phone:
    normalized: str
    display: str


def _phone(value: CellValue) -> _Phone:
    display = _as_text(value).strip()
    s = re.sub(r"[\s\-—–()]", "", _nfkc(display))
    if s.startswith("+86"):
        s = s[3:]
    elif s.startswith("86") and len(s) == 13:
        s = s[2:]
    if re.fullmatch(r"1[3-9]\d{9}", s):
        return _Phone(s, display)
    if re.fullmatch(r"0\d{9,11}", s):
        # Beijing (010) and the 02x cities have 3-digit area codes; everywhere else, including
        # all of Zhejiang (057x, 0580), has 4.
        area = s[:3] if s[1] in "12" else s[:4]
        local = s[len(area) :]
        if len(local) in (7, 8):
            return _Phone(f"{area}-{local}", display)
    raise _Bad(
        f"电话号码格式不正确：{display} (应为11位手机号码如 13812345678，或带区号的固定电话如 0571-87058343)"
    )


def _decimal(value: CellValue, units: Sequence[str] = ()) -> Decimal:
    if isinstance(value, bool) or isinstance(value, datetime | date | time):
        raise _Bad(f"应为数字：{_as_text(value)}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | float):
        result = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    else:
        shown = _as_text(value)
        s = re.sub(r"[\s,]", "", _nfkc(shown))
        for unit in units:  # only the column's own unit, so "8000000元" in a 万元 column fails
            s = s.removesuffix(unit)
        try:
            result = Decimal(s)
        except InvalidOperation:
            raise _Bad(f"应为数字：{shown}") from None
    if not result.is_finite():
        raise _Bad(f"应为数字：{_as_text(value)}")
    return result


def _non_negative_decimal(units: Sequence[str] = ()) -> Callable[[CellValue], Decimal]:
    def parse(value: CellValue) -> Decimal:
        d = _decimal(value, units)
        if d < 0:
            raise _Bad(f"不能为负数：{_as_text(value)}")
        return d

    return parse


def _percent(value: CellValue) -> Decimal:
    d = _decimal(value, ("%",))
    if not 0 <= d <= 100:
        raise _Bad(f"百分比应在0到100之间：{_as_text(value)} (如研发投入占比3.5%填 3.5)")
    return d


def _count(value: CellValue) -> int:
    d = _decimal(value, ("家", "个", "项"))
    if d != d.to_integral_value():
        raise _Bad(f"应为整数：{_as_text(value)}")
    if d < 0:
        raise _Bad(f"不能为负数：{_as_text(value)}")
    return int(d)


_YES = frozenset({"是", "y", "yes", "true", "1", "√", "✓", "✔", "有"})
_NO = frozenset({"否", "n", "no", "false", "0", "×", "✗", "无", "不是"})


def _yes_no(value: CellValue) -> bool:
    if isinstance(value, bool):
        return value
    s = _nfkc(_as_text(value)).strip().lower()
    if s in _YES:
        return True
    if s in _NO:
        return False
    raise _Bad(f"应填「是」或「否」：{_as_text(value)}")


_EXCEL_EPOCH = date(1899, 12, 30)
_DATE_TEXT = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*(?:(?:[-/.月]\s*(\d{1,2})\s*日?)|月)?$")
_DATE_DIGITS = re.compile(r"^(\d{4})(\d{2})(\d{2})?$")
_DATE_HINT = "应如 2023-05-01、2023/5/1、2023年5月1日 或 2023.05"


def _date(value: CellValue) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    shown = _as_text(value)
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        n = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        # An unformatted Excel date cell arrives as its serial number (45047 = 2023-05-01);
        # the plausible range keeps ordinary numbers such as 2023 from being taken as dates.
        if n == n.to_integral_value() and 20000 <= n <= 80000:
            return _EXCEL_EPOCH + timedelta(days=int(n))
    s = _nfkc(shown).strip()
    s = re.sub(r"[ T]0{1,2}:00(?::00)?$", "", s)  # "2023-05-01 00:00:00" from a text export
    m = _DATE_TEXT.match(s) or _DATE_DIGITS.match(s)
    if m:
        year, month, day = int(m[1]), int(m[2]), int(m[3] or 1)  # month only means the 1st
        try:
            return date(year, month, day)
        except ValueError:
            pass
    raise _Bad(f"日期格式不正确：{shown} ({_DATE_HINT})")


def _canon_key(text: str) -> str:
    # For matching enumerated values: fold width, drop quotes, spaces and joining words/marks,
    # so "生物医药及医疗器械" and "生物医药与医疗器械" or "“新星”产业群" and "新星产业群" agree.
    return re.sub(r"[\s“”\"'‘’「」、,/与及和()]", "", _nfkc(text)).lower()


def _enum_parser(
    table: dict[str, _T], what: str, allowed: Sequence[str], suffixes: Sequence[str] = ()
) -> Callable[[CellValue], _T]:
    def parse(value: CellValue) -> _T:
        shown = _as_text(value)
        k = _canon_key(shown)
        options = [k, *(k.removesuffix(_canon_key(s)) for s in suffixes if k.endswith(_canon_key(s)))]
        for option in options:
            if option in table:
                return table[option]
        raise _Bad(f"{what}不在可选范围内：{shown} (可选：{'、'.join(allowed)})")

    return parse


def _build_table(pairs: Iterable[tuple[str, _T]]) -> dict[str, _T]:
    return {_canon_key(k): v for k, v in pairs}


# --------------------------------------------------------------------------------------------
# Row collection helper
# --------------------------------------------------------------------------------------------


class _Missing:
    pass


_MISSING = _Missing()


class _RowReader:
    """Reads the fields of one row, recording every problem instead of stopping at the first."""

    def __init__(self, sheet: Sheet, row: SheetRow, problems: list[ImportProblem]) -> None:
        self.sheet, self.row, self._problems = sheet, row, problems
        self.ok = True

    def problem(self, key: str, message: str) -> None:
        self.ok = False
        self._problems.append(ImportProblem(self.sheet.file, self.row.number, self.sheet.label(key), message))

    def raw(self, key: str) -> CellValue:
        return self.row.values.get(key)

    def get(
        self,
        key: str,
        parse: Callable[[CellValue], _T],
        *,
        required: bool = True,
        default: Any = None,
        empty_message: str = "必填项为空",
    ) -> Any:
        value = self.raw(key)
        if value is None:
            if required:
                self.problem(key, empty_message)
                return _MISSING
            return default
        try:
            return parse(value)
        except _Bad as exc:
            self.problem(key, str(exc))
            return _MISSING


class _Seen:
    """The cross-row rule of a streamed file: a row may not repeat an earlier one. Keeps a
    16-byte digest of each row's key and its row number, not the rows (a million rows: tens of
    megabytes)."""

    def __init__(self, sheet: Sheet, problems: list[ImportProblem], column: str) -> None:
        self.sheet, self.problems, self.column = sheet, problems, column
        self.rows: dict[bytes, int] = {}

    def first(self, number: int, key: tuple[str, ...], describe: str | Callable[[], str]) -> bool:
        """``describe`` may be a function: only a repeated row is described."""
        digest = hashlib.blake2b("\x1f".join(key).encode(), digest_size=16).digest()
        earlier = self.rows.setdefault(digest, number)
        if earlier == number:
            return True
        what = describe if isinstance(describe, str) else describe()
        self.problems.append(
            ImportProblem(
                self.sheet.file, number, self.sheet.label(self.column), f"{what} 与第{earlier}行重复"
            )
        )
        return False


def _finish(problems: list[ImportProblem], rows: list[_T]) -> list[_T]:
    if problems:
        # Stable sort keeps each row's problems in column order; file-level ones come first.
        problems.sort(key=lambda p: -1 if p.row is None else p.row)
        raise ImportRejected(problems)
    return rows


def _norm_name(text: str) -> str:
    return re.sub(r"\s+", "", _nfkc(text))
