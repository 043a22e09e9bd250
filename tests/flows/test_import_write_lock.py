"""A bulk import parses its file before it takes SQLite's write lock.

Parsing 50,000 rows is most of an import; inside the write transaction every other writer
would wait that long and then fail with 「数据库正忙」. Made observable without timing: while
another connection holds the write lock throughout, an import still gets as far as reading
its file and naming the bad cell, which it can only do if the parse took no lock.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from flows.demo import PROVINCE
from models.sheets import ImportRejected
from operations import acts
from operations.runtime import Runtime
from operations.settings import Settings
from tests.flows.test_cli import SCENARIO, Shenbao, sb  # noqa: F401  (sb is a fixture)

CLUSTER = "2026-cluster-selection"


def test_an_import_reads_and_checks_its_file_while_another_writer_holds_the_database(
    sb: Shenbao,  # noqa: F811
    tmp_path: Path,
) -> None:
    lines = (SCENARIO / "cluster_hangzhou.csv").read_text(encoding="utf-8-sig").splitlines()
    header = lines[0].split(",")
    bad = tmp_path / "cluster_bad.csv"
    # Drop a required column: a problem the parser alone finds, with no database needed.
    dropped = header.index("申报单位")
    bad.write_text(
        "\n".join(",".join(c for i, c in enumerate(line.split(",")) if i != dropped) for line in lines)
        + "\n",
        encoding="utf-8",
    )
    rt = Runtime(Settings(home=sb.home, db_busy_timeout=0.2))
    holder = sqlite3.connect(sb.home / "shenbao.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(ImportRejected) as rejected:
            acts.import_cases(rt, PROVINCE, CLUSTER, bad)
    finally:
        holder.rollback()
        holder.close()
    assert rejected.value.problems and all(p.file == "cluster_bad.csv" for p in rejected.value.problems)


def test_the_same_import_goes_through_once_the_other_writer_is_done(sb: Shenbao) -> None:  # noqa: F811
    rt = Runtime(Settings(home=sb.home))
    summary = acts.import_cases(rt, PROVINCE, CLUSTER, SCENARIO / "cluster_hangzhou.csv")
    assert len(summary.created) == summary.rows > 0
    assert len(summary.digest) == 64
