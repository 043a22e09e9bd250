"""Imports into the database: rosters (附件3 + 电子邮箱), cluster and 精品 applications.

A rejected file names file, row and column and leaves every table exactly as it was.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import select

from models.audit import AuditEvent
from models.case import Case
from models.db import Database
from models.imports import import_cases, import_roster
from models.org import Contact, Organisation
from models.sheets import ImportRejected, write_sheet
from tests.fixtures.scenario.make_samples import CLUSTER_HEADERS, JINGPIN_HEADERS, ROSTER_HEADERS
from tests.models.spine import CLUSTER, JINGPIN, code, events, roster_ref, state_of, wait_until_blocked

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SCENARIO = FIXTURES / "scenario"

ROSTER_ROW = ["宁波市", "产业处", "陈刚", "副处长", "13600000001", "集群遴选", "chengang@nb.gov.cn"]
CLUSTER_ROW = [
    "鄞州区",
    "",
    "协同区",
    "人工智能",
    "智能终端",
    "创新型产业集群",
    260,
    1,
    1,
    3,
    "否",
    "周敏",
    "13600000002",
    "zm@yz.gov.cn",
    "",
]
JINGPIN_ROW = [
    1,
    "宁波精工有限公司",
    "鄞州区",
    "数控车床 NB-1",
    "先进制造类",
    "工业母机与机器人",
    "2023-05-01",
    4,
    900,
    "",
    "周敏",
    "13600000003",
    "zm@nbjg.com",
]


def counts(db: Database) -> dict[str, int]:
    with db.read() as session:
        return {
            model.__name__: session.exec(select(func.count()).select_from(model)).one()
            for model in (Case, Contact, Organisation, AuditEvent)
        }


def rejected(fn: Any, *args: Any) -> ImportRejected:
    with pytest.raises(ImportRejected) as info:
        fn(*args)
    return info.value


def run_roster(db: Database, make_ctx: Any, path: Path, *, submit: bool = False) -> Any:
    with db.write() as session:
        return import_roster(session, make_ctx(), path, submit=submit)


def run_cases(db: Database, make_ctx: Any, campaign: str, path: Path) -> Any:
    with db.write() as session:
        return import_cases(session, make_ctx(), campaign, path)


# -- rosters ------------------------------------------------------------------------------------------


def test_it_imports_the_official_roster_layout_from_xlsx(seeded: Database, make_ctx: Any) -> None:
    summary = run_roster(seeded, make_ctx, SCENARIO / "roster_hangzhou.xlsx")
    assert (summary.rows, len(summary.created), summary.updated) == (4, 4, 0)
    with seeded.read() as session:
        people = {c.name: c for c in session.exec(select(Contact))}
    assert set(people) == {"王明", "李华", "赵静", "孙亮"}
    assert (people["赵静"].org_id, people["赵静"].programs) == (code("西湖区"), "cluster,jingpin")
    assert (people["王明"].mobile, people["王明"].email) == ("138 0571 0001", "wangming@hz.gov.cn")
    assert people["孙亮"].source == "roster_hangzhou.xlsx 第8行"


def test_it_marks_the_citys_roster_tasks_submitted(seeded: Database, make_ctx: Any) -> None:
    run_roster(seeded, make_ctx, SCENARIO / "roster_hangzhou.xlsx", submit=True)
    assert state_of(seeded, roster_ref(CLUSTER, "330100")) == "submitted"
    assert state_of(seeded, roster_ref(JINGPIN, "330100")) == "submitted"
    assert state_of(seeded, roster_ref(CLUSTER, "330200")) == "pending"
    submitted = events(seeded, subject=f"case:{roster_ref(CLUSTER, '330100')}")[-1]
    assert "roster_hangzhou.xlsx" in submitted.reason


def test_it_marks_only_the_programs_the_roster_covers(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    path = write_sheet(
        tmp_path / "温州.csv",
        ROSTER_HEADERS,
        [["温州市", "产业处", "林一", "科长", "13600000009", "制造精品", "linyi@wz.gov.cn"]],
    )
    run_roster(seeded, make_ctx, path, submit=True)
    assert state_of(seeded, roster_ref(JINGPIN, "330300")) == "submitted"
    assert state_of(seeded, roster_ref(CLUSTER, "330300")) == "pending"


def test_it_imports_a_gbk_csv_roster(seeded: Database, make_ctx: Any) -> None:
    summary = run_roster(seeded, make_ctx, FIXTURES / "roster_gbk.csv", submit=True)
    assert summary.rows == len(summary.created) > 0
    assert state_of(seeded, roster_ref(CLUSTER, "330200")) == "submitted"


def test_it_updates_contacts_when_the_same_roster_comes_again(seeded: Database, make_ctx: Any) -> None:
    run_roster(seeded, make_ctx, SCENARIO / "roster_hangzhou.xlsx")
    before = counts(seeded)
    again = run_roster(seeded, make_ctx, SCENARIO / "roster_hangzhou.xlsx")
    assert (len(again.created), again.updated) == (0, 4)
    assert not any("停用" in note or "已报送" in note for note in again.notes)
    assert counts(seeded)["Contact"] == before["Contact"]


def test_it_merges_one_person_listed_once_per_program(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    rows = [ROSTER_ROW, [*ROSTER_ROW[:5], "制造精品", ROSTER_ROW[6]]]
    run_roster(seeded, make_ctx, write_sheet(tmp_path / "宁波.xlsx", ROSTER_HEADERS, rows))
    with seeded.read() as session:
        people = list(session.exec(select(Contact)))
    assert [(p.name, p.programs) for p in people] == [("陈刚", "cluster,jingpin")]


def test_a_loaded_campaigns_roster_form_and_program_are_what_a_roster_may_use(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    """A city filling in the staff form a loaded campaign file declares imports it as it is."""
    from models.registry import load_campaign
    from tests.models.test_sheets import ZJTX_FILE, ZJTX_ROSTER, ZJTX_ROSTER_HEADERS

    row = ["宁波市", "陈刚", "13600000001", "专精特新、集群遴选", "chengang@nb.gov.cn"]
    path = write_sheet(tmp_path / "联络员.xlsx", ZJTX_ROSTER_HEADERS, [row])
    assert rejected(run_roster, seeded, make_ctx, path).problems  # no campaign names these columns yet
    text = ZJTX_FILE.read_text(encoding="utf-8").replace("\nexports:\n", "\nexports:\n" + ZJTX_ROSTER)
    with seeded.write() as session:
        load_campaign(session, make_ctx(), text, origin="zjtx.yaml")
    run_roster(seeded, make_ctx, path)
    with seeded.read() as session:
        [person] = session.exec(select(Contact))
    assert (person.name, person.org_id, person.programs) == ("陈刚", code("宁波市"), "cluster,zjtx")


# -- rejected files change nothing ------------------------------------------------------------------


def bad_roster(tmp_path: Path, row: list[Any], *, suffix: str = ".csv") -> Path:
    return write_sheet(tmp_path / f"名单{suffix}", ROSTER_HEADERS, [ROSTER_ROW, row])


@pytest.mark.parametrize(
    ("row", "column", "words"),
    [
        ([*ROSTER_ROW[:6], "chen@@nb"], "电子邮箱", "chen@@nb"),
        (["东湖区", *ROSTER_ROW[1:]], "市、县(市、区)", "东湖区"),
        ([*ROSTER_ROW[:4], "12345", *ROSTER_ROW[5:]], "手机号码(浙政钉号码)", "12345"),
        (
            ["宁波市", "产业处", "陈刚", "副处长", "13600000001", "集群遴选", "other@nb.gov.cn"],
            "姓名",
            "重复",
        ),
        ([*ROSTER_ROW[:5], "", ROSTER_ROW[6]], "备注(集群遴选/制造精品)", "集群遴选"),
    ],
    ids=["bad-email", "unknown-county", "bad-mobile", "duplicate-row", "no-program"],
)
def test_it_rejects_a_bad_roster_row_naming_file_row_and_column(
    seeded: Database, make_ctx: Any, tmp_path: Path, row: list[Any], column: str, words: str
) -> None:
    path = bad_roster(tmp_path, row)
    before = counts(seeded)
    exc = rejected(run_roster, seeded, make_ctx, path)
    [problem] = exc.problems
    assert (problem.file, problem.row, problem.column) == ("名单.csv", 3, column)
    assert words in problem.message
    assert f"名单.csv 第3行 「{column}」" in str(exc)
    assert counts(seeded) == before
    assert state_of(seeded, roster_ref(CLUSTER, "330200")) == "pending"


def test_it_rejects_a_roster_without_the_email_column(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    path = write_sheet(
        tmp_path / "名单.xlsx", ROSTER_HEADERS[:-1], [ROSTER_ROW[:-1]], title_lines=["工作人员信息汇总表"]
    )
    before = counts(seeded)
    exc = rejected(run_roster, seeded, make_ctx, path)
    [problem] = exc.problems
    assert (problem.file, problem.column) == ("名单.xlsx", "电子邮箱")
    assert "第2行" in problem.message  # where the header was found
    assert counts(seeded) == before


def test_it_reports_unknown_organisations_only_once_the_file_parses(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    rows = [ROSTER_ROW, [*ROSTER_ROW[:6], "x"], ["东湖区", *ROSTER_ROW[1:5], "制造精品", "a@b.cn"]]
    exc = rejected(run_roster, seeded, make_ctx, write_sheet(tmp_path / "r.csv", ROSTER_HEADERS, rows))
    assert [(p.row, p.column) for p in exc.problems] == [(3, "电子邮箱")]  # the parser stops the file first
    rows[1] = [*ROSTER_ROW[:3], "副处长", "13600000001", "制造精品", "chengang@nb.gov.cn"]
    exc = rejected(run_roster, seeded, make_ctx, write_sheet(tmp_path / "r.csv", ROSTER_HEADERS, rows))
    assert [(p.row, p.column) for p in exc.problems] == [(4, "市、县(市、区)")]


# -- cluster applications ------------------------------------------------------------------------------


def test_it_imports_cluster_applications_with_their_fields(seeded: Database, make_ctx: Any) -> None:
    summary = run_cases(seeded, make_ctx, CLUSTER, SCENARIO / "cluster_hangzhou.csv")
    assert summary.rows == len(summary.created) == 11
    assert summary.created[0] == "CL26-00001" and summary.organisations == 1
    with seeded.read() as session:
        case = session.exec(select(Case).where(Case.title == "萧山区")).one()
    assert (case.kind, case.state, case.zone_type, case.track) == (
        "cluster_application",
        "draft",
        "core",
        "化纤",
    )
    assert (case.org_id, case.county_code, case.city_code) == ("330109", "330109", "330100")
    assert case.attrs["cluster"] == "现代纺织与服装" and case.attrs["revenue"] == "1200"
    assert case.external_id == "SZJX-2026-0002"


def test_it_creates_a_park_committee_under_its_county(seeded: Database, make_ctx: Any) -> None:
    run_cases(seeded, make_ctx, CLUSTER, SCENARIO / "cluster_hangzhou.csv")
    with seeded.read() as session:
        park = session.exec(select(Organisation).where(Organisation.name == "杭州未来科技城管委会")).one()
        case = session.exec(select(Case).where(Case.org_id == park.id)).one()
        contacts = list(session.exec(select(Contact).where(Contact.org_id == park.id)))
    assert (park.tier, park.city_code, park.county_code) == ("park", "330100", code("余杭区"))
    assert case.county_code == code("余杭区")
    assert [(c.name, c.email) for c in contacts] == [("吴五", "contact8@example.gov.cn")]


def test_it_records_one_create_event_per_case_and_one_for_the_file(seeded: Database, make_ctx: Any) -> None:
    before = counts(seeded)["AuditEvent"]
    run_cases(seeded, make_ctx, CLUSTER, SCENARIO / "cluster_hangzhou.csv")
    new = events(seeded)[before:]
    assert [e.action for e in new] == ["create"] * 11 + ["import"]
    assert new[-1].subject == "import:cluster_hangzhou.csv" and '"rows":11' in new[-1].details


def test_it_refuses_to_import_the_same_applications_twice(seeded: Database, make_ctx: Any) -> None:
    run_cases(seeded, make_ctx, CLUSTER, SCENARIO / "cluster_hangzhou.csv")
    before = counts(seeded)
    exc = rejected(run_cases, seeded, make_ctx, CLUSTER, SCENARIO / "cluster_hangzhou.csv")
    duplicates = [p for p in exc.problems if p.column == "细分赛道"]
    assert len(duplicates) == 11 and "已在本批次中" in duplicates[0].message
    assert {p.column for p in exc.problems} == {"细分赛道", "外部编号"}
    assert counts(seeded) == before


def test_it_takes_the_cluster_from_the_subtrack_of_a_form_without_a_cluster_column(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    # 附1-2 asks for 细分赛道 only; 集群名称 is a column people may leave out.
    at = CLUSTER_HEADERS.index("集群名称")
    headers = CLUSTER_HEADERS[:at] + CLUSTER_HEADERS[at + 1 :]
    wrong = list(CLUSTER_ROW)
    wrong[0], wrong[4] = "江北区", "智能物联"  # the cluster's name where its 细分赛道 belongs
    rows = [r[:at] + r[at + 1 :] for r in (CLUSTER_ROW, wrong)]
    run_cases(seeded, make_ctx, CLUSTER, write_sheet(tmp_path / "集群.csv", headers, rows))
    with seeded.read() as session:
        cases = session.exec(select(Case).where(Case.kind == "cluster_application"))
        found = {c.title: c.attrs["cluster"] for c in cases}
    assert found == {"鄞州区": "人工智能", "江北区": "智能物联"}


@pytest.mark.parametrize(
    ("change", "column", "words"),
    [
        ({1: "东湖区", 0: "某园区管委会"}, "所在县（市、区）", "东湖区"),
        ({6: "两百亿"}, "2025年集群规上企业营业收入（亿元）", "两百亿"),
        ({2: "核心区、协同区"}, "申报类型", "限选1个"),
        ({13: "zm#yz.gov.cn"}, "联系人邮箱", "zm#yz.gov.cn"),
    ],
    ids=["unknown-county", "bad-number", "two-types", "bad-email"],
)
def test_it_rejects_a_bad_cluster_row_naming_file_row_and_column(
    seeded: Database, make_ctx: Any, tmp_path: Path, change: dict[int, Any], column: str, words: str
) -> None:
    bad = list(CLUSTER_ROW)
    for i, v in change.items():
        bad[i] = v
    bad[4] = "算力基础设施"
    path = write_sheet(tmp_path / "集群.xlsx", CLUSTER_HEADERS, [CLUSTER_ROW, bad])
    before = counts(seeded)
    exc = rejected(run_cases, seeded, make_ctx, CLUSTER, path)
    [problem] = exc.problems
    assert (problem.file, problem.row, problem.column) == ("集群.xlsx", 3, column)
    assert words in problem.message
    assert counts(seeded) == before


def test_it_rejects_a_duplicate_row_inside_the_file(seeded: Database, make_ctx: Any, tmp_path: Path) -> None:
    path = write_sheet(tmp_path / "集群.csv", CLUSTER_HEADERS, [CLUSTER_ROW, CLUSTER_ROW])
    before = counts(seeded)
    exc = rejected(run_cases, seeded, make_ctx, CLUSTER, path)
    [problem] = exc.problems
    assert (problem.row, problem.column) == (3, "细分赛道") and "第2行重复" in problem.message
    assert counts(seeded) == before


def test_it_rejects_a_cluster_file_given_to_the_jingpin_campaign(seeded: Database, make_ctx: Any) -> None:
    before = counts(seeded)
    exc = rejected(run_cases, seeded, make_ctx, JINGPIN, SCENARIO / "cluster_hangzhou.csv")
    assert "产品名称及型号" in {p.column for p in exc.problems}
    assert counts(seeded) == before


# -- 精品 applications ---------------------------------------------------------------------------------


def test_it_creates_enterprises_and_direct_recommenders(seeded: Database, make_ctx: Any) -> None:
    summary = run_cases(seeded, make_ctx, JINGPIN, SCENARIO / "jingpin_mixed.xlsx")
    assert len(summary.created) == 6
    with seeded.read() as session:
        orgs = {
            o.name: o
            for o in session.exec(
                select(Organisation).where(
                    Organisation.tier.in_(  # type: ignore[attr-defined]
                        ("enterprise", "soe_group", "association")
                    )
                )
            )
        }
        soe, assoc = orgs["浙江省能源集团有限公司"], orgs["浙江省仪器仪表行业协会"]
        rec_cases = {
            c.org_id: c
            for c in session.exec(
                select(Case).where(Case.kind == "recommendation", Case.campaign_id == JINGPIN)
            )
        }
        product = session.exec(select(Case).where(Case.title.like("浙江能源装备%"))).one()  # type: ignore[attr-defined]
    assert (soe.tier, assoc.tier) == ("soe_group", "association")
    assert orgs["舟山海工装备有限公司"].mountain_island and not orgs["杭州精工机床有限公司"].mountain_island
    assert rec_cases[soe.id].state == rec_cases[assoc.id].state == "draft"
    assert (product.recommender_id, product.city_code, product.category) == (soe.id, "330100", "advanced")


def test_it_rejects_a_malformed_launch_date_naming_the_cell(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    bad = list(JINGPIN_ROW)
    bad[1], bad[6] = "宁波智能有限公司", "2023-13-45"
    path = write_sheet(tmp_path / "精品.csv", JINGPIN_HEADERS, [JINGPIN_ROW, bad])
    before = counts(seeded)
    exc = rejected(run_cases, seeded, make_ctx, JINGPIN, path)
    [problem] = exc.problems
    assert (problem.file, problem.row, problem.column) == ("精品.csv", 3, "上市日期")
    assert "2023-13-45" in problem.message
    assert counts(seeded) == before


def test_it_rejects_a_recommender_that_is_neither_city_nor_soe_nor_association(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    bad = list(JINGPIN_ROW)
    bad[9] = "某某咨询公司"
    exc = rejected(
        run_cases, seeded, make_ctx, JINGPIN, write_sheet(tmp_path / "精品.csv", JINGPIN_HEADERS, [bad])
    )
    assert [(p.row, p.column) for p in exc.problems] == [(2, "推荐单位")]


@pytest.mark.usefixtures("campaigns_forgotten")
def test_the_form_says_which_names_are_soe_groups_and_associations(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    from calendars.campaign import CAMPAIGN_DIR, load_campaign_text
    from models.registry import load_campaign

    text = (CAMPAIGN_DIR / "2026-jingpin.yaml").read_text(encoding="utf-8")
    words = "soe_group: [集团, 控股, 国资委], association: [协会, 学会, 联合会]"
    assert words in text  # the 2026 file declares its words
    plain = text.replace(f"{{field: recommender, {words}}}", "recommender", 1)
    assert (
        load_campaign_text(plain, origin="t").form.recommender
        == load_campaign_text(text, origin="t").form.recommender
    )  # type: ignore[union-attr]
    mine = text.replace(words, "soe_group: [国资委], association: [商会]", 1)
    with seeded.write() as session:
        load_campaign(session, make_ctx(), mine, origin="t")
    chamber, group = list(JINGPIN_ROW), list(JINGPIN_ROW)
    chamber[1], chamber[9] = "温州服装有限公司", "温州市服装商会"
    group[1], group[9] = "宁波能源有限公司", "浙江省能源集团有限公司"
    exc = rejected(
        run_cases,
        seeded,
        make_ctx,
        JINGPIN,
        write_sheet(tmp_path / "精品.csv", JINGPIN_HEADERS, [chamber, group]),
    )
    [problem] = exc.problems
    assert (problem.row, problem.column) == (3, "推荐单位")
    assert problem.message == (
        "「浙江省能源集团有限公司」不是设区市、省属企业集团（名称含“国资委”之一）或省级行业协会（名称含“商会”之一）"
    )
    run_cases(seeded, make_ctx, JINGPIN, write_sheet(tmp_path / "精品2.csv", JINGPIN_HEADERS, [chamber]))
    with seeded.read() as session:
        tier = session.exec(select(Organisation.tier).where(Organisation.name == "温州市服装商会")).one()
    assert tier == "association"


def test_it_treats_a_city_named_as_recommender_as_the_default(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    row = list(JINGPIN_ROW)
    row[9] = "宁波市经信局"
    run_cases(seeded, make_ctx, JINGPIN, write_sheet(tmp_path / "精品.csv", JINGPIN_HEADERS, [row]))
    with seeded.read() as session:
        assert (
            session.exec(select(Case.recommender_id).where(Case.kind == "jingpin_application")).one() is None
        )


def test_it_refuses_to_import_the_same_products_twice(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    path = write_sheet(tmp_path / "精品.csv", JINGPIN_HEADERS, [JINGPIN_ROW])
    run_cases(seeded, make_ctx, JINGPIN, path)
    before = counts(seeded)
    again = shutil.copy(path, tmp_path / "精品（第二次）.csv")
    exc = rejected(run_cases, seeded, make_ctx, JINGPIN, Path(again))
    assert [(p.row, p.column) for p in exc.problems] == [(2, "产品名称及型号")]
    # In the form's words (its duplicate: phrase), with the case it repeats.
    assert exc.problems[0].message.startswith(
        "「宁波精工有限公司」的产品「数控车床 NB-1」已在本批次中（JP26-"
    )
    assert exc.problems[0].message.endswith("），不能重复导入")
    assert counts(seeded) == before


def test_it_numbers_two_concurrent_imports_without_collision(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    """Two coordinators import at the same moment: the second waits and numbers after the first."""
    first = write_sheet(tmp_path / "一.csv", CLUSTER_HEADERS, [CLUSTER_ROW])
    other_row = ["海曙区", *CLUSTER_ROW[1:]]
    second = write_sheet(tmp_path / "二.csv", CLUSTER_HEADERS, [other_row])
    outcome: list[Any] = []

    def later() -> None:
        try:
            outcome.append(run_cases(seeded, make_ctx, CLUSTER, second).created)
        except Exception as exc:  # reported below
            outcome.append(exc)

    with seeded.write() as session:
        assert import_cases(session, make_ctx(), CLUSTER, first).created == ["CL26-00001"]
        thread = threading.Thread(target=later)
        thread.start()
        wait_until_blocked(seeded, thread)
    thread.join(timeout=30)
    assert outcome == [["CL26-00002"]]


def test_it_rejects_a_cell_longer_than_its_column_on_every_backend(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    row = list(CLUSTER_ROW)
    row[4] = "智能终端及配套" * 10  # 70 characters for a 60-character column
    path = write_sheet(tmp_path / "集群.csv", CLUSTER_HEADERS, [row])
    before = counts(seeded)
    exc = rejected(run_cases, seeded, make_ctx, CLUSTER, path)
    assert [(p.row, p.column) for p in exc.problems] == [(2, "细分赛道")]
    assert "最多 60 个" in exc.problems[0].message
    assert counts(seeded) == before


def test_it_rejects_a_product_name_too_long_to_store(seeded: Database, make_ctx: Any, tmp_path: Path) -> None:
    row = list(JINGPIN_ROW)
    row[3] = "高精度五轴联动数控加工中心" * 25
    exc = rejected(
        run_cases, seeded, make_ctx, JINGPIN, write_sheet(tmp_path / "精品.csv", JINGPIN_HEADERS, [row])
    )
    assert [(p.row, p.column) for p in exc.problems] == [(2, "产品名称及型号")]


def test_it_rejects_a_nul_byte_naming_row_and_column_before_writing(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    # PostgreSQL cannot store U+0000 and used to refuse the whole import only at the write,
    # with a driver error and no row or column; SQLite would store it silently.
    row = list(CLUSTER_ROW)
    row[0] = "鄞州区"
    row[11] = "周\x00敏"
    before = counts(seeded)
    exc = rejected(
        run_cases, seeded, make_ctx, CLUSTER, write_sheet(tmp_path / "集群.csv", CLUSTER_HEADERS, [row])
    )
    assert [(p.row, p.column) for p in exc.problems] == [(2, "集群联系人")]
    assert "U+0000" in exc.problems[0].message
    assert counts(seeded) == before


def test_it_rejects_control_characters_in_a_roster_cell(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    row = list(ROSTER_ROW)
    row[3] = "副处长\x1b[31m"
    exc = rejected(run_roster, seeded, make_ctx, write_sheet(tmp_path / "名单.csv", ROSTER_HEADERS, [row]))
    assert [(p.row, p.column) for p in exc.problems] == [(2, "职务")]
    assert "U+001B" in exc.problems[0].message


# -- streamed (issue 10: a million rows within 1 GB) ---------------------------------------------


def park_rows(n: int) -> list[list[Any]]:
    rows = []
    for i in range(n):
        row = list(CLUSTER_ROW)
        row[0], row[1], row[4], row[14] = f"鄞州第{i}号产业园", "鄞州区", "智能终端", f"SZJX-T-{i}"
        rows.append(row)
    return rows


def test_a_row_the_database_refuses_after_chunks_were_written_leaves_nothing(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    from models.campaign import get_campaign
    from models.imports import read_cases, write_cases

    run_cases(seeded, make_ctx, CLUSTER, write_sheet(tmp_path / "先导.csv", CLUSTER_HEADERS, park_rows(1)))
    before = counts(seeded)
    # Rows 2–6 are new parks; row 7 repeats the application already imported, which only the
    # database can tell: it is found after two chunks of two rows went into the transaction.
    path = write_sheet(tmp_path / "集群.csv", CLUSTER_HEADERS, park_rows(6)[1:] + park_rows(1))
    progress: list[tuple[str, int, int]] = []
    with pytest.raises(ImportRejected) as info, seeded.write() as session:
        spec = get_campaign(session, CLUSTER).spec()
        sheet = read_cases(spec, path)
        write_cases(session, make_ctx(), CLUSTER, sheet, lambda *p: progress.append(p), chunk=2)
    assert [(p.file, p.row, p.column) for p in info.value.problems] == [
        ("集群.csv", 7, "细分赛道"),
        ("集群.csv", 7, "外部编号"),  # its platform number is taken too
    ]
    assert progress == [("written", 2, 6), ("written", 4, 6)]  # written, then rolled back
    assert counts(seeded) == before


def test_a_streamed_import_writes_every_row_in_chunks_with_its_park_and_contact_once(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    from models.campaign import get_campaign
    from models.imports import read_cases, write_cases

    rows = park_rows(5)
    rows.append(list(rows[0]))
    rows[-1][4], rows[-1][14] = "工业软件", "SZJX-T-5"  # the same park, a second 细分赛道
    path = write_sheet(tmp_path / "集群.csv", CLUSTER_HEADERS, rows)
    with seeded.write() as session:
        sheet = read_cases(get_campaign(session, CLUSTER).spec(), path)
        summary = write_cases(session, make_ctx(), CLUSTER, sheet, chunk=2)
    assert (summary.rows, len(summary.created), summary.organisations) == (6, 6, 5)
    with seeded.read() as session:
        parks = session.exec(select(Organisation).where(Organisation.tier == "park")).all()
        contacts = session.exec(select(Contact).where(Contact.title == "申报联系人")).all()
        refs = session.exec(
            select(Case.ref).where(Case.kind == "cluster_application").order_by(Case.ref)
        ).all()
    assert len(parks) == 5 and len(contacts) == 5
    assert refs == [f"CL26-{i:05d}" for i in range(1, 7)]


def _add_cases(session: Any, make_ctx: Any, spec: Any, refs: tuple[str, ...]) -> None:
    """Cluster applications of 鄞州区 numbered as given (the allocator reads what is stored)."""
    from models.registry import new_case

    for ref in refs:
        new_case(
            session,
            make_ctx(),
            spec,
            kind="cluster_application",
            ref=ref,
            org_id=code("鄞州区"),
            city_code=code("宁波市"),
            county_code=code("鄞州区"),
            title=ref,
        )


def test_case_numbers_go_on_past_99999(seeded: Database, make_ctx: Any) -> None:
    from models.campaign import get_campaign
    from models.registry import RefAllocator

    with seeded.write() as session:
        spec = get_campaign(session, CLUSTER).spec()
        _add_cases(session, make_ctx, spec, ("CL26-99999", "CL26-100000"))
        assert RefAllocator(session, spec, "cluster_application")() == "CL26-100001"
        session.rollback()


def test_a_ref_of_the_serials_shape_that_is_no_serial_is_passed_over(seeded: Database, make_ctx: Any) -> None:
    """A city's case numbered with the application's prefix (CL26-CL-330100: 9 characters after
    CL26-, like a serial past 99999999) is not read as a number: the next serial follows the
    highest real one (it crashed with int('CL-330100') when a kind shared the list's prefix)."""
    from models.campaign import get_campaign
    from models.registry import RefAllocator

    with seeded.write() as session:
        spec = get_campaign(session, CLUSTER).spec()
        _add_cases(session, make_ctx, spec, ("CL26-00007", "CL26-CL-331100"))
        assert RefAllocator(session, spec, "cluster_application")() == "CL26-00008"
        session.rollback()


# -- a new campaign of the 附1-2 shape, as a file only ----------------------------------------


def test_a_campaign_file_with_counties_and_parks_applying_needs_no_code(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    """``applicant_tier: county_or_park`` in a file without 2026 figures: a county applies for
    itself (its county may be left empty), a park under its county; both by the form alone."""
    from models.registry import load_campaign

    zjtx = Path(__file__).resolve().parents[2] / "calendars" / "campaigns" / "available" / "2026-zjtx.yaml"
    text = zjtx.read_text(encoding="utf-8")
    county_line = "    - {key: county, label: 所在县（市、区）, aliases: [所在县, 所属县（市、区）, 县（市、区）, 所在地区], type: county}"
    assert "  applicant_tier: enterprise\n" in text and county_line in text
    text = text.replace("  applicant_tier: enterprise\n", "  applicant_tier: county_or_park\n")
    text = text.replace(county_line, county_line.replace("type: county}", "type: county, required: false}"))
    with seeded.write() as session:
        load_campaign(session, make_ctx(), text, origin="parks.yaml")
    sample = zjtx.with_name("2026-zjtx.sample.csv")
    import csv

    with sample.open(encoding="utf-8-sig", newline="") as fh:
        headers, good = list(csv.reader(fh))[1:3]
    county, park = list(good), list(good)
    county[0], county[2] = "西湖区", ""
    park[0], park[1], park[2], park[16] = "杭州未来科技城管委会", "91330110MA2H0Q1K3Y", "余杭区", "ZJTX2026-9"
    run_cases(seeded, make_ctx, "2026-zjtx", write_sheet(tmp_path / "县与园区.csv", headers, [county, park]))
    with seeded.read() as session:
        cases = {c.title: c for c in session.exec(select(Case).where(Case.campaign_id == "2026-zjtx"))}
        org = session.get(Organisation, cases["杭州未来科技城管委会"].org_id)
    assert cases["西湖区"].org_id == code("西湖区") and cases["西湖区"].attrs["county"] == "西湖区"
    assert org is not None and (org.tier, org.county_code) == ("park", code("余杭区"))


def test_a_county_read_only_approximately_is_named_in_the_summary(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    other = [2, "宁波精密有限公司", "鄞州区", *JINGPIN_ROW[3:]]
    path = write_sheet(
        tmp_path / "精品.csv", JINGPIN_HEADERS, [[*JINGPIN_ROW[:2], "鄞州县", *JINGPIN_ROW[3:]], other]
    )
    summary = run_cases(seeded, make_ctx, JINGPIN, path)
    assert summary.notes == ["所在县（市、区）“鄞州县”按“宁波市鄞州区”导入（第2行起）"]
    with seeded.read() as session:
        made = session.exec(select(Case).where(Case.ref.in_(summary.created))).all()  # type: ignore[attr-defined]
    assert [c.county_code for c in made] == [code("鄞州区")] * 2
