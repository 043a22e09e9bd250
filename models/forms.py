"""An application form declared in the campaign file (``form:``), read into typed rows.

Each field has a type (text, integer, number with its unit, percent, date, yes/no, choice,
email, phone, county), aliases for its header, whether it is required, and bounds; a file is
read all or nothing, every problem named by row and column, with the readers of
``models.sheets``. The 2026 forms (附1-2, 附2-3) are declared this way too: a choice stored as
one value and shown by its label (core / 核心区), a field read only for some rows (``when``), one
filled from another (``infer_from``), a county or park applying (``applicant_tier``). Touches
no database.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any, cast

from calendars.campaign import FormField, FormSpec
from models.reference import county_named
from models.sheet_reading import (
    CellValue,
    Column,
    ImportProblem,
    PathLike,
    _as_text,
    _header_base,
    _nfkc,
    iter_sheet,
)
from models.sheet_values import (
    _MISSING,
    _Bad,
    _build_table,
    _canon_key,
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
    _Seen,
    _text_value,
    _yes_no,
)


@dataclass(frozen=True, slots=True)
class FormRow:
    row: int
    # field key -> value as stored in the case's attrs (numbers and dates as text).
    values: dict[str, Any]
    # applicant_tier county_or_park: True when the applicant is (or may be) a park committee.
    is_park: bool = False


def _bounded(f: FormField, parse: Callable[[CellValue], Any]) -> Callable[[CellValue], Any]:
    if f.min is None and f.max is None and f.max_length is None and f.pattern is None:
        return parse  # nothing to check: a million rows need not pay for the wrapper

    def check(value: CellValue) -> Any:
        result = parse(value)
        if isinstance(result, (int, Decimal)):
            if f.min is not None and result < f.min:
                if f.min == 0:
                    raise _Bad(f"不能为负数：{_as_text(value)}")
                raise _Bad(f"应不小于 {f.min}：{_as_text(value)}")
            if f.max is not None and result > f.max:
                raise _Bad(f"应不大于 {f.max}：{_as_text(value)}")
        if isinstance(result, str) and f.max_length is not None and len(result) > f.max_length:
            raise _Bad(f"最多 {f.max_length} 个字：{result[:20]}…")
        if isinstance(result, str) and f.pattern is not None and not re.fullmatch(f.pattern, result):
            raise _Bad(f"格式不正确：{result}（{f.pattern_hint or '应匹配 ' + f.pattern}）")
        return result

    return check


def _choice(f: FormField) -> Callable[[CellValue], str]:
    """A choice by its value, its label or a synonym (width, quotes, joining words ignored);
    with ``pick_one`` also a cell naming exactly one label or synonym among other words."""
    what = f.called or f.label
    named = [*((f.choice_label(c), c) for c in f.choices), *f.synonyms.items()]
    table = _build_table([*((c, c) for c in f.choices), *named])
    exact = _enum_parser(table, what, [f.choice_label(c) for c in f.choices], f.suffixes)
    if not f.pick_one:
        return exact
    words = [(k, v) for k, v in _build_table(named).items() if k]

    def parse(value: CellValue) -> str:
        try:
            return exact(value)
        except _Bad:
            k = _canon_key(_as_text(value))
            found = {target for word, target in words if word in k}
            if len(found) > 1:
                raise _Bad(f"{what}限选1个：{_as_text(value)}") from None
            if found:
                return found.pop()
            raise

    return parse


def _county(value: CellValue) -> str:
    """A county by any spelling the divisions know, kept as written (the writers resolve it to
    its code again): checked here so that an unknown county is listed with every other problem
    of the file, not only once the rest is clean."""
    text = _text_value(value)
    if county_named(text)[1] is not None:
        raise _Bad(cast(str, county_named(text)[1]))
    return text


def parser_for(f: FormField) -> Callable[[CellValue], Any]:
    if f.type == "integer":
        base: Callable[[CellValue], Any] = _count
    elif f.type == "number":
        base = lambda v: _decimal(v, f.units)  # noqa: E731
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
        base = _choice(f)
    elif f.type == "county":
        base = _county
    else:
        base = _text_value
    return _bounded(f, base)


def _stored(value: Any, as_read: bool = False) -> Any:
    # A number without its trailing zeros ("260.50" and "6.0" are stored as 260.5 and 6): one
    # spelling of a figure however the cell held it (text, an Excel float, a percent cell);
    # or as read, for a form whose cases have always been stored so (``numbers_as_read``).
    if isinstance(value, Decimal):
        return str(value) if as_read else format(value.normalize(), "f")
    if isinstance(value, date):
        return value.isoformat()
    return value


def columns_of(form: FormSpec) -> list[Column]:
    return [
        Column(f.key, f.label, f.aliases, required=f.required) for f in form.fields if f.column_of is None
    ]


# Words in the name of a park committee (管委会) rather than a county-level government.
_PARK_MARKERS = (
    "园区", "开发区", "高新区", "新区", "管委会", "产业园", "工业园", "园", "集聚区", "示范区",
    "度假区", "保税区", "试验区", "功能区", "合作区", "港区", "经济区", "小镇", "基地",
)  # fmt: skip


def is_park(applicant: str) -> bool | None:
    """True for a park committee, False for a county-level government, None if unclear."""
    name = _header_base(_nfkc(applicant).replace(" ", ""))
    if any(m in name for m in _PARK_MARKERS):
        return True
    if re.search(r"[县市区]$", name):
        return False
    return None


def read_form(form: FormSpec, path: Path) -> list[FormRow]:
    """The rows of ``path`` typed by ``form``, or ImportRejected with every problem."""
    problems: list[ImportProblem] = []
    rows = list(iter_form(form, path, problems))
    return _finish(problems, rows)


def iter_form(
    form: FormSpec, path: PathLike, problems: list[ImportProblem], *, sheet_name: str | None = None
) -> Iterator[FormRow]:
    """``read_form`` as a stream: the good rows one at a time, every problem (a bad cell, a row
    repeating an earlier one) added to ``problems`` as it is found. Only a digest of each row's
    unique fields is kept (the duplicate check)."""
    sheet, sheet_rows = iter_sheet(path, columns_of(form), sheet_name=sheet_name, problems=problems)
    inferred_by: dict[str, list[FormField]] = {}
    for f in form.fields:
        if f.infer_from is not None:
            inferred_by.setdefault(f.infer_from.field, []).append(f)
    # What each field needs per row, worked out once: (field, column key, parser, empty message,
    # whether its value needs storing as text, the fields filled from it).
    plan = [
        (
            f,
            f.column_of or f.key,
            parser_for(f),
            f"必填项为空（{f.hint}）" if f.hint else "必填项为空",
            f.type in ("number", "percent", "date"),
            inferred_by.get(f.key, ()),
        )
        for f in form.fields
    ]
    seen = _Seen(sheet, problems, form.unique[-1])
    as_read = form.numbers_as_read
    for row in sheet_rows:
        r = _RowReader(sheet, row, problems)
        values: dict[str, Any] = {}
        # Fields not read: failed (a bad cell, or a condition on one) or skipped (condition false).
        failed: set[str] = set()
        skipped: set[str] = set()
        for f, column, parse, empty, store, fills in plan:
            key = f.key
            if f.when is not None and (f.when.field in failed or not f.when.holds(values)):
                (failed if f.when.field in failed else skipped).add(key)
                values[key] = None
                continue
            required = f.required and not (f.required_unless is not None and f.required_unless.holds(values))
            value = r.get(column, parse, required=required, default=f.default, empty_message=empty)
            if value is _MISSING:
                failed.add(key)
                values[key] = None
                continue
            if value is None and f.infer_from is not None and f.infer_from.field in values:
                source = values[f.infer_from.field]
                value = f.infer_from.values.get(source) if isinstance(source, str) else None
            values[key] = _stored(value, as_read) if store else value
            # A field before this one, left empty, that this one's value stands for.
            for g in fills:
                if values.get(g.key, 0) is None and g.key not in failed and g.key not in skipped:
                    values[g.key] = g.infer_from.values.get(value) if isinstance(value, str) else None  # type: ignore[union-attr]
        park = False
        if form.applicant_tier == "county_or_park" and isinstance(values.get(form.applicant), str):
            applicant = values[form.applicant]
            found = is_park(applicant)
            park = found is not False
            if values.get(form.county) is None and form.county not in failed:
                if found is False:
                    values[form.county] = applicant  # a county applying for itself
                    why = county_named(applicant)[1]
                    if why is not None:
                        r.problem(form.county, why)
                else:
                    r.problem(
                        form.county,
                        f"申报单位「{applicant}」是园区，须填写所在县（市、区）"
                        if found
                        else f"无法从申报单位「{applicant}」判断所在县（市、区），请填写",
                    )
        if not r.ok:
            continue
        unique = tuple(_norm_name(str(values.get(k) or "")) for k in form.unique)
        if seen.first(row.number, unique, partial(describe_row, form, values)):
            yield FormRow(row.number, values, park)


def describe_row(form: FormSpec, values: dict[str, Any]) -> str:
    """A row repeating an earlier one, in the form's words (``duplicate``), else by its unique fields."""
    if form.duplicate:
        return form.duplicate.format_map({k: ("" if v is None else v) for k, v in values.items()})
    return "、".join(f"{form.field(k).label}「{values.get(k)}」" for k in form.unique)  # type: ignore[union-attr]


def already_imported(form: FormSpec, values: dict[str, Any], ref: str) -> str:
    """A row the campaign already has a case of (``ref``), the one wording of every writer: the
    form's ``duplicate`` phrase, else the case's title."""
    what = (
        form.duplicate.format_map({k: ("" if v is None else v) for k, v in values.items()})
        if form.duplicate
        else f"「{title_of(form, values)}」"
    )
    return f"{what}已在本批次中（{ref}），不能重复导入"


def attrs_of(form: FormSpec, row: FormRow) -> dict[str, Any]:
    """What a case keeps of a row: every field but those kept out (``in_attrs: false``)."""
    out = {f.key: row.values.get(f.key) for f in form.fields if f.in_attrs}
    return out | {"source_row": row.row}


def title_of(form: FormSpec, values: dict[str, Any]) -> str:
    return form.title.format_map({k: ("" if v is None else v) for k, v in values.items()})
