"""Official forms and reports as .xlsx, laid out as the notice prints them.

- 附2-3 2026年浙江制造精品推荐汇总表: what a city sends, sealed, by 07-20.
- 附件3 工作人员信息汇总表: one per city and program, by 06-05.
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

from calendars.timeutil import format_local

JINGPIN_NOTE = (
    "注：“415X”先进制造业集群赛道：人工智能、智能物联、高端软件、集成电路、新能源汽车及零部件、工业母机与机器人、"
    "高端船舶与海工装备、低空经济与商业航天、新能源与新型储能、电气与农机装备、现代纺织与服装、生物医药与医疗器械、"
    "现代家居与智能家电、绿色石化、高端新材料以及历史经典产业。"
)
JINGPIN_HEADERS = (
    "序号",
    "企业名称",
    "产品名称及型号",
    "产品类别\n（先进制造类、数字技术融合类、特色（消费品）类）",
    "所在“415X”先进制造业集群赛道",
)
ROSTER_HEADERS = (
    "市、县(市、区)",
    "处室/科室",
    "姓名",
    "职务",
    "手机号码(浙政钉号码)",
    "备注(集群遴选/制造精品)",
)
ROSTER_NOTES = (
    "备注：1. 请分别统计汇总集群遴选、制造精品目录征集工作人员汇总",
    "2. 集群遴选工作人员信息表请发省产业发展中心马远博；制造精品目录征集工作人员信息表请发省技创中心陈诗遥。",
)

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
class JingpinRow:
    enterprise: str
    product: str
    category: str
    track: str


def jingpin_summary_xlsx(
    *, year: int, filler_org: str, rows: Sequence[JingpinRow], filler: str, phone: str
) -> bytes:
    """附2-3 {year}年浙江制造精品推荐汇总表, with one line per recommended product."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None  # a new workbook always has its first sheet
    ws.title = "推荐汇总表"
    n = len(JINGPIN_HEADERS)
    _put(ws, 1, 1, "附2-3").font = Font(name="黑体", size=12)
    _title(ws, 2, f"{year}年浙江制造精品推荐汇总表", n)
    _line(ws, 3, f"填报单位（盖章）：{filler_org}", n, height=24)
    body = [(i, r.enterprise, r.product, r.category, r.track) for i, r in enumerate(rows, start=1)]
    nxt = _table(ws, 4, JINGPIN_HEADERS, body, (8, 34, 34, 26, 28))
    _line(ws, nxt + 1, f"填报人：{filler}", n, height=22)
    _line(ws, nxt + 2, f"联系电话（手机）：{phone}", n, height=22)
    _line(ws, nxt + 3, JINGPIN_NOTE, n, height=48)
    _print_setup(ws)
    return _save(wb)


@dataclass(frozen=True)
class RosterRow:
    org: str
    department: str
    name: str
    title: str
    mobile: str
    program: str


def roster_xlsx(*, city: str, rows: Sequence[RosterRow]) -> bytes:
    """附件3 工作人员信息汇总表 for one city."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "工作人员信息汇总表"
    n = len(ROSTER_HEADERS)
    _put(ws, 1, 1, "附件3").font = Font(name="黑体", size=12)
    _title(ws, 2, "工作人员信息汇总表", n)
    _line(ws, 3, f"设区市：{city}", n, height=24)
    body = [(r.org, r.department, r.name, r.title, r.mobile, r.program) for r in rows]
    nxt = _table(ws, 4, ROSTER_HEADERS, body, (18, 18, 12, 14, 22, 22))
    for i, note in enumerate(ROSTER_NOTES):
        _line(ws, nxt + 1 + i, note, n, height=30)
    _print_setup(ws)
    return _save(wb)


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
