"""An application form declared in the campaign file (``form:``), read into typed rows.

Each field has a type (text, integer, number with its unit, percent, date, yes/no, choice,
email, phone, county), aliases for its header, whether it is required, and bounds; a file is
read all or nothing, every problem named by row and column, with the readers of
``models.sheets``. Touches no database.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from calendars.campaign import FormField, FormSpec
from models.sheet_reading import CellValue, Column, ImportProblem, _as_text, read_sheet
from models.sheet_values import (
    _Bad,
    _build_table,
    _count,
    _date,
    _decimal,
    _email,
    _enum_parser,
    _finish,
    _norm_name,
    _percent,
    _phone,
    _RowReader,
    _text_value,
    _yes_no,
)


@dataclass(frozen=True, slots=True)
class FormRow:
    row: int
    # field key -> value as stored in the case's attrs (numbers and dates as text).
    values: dict[str, Any]


def _bounded(f: FormField, parse: Callable[[CellValue], Any]) -> Callable[[CellValue], Any]:
    def check(value: CellValue) -> Any:
        result = parse(value)
        if isinstance(result, (int, Decimal)):
            if f.min is not None and result < f.min:
                raise _Bad(f"应不小于 {f.min}：{_as_text(value)}")
            if f.max is not None and result > f.max:
                raise _Bad(f"应不大于 {f.max}：{_as_text(value)}")
        if isinstance(result, str) and f.max_length is not None and len(result) > f.max_length:
            raise _Bad(f"最多 {f.max_length} 个字：{result[:20]}…")
        if isinstance(result, str) and f.pattern is not None and not re.fullmatch(f.pattern, result):
            raise _Bad(f"格式不正确：{result}（{f.pattern_hint or '应匹配 ' + f.pattern}）")
        return result

    return check


def parser_for(f: FormField) -> Callable[[CellValue], Any]:
    if f.type == "integer":
        base: Callable[[CellValue], Any] = _count
    elif f.type == "number":
        units = (f.unit,) if f.unit else ()
        base = lambda v: _decimal(v, units)  # noqa: E731
    elif f.type == "percent":
        base = _percent
    elif f.type == "date":
        base = _date
    elif f.type == "yes_no":
        base = _yes_no
    elif f.type == "email":
        base = _email
    elif f.type == "phone":
        base = lambda v: _phone(v).display  # noqa: E731
    elif f.type == "choice":
        table = _build_table([*((c, c) for c in f.choices), *f.synonyms.items()])
        base = _enum_parser(table, f.label, f.choices)
    else:  # text, county (resolved against the divisions when written)
        base = _text_value
    return _bounded(f, base)


def _stored(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, date):
        return value.isoformat()
    return value


def columns_of(form: FormSpec) -> list[Column]:
    return [Column(f.key, f.label, f.aliases, required=f.required) for f in form.fields]


def read_form(form: FormSpec, path: Path) -> list[FormRow]:
    """The rows of ``path`` typed by ``form``, or ImportRejected with every problem."""
    sheet = read_sheet(path, columns_of(form))
    problems: list[ImportProblem] = []
    rows: list[FormRow] = []
    parsers = {f.key: parser_for(f) for f in form.fields}
    for row in sheet.rows:
        r = _RowReader(sheet, row, problems)
        values: dict[str, Any] = {}
        for f in form.fields:
            empty = f"必填项为空（{f.hint}）" if f.hint else "必填项为空"
            value = r.get(f.key, parsers[f.key], required=f.required, empty_message=empty)
            values[f.key] = _stored(value)
        if r.ok:
            rows.append(FormRow(row.number, values))
    seen: dict[tuple[str, ...], int] = {}
    for fr in rows:
        key = tuple(_norm_name(str(fr.values.get(k) or "")) for k in form.unique)
        if key in seen:
            what = "、".join(f"{form.field(k).label}「{fr.values.get(k)}」" for k in form.unique)  # type: ignore[union-attr]
            problems.append(
                ImportProblem(
                    sheet.file, fr.row, sheet.label(form.unique[-1]), f"{what} 与第{seen[key]}行重复"
                )
            )
        else:
            seen[key] = fr.row
    return _finish(problems, rows)


def title_of(form: FormSpec, values: dict[str, Any]) -> str:
    return form.title.format_map({k: ("" if v is None else v) for k, v in values.items()})
