"""Pure file-reading and row-validation layer for spreadsheet imports.

This module turns a CSV or XLSX file (as people in city and county 经信局 actually fill them in)
into typed, validated rows, or into a complete list of problems. It never touches the database:
the import layer writes the rows all-or-nothing, so everything that can be wrong with a file must
be found here, in one pass, and reported together (a clerk fixing one error per upload round-trip
is exactly what we want to avoid).

Public API:
    read_sheet(path, columns=None, *, sheet_name=None) -> Sheet
    parse_roster(path) -> list[RosterRow]                      (附件3 工作人员信息汇总表)
    parse_cluster_applications(path) -> list[ClusterApplicationRow]   (附1-2 fields)
    parse_jingpin_applications(path) -> list[JingpinApplicationRow]   (附2-3 + 征集要求)
    write_sheet(path, headers, rows) -> Path
    ImportProblem, ImportRejected, Column
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import itertools
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal, TypeVar

__all__ = [
    "CLUSTER_NAMES",
    "JINGPIN_TRACKS",
    "X_SYSTEMS",
    "CellValue",
    "ClusterApplicationRow",
    "Column",
    "ImportProblem",
    "ImportRejected",
    "JingpinApplicationRow",
    "ProductCategory",
    "Program",
    "RosterRow",
    "Sheet",
    "SheetRow",
    "ZoneType",
    "iter_cluster_applications",
    "iter_jingpin_applications",
    "iter_sheet",
    "parse_cluster_applications",
    "parse_jingpin_applications",
    "parse_roster",
    "read_sheet",
    "write_sheet",
]

CellValue = str | int | float | Decimal | bool | datetime | date | time | None
Program = Literal["cluster", "jingpin"]
ZoneType = Literal["core", "collaborative", "rising_star"]
ProductCategory = Literal["advanced", "digital", "consumer"]

PathLike = str | os.PathLike[str]

# The header row is searched for among the first rows only: official forms put at most a title,
# a "设区市：" line and a "填报单位（盖章）：" line above it; searching further would risk taking a
# data row that happens to contain column-like words for the header.
HEADER_SEARCH_ROWS = 10
# ImportRejected prints at most this many problems; a file with hundreds of errors is usually one
# systematic mistake (wrong column, wrong template) and the first fifty make that obvious.
MAX_PRINTED_PROBLEMS = 50

# The 15 "415" cluster names from 附1-1, in the notice's order.
CLUSTER_NAMES: tuple[str, ...] = (
    "人工智能",
    "智能物联",
    "高端软件",
    "集成电路",
    "新能源汽车及零部件",
    "工业母机与机器人",
    "高端船舶与海工装备",
    "低空经济与商业航天",
    "新能源与新型储能",
    "电气与农机装备",
    "现代纺织与服装",
    "生物医药与医疗器械",
    "现代家居与智能家电",
    "绿色石化",
    "高端新材料",
)
# 精品 products may also belong to 历史经典产业 (征集方案 一、 and the note under 附2-3).
JINGPIN_TRACKS: tuple[str, ...] = (*CLUSTER_NAMES, "历史经典产业")

# The "X" system types listed on 附1-2, canonical spelling (curly quotes as in the notice).
X_SYSTEMS: tuple[str, ...] = (
    "未来产业先导区",
    "历史经典产业核心区协同区",
    "中小企业特色产业集群",
    "“新星”产业群",
    "创新型产业集群",
    "安全应急产业集群",
    "省现代化交通产业集群",
    "无",
)

# The form says 第4项 (创新平台) need not be filled in by 人工智能 and 高端软件 applicants.
_PLATFORM_EXEMPT_CLUSTERS = frozenset({"人工智能", "高端软件"})


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


_BOTH_WORDS = ("全部", "均", "都", "两者", "两项", "以上")


def _programs(value: CellValue) -> frozenset[str]:
    shown = _as_text(value)
    tokens = [t for t in re.split(r"[、,/;\s+&和及与]+", _nfkc(shown)) if t]
    found: set[str] = set()
    for token in tokens:
        if any(w in token for w in _BOTH_WORDS):
            found |= {"cluster", "jingpin"}
        elif "集群" in token or "遴选" in token:
            found.add("cluster")
        elif "精品" in token:
            found.add("jingpin")
        else:
            raise _Bad(
                f"无法识别的工作类别：{shown} (应填「集群遴选」「制造精品」或两者，如「集群遴选、制造精品」)"
            )
    if not found:
        raise _Bad(f"无法识别的工作类别：{shown} (应填「集群遴选」「制造精品」或两者)")
    return frozenset(found)


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


_CLUSTER_TABLE = _build_table((n, n) for n in CLUSTER_NAMES)
_TRACK_TABLE = _build_table([*((n, n) for n in JINGPIN_TRACKS), ("历史经典", "历史经典产业")])
_cluster_name = _enum_parser(_CLUSTER_TABLE, "集群名称", CLUSTER_NAMES, ("产业集群", "集群"))
_jingpin_track = _enum_parser(_TRACK_TABLE, "集群赛道", JINGPIN_TRACKS, ("产业集群", "集群", "赛道"))

_ZONE_TABLE: dict[str, ZoneType] = _build_table(
    [
        ("core", "core"),
        ("collaborative", "collaborative"),
        ("rising_star", "rising_star"),
    ]
)


def _zone_type(value: CellValue) -> ZoneType:
    shown = _as_text(value)
    k = _canon_key(shown)
    if k in _ZONE_TABLE:
        return _ZONE_TABLE[k]
    core, collab, star = "核心区" in k, "协同区" in k, "新星" in k
    if core + collab + star > 1:
        raise _Bad(f"申报类型限选1个：{shown}")
    if core:
        return "core"
    if collab:
        return "collaborative"
    if star:
        return "rising_star"
    raise _Bad(f"申报类型不在可选范围内：{shown} (可选：核心区、协同区、新星产业群)")


_X_TABLE: dict[str, str] = {}
for _x in X_SYSTEMS:
    _X_TABLE[_canon_key(_x)] = _x
    _X_TABLE[_canon_key(_x.removeprefix("省"))] = _x
    _X_TABLE[_canon_key(_x.replace("产业群", "产业集群"))] = _x
for _none in ("暂无", "否", "/", "-", "—", "不属于"):
    _X_TABLE[_canon_key(_none)] = "无"
_x_system = _enum_parser(_X_TABLE, "当前所属X体系", X_SYSTEMS, ("类型",))

_CATEGORY_TABLE: dict[str, ProductCategory] = _build_table(
    [
        ("先进制造", "advanced"),
        ("先进制造类", "advanced"),
        ("advanced", "advanced"),
        ("数字技术融合", "digital"),
        ("数字技术融合类", "digital"),
        ("数字融合类", "digital"),
        ("digital", "digital"),
        ("特色（消费品）类", "consumer"),
        ("特色消费品", "consumer"),
        ("特色类", "consumer"),
        ("特色", "consumer"),
        ("消费品类", "consumer"),
        ("消费品", "consumer"),
        ("consumer", "consumer"),
    ]
)
_category = _enum_parser(
    _CATEGORY_TABLE, "产品类别", ("先进制造类", "数字技术融合类", "特色（消费品）类"), ("产品",)
)

_PARK_MARKERS = (
    "园区",
    "开发区",
    "高新区",
    "新区",
    "管委会",
    "产业园",
    "工业园",
    "园",
    "集聚区",
    "示范区",
    "度假区",
    "保税区",
    "试验区",
    "功能区",
    "合作区",
    "港区",
    "经济区",
    "小镇",
    "基地",
)


def _is_park(applicant: str) -> bool | None:
    """True for a park committee, False for a county-level government, None if unclear."""
    name = _header_base(_nfkc(applicant).replace(" ", ""))
    if any(m in name for m in _PARK_MARKERS):
        return True
    if re.search(r"[县市区]$", name):
        return False
    return None


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


def _check_duplicates(
    sheet: Sheet,
    problems: list[ImportProblem],
    rows: Iterable[Any],
    key: Callable[[Any], Any],
    column: str,
    describe: Callable[[Any], str],
) -> None:
    seen: dict[Any, Any] = {}
    for r in rows:
        k = key(r)
        if k in seen:
            first = seen[k]
            problems.append(
                ImportProblem(sheet.file, r.row, sheet.label(column), f"{describe(r)} 与第{first.row}行重复")
            )
        else:
            seen[k] = r


class _Seen:
    """The cross-row rule of a streamed file: a row may not repeat an earlier one. Keeps a
    16-byte digest of each row's key and its row number, not the rows (a million rows: tens of
    megabytes)."""

    def __init__(self, sheet: Sheet, problems: list[ImportProblem], column: str) -> None:
        self.sheet, self.problems, self.column = sheet, problems, column
        self.rows: dict[bytes, int] = {}

    def first(self, number: int, key: tuple[str, ...], describe: str) -> bool:
        digest = hashlib.blake2b("\x1f".join(key).encode(), digest_size=16).digest()
        earlier = self.rows.setdefault(digest, number)
        if earlier == number:
            return True
        self.problems.append(
            ImportProblem(
                self.sheet.file, number, self.sheet.label(self.column), f"{describe} 与第{earlier}行重复"
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


# --------------------------------------------------------------------------------------------
# 附件3 工作人员信息汇总表 (+ 电子邮箱)
# --------------------------------------------------------------------------------------------

ROSTER_COLUMNS: tuple[Column, ...] = (
    Column(
        "org",
        "市、县(市、区)",
        ("市县", "市、县", "县(市、区)", "地区", "单位", "单位名称", "所在地区", "所属单位"),
    ),
    Column("department", "处室/科室", ("处室", "科室", "部门", "处(科)室"), required=False),
    Column("name", "姓名", ("人员姓名", "工作人员", "联系人")),
    Column("title", "职务", ("职位", "职务/职称"), required=False),
    Column(
        "mobile",
        "手机号码(浙政钉号码)",
        ("手机号码", "手机", "手机号", "浙政钉号码", "浙政钉", "联系电话", "电话"),
    ),
    Column(
        "programs",
        "备注(集群遴选/制造精品)",
        ("备注", "项目", "工作类别", "所属工作", "类别", "负责工作"),
    ),
    Column("email", "电子邮箱", ("邮箱", "电子邮件", "email", "e-mail", "邮件地址", "邮箱地址")),
)


@dataclass(frozen=True, slots=True)
class RosterRow:
    row: int  # row number in the file, as Excel shows it
    org: str  # 市、县(市、区) as typed: 杭州市 / 西湖区 / 省经信厅 / a park, SOE group or association
    department: str | None
    name: str
    title: str | None
    mobile: str  # normalised: 13812345678 or 0571-87058343
    mobile_display: str  # as typed
    programs: frozenset[str]  # subset of {"cluster", "jingpin"}, never empty
    email: str

    @property
    def zzd_mobile(self) -> str:
        """The column is 手机号码（浙政钉号码）: a mobile is the 浙政钉 account; a landline is none."""
        return "" if "-" in self.mobile else self.mobile


_PROGRAM_LABEL = {"cluster": "集群遴选", "jingpin": "制造精品"}


def parse_roster(path: PathLike, *, sheet_name: str | None = None) -> list[RosterRow]:
    sheet = read_sheet(path, ROSTER_COLUMNS, sheet_name=sheet_name)
    problems: list[ImportProblem] = []
    rows: list[RosterRow] = []
    for row in sheet.rows:
        r = _RowReader(sheet, row, problems)
        org = r.get("org", _text_value)
        department = r.get("department", _text_value, required=False)
        name = r.get("name", _text_value)
        title = r.get("title", _text_value, required=False)
        phone = r.get("mobile", _phone)
        programs = r.get(
            "programs", _programs, empty_message="须注明「集群遴选」或「制造精品」（两项都负责可填「全部」）"
        )
        email = r.get("email", _email)
        if r.ok:
            rows.append(
                RosterRow(
                    row=row.number,
                    org=org,
                    department=department,
                    name=name,
                    title=title,
                    mobile=phone.normalized,
                    mobile_display=phone.display,
                    programs=programs,
                    email=email,
                )
            )

    # Same person listed twice for the same organisation and program: one row per program each.
    seen: dict[tuple[str, str, str], RosterRow] = {}
    for rr in rows:
        for program in sorted(rr.programs):
            k = (_norm_name(rr.name), _norm_name(rr.org), program)
            if k in seen:
                problems.append(
                    ImportProblem(
                        sheet.file,
                        rr.row,
                        sheet.label("name"),
                        f"「{rr.name}」（{rr.org}，{_PROGRAM_LABEL[program]}）与第{seen[k].row}行重复",
                    )
                )
            else:
                seen[k] = rr
    # One mailbox for two different people would send one person's reminders to the other.
    by_email: dict[str, RosterRow] = {}
    for rr in rows:
        k = rr.email.lower()
        first = by_email.setdefault(k, rr)
        if first is not rr and _norm_name(first.name) != _norm_name(rr.name):
            problems.append(
                ImportProblem(
                    sheet.file,
                    rr.row,
                    sheet.label("email"),
                    f"邮箱 {rr.email} 已用于第{first.row}行的「{first.name}」，不能再用于「{rr.name}」",
                )
            )
    return _finish(problems, rows)


# --------------------------------------------------------------------------------------------
# 附1-2 浙江省先进制造业集群申报信息表 (the fields the rules need)
# --------------------------------------------------------------------------------------------

_COUNTY_ALIASES = ("所在县", "所在县市区", "所属县(市、区)", "所在县(市、区)", "所在区县", "所在地")

CLUSTER_COLUMNS: tuple[Column, ...] = (
    Column(
        "applicant",
        "申报单位",
        ("县(市、区)/园区名称", "县(市区)园区名称", "园区名称", "申报主体", "申报地区", "申报单位名称"),
    ),
    Column("county", "所在县（市、区）", _COUNTY_ALIASES, required=False),
    Column("zone_type", "申报类型", ("申报类型(限选1个)", "类型", "申报类别")),
    Column(
        "cluster_name",
        "集群名称",
        ("省级重点产业集群", "所属集群", "产业集群", "集群名称/产业高地", "产业高地"),
        required=False,
    ),
    Column("track", "细分赛道", ("细分赛道(限选1个)", "赛道", "申报赛道")),
    Column(
        "x_system",
        "当前所属X体系",
        ("当前所属“X”体系类型", "当前所属X体系类型", "所属X体系", "X体系", "X体系类型"),
    ),
    Column(
        "revenue_2025",
        "2025年集群规上企业营业收入（亿元）",
        ("2025年集群规上企业营业收入", "集群规上企业营业收入", "规上企业营业收入", "营业收入"),
    ),
    Column("chain_leaders", "省级及以上链主企业数量", ("链主企业数量", "链主企业数")),
    Column("innovation_platforms", "省级及以上创新平台数量", ("创新平台数量", "创新平台数")),
    Column("rd_institutions", "省级及以上企业研发机构数量", ("企业研发机构数量", "研发机构数量")),
    Column(
        "world_class",
        "世界级细分领域",
        ("细分领域竞争力达到世界级水平", "是否世界级细分领域", "世界级"),
        required=False,
    ),
    Column("contact_name", "集群联系人", ("联系人",)),
    Column(
        "contact_mobile",
        "联系人手机",
        ("集群联系人手机", "联系人移动电话", "移动电话", "联系电话", "手机", "手机号码"),
    ),
    Column("contact_email", "联系人邮箱", ("集群联系人邮箱", "邮箱", "电子邮箱"), required=False),
    Column("external_id", "外部编号", ("平台编号", "申报编号", "编号"), required=False),
)


@dataclass(frozen=True, slots=True)
class ClusterApplicationRow:
    row: int
    applicant: str  # 县（市、区）/园区名称 as typed
    county: str  # 所在县（市、区）; the applicant itself when a county applies
    is_park: bool  # True when the applicant is (or may be) a park committee rather than a county
    zone_type: ZoneType
    cluster_name: (
        str | None
    )  # canonical 省级重点产业集群 for core/collaborative; 产业高地 text for rising_star
    track: str  # 细分赛道 as typed (checked against 附1-1 by the rules, not here)
    x_system: str  # one of X_SYSTEMS
    revenue_2025: Decimal  # 亿元
    chain_leaders: int
    innovation_platforms: int | None  # None only where the form exempts it (人工智能、高端软件)
    rd_institutions: int
    world_class: bool
    contact_name: str
    contact_mobile: str
    contact_mobile_display: str
    contact_email: str | None
    external_id: str | None


def parse_cluster_applications(
    path: PathLike, *, sheet_name: str | None = None, clusters: Mapping[str, str] | None = None
) -> list[ClusterApplicationRow]:
    """``clusters`` maps each 细分赛道 (and each cluster's own name, which people type there too)
    to its 集群, from the campaign file's 附1-1: 附1-2 itself has no cluster column, so a row
    without one takes the cluster of its 细分赛道, or None when that cannot be told (the
    eligibility rules then say why)."""
    problems: list[ImportProblem] = []
    rows = list(iter_cluster_applications(path, problems, sheet_name=sheet_name, clusters=clusters))
    return _finish(problems, rows)


def iter_cluster_applications(
    path: PathLike,
    problems: list[ImportProblem],
    *,
    sheet_name: str | None = None,
    clusters: Mapping[str, str] | None = None,
) -> Iterator[ClusterApplicationRow]:
    """``parse_cluster_applications`` as a stream: the good rows one at a time, every problem
    (a bad cell, a row repeating an earlier one) added to ``problems`` as it is found. Only
    what the cross-row rule needs is kept: one key per row (the duplicate check)."""
    clusters = clusters or {}
    sheet, sheet_rows = iter_sheet(path, CLUSTER_COLUMNS, sheet_name=sheet_name, problems=problems)
    seen = _Seen(sheet, problems, "track")
    for row in sheet_rows:
        r = _RowReader(sheet, row, problems)
        applicant = r.get("applicant", _text_value)
        county = r.get("county", _text_value, required=False)
        zone_type = r.get("zone_type", _zone_type)
        if zone_type == "rising_star":
            cluster_name = r.get("cluster_name", _text_value, required=False)
        elif zone_type is _MISSING:
            cluster_name = _MISSING
        else:
            cluster_name = r.get("cluster_name", _cluster_name, required=False)
        track = r.get("track", _text_value)
        if cluster_name is None and isinstance(track, str):
            cluster_name = clusters.get(track)
        x_system = r.get("x_system", _x_system, empty_message="必填项为空（不属于任何“X”体系请填「无」）")
        revenue = r.get("revenue_2025", _non_negative_decimal(("亿元", "亿")))
        chain_leaders = r.get("chain_leaders", _count)
        exempt = isinstance(cluster_name, str) and cluster_name in _PLATFORM_EXEMPT_CLUSTERS
        platforms = r.get("innovation_platforms", _count, required=not exempt)
        rd_institutions = r.get("rd_institutions", _count)
        world_class = r.get("world_class", _yes_no, required=False, default=False)
        contact_name = r.get("contact_name", _text_value)
        contact_mobile = r.get("contact_mobile", _phone)
        contact_email = r.get("contact_email", _email, required=False)
        external_id = r.get("external_id", _text_value, required=False)

        is_park = True
        if isinstance(applicant, str):
            park = _is_park(applicant)
            is_park = park is not False
            if county is None:
                if park is False:
                    county = applicant  # a county applying for itself
                else:
                    r.problem(
                        "county",
                        f"申报单位「{applicant}」是园区，须填写所在县（市、区）"
                        if park
                        else f"无法从申报单位「{applicant}」判断所在县（市、区），请填写",
                    )
        if r.ok and seen.first(
            row.number,
            (_norm_name(applicant), _norm_name(track)),
            f"「{applicant}」申报细分赛道「{track}」",
        ):
            yield (
                ClusterApplicationRow(
                    row=row.number,
                    applicant=applicant,
                    county=county,
                    is_park=is_park,
                    zone_type=zone_type,
                    cluster_name=cluster_name,
                    track=track,
                    x_system=x_system,
                    revenue_2025=revenue,
                    chain_leaders=chain_leaders,
                    innovation_platforms=platforms,
                    rd_institutions=rd_institutions,
                    world_class=world_class,
                    contact_name=contact_name,
                    contact_mobile=contact_mobile.normalized,
                    contact_mobile_display=contact_mobile.display,
                    contact_email=contact_email,
                    external_id=external_id,
                )
            )


# --------------------------------------------------------------------------------------------
# 附2-3 浙江制造精品推荐汇总表 + the 征集要求 figures
# --------------------------------------------------------------------------------------------

JINGPIN_COLUMNS: tuple[Column, ...] = (
    Column("enterprise", "企业名称", ("申报企业", "企业", "申报单位", "单位名称")),
    Column("county", "所在县（市、区）", (*_COUNTY_ALIASES, "地区", "所在地区")),
    Column("product", "产品名称及型号", ("产品名称和型号", "产品名称", "产品")),
    Column("category", "产品类别", ("类别", "产品类型")),
    Column(
        "track",
        "所在“415X”先进制造业集群赛道",
        ("415X先进制造业集群赛道", "所在集群赛道", "集群赛道", "所属集群", "赛道"),
    ),
    Column("launch_date", "上市日期", ("上市时间", "产品上市时间", "产品上市日期")),
    Column(
        "rd_ratio",
        "近三年研发投入占比（%）",
        ("近三年研发投入占比", "研发投入占比", "近三年研发投入占主营业务收入比重", "研发投入占比(%)"),
    ),
    Column("avg_sales", "近三年年均销售收入（万元）", ("近三年年均销售收入", "年均销售收入")),
    Column("recommender", "推荐单位", ("推荐机构",), required=False),
    Column("brand_product", "集群品牌产品", ("是否集群品牌产品", "集群品牌"), required=False),
    Column("contact_name", "联系人", (), required=False),
    Column("contact_phone", "联系电话", ("联系电话(手机)", "手机", "联系人手机"), required=False),
    Column("contact_email", "联系邮箱", ("邮箱", "电子邮箱", "联系人邮箱"), required=False),
    Column("external_id", "外部编号", ("平台编号", "申报编号", "编号"), required=False),
)


@dataclass(frozen=True, slots=True)
class JingpinApplicationRow:
    row: int
    enterprise: str
    county: str
    product: str  # 产品名称及型号
    category: ProductCategory
    track: str  # one of JINGPIN_TRACKS
    launch_date: date  # month-only dates mean the 1st
    rd_ratio: Decimal  # percent, e.g. Decimal("3.5") for 3.5%
    avg_sales: Decimal  # 万元
    recommender: str | None  # SOE group / association recommending directly
    brand_product: bool
    contact_name: str | None
    contact_phone: str | None
    contact_phone_display: str | None
    contact_email: str | None
    external_id: str | None


def parse_jingpin_applications(
    path: PathLike, *, sheet_name: str | None = None
) -> list[JingpinApplicationRow]:
    problems: list[ImportProblem] = []
    rows = list(iter_jingpin_applications(path, problems, sheet_name=sheet_name))
    return _finish(problems, rows)


def iter_jingpin_applications(
    path: PathLike, problems: list[ImportProblem], *, sheet_name: str | None = None
) -> Iterator[JingpinApplicationRow]:
    """``parse_jingpin_applications`` as a stream (see ``iter_cluster_applications``)."""
    sheet, sheet_rows = iter_sheet(path, JINGPIN_COLUMNS, sheet_name=sheet_name, problems=problems)
    seen = _Seen(sheet, problems, "product")
    for row in sheet_rows:
        r = _RowReader(sheet, row, problems)
        enterprise = r.get("enterprise", _text_value)
        county = r.get("county", _text_value)
        product = r.get("product", _text_value)
        category = r.get("category", _category)
        track = r.get("track", _jingpin_track)
        launch_date = r.get("launch_date", _date)
        rd_ratio = r.get("rd_ratio", _percent)
        avg_sales = r.get("avg_sales", _non_negative_decimal(("万元", "万")))
        recommender = r.get("recommender", _text_value, required=False)
        brand = r.get("brand_product", _yes_no, required=False, default=False)
        contact_name = r.get("contact_name", _text_value, required=False)
        phone = r.get("contact_phone", _phone, required=False)
        contact_email = r.get("contact_email", _email, required=False)
        external_id = r.get("external_id", _text_value, required=False)
        if r.ok and seen.first(
            row.number,
            (_norm_name(enterprise), _norm_name(product)),
            f"「{enterprise}」的产品「{product}」",
        ):
            yield (
                JingpinApplicationRow(
                    row=row.number,
                    enterprise=enterprise,
                    county=county,
                    product=product,
                    category=category,
                    track=track,
                    launch_date=launch_date,
                    rd_ratio=rd_ratio,
                    avg_sales=avg_sales,
                    recommender=recommender,
                    brand_product=brand,
                    contact_name=contact_name,
                    contact_phone=phone.normalized if phone else None,
                    contact_phone_display=phone.display if phone else None,
                    contact_email=contact_email,
                    external_id=external_id,
                )
            )


# --------------------------------------------------------------------------------------------
# Writing (sample data and round-trip tests)
# --------------------------------------------------------------------------------------------


def _csv_cell(value: Any) -> str:
    if isinstance(value, frozenset | set):
        return "、".join(_PROGRAM_LABEL.get(v, v) for v in sorted(value))
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
