"""A resubmitted roster with --replace retires the people no longer on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlmodel import select

from models.db import Database
from models.imports import import_roster
from models.org import Contact
from models.sheets import write_sheet

HEADERS = [
    "市、县(市、区)",
    "处室/科室",
    "姓名",
    "职务",
    "手机号码(浙政钉号码)",
    "备注(集群遴选/制造精品)",
    "电子邮箱",
]
ZHANG = ["杭州市", "产业处", "张伟", "处长", "13800000001", "集群遴选", "zhangwei@hz.example"]
WANG = ["杭州市", "产业处", "王芳", "科长", "13800000002", "集群遴选", "wangfang@hz.example"]
LI = ["西湖区", "经信局", "李娜", "科长", "13800000003", "集群遴选", "lina@xh.example"]


def _import(db: Database, make_ctx: Any, path: Path, rows: list[list[str]], *, replace: bool) -> list[str]:
    write_sheet(path, HEADERS, rows)
    with db.write() as session:
        return import_roster(session, make_ctx(), path, replace=replace).notes


def _active(db: Database) -> set[str]:
    with db.read() as session:
        return set(session.exec(select(Contact.name).where(Contact.active == True)).all())  # noqa: E712


def test_it_retires_people_left_off_a_replacing_roster(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    _import(seeded, make_ctx, tmp_path / "v1.csv", [ZHANG, WANG, LI], replace=False)
    notes = _import(seeded, make_ctx, tmp_path / "v2.csv", [ZHANG, LI], replace=True)
    assert _active(seeded) == {"张伟", "李娜"}
    assert any("王芳" in n for n in notes)


def test_it_keeps_everyone_without_replace(seeded: Database, make_ctx: Any, tmp_path: Path) -> None:
    _import(seeded, make_ctx, tmp_path / "v1.csv", [ZHANG, WANG], replace=False)
    _import(seeded, make_ctx, tmp_path / "v2.csv", [ZHANG], replace=False)
    assert _active(seeded) == {"张伟", "王芳"}


def test_it_leaves_other_organisations_and_programs_alone(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    jingpin_wang = [*WANG[:5], "制造精品", WANG[6]]
    _import(seeded, make_ctx, tmp_path / "v1.csv", [ZHANG, jingpin_wang, LI], replace=False)
    _import(seeded, make_ctx, tmp_path / "v2.csv", [ZHANG], replace=True)
    assert _active(seeded) == {"张伟", "王芳", "李娜"}
