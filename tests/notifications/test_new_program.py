"""A campaign of a program the code has never heard of runs from its file: the platform sync
matches and creates its applications by the form's ``unique`` fields, and a city with nothing
to review is told who would have applied in the form's own word (issue 13: nothing of 2026 in
Python). The file is available/2026-zjtx.yaml under a new program id, with a platform export
section of its own; no code knows either.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from calendars.campaign import CAMPAIGN_DIR
from models.case import Case
from models.db import Database
from models.imports import import_cases
from models.org import Organisation
from models.registry import load_campaign
from models.sheets import write_sheet
from models.sync import sync_file
from tests.models.spine import code
from tests.notifications.world import add_contact, emails, tick_at

ZJTX = CAMPAIGN_DIR / "available" / "2026-zjtx.yaml"
SAMPLE = CAMPAIGN_DIR / "available" / "2026-zjtx.sample.csv"
PLATFORM = """
platform:
  name: 浙江省企业服务平台
  columns:
    number: {label: 申报编号, required: false}
    applicant: {label: 企业名称, aliases: [申报企业]}
    credit_code: {label: 统一社会信用代码, aliases: [信用代码]}
    county: {label: 所在县（市、区）, required: false}
    status: {label: 申报状态}
    submitted_at: {label: 提交时间, required: false}
  statuses:
    填报中: draft
    已提交: submitted
    已退回: returned
