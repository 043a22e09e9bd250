"""Reading spreadsheets as people fill them in: headers found among title lines, columns by
label or alias, notes and placeholder rows skipped, every problem located (file, row, column);
and writing them (sample data, round trips). The forms that type the rows are
``models.sheet_roster`` and ``models.forms`` (a campaign file's ``form:``); the cell parsers ``models.sheet_values``.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

from models.programs import builtin_programs

CellValue = str | int | float | Decimal | bool | datetime | date | time | None

PathLike = str | os.PathLike[str]

# The header row is searched for among the first rows only: official forms put at most a title,
# a "设区市：" line and a "填报单位（盖章）：" line above it; searching further would risk taking a
# data row that happens to contain column-like words for the header.
HEADER_SEARCH_ROWS = 10
# ImportRejected prints at most this many problems; a file with hundreds of errors is usually one
# systematic mistake (wrong column, wrong template) and the first fifty make that obvious.
MAX_PRINTED_PROBLEMS = 50


# --------------------------------------------------------------------------------------------
# Problems
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportProblem:
    """One thing wrong with an import file, located as precisely as we can."""

    file: str
    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f" 第{self.row}行"
        if self.column:
            where += f" 「{self.column}」"
        return f"{where}: {self.message}"


class ImportRejected(Exception):
    """The file cannot be imported; `problems` lists everything found, not just the first."""

    def __init__(self, problems: Sequence[ImportProblem]) -> None:
        self.problems: list[ImportProblem] = list(problems)
        super().__init__(self._render())

    def _render(self) -> str:
        n = len(self.problems)
        lines = [f"导入被拒绝，共{n}处问题："]
        lines += [f"  {p}" for p in self.problems[:MAX_PRINTED_PROBLEMS]]
        if n > MAX_PRINTED_PROBLEMS:
            lines.append(f"  …另有{n - MAX_PRINTED_PROBLEMS}处")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self._render()


# --------------------------------------------------------------------------------------------
# Header normalisation
# --------------------------------------------------------------------------------------------

# Characters people type inconsistently in header cells and that never distinguish two columns.
_HEADER_NOISE = re.compile(r"[\s“”\"'‘’「」『』《》、,/\\:;·*＊]")
_PAREN_GROUP = re.compile(r"[(\[【][^()\[\]【】]*[)\]】]")


def _nfkc(text: str) -> str:
    # NFKC folds full-width parentheses, digits, letters, %, @ and the ideographic space to ASCII,
    # which covers most "手机号码（浙政钉号码）" vs "手机号码(浙政钉号码)" differences in one step.
    return unicodedata.normalize("NFKC", text)


def _header_key(text: str) -> str:
    return _HEADER_NOISE.sub("", _nfkc(text)).lower()


def _header_base(key: str) -> str:
    # Drop every parenthetical, innermost first, so nested ones like
    # "产品类别(先进制造类、…、特色(消费品)类)" reduce to "产品类别".
    prev = None
    while prev != key:
        prev, key = key, _PAREN_GROUP.sub("", key)
    return key


@dataclass(frozen=True, slots=True)
class Column:
    """How one expected column is recognised: canonical key, label as on the form, aliases."""

    key: str
    label: str
    aliases: tuple[str, ...] = ()
    required: bool = True

    @property
    def names(self) -> tuple[str, ...]:
        return (self.label, *self.aliases)

    def full_keys(self) -> frozenset[str]:
        return frozenset(k for k in (_header_key(n) for n in self.names) if k)

    def base_keys(self) -> frozenset[str]:
        return frozenset(b for b in (_header_base(_header_key(n)) for n in self.names) if b)


def _match_columns(cells: Sequence[CellValue], columns: Sequence[Column]) -> dict[str, int]:
    """Map column keys to 0-based cell indexes.

    Exact (normalised) matches are assigned first for all columns, then matches ignoring
    parentheticals; so "联系电话（手机）" finds "联系电话" but never steals a cell another column
    names exactly. Each cell serves at most one column; unknown cells are ignored.
    """
    keys = [_header_key(_as_text(c)) if c is not None else "" for c in cells]
    bases = [_header_base(k) for k in keys]
    assigned: dict[str, int] = {}
    used: set[int] = set()
    for cell_keys, spec_keys in ((keys, Column.full_keys), (bases, Column.base_keys)):
        for col in columns:
            if col.key in assigned:
                continue
            wanted = spec_keys(col)
            for i, k in enumerate(cell_keys):
                if k and i not in used and k in wanted:
                    assigned[col.key] = i
                    used.add(i)
                    break
    return assigned


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SheetRow:
    """A data row: its row number as Excel shows it (1-based) and its cells by column key."""

    number: int
    values: dict[str, CellValue]


@dataclass(slots=True)
class Sheet:
    file: str  # file name used in messages
    path: Path
    sheet_name: str | None
    header_row: int  # 1-based
    headers: list[str]  # header cells as found, stripped
    columns: dict[str, int]  # column key -> 0-based index (only columns found)
    specs: list[Column] = field(default_factory=list)
    rows: list[SheetRow] = field(default_factory=list)

    def label(self, key: str) -> str:
        for spec in self.specs:
            if spec.key == key:
                return spec.label
        return key


def _clean_cell(value: Any) -> CellValue:
    if isinstance(value, str):
        # NBSP and the ideographic space are what copy-paste from Word/WPS leaves behind.
        value = value.replace("\u3000", " ").replace("\xa0", " ").strip()
        return value or None
    return value


def _as_text(value: CellValue) -> str:
    """A cell as the user would read it, for messages and text fields."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float):
        # Excel stores typed numbers (phone numbers, ids) as floats: 13800138000.0 -> "13800138000".
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral_value() else str(value)
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


