"""Spreadsheet imports, one name for callers: pure file-reading and row-validation layer for spreadsheet imports.

This module turns a CSV or XLSX file (as people in city and county 经信局 actually fill them in)
into typed, validated rows, or into a complete list of problems. It never touches the database:
the import layer writes the rows all-or-nothing, so everything that can be wrong with a file must
be found here, in one pass, and reported together (a clerk fixing one error per upload round-trip
is exactly what we want to avoid).

Public API:
    read_sheet(path, columns=None, *, sheet_name=None) -> Sheet
    parse_roster(path, words=...) -> list[RosterRow]          (附件3-like 工作人员信息汇总表; the
        column and program words from the campaign files: RosterWords, roster_words)
    (application forms, 附1-2 and 附2-3 included, are declared in the campaign files and read by
    models.forms.read_form / iter_form)
    write_sheet(path, headers, rows) -> Path
    ImportProblem, ImportRejected, Column
"""

from __future__ import annotations

from models.sheet_reading import (
    CellValue,
    Column,
    ImportProblem,
    ImportRejected,
    Sheet,
    SheetRow,
    iter_sheet,
    read_sheet,
    write_sheet,
)
from models.sheet_roster import RosterRow, RosterWords, parse_roster, roster_words

__all__ = [
    "CellValue",
    "Column",
    "ImportProblem",
    "ImportRejected",
    "RosterRow",
    "RosterWords",
    "Sheet",
    "SheetRow",
    "iter_sheet",
    "parse_roster",
    "read_sheet",
    "roster_words",
    "write_sheet",
]
