"""Spreadsheet imports, one name for callers: pure file-reading and row-validation layer for spreadsheet imports.

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

from models.sheet_applications import (
    ClusterApplicationRow,
    FormVocabulary,
    JingpinApplicationRow,
    builtin_vocabulary,
    iter_cluster_applications,
    iter_jingpin_applications,
    parse_cluster_applications,
    parse_jingpin_applications,
    vocabulary_of,
)
from models.sheet_reading import (
    CellValue,
    Column,
    ImportProblem,
    ImportRejected,
    ProductCategory,
    Program,
    Sheet,
    SheetRow,
    ZoneType,
    iter_sheet,
    read_sheet,
    write_sheet,
)
from models.sheet_roster import RosterRow, parse_roster

__all__ = [
    "CellValue",
    "ClusterApplicationRow",
    "Column",
    "FormVocabulary",
    "ImportProblem",
    "ImportRejected",
    "JingpinApplicationRow",
    "ProductCategory",
    "Program",
    "RosterRow",
    "Sheet",
    "SheetRow",
    "ZoneType",
    "builtin_vocabulary",
    "iter_cluster_applications",
    "iter_jingpin_applications",
    "iter_sheet",
    "parse_cluster_applications",
    "parse_jingpin_applications",
    "parse_roster",
    "read_sheet",
    "vocabulary_of",
    "write_sheet",
]
