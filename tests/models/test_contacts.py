"""Contacts apart from rosters (issue 10, item 1).

A directory (the province's address book, last year's roster, any 附件3-shaped file) loads
people and completes no task; a roster task is done only when the city submits it, by
``roster import --submit`` or its own action. Both backends, real reconcile.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from models.actions import ActionRefused
from models.context import Actor
from models.db import Database
from models.imports import import_directory, import_roster
from models.org import Contact
from models.sheets import write_sheet
from operations import acts
from operations.runtime import Runtime
from operations.settings import Settings
from tests.conftest import anchor_file, key_file
from tests.fixtures.scenario.make_samples import ROSTER_HEADERS
from tests.models.spine import CLUSTER, JINGPIN, actor_for, events, roster_ref, state_of
from tests.notifications.world import notifications, tick_at

HZ_CHEN = ["杭州市", "产业处", "陈静", "处长", "139 0571 0003", "集群遴选", "chenjing@hz.example"]
XIHU_LI = ["西湖区", "经信局", "李娜", "科长", "13905710001", "集群遴选、制造精品", "lina@xihu.example"]
NB_CHEN = ["宁波市", "产业处", "陈刚", "副处长", "13600000001", "制造精品", "chengang@nb.example"]
PROV_YAN = [
    "浙江省",
    "省经信厅产业处",
    "严梦玲",
    "二级调研员",
    "0571-87058343",
    "集群遴选",
    "yml@jxt.example",
]

ALL_ROSTER_TASKS = [roster_ref(c, city) for c in (CLUSTER, JINGPIN) for city in ("330100", "330200")]


@pytest.fixture
def rt(seeded: Database, make_ctx: Any, tmp_path: Path) -> Iterator[Runtime]:
    """The operations layer over the test's database and audit key, at 2026-05-27 10:00."""
    runtime = Runtime(
        Settings(
            home=tmp_path / "home",
            database_url=seeded.url,
            audit_key_file=key_file(tmp_path),
            audit_anchor_file=anchor_file(tmp_path),
            now="2026-05-27T10:00",
        )
    )
    yield runtime
    runtime.db.dispose()


def sheet(tmp_path: Path, name: str, rows: list[list[str]]) -> Path:
    return write_sheet(tmp_path / name, ROSTER_HEADERS, rows)


def directory(db: Database, make_ctx: Any, path: Path, **kw: Any) -> Any:
    with db.write() as session:
        return import_directory(session, make_ctx("2026-05-26T09:10"), path, **kw)


def roster(db: Database, make_ctx: Any, path: Path, actor: Actor, **kw: Any) -> Any:
    with db.write() as session:
        return import_roster(session, make_ctx("2026-05-27T10:00", actor), path, **kw)


def people(db: Database) -> dict[str, Contact]:
    with db.read() as session:
        return {c.name: c for c in session.exec(select(Contact))}


# -- a directory completes nothing ---------------------------------------------------------------