def _csv_encoding(path: Path) -> str:
    """UTF-8 first (with or without BOM): a GBK byte sequence is almost never valid UTF-8, while
    the reverse is often "valid" garbage. GB18030 is a superset of GBK/GB2312, which is what
    Chinese Excel writes for "CSV (逗号分隔)". Checked a megabyte at a time over the whole file
    (a million-row file is not held in memory), before any row is read."""
    for encoding in ("utf-8", "gb18030"):
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            with path.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        return "utf-8-sig" if encoding == "utf-8" else encoding
    raise UnicodeDecodeError("gb18030", b"", 0, 1, "neither UTF-8 nor GB18030")


def _iter_csv_rows(path: Path) -> Iterator[tuple[CellValue, ...]]:
    encoding = _csv_encoding(path)
    with path.open(encoding=encoding, newline="") as fh:
        # Excel's "Unicode 文本" export is tab-separated; everything else we see is comma-separated.
        # csv.Sniffer is avoided on purpose: title lines with a single cell confuse it.
        sample = fh.read(4000)
        fh.seek(0)
        delimiter = "\t" if sample.count("\t") > sample.count(",") else ","
        for record in csv.reader(fh, delimiter=delimiter):
            yield tuple(_clean_cell(c) for c in record)


def _iter_xlsx_rows(path: Path, sheet_name: str | None) -> tuple[str, Iterator[tuple[CellValue, ...]]]:
    """The sheet's title and its rows, streamed (openpyxl read_only: a row at a time)."""
    from openpyxl import load_workbook

    wb = load_workbook(path, read_only=True, data_only=True)
    if sheet_name is None:
        ws = wb.worksheets[0]
    elif sheet_name in wb.sheetnames:
        ws = wb[sheet_name]
    else:
        wb.close()
        raise KeyError(sheet_name, list(wb.sheetnames))

    def rows() -> Iterator[tuple[CellValue, ...]]:
        try:
            for cells in ws.iter_rows():
                values: list[CellValue] = []
                for cell in cells:
                    value = cell.value
                    fmt = getattr(cell, "number_format", None) or ""
                    # A percentage-formatted cell holds 0.035 but shows 3.5%; take what the user sees.
                    if isinstance(value, int | float) and not isinstance(value, bool) and "%" in fmt:
                        value = Decimal(str(value)) * 100
                    values.append(_clean_cell(value))
                yield tuple(values)
        finally:
            wb.close()

    return ws.title, rows()


_NOTE_FIRST_CELL = re.compile(
    r"^(?:"
    r"(?:备注|注|说明|附注)\s*[:：\d]"
    r"|(?:填报人|填表人|联系人|联系电话|联系方式|审核人|负责人|填报单位|填报日期|制表人?|单位负责人|日期)\s*(?:[:：(]|$)"
    r"|\(?盖章|合计|小计|总计"
    r")"
)
_PLACEHOLDERS = frozenset({"...", "…", "……", "⋯"})


def _non_empty(cells: Sequence[CellValue]) -> list[CellValue]:
    return [c for c in cells if c is not None]


def _is_note_row(cells: Sequence[CellValue]) -> bool:
    filled = _non_empty(cells)
    return bool(filled) and bool(_NOTE_FIRST_CELL.match(_nfkc(_as_text(filled[0]))))


