"""Official forms and reports as .xlsx, laid out as the notice prints them.

- The forms a campaign file declares under ``exports:`` (the 2026 附2-3 推荐汇总表 a city sends
  sealed, the 附件3 工作人员信息汇总表): one layout, the words from the file.
- A status report per campaign (and city): stages, the board, the case list.
Builders take plain rows and return bytes; the routes decide who may have which rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import Cell
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from calendars.export_forms import PLACEHOLDER, RecommendationSummary, RosterForm
from calendars.timeutil import format_local

_THIN = Side(style="thin", color="000000")
_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_TITLE = Font(name="宋体", size=16, bold=True)
_HEAD = Font(name="宋体", size=11, bold=True)
_BODY = Font(name="宋体", size=11)
_CENTER = Alignment(horizontal="center", vertical="center", wrap_text=True)
_LEFT = Alignment(horizontal="left", vertical="center", wrap_text=True)
_LATE = PatternFill("solid", fgColor="F8D7DA")


def _put(ws: Worksheet, row: int, column: int, value: Any) -> Cell:
    """Write one cell; text is always text.

    openpyxl turns any string starting with ``=`` into a live formula, and imported names and
    titles come from people (``=HYPERLINK(…)`` in a contact's name would run in the reader's
    Excel). A string cell with quotePrefix stays text even when someone edits it in Excel.
    """
    cell = ws.cell(row=row, column=column)
    cell.value = value
    if isinstance(value, str):
        cell.data_type = "s"
        cell.quotePrefix = True
    return cell


def _save(wb: Workbook) -> bytes:
    buffer = BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def _title(
    ws: Worksheet, row: int, text: str, ncols: int, *, font: Font = _TITLE, height: float = 32
) -> None:
    ws.merge_cells(start_row=row, start_column=1, end_row=row, end_column=ncols)
    cell = _put(ws, row, 1, text)
    cell.font = font
    cell.alignment = _CENTER
    ws.row_dimensions[row].height = height


def _line(ws: Worksheet, row: int, text: str, ncols: int, *, height: float | None = None) -> None:
    ws.merge_cells(start_row=row, start_column=1, end_row=row, end_column=ncols)
    cell = _put(ws, row, 1, text)
    cell.font = _BODY
    cell.alignment = _LEFT
    if height:
        ws.row_dimensions[row].height = height


def _table(
    ws: Worksheet,
    first_row: int,
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    widths: Sequence[float],
    *,
    late_rows: set[int] | None = None,
) -> int:
    """Header and bordered body from ``first_row``; returns the next free row."""
    for col, (text, width) in enumerate(zip(headers, widths, strict=True), start=1):
        cell = _put(ws, first_row, col, text)
        cell.font, cell.alignment, cell.border = _HEAD, _CENTER, _BORDER
        ws.column_dimensions[get_column_letter(col)].width = width
    ws.row_dimensions[first_row].height = 36
    r = first_row
    for i, values in enumerate(rows):
        r = first_row + 1 + i
        for col, value in enumerate(values, start=1):
            cell = _put(ws, r, col, value)
            cell.font, cell.border = _BODY, _BORDER
            cell.alignment = _CENTER if col == 1 else _LEFT
            if late_rows and i in late_rows:
                cell.fill = _LATE
    ws.freeze_panes = ws.cell(row=first_row + 1, column=1)
    return r + 1


def _print_setup(ws: Worksheet, *, landscape: bool = True) -> None:
    ws.page_setup.orientation = "landscape" if landscape else "portrait"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True


@dataclass(frozen=True)
class OfficialForm:
    """A form a notice prints (附2-3 推荐汇总表, 附件3 工作人员信息汇总表), its words from the
    campaign file's ``exports:``: annex mark, title, the line under it, the table, then lines."""

    annex: str
    title: str
    sheet: str
    heading: str
    headers: Sequence[str]
    widths: Sequence[float]
    rows: Sequence[Sequence[Any]]
    # Lines under the table, each with its row height (a long note needs a taller row).
    after: Sequence[tuple[str, float]] = ()


def official_form_xlsx(form: OfficialForm) -> bytes:
    """One layout for every such form: 黑体 annex mark, 宋体 title and bordered table, A4 landscape."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None  # a new workbook always has its first sheet
    ws.title = form.sheet
    n = len(form.headers)
    _put(ws, 1, 1, form.annex).font = Font(name="黑体", size=12)
    _title(ws, 2, form.title, n)
    _line(ws, 3, form.heading, n, height=24)
    nxt = _table(ws, 4, form.headers, form.rows, form.widths)
    for i, (text, height) in enumerate(form.after):
        _line(ws, nxt + 1 + i, text, n, height=height)
    _print_setup(ws)
    return _save(wb)


def _fill(template: str, values: dict[str, Any]) -> str:
    return PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), "")), template)


def recommendation_summary_form(
    summary: RecommendationSummary,
    *,
    year: int,
    city: str,
    filler: str,
    phone: str,
    lines: Sequence[dict[str, Any]],
) -> OfficialForm:
    """A city's recommendation summary: ``lines`` are the listed applications, each its form
    fields as people read them, in the order the form lists them."""
    rows = []
    for n, fields in enumerate(lines, start=1):
        values = {**fields, "n": n}
        rows.append(
            [
                values.get(c.field, "")
                if c.field is not None
                # "{n}" alone is the line's number itself, as the notice's 序号 column is a number.
                else (n if c.value == "{n}" else _fill(c.value or "", values))
                for c in summary.columns
            ]
        )
    said = {"year": year, "city": city, "filler": filler, "phone": phone}
    after = [(_fill(line, said), 22.0) for line in summary.footer]
    if summary.note:
        after.append((summary.note, 48.0))
    return OfficialForm(
        annex=summary.annex,
        title=_fill(summary.title, said),
        sheet=summary.sheet,
        heading=_fill(summary.heading, said),
        headers=[c.header for c in summary.columns],
        widths=[c.width for c in summary.columns],
        rows=rows,
        after=after,
    )


def roster_form(roster: RosterForm, *, city: str, contacts: Sequence[dict[str, str]]) -> OfficialForm:
    """A city's 工作人员信息汇总表: ``contacts`` each by ROSTER_FIELDS (org, name, program …)."""
    return OfficialForm(
        annex=roster.annex,
        title=roster.title,
        sheet=roster.sheet or roster.title,
        heading=_fill(roster.heading, {"city": city}),
        headers=[c.header for c in roster.columns],
        widths=[c.width for c in roster.columns],
        rows=[[contact.get(c.field, "") for c in roster.columns] for contact in contacts],
        after=[(note, 30.0) for note in roster.notes],
    )


@dataclass(frozen=True)
class StatusSheet:
    title: str
    headers: Sequence[str]
    rows: Sequence[Sequence[Any]]
    widths: Sequence[float]
    late_rows: frozenset[int] = frozenset()


def status_report_xlsx(
    *, title: str, generated: datetime, scope: str, sheets: Sequence[StatusSheet]
) -> bytes:
    wb = Workbook()
    first = wb.active
    assert first is not None
    wb.remove(first)
    for sheet in sheets:
        ws = wb.create_sheet(sheet.title)
        n = len(sheet.headers)
        _title(ws, 1, f"{title}——{sheet.title}", n, font=Font(name="宋体", size=14, bold=True))
        _line(ws, 2, f"范围：{scope}　　生成时间：{format_local(generated)}（北京时间）", n, height=22)
        _table(ws, 3, sheet.headers, sheet.rows, sheet.widths, late_rows=set(sheet.late_rows))
        _print_setup(ws)
    return _save(wb)