"""
HEADERS = ["申报编号", "申报企业", "信用代码", "所在县（市、区）", "申报状态", "提交时间"]


def new_program_text() -> str:
    text = ZJTX.read_text(encoding="utf-8")
    assert "\nprogram: zjtx\n" in text
    return text.replace("\nprogram: zjtx\n", "\nprogram: xinzhi\n", 1) + PLATFORM


def test_a_new_programs_file_syncs_its_platform_and_names_its_applicants(
    seeded: Database, make_ctx: Any, tmp_path: Any
) -> None:
    with seeded.write() as session:
        campaign, _ = load_campaign(
            session, make_ctx("2026-07-01T09:00"), new_program_text(), origin="x.yaml"
        )
        campaign_id = campaign.id
        import_cases(session, make_ctx("2026-07-02T10:00"), campaign_id, SAMPLE)
    # 恒芯 by its credit code alone (the platform spells the name its own way, and gives no
    # number); 宁海 is on the platform only and is created as the form would import it.
    export = write_sheet(
        tmp_path / "平台导出.csv",
        HEADERS,
        [
            ["", "恒芯微电子", "91330106MA2H0Q1K3X", "西湖区", "已提交", "2026-07-09 10:00"],
            ["P-77", "杭州新质传感有限公司", "91330110MA2H0Q9Z8W", "余杭区", "已提交", "2026-07-09 11:00"],
        ],
    )
    with seeded.write() as session:
        report = sync_file(session, make_ctx("2026-07-10T09:00"), campaign_id, export)
    assert report.refused is None and report.unplaced == [] and report.conflicts == []
    assert [n.title for n in report.new] == ["杭州新质传感有限公司"]
    with seeded.read() as session:
        cases = {
            c.attrs["credit_code"]: c
            for c in session.exec(
                select(Case).where(Case.campaign_id == campaign_id, Case.kind == "zjtx_application")
            )
        }
        matched, created = cases["91330106MA2H0Q1K3X"], cases["91330110MA2H0Q9Z8W"]
        assert matched.title == "杭州恒芯微电子有限公司" and matched.state == "submitted"
        assert (created.state, created.external_id, created.county_code) == (
            "submitted",
            "P-77",
            code("余杭区"),
        )
        org = session.get(Organisation, created.org_id)
        assert org is not None and (org.tier, org.name) == ("enterprise", "杭州新质传感有限公司")
    # The same export again matches both (by number or credit code) and creates nothing.
    with seeded.write() as session:
        again = sync_file(session, make_ctx("2026-07-10T10:00"), campaign_id, export)
    assert again.new == [] and again.changes == []

    # 宁波市 has no application: its reminder to recommend says whose it would be, 企业 (the
    # form's applicant_tier), not a word chosen by program id.
    nb = add_contact(seeded, "宁波市", "孙悦", "sunyue@nb.example", mobile="13905740009", programs="xinzhi")
    # A person entered with no program works on every program, this new one included; one
    # registered for the two 2026 programs only is not chased about it.
    every = add_contact(seeded, "宁波市", "钱程", "qiancheng@nb.example", mobile="13905740010", programs="")
    other = add_contact(seeded, "宁波市", "周宁", "zhouning@nb.example", mobile="13905740011")
    for when in ("2026-08-20T10:00", "2026-08-21T09:30"):
        tick_at(seeded, make_ctx, when)
    reminder = "本市暂无企业提交的申报；如确无推荐，请报送“无推荐”"
    texts = [e.text_body for e in emails(seeded, contact_id=nb)]
    assert texts and any(reminder in t for t in texts)
    assert any(reminder in e.text_body for e in emails(seeded, contact_id=every))
    assert not any(reminder in e.text_body for e in emails(seeded, contact_id=other))


CLUSTER_FILE = CAMPAIGN_DIR / "2026-cluster-selection.yaml"
CLUSTER_HEADERS = ["申报编号", "申报单位", "所在县（市、区）", "细分赛道", "申报类型", "申报状态", "提交时间"]


def test_a_county_programs_copy_under_a_new_id_creates_park_cases_and_says_county(
    seeded: Database, make_ctx: Any, tmp_path: Any
) -> None:
    """The cluster file as a second batch of a program named otherwise: what decides is its
    form (applicant_tier: county_or_park), not the program id ``cluster``."""
    text = CLUSTER_FILE.read_text(encoding="utf-8")
    for old, new in (
        ("\nid: 2026-cluster-selection\n", "\nid: 2026-cluster-second\n"),
        ("\nprogram: cluster\n", "\nprogram: jiqun\n"),
        # Another program's 备注 words are its own: 集群/遴选 would read as the cluster program.
        ("\nprogram_words: [集群, 遴选]\n", "\nprogram_words: [二批产业群]\n"),
        ("\nprogram_name: 集群遴选\n", "\nprogram_name: 集群遴选（第二批）\n"),
    ):
        assert old in text
        text = text.replace(old, new, 1)
    with seeded.write() as session:
        campaign, _ = load_campaign(session, make_ctx("2026-06-01T09:00"), text, origin="second.yaml")
        campaign_id = campaign.id
    export = write_sheet(
        tmp_path / "平台导出.csv",
        CLUSTER_HEADERS,
        [["P-9", "余杭经济技术开发区", "余杭区", "智能终端", "核心区", "已提交", "2026-06-20 10:00"]],
    )
    with seeded.write() as session:
        report = sync_file(session, make_ctx("2026-06-21T09:00"), campaign_id, export)
    assert report.refused is None and report.unplaced == []
    [new] = report.new
    assert new.title == "余杭经济技术开发区"
    with seeded.read() as session:
        case = session.exec(select(Case).where(Case.ref == new.ref)).one()
        assert (case.track, case.zone_type, case.attrs["subtrack"]) == ("智能终端", "core", "智能终端")
        park = session.get(Organisation, case.org_id)
        assert park is not None and park.tier == "park" and park.county_code == code("余杭区")

    nb = add_contact(seeded, "宁波市", "孙悦", "sunyue@nb.example", mobile="13905740009", programs="jiqun")
    for when in ("2026-06-25T10:00", "2026-06-26T09:30"):
        tick_at(seeded, make_ctx, when)
    texts = [e.text_body for e in emails(seeded, contact_id=nb)]
    assert texts and any("本市暂无县（市、区）提交的申报；如确无推荐，请报送“无推荐”" in t for t in texts)