def read_sheet(
    path: PathLike,
    columns: Sequence[Column] | None = None,
    *,
    sheet_name: str | None = None,
) -> Sheet:
    """Read a .csv or .xlsx file into a Sheet of raw cells keyed by column key.

    With `columns`, the header row is the first of the first 10 non-empty rows in which every
    required column is found; missing required columns raise ImportRejected (all of them at once).
    Without `columns`, the header is the first row with at least two filled cells and rows are
    keyed by header text. Empty rows, "..." placeholder rows, template rows with nothing in any
    expected column, and trailing note rows (备注：…, 填报人：…, 联系电话…) are skipped.
    """
    unstorable: list[ImportProblem] = []
    sheet, rows = iter_sheet(path, columns, sheet_name=sheet_name, problems=unstorable)
    sheet.rows.extend(rows)
    if unstorable:
        raise ImportRejected(unstorable)
    return sheet


def iter_sheet(
    path: PathLike,
    columns: Sequence[Column] | None = None,
    *,
    sheet_name: str | None = None,
    problems: list[ImportProblem],
) -> tuple[Sheet, Iterator[SheetRow]]:
    """``read_sheet`` as a stream: the Sheet (header found, no rows) and its data rows one at a
    time, so that a million-row file is never held whole. A file-level problem (no such file,
    a missing column) raises here; a cell that cannot be stored is added to ``problems`` as the
    rows go by."""
    p = Path(path)
    name = p.name
    suffix = p.suffix.lower()
    specs = list(columns or ())

    def reject(message: str) -> ImportRejected:
        return ImportRejected([ImportProblem(name, None, None, message)])

    if not p.is_file():
        raise reject("文件不存在或不是普通文件")
    found_sheet: str | None = None
    try:
        if suffix == ".csv":
            raw_rows = _iter_csv_rows(p)
        elif suffix in (".xlsx", ".xlsm"):
            found_sheet, raw_rows = _iter_xlsx_rows(p, sheet_name)
        elif suffix in (".xls", ".et", ".wps"):
            raise reject(f"不支持 {suffix} 格式，请在 Excel/WPS 中另存为 .xlsx 或 .csv 后再导入")
        else:
            raise reject(f"无法识别的文件类型「{suffix or '无扩展名'}」，请上传 .xlsx 或 .csv 文件")
        numbered_rows = ((i + 1, r) for i, r in enumerate(raw_rows) if _non_empty(r))
        # The header is looked for among the first rows: only they are read before the stream.
        candidates = list(itertools.islice(numbered_rows, HEADER_SEARCH_ROWS))
    except ImportRejected:
        raise
    except KeyError as exc:
        wanted, available = exc.args
        raise reject(f"找不到工作表「{wanted}」；文件中的工作表：{'、'.join(available)}") from exc
    except UnicodeDecodeError as exc:
        raise reject("无法识别文件编码（既不是 UTF-8 也不是 GBK/GB18030）") from exc
    except Exception as exc:  # openpyxl raises assorted zipfile/XML errors for damaged files
        raise reject(f"无法读取文件（文件可能已损坏或并非真正的 Excel 文件）：{exc}") from exc

    if not candidates:
        raise reject("文件为空，没有任何内容")
    header_row: int | None = None
    header_cells: tuple[CellValue, ...] = ()
    mapping: dict[str, int] = {}
    if specs:
        required = [c for c in specs if c.required]
        best: tuple[int, int, tuple[CellValue, ...], dict[str, int]] | None = None
        for number, cells in candidates:
            m = _match_columns(cells, specs)
            if all(c.key in m for c in required):
                header_row, header_cells, mapping = number, cells, m
                break
            score = sum(1 for c in required if c.key in m)
            if best is None or score > best[0]:
                best = (score, number, cells, m)
        if header_row is None:
            assert best is not None
            score, number, cells, m = best
            if score == 0:
                # Nothing recognisable: show the first row that looks like a header at all.
                number, cells = next(
                    ((n, c) for n, c in candidates if len(_non_empty(c)) >= 2), candidates[0]
                )
            found = "、".join(f"「{_as_text(c)}」" for c in _non_empty(cells)) or "（无）"
            problems = [
                ImportProblem(
                    name,
                    None,
                    col.label,
                    f"缺少必填列「{col.label}」（可接受的列名：{'、'.join(col.names)}）；"
                    f"在前{HEADER_SEARCH_ROWS}行中最接近表头的是第{number}行：{found}",
                )
                for col in required
                if col.key not in m
            ]
            raise ImportRejected(problems)
    else:
        header_row, header_cells = next(
            ((n, c) for n, c in candidates if len(_non_empty(c)) >= 2), candidates[0]
        )
        mapping = {}
        for i, c in enumerate(header_cells):
            if c is not None:
                mapping.setdefault(_as_text(c), i)

    assert header_row is not None  # set by both branches above; narrows the type
    sheet = Sheet(
        file=name,
        path=p,
        sheet_name=found_sheet,
        header_row=header_row,
        headers=[_as_text(c) for c in header_cells],
        columns=mapping,
        specs=specs,
    )

    def data_rows() -> Iterator[SheetRow]:
        in_notes = False
        for number, cells in itertools.chain(candidates, numbered_rows):
            if number <= header_row:
                continue
            filled = _non_empty(cells)
            if all(_as_text(c) in _PLACEHOLDERS for c in filled):
                continue
            if _is_note_row(cells):
                in_notes = True
                continue
            # Continuation lines of a note block ("2. 集群遴选工作人员信息表请发…") are single cells.
            # A row with several cells after the notes is still treated as data rather than silently
            # dropped, so misplaced data is validated and reported, never lost.
            if in_notes and len(filled) <= 1:
                continue
            values = {key: (cells[i] if i < len(cells) else None) for key, i in mapping.items()}
            if all(v is None for v in values.values()):
                continue  # e.g. template rows that only carry a 序号
            for key, value in values.items():
                bad = _control_character(value)
                if bad:
                    problems.append(ImportProblem(name, number, sheet.label(key), bad))
            yield SheetRow(number, values)

    return sheet, data_rows()