def test_a_directory_on_05_26_leaves_every_roster_task_pending_and_the_city_is_reminded(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    path = sheet(tmp_path, "省厅通讯录.xlsx", [PROV_YAN, HZ_CHEN, XIHU_LI, NB_CHEN])
    directory(seeded, make_ctx, path, source="省厅通讯录 2026-05-26")
    assert {ref: state_of(seeded, ref) for ref in ALL_ROSTER_TASKS} == dict.fromkeys(
        ALL_ROSTER_TASKS, "pending"
    )

    tick_at(seeded, make_ctx, "2026-06-05T09:00")  # after the last-day reminder at 08:30
    chen = people(seeded)["陈静"]
    reminded = {
        (n.campaign_id, n.kind)
        for n in notifications(seeded, contact_id=chen.id, stage_id="roster")
        if n.kind == "reminder"
    }
    assert (CLUSTER, "reminder") in reminded


def test_a_directory_records_source_programs_email_and_zzd_mobile(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    path = sheet(tmp_path, "省厅通讯录.xlsx", [PROV_YAN, HZ_CHEN, XIHU_LI])
    directory(seeded, make_ctx, path, source="省厅通讯录 2026-05-26")
    found = people(seeded)
    chen, li, yan = found["陈静"], found["李娜"], found["严梦玲"]
    assert (chen.source, chen.programs, chen.email) == (
        "省厅通讯录 2026-05-26",
        "cluster",
        "chenjing@hz.example",
    )
    assert (chen.mobile, chen.zzd_mobile) == ("139 0571 0003", "13905710003")
    assert (li.programs, li.zzd_mobile) == ("cluster,jingpin", "13905710001")
    # A landline is a number to dial, not a 浙政钉 account.
    assert (yan.mobile, yan.zzd_mobile) == ("0571-87058343", "")
    imported = events(seeded, subject="directory:省厅通讯录 2026-05-26")
    assert [e.action for e in imported] == ["import"]


def test_a_directory_without_a_source_is_named_after_its_file_and_day(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    directory(seeded, make_ctx, sheet(tmp_path, "去年名单.csv", [HZ_CHEN]))
    assert people(seeded)["陈静"].source == "去年名单 2026-05-26"


def test_a_person_in_both_the_directory_and_a_roster_keeps_both_programs(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    directory(seeded, make_ctx, sheet(tmp_path, "通讯录.csv", [HZ_CHEN]), source="省厅通讯录")
    as_jingpin = [*HZ_CHEN[:5], "制造精品", HZ_CHEN[6]]
    roster(seeded, make_ctx, sheet(tmp_path, "杭州.csv", [as_jingpin]), actor_for("杭州市", "陈静"))
    chen = people(seeded)["陈静"]
    assert (chen.programs, chen.source) == ("cluster,jingpin", "杭州.csv 第2行")


def test_replace_source_retires_only_that_sources_people_left_off(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    directory(seeded, make_ctx, sheet(tmp_path, "v1.csv", [HZ_CHEN, NB_CHEN]), source="省厅通讯录 2025")
    roster(seeded, make_ctx, sheet(tmp_path, "西湖.csv", [XIHU_LI]), actor_for("杭州市"))
    summary = directory(
        seeded,
        make_ctx,
        sheet(tmp_path, "v2.csv", [HZ_CHEN]),
        source="省厅通讯录 2026",
        replace_source="省厅通讯录 2025",
    )
    active = {name: c.active for name, c in people(seeded).items()}
    assert active == {"陈静": True, "陈刚": False, "李娜": True}
    assert any("陈刚" in note for note in summary.notes)


def test_a_directory_never_brings_back_someone_a_roster_retired(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    city = actor_for("杭州市", "陈静")
    wang = ["杭州市", "产业处", "王芳", "科长", "13800000002", "集群遴选", "wangfang@hz.example"]
    roster(seeded, make_ctx, sheet(tmp_path, "v1.csv", [HZ_CHEN, wang]), city)
    roster(seeded, make_ctx, sheet(tmp_path, "v2.csv", [HZ_CHEN]), city, replace=True)
    summary = directory(seeded, make_ctx, sheet(tmp_path, "去年.csv", [wang]), source="去年名单")
    assert people(seeded)["王芳"].active is False
    assert any("王芳" in note and "停用" in note for note in summary.notes)


# -- a roster is submitted only when asked --------------------------------------------------------


def test_a_roster_import_without_submit_submits_nothing(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    summary = roster(seeded, make_ctx, sheet(tmp_path, "杭州.csv", [HZ_CHEN, XIHU_LI]), actor_for("杭州市"))
    assert state_of(seeded, roster_ref(CLUSTER, "330100")) == "pending"
    assert state_of(seeded, roster_ref(JINGPIN, "330100")) == "pending"
    assert any(roster_ref(CLUSTER, "330100") in note and "待报送" in note for note in summary.notes)


def test_submit_by_the_city_marks_only_the_listed_city_as_the_citys_own_act(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    city = actor_for("杭州市", "陈静")
    roster(seeded, make_ctx, sheet(tmp_path, "杭州.csv", [HZ_CHEN, XIHU_LI]), city, submit=True)
    assert {ref: state_of(seeded, ref) for ref in ALL_ROSTER_TASKS} == {
        roster_ref(CLUSTER, "330100"): "submitted",
        roster_ref(JINGPIN, "330100"): "submitted",  # 西湖区's person works on 精品 too
        roster_ref(CLUSTER, "330200"): "pending",
        roster_ref(JINGPIN, "330200"): "pending",
    }
    submitted = events(seeded, subject=f"case:{roster_ref(CLUSTER, '330100')}")[-1]
    assert (submitted.actor, submitted.reason) == ("陈静@330100", "随名单 杭州.csv 报送")


def test_submit_covers_only_the_programs_the_roster_lists(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    roster(seeded, make_ctx, sheet(tmp_path, "宁波.csv", [NB_CHEN]), actor_for("宁波市"), submit=True)
    assert state_of(seeded, roster_ref(JINGPIN, "330200")) == "submitted"
    assert state_of(seeded, roster_ref(CLUSTER, "330200")) == "pending"


def test_a_province_person_submitting_without_admin_is_refused_and_nothing_is_written(
    seeded: Database, tmp_path: Path, rt: Runtime
) -> None:
    province = actor_for("浙江省", "马远博")
    with pytest.raises(ActionRefused) as info:
        acts.import_roster(rt, province, sheet(tmp_path, "杭州.csv", [HZ_CHEN]), submit=True)
    assert info.value.rule == "roster_submit_by_city" and "--admin" in str(info.value)
    assert people(seeded) == {}
    assert state_of(seeded, roster_ref(CLUSTER, "330100")) == "pending"
    refusal = events(seeded, subject="roster:杭州.csv")
    assert [(e.action, json.loads(e.details)["rule"]) for e in refusal] == [
        ("refusal", "roster_submit_by_city")
    ]


def test_a_province_administrator_submits_on_the_citys_behalf_on_record(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    admin = Actor(
        name="马远博", org_id="330000", tier="province", admin_reason="杭州市邮寄纸质名单，代为报送"
    )
    roster(seeded, make_ctx, sheet(tmp_path, "杭州.csv", [HZ_CHEN]), admin, submit=True)
    assert state_of(seeded, roster_ref(CLUSTER, "330100")) == "submitted"
    submitted = events(seeded, subject=f"case:{roster_ref(CLUSTER, '330100')}")[-1]
    assert submitted.actor == "admin:马远博"
    assert json.loads(submitted.details)["admin_reason"] == "杭州市邮寄纸质名单，代为报送"


def test_a_city_submitting_another_citys_people_is_refused_whole(
    seeded: Database, tmp_path: Path, rt: Runtime
) -> None:
    path = sheet(tmp_path, "混合.csv", [HZ_CHEN, NB_CHEN])
    with pytest.raises(ActionRefused) as info:
        acts.import_roster(rt, actor_for("杭州市"), path, submit=True)
    assert info.value.rule == "jurisdiction"
    assert people(seeded) == {}
    assert state_of(seeded, roster_ref(CLUSTER, "330100")) == "pending"


CHANNEL_HEADERS = [*ROSTER_HEADERS, "短信号码", "钉钉群机器人", "接收方式"]


def test_a_directory_may_name_each_persons_sms_number_robot_and_preferred_channel(tmp_path: Path) -> None:
    from models.sheets import parse_roster

    path = write_sheet(
        tmp_path / "通讯录.xlsx",
        CHANNEL_HEADERS,
        [
            [*XIHU_LI, "", "西湖区经信局工作群", "钉钉群"],
            [*NB_CHEN, "138 0000 0001", "", "短信"],
            [*HZ_CHEN, "", "", ""],
        ],
    )
    li, chen_nb, chen_hz = parse_roster(path)
    assert (li.robot, li.prefers) == ("西湖区经信局工作群", "robot")
    assert (chen_nb.sms_mobile, chen_nb.prefers) == ("13800000001", "sms")
    assert (chen_hz.sms_mobile, chen_hz.robot, chen_hz.prefers) == ("", "", "email")


def test_a_preferred_channel_the_row_does_not_have_is_refused_naming_the_row(tmp_path: Path) -> None:
    from models.sheets import ImportRejected, parse_roster

    path = write_sheet(
        tmp_path / "通讯录.xlsx",
        CHANNEL_HEADERS,
        [[*XIHU_LI, "", "", "短信"], [*NB_CHEN, "0571-87058343", "", "邮件"]],
    )
    with pytest.raises(ImportRejected) as refused:
        parse_roster(path)
    problems = {(p.row, p.column): p.message for p in refused.value.problems}
    assert "没有该渠道" in problems[(2, "接收方式")]
    assert "短信号码须为手机号" in problems[(3, "短信号码")]