# C0 controls other than tab and line breaks (which a cell may legitimately hold), and DEL.
# PostgreSQL cannot store U+0000 in text at all, and refuses it only when the whole import is
# being written; the others are invisible in every form and report. Caught here, per cell.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _control_character(value: CellValue) -> str | None:
    if not isinstance(value, str):
        return None
    found = _CONTROL.search(value)
    if found is None:
        return None
    code = ord(found.group())
    what = "NUL 空字符" if code == 0 else "不可见控制字符"
    return f"含有{what}（U+{code:04X}，第{found.start() + 1}个字符），无法保存；请删除后重新导入"


# --------------------------------------------------------------------------------------------
# Writing (sample data and round-trip tests)
# --------------------------------------------------------------------------------------------


def _csv_cell(value: Any) -> str:
    if isinstance(value, frozenset | set):
        labels = {p.id: p.name for p in builtin_programs().values()}
        return "、".join(labels.get(v, v) for v in sorted(value))
    return _as_text(value)


def write_sheet(
    path: PathLike,
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    title_lines: Sequence[str] = (),
    footer_lines: Sequence[str] = (),
    sheet_name: str = "Sheet1",
    encoding: str = "utf-8-sig",
) -> Path:
    """Write headers and rows to .csv (UTF-8 with BOM by default, so Excel opens it) or .xlsx.

    `title_lines` go above the header and `footer_lines` below the data, one cell each, the way
    the official forms carry "工作人员信息汇总表" / "设区市：" and "备注：…" / "填报人：".
    Dates are written as real date cells in .xlsx and as ISO text in .csv.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    all_rows: list[Sequence[Any]] = [
        *([t] for t in title_lines),
        list(headers),
        *rows,
        *([f] for f in footer_lines),
    ]
    if suffix == ".csv":
        with p.open("w", encoding=encoding, newline="") as fh:
            writer = csv.writer(fh)
            for r in all_rows:
                writer.writerow([_csv_cell(v) for v in r])
    elif suffix in (".xlsx", ".xlsm"):
        from openpyxl import Workbook

        wb = Workbook()
        ws = wb.active
        assert ws is not None
        ws.title = sheet_name
        for r in all_rows:
            out: list[Any] = []
            for v in r:
                if isinstance(v, frozenset | set):
                    v = _csv_cell(v)
                out.append(v)
            ws.append(out)
        for row in ws.iter_rows():
            for cell in row:
                if isinstance(cell.value, datetime):
                    cell.number_format = "yyyy-mm-dd hh:mm"
                elif isinstance(cell.value, date):
                    cell.number_format = "yyyy-mm-dd"
        wb.save(p)
    else:
        raise ValueError(f"write_sheet: unsupported suffix {suffix!r} (use .csv or .xlsx)")
    return p
