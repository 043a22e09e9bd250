"""Tests for models.sheets: reading CSV/XLSX import files into validated rows or problems."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook

from calendars.campaign import FormSpec, builtin_campaign_files, load_campaign_file, load_campaign_text
from models.forms import FormRow, read_form
from models.programs import builtin_programs, builtin_specs, programs_of
from models.sheets import (
    Column,
    ImportProblem,
    ImportRejected,
    RosterWords,
    parse_roster,
    read_sheet,
    roster_words,
    write_sheet,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

ROSTER_HEADERS = [
    "市、县(市、区)",
    "处室/科室",
    "姓名",
    "职务",
    "手机号码(浙政钉号码)",
    "备注(集群遴选/制造精品)",
    "电子邮箱",
]

CLUSTER_HEADERS = [
    "申报单位",
    "所在县（市、区）",
    "申报类型",
    "集群名称",
    "细分赛道",
    "当前所属X体系",
    "2025年集群规上企业营业收入（亿元）",
    "省级及以上链主企业数量",
    "省级及以上创新平台数量",
    "省级及以上企业研发机构数量",
    "世界级细分领域",
    "集群联系人",
    "联系人手机",
    "联系人邮箱",
    "外部编号",
]

JINGPIN_HEADERS = [
    "序号",
    "企业名称",
    "所在县（市、区）",
    "产品名称及型号",
    "产品类别 (先进制造类、数字技术融合类、 特色（消费品）类)",
    "所在“415X”先进制造业集群赛道",
    "上市日期",
    "近三年研发投入占比（%）",
    "近三年年均销售收入（万元）",
    "联系人",
    "联系电话",
]


def roster_row(**overrides: Any) -> list[Any]:
    base = {
        "org": "杭州市",
        "dept": "产业处",
        "name": "王明",
        "title": "处长",
        "mobile": "13805710001",
        "programs": "集群遴选",
        "email": "wangming@hz.gov.cn",
    }
    base.update(overrides)
    return list(base.values())


def cluster_row(**overrides: Any) -> list[Any]:
    base = {
        "applicant": "西湖区",
        "county": "",
        "zone": "省级重点产业集群核心区",
        "cluster": "人工智能",
        "track": "模型数据服务",
        "x": "无",
        "revenue": "520.5",
        "chain": "2",
        "platforms": "1",
        "rd": "5",
        "world": "",
        "contact": "钱进",
        "mobile": "13905710003",
        "email": "qianjin@xh.gov.cn",
        "ext": "",
    }
    base.update(overrides)
    return list(base.values())


def jingpin_row(**overrides: Any) -> list[Any]:
    base = {
        "seq": 1,
        "enterprise": "浙江某某机械有限公司",
        "county": "萧山区",
        "product": "数控机床 XK-500",
        "category": "先进制造类",
        "track": "工业母机与机器人",
        "launch": "2023-05-01",
        "rd": "4.2",
        "sales": "1200",
        "contact": "孙丽",
        "phone": "13700000001",
    }
    base.update(overrides)
    return list(base.values())


def _form(program: str) -> FormSpec:
    """The built-in campaign file's form (附1-2 or 附2-3), as `case import` reads it."""
    for path in builtin_campaign_files():
        spec = load_campaign_file(path)
        if spec.program == program:
            assert spec.form is not None
            return spec.form
    raise AssertionError(program)


def parse_cluster_applications(path: Path) -> list[FormRow]:
    return read_form(_form("cluster"), path)


def parse_jingpin_applications(path: Path) -> list[FormRow]:
    return read_form(_form("jingpin"), path)


def rejected(call: Any, *args: Any) -> list[ImportProblem]:
    with pytest.raises(ImportRejected) as info:
        call(*args)
    return info.value.problems


# --- reading and layout ---------------------------------------------------------------------


def test_it_reads_the_official_roster_layout_with_title_lines_from_xlsx() -> None:
    rows = parse_roster(FIXTURES / "roster_official.xlsx")
    assert [(r.row, r.org, r.name) for r in rows] == [
        (5, "杭州市", "王明"),
        (6, "杭州市", "李华"),
        (8, "西湖区", "赵静"),
    ]
    assert rows[0].mobile == "13805710001"
    assert rows[0].mobile_display == "138 0571 0001"
    assert rows[1].mobile == "0571-87058343"
    assert rows[2].programs == frozenset({"cluster", "jingpin"})


def test_it_reads_csv_in_gbk() -> None:
    rows = parse_roster(FIXTURES / "roster_gbk.csv")
    assert [(r.row, r.org, r.name, r.programs) for r in rows] == [
        (4, "宁波市", "陈刚", frozenset({"cluster", "jingpin"})),
        (5, "鄞州区", "周敏", frozenset({"jingpin"})),
    ]


def test_it_reads_csv_in_utf8_with_bom(tmp_path: Path) -> None:
    path = write_sheet(tmp_path / "roster.csv", ROSTER_HEADERS, [roster_row()])
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert parse_roster(path)[0].email == "wangming@hz.gov.cn"


def test_it_reads_csv_in_utf8_without_bom(tmp_path: Path) -> None:
    path = write_sheet(tmp_path / "roster.csv", ROSTER_HEADERS, [roster_row()], encoding="utf-8")
    assert parse_roster(path)[0].name == "王明"


@pytest.mark.parametrize(
    ("mobile_header", "programs_header"),
    [
        ("手机号码(浙政钉号码)", "备注(集群遴选/制造精品)"),
        ("手机号码（浙政钉号码）", "备注（集群遴选／制造精品）"),
        ("手机号码 \n(浙政钉号码)", "备 注"),
        ("手机号码", "备注"),
        ("手机号码", "项目"),
    ],
)
def test_it_matches_header_variants(tmp_path: Path, mobile_header: str, programs_header: str) -> None:
    headers = ["市、县（市、区）", "处室／科室", "姓 名", "职务", mobile_header, programs_header, "邮箱"]
    path = write_sheet(tmp_path / "roster.xlsx", headers, [roster_row()])
    row = parse_roster(path)[0]
    assert (row.department, row.name, row.mobile, row.programs) == (
        "产业处",
        "王明",
        "13805710001",
        frozenset({"cluster"}),
    )


def test_it_ignores_unknown_extra_columns(tmp_path: Path) -> None:
    headers = ["序号", *ROSTER_HEADERS, "办公室地址"]
    path = write_sheet(tmp_path / "roster.xlsx", headers, [[1, *roster_row(), "省府路8号"]])
    assert parse_roster(path)[0].name == "王明"


def test_it_skips_empty_rows_and_keeps_real_row_numbers(tmp_path: Path) -> None:
    rows = [
        roster_row(),
        [None] * 7,
        ["", " ", "", "", "", "", ""],
        roster_row(name="李华", email="li@hz.gov.cn"),
    ]
    path = write_sheet(tmp_path / "roster.csv", ROSTER_HEADERS, rows, title_lines=["工作人员信息汇总表"])
    assert [(r.row, r.name) for r in parse_roster(path)] == [(3, "王明"), (6, "李华")]


def test_it_skips_trailing_note_rows(tmp_path: Path) -> None:
    footer = [
        "备注：1. 请分别统计汇总",
        "2. 集群遴选工作人员信息表请发省产业发展中心",
        "填报人：",
        "联系电话（手机）：",
    ]
    path = write_sheet(tmp_path / "roster.xlsx", ROSTER_HEADERS, [roster_row()], footer_lines=footer)
    assert len(parse_roster(path)) == 1


def test_it_reads_a_named_worksheet(tmp_path: Path) -> None:
    path = tmp_path / "book.xlsx"
    wb = Workbook()
    first = wb.active
    assert first is not None
    first.append(["说明页"])
    second = wb.create_sheet("集群遴选")
    second.append(ROSTER_HEADERS)
    second.append(roster_row())
    wb.save(path)
    assert parse_roster(path, sheet_name="集群遴选")[0].name == "王明"


def test_it_reads_a_sheet_without_column_specs_keyed_by_header_text(tmp_path: Path) -> None:
    path = write_sheet(tmp_path / "any.csv", ["甲", "乙"], [["1", "2"]], title_lines=["标题"])
    sheet = read_sheet(path)
    assert (sheet.header_row, sheet.rows[0].number, sheet.rows[0].values) == (2, 3, {"甲": "1", "乙": "2"})


def test_it_rejects_legacy_xls_files(tmp_path: Path) -> None:
    path = tmp_path / "roster.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0")
    problems = rejected(parse_roster, path)
    assert ".xlsx" in problems[0].message


# --- problems -------------------------------------------------------------------------------


def test_it_formats_a_problem_with_file_row_and_column() -> None:
    problem = ImportProblem("roster.csv", 7, "电子邮箱", "邮箱格式不正确：zhang@ (应如 name@example.gov.cn)")
    assert str(problem) == "roster.csv 第7行 「电子邮箱」: 邮箱格式不正确：zhang@ (应如 name@example.gov.cn)"


def test_it_reports_a_bad_email_naming_row_and_column(tmp_path: Path) -> None:
    rows = [roster_row(), roster_row(name="张三", email="zhang@")]
    path = write_sheet(tmp_path / "roster.csv", ROSTER_HEADERS, rows, title_lines=["工作人员信息汇总表"])
    [problem] = rejected(parse_roster, path)
    assert str(problem) == "roster.csv 第4行 「电子邮箱」: 邮箱格式不正确：zhang@ (应如 name@example.gov.cn)"


def test_it_reports_a_bad_mobile_naming_row_column_and_value(tmp_path: Path) -> None:
    path = write_sheet(tmp_path / "roster.csv", ROSTER_HEADERS, [roster_row(mobile="1380571")])
    [problem] = rejected(parse_roster, path)
    assert (problem.row, problem.column) == (2, "手机号码(浙政钉号码)")
    assert "1380571" in problem.message


def test_it_reports_empty_programs(tmp_path: Path) -> None:
    path = write_sheet(tmp_path / "roster.csv", ROSTER_HEADERS, [roster_row(programs="")])
    [problem] = rejected(parse_roster, path)
    assert (problem.row, problem.column) == (2, "备注(集群遴选/制造精品)")


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("集群遴选", {"cluster"}),
        ("集群", {"cluster"}),
        ("精品", {"jingpin"}),
        ("制造精品", {"jingpin"}),
        ("集群遴选/制造精品", {"cluster", "jingpin"}),
        ("集群遴选，制造精品", {"cluster", "jingpin"}),
        ("全部", {"cluster", "jingpin"}),
        ("均", {"cluster", "jingpin"}),
    ],
)
def test_it_accepts_program_variants(tmp_path: Path, typed: str, expected: set[str]) -> None:
    path = write_sheet(tmp_path / "roster.csv", ROSTER_HEADERS, [roster_row(programs=typed)])
    assert parse_roster(path)[0].programs == frozenset(expected)


# --- the roster's words are the campaign files' ------------------------------------------------

ZJTX_FILE = Path(__file__).resolve().parents[2] / "calendars" / "campaigns" / "available" / "2026-zjtx.yaml"
# A notice's own staff form, in words no built-in alias knows.
ZJTX_ROSTER = """  roster:
    annex: 附件5
    title: 专精特新工作联络员名单
    heading: "设区市：{city}"
    columns:
      - {header: 所在单位, field: org}
      - {header: 联络员, field: name}
      - {header: 浙政钉手机, field: mobile}
      - {header: 负责批次, field: program}
      - {header: 工作邮箱, field: email}
"""
ZJTX_ROSTER_HEADERS = ["所在单位", "联络员", "浙政钉手机", "负责批次", "工作邮箱"]


def zjtx_words() -> RosterWords:
    """The words of the built-in campaigns and of 2026-zjtx.yaml given the form above."""
    text = ZJTX_FILE.read_text(encoding="utf-8")
    assert "\nexports:\n" in text
    spec = load_campaign_text(text.replace("\nexports:\n", "\nexports:\n" + ZJTX_ROSTER), origin="zjtx.yaml")
    return roster_words([*builtin_specs(), spec], builtin_programs() | programs_of([spec]))


def test_a_roster_in_the_form_a_campaign_file_declares_is_read_by_its_headers(tmp_path: Path) -> None:
    row = ["杭州市", "王明", "13805710001", "专精特新", "wangming@hz.gov.cn"]
    path = write_sheet(
        tmp_path / "联络员.xlsx", ZJTX_ROSTER_HEADERS, [row], title_lines=["专精特新工作联络员名单"]
    )
    [read] = parse_roster(path, words=zjtx_words())
    assert (read.org, read.name, read.mobile, read.programs, read.email) == (
        "杭州市",
        "王明",
        "13805710001",
        frozenset({"zjtx"}),
        "wangming@hz.gov.cn",
    )
    # Without that file its headers name nothing: the aliases are the file's, not the code's.
    problems = rejected(parse_roster, path)
    assert {p.column for p in problems} >= {"姓名", "电子邮箱"}


def test_a_header_a_file_declares_for_one_column_is_not_read_as_another(tmp_path: Path) -> None:
    # 单位 is everyday for 市、县(市、区); this form heads its 处室 column so.
    words = RosterWords(builtin_programs(), {"org": ("所在地",), "department": ("单位",)})
    headers = ["单位", "所在地", "姓名", "手机号码", "备注", "电子邮箱"]
    path = write_sheet(
        tmp_path / "r.csv", headers, [["产业处", "杭州市", "王明", "13805710001", "集群遴选", "w@hz.gov.cn"]]
    )
    [row] = parse_roster(path, words=words)
    assert (row.org, row.department) == ("杭州市", "产业处")


def test_the_programs_column_is_labelled_and_explained_by_the_loaded_programs(tmp_path: Path) -> None:
    rows = [roster_row(programs=""), roster_row(name="李华", email="li@hz.gov.cn", programs="其他")]
    path = write_sheet(tmp_path / "roster.csv", ROSTER_HEADERS, rows)
    empty, unknown = rejected(partial(parse_roster, words=zjtx_words()), path)
    assert empty.column == unknown.column == "备注(集群遴选/制造精品/专精特新)"
    assert unknown.message.startswith("无法识别的工作类别：其他（")
    assert "集群遴选、制造精品、专精特新" in unknown.message


def test_it_reports_a_duplicate_person_naming_both_rows(tmp_path: Path) -> None:
    rows = [roster_row(), roster_row(name="李华", email="li@hz.gov.cn"), roster_row(programs="全部")]
    path = write_sheet(tmp_path / "roster.csv", ROSTER_HEADERS, rows)
    [problem] = rejected(parse_roster, path)
    assert (problem.row, problem.column) == (4, "姓名")
    assert "第2行" in problem.message and "王明" in problem.message


def test_it_allows_the_same_person_for_two_programs_on_two_rows(tmp_path: Path) -> None:
    rows = [roster_row(), roster_row(programs="制造精品")]
    path = write_sheet(tmp_path / "roster.csv", ROSTER_HEADERS, rows)
    assert len(parse_roster(path)) == 2


def test_it_reports_one_email_used_by_two_names(tmp_path: Path) -> None:
    rows = [roster_row(), roster_row(name="李华", org="西湖区")]
    path = write_sheet(tmp_path / "roster.csv", ROSTER_HEADERS, rows)
    [problem] = rejected(parse_roster, path)
    assert (problem.row, problem.column) == (3, "电子邮箱")
    assert "第2行" in problem.message


def test_it_reports_a_missing_required_column_with_headers_found(tmp_path: Path) -> None:
    headers = ROSTER_HEADERS[:-1]  # no 电子邮箱
    path = write_sheet(
        tmp_path / "roster.xlsx", headers, [roster_row()[:-1]], title_lines=["工作人员信息汇总表"]
    )
    [problem] = rejected(parse_roster, path)
    assert problem.file == "roster.xlsx"
    assert problem.column == "电子邮箱"
    assert "第2行" in problem.message and "「姓名」" in problem.message


def test_it_collects_all_problems_in_a_file(tmp_path: Path) -> None:
    rows = [
        roster_row(email="bad"),
        roster_row(name="李华", mobile="12", email="li@hz.gov.cn"),
        roster_row(name="", programs="其他", email="x@hz.gov.cn"),
    ]
    path = write_sheet(tmp_path / "roster.csv", ROSTER_HEADERS, rows)
    problems = rejected(parse_roster, path)
    assert [(p.row, p.column) for p in problems] == [
        (2, "电子邮箱"),
        (3, "手机号码(浙政钉号码)"),
        (4, "姓名"),
        (4, "备注(集群遴选/制造精品)"),
    ]


def test_it_caps_the_printed_problem_list_at_fifty() -> None:
    problems = [ImportProblem("a.csv", i, "姓名", "必填项为空") for i in range(2, 62)]
    text = str(ImportRejected(problems))
    assert "共60处" in text and "…另有10处" in text
    assert "第51行" in text and "第52行" not in text


# --- cluster applications -------------------------------------------------------------------


def test_it_parses_a_cluster_application(tmp_path: Path) -> None:
    path = write_sheet(tmp_path / "cluster.csv", CLUSTER_HEADERS, [cluster_row()])
    [row] = parse_cluster_applications(path)
    v = row.values
    assert (v["applicant"], v["county"], row.is_park, v["zone_type"], v["cluster"]) == (
        "西湖区",
        "西湖区",
        False,
        "core",
        "人工智能",
    )
    assert (v["revenue"], v["chain_leaders"], v["innovation_platforms"], v["world_class"]) == (
        "520.5",
        2,
        1,
        False,
    )


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("核心区", "core"),
        ("省级重点产业集群协同区", "collaborative"),
        ("省级“新星”产业群", "rising_star"),
        ("新星", "rising_star"),
    ],
)
def test_it_accepts_zone_type_variants(tmp_path: Path, typed: str, expected: str) -> None:
    path = write_sheet(tmp_path / "cluster.csv", CLUSTER_HEADERS, [cluster_row(zone=typed)])
    assert parse_cluster_applications(path)[0].values["zone_type"] == expected


def test_it_normalises_quotes_in_the_x_system(tmp_path: Path) -> None:
    path = write_sheet(
        tmp_path / "cluster.csv", CLUSTER_HEADERS, [cluster_row(zone="协同区", x='"新星"产业群')]
    )
    assert parse_cluster_applications(path)[0].values["x_system"] == "“新星”产业群"


def test_it_requires_the_county_for_a_park(tmp_path: Path) -> None:
    path = write_sheet(
        tmp_path / "cluster.csv", CLUSTER_HEADERS, [cluster_row(applicant="杭州经济技术开发区")]
    )
    [problem] = rejected(parse_cluster_applications, path)
    assert (problem.row, problem.column) == (2, "所在县（市、区）")


def test_it_takes_the_cluster_from_the_subtrack_when_the_form_names_none(tmp_path: Path) -> None:
    # 附1-2 has no cluster column: 细分赛道 alone says which cluster a row belongs to (the
    # campaign file's 附1-1 subtracks, and each cluster's own name).
    rows = [
        cluster_row(cluster="", track="模型数据服务"),
        cluster_row(applicant="余杭区", cluster="", track="智能物联"),
        cluster_row(applicant="滨江区", cluster="", track="数控机床"),
        cluster_row(applicant="萧山区", zone="新星产业群", cluster="", track="算力产业"),
    ]
    path = write_sheet(tmp_path / "cluster.csv", CLUSTER_HEADERS, rows)
    parsed = parse_cluster_applications(path)
    assert [r.values["cluster"] for r in parsed] == ["人工智能", "智能物联", None, None]
    assert [r.values["highland"] for r in parsed] == [None, None, None, None]


def test_it_still_checks_a_cluster_name_that_is_given(tmp_path: Path) -> None:
    path = write_sheet(tmp_path / "cluster.csv", CLUSTER_HEADERS, [cluster_row(cluster="元宇宙")])
    [problem] = rejected(parse_cluster_applications, path)
    assert (problem.row, problem.column) == (2, "集群名称")


def test_it_reports_a_negative_revenue_and_a_fractional_count(tmp_path: Path) -> None:
    path = write_sheet(tmp_path / "cluster.csv", CLUSTER_HEADERS, [cluster_row(revenue="-1", chain="1.5")])
    problems = rejected(parse_cluster_applications, path)
    assert [(p.column, "-1" in p.message or "1.5" in p.message) for p in problems] == [
        ("2025年集群规上企业营业收入（亿元）", True),
        ("省级及以上链主企业数量", True),
    ]


def test_it_reports_a_duplicate_applicant_and_track(tmp_path: Path) -> None:
    path = write_sheet(tmp_path / "cluster.csv", CLUSTER_HEADERS, [cluster_row(), cluster_row(zone="协同区")])
    [problem] = rejected(parse_cluster_applications, path)
    assert (problem.row, problem.column) == (3, "细分赛道")
    assert "第2行" in problem.message


# --- 精品 applications ----------------------------------------------------------------------


def test_it_parses_a_jingpin_application_from_the_official_summary_form(tmp_path: Path) -> None:
    path = write_sheet(
        tmp_path / "jingpin.xlsx",
        JINGPIN_HEADERS,
        [jingpin_row(), ["...", *[None] * 10]],
        title_lines=["2026 年浙江制造精品推荐汇总表", "填报单位（盖章）："],
        footer_lines=["填报人：", "联系电话（手机）："],
    )
    [row] = parse_jingpin_applications(path)
    v = row.values
    assert (row.row, v["category"], v["track"], v["launch_date"]) == (
        4,
        "advanced",
        "工业母机与机器人",
        "2023-05-01",
    )
    assert (v["rd_ratio"], v["avg_sales"], v["brand_product"]) == ("4.2", "1200", False)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("特色（消费品）类", "consumer"),
        ("特色(消费品)类", "consumer"),
        ("消费品类", "consumer"),
        ("数字技术融合类", "digital"),
    ],
)
def test_it_accepts_product_category_variants(tmp_path: Path, typed: str, expected: str) -> None:
    path = write_sheet(tmp_path / "jingpin.csv", JINGPIN_HEADERS, [jingpin_row(category=typed)])
    assert parse_jingpin_applications(path)[0].values["category"] == expected


def test_it_accepts_a_short_track_header_and_track_spelling_variants(tmp_path: Path) -> None:
    headers = [("集群赛道" if h.startswith("所在“415X”") else h) for h in JINGPIN_HEADERS]
    path = write_sheet(tmp_path / "jingpin.csv", headers, [jingpin_row(track="生物医药及医疗器械")])
    assert parse_jingpin_applications(path)[0].values["track"] == "生物医药与医疗器械"


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("2023-05-01", date(2023, 5, 1)),
        ("2023/5/1", date(2023, 5, 1)),
        ("2023年5月1日", date(2023, 5, 1)),
        ("2023.05", date(2023, 5, 1)),
        ("2024年12月", date(2024, 12, 1)),
    ],
)
def test_it_accepts_date_text_variants(tmp_path: Path, typed: str, expected: date) -> None:
    path = write_sheet(tmp_path / "jingpin.csv", JINGPIN_HEADERS, [jingpin_row(launch=typed)])
    assert parse_jingpin_applications(path)[0].values["launch_date"] == expected.isoformat()


def test_it_reads_xlsx_date_cells(tmp_path: Path) -> None:
    rows = [
        jingpin_row(launch=date(2024, 3, 15)),
        jingpin_row(product="B型", launch=datetime(2023, 1, 2, 0, 0)),
    ]
    path = write_sheet(tmp_path / "jingpin.xlsx", JINGPIN_HEADERS, rows)
    assert [r.values["launch_date"] for r in parse_jingpin_applications(path)] == ["2024-03-15", "2023-01-02"]


def test_it_reads_an_unformatted_excel_date_serial(tmp_path: Path) -> None:
    path = write_sheet(tmp_path / "jingpin.xlsx", JINGPIN_HEADERS, [jingpin_row(launch=45047)])
    assert parse_jingpin_applications(path)[0].values["launch_date"] == "2023-05-01"


def test_it_reports_a_malformed_date_naming_row_and_column(tmp_path: Path) -> None:
    path = write_sheet(tmp_path / "jingpin.csv", JINGPIN_HEADERS, [jingpin_row(launch="2023-13-01")])
    [problem] = rejected(parse_jingpin_applications, path)
    assert (problem.row, problem.column) == (2, "上市日期")
    assert "2023-13-01" in problem.message


def test_it_reads_a_percentage_formatted_cell_as_shown(tmp_path: Path) -> None:
    path = write_sheet(tmp_path / "jingpin.xlsx", JINGPIN_HEADERS, [jingpin_row(rd=0.035)])
    wb_path = path
    from openpyxl import load_workbook

    wb = load_workbook(wb_path)
    ws = wb.active
    assert ws is not None
    ws["H2"].number_format = "0.0%"
    wb.save(wb_path)
    assert Decimal(parse_jingpin_applications(path)[0].values["rd_ratio"]) == Decimal("3.5")


def test_it_reports_a_duplicate_enterprise_and_product(tmp_path: Path) -> None:
    path = write_sheet(tmp_path / "jingpin.csv", JINGPIN_HEADERS, [jingpin_row(), jingpin_row(seq=2)])
    [problem] = rejected(parse_jingpin_applications, path)
    assert (problem.row, problem.column) == (3, "产品名称及型号")
    assert "第2行" in problem.message


def test_it_reports_an_unknown_track_with_the_allowed_list(tmp_path: Path) -> None:
    path = write_sheet(tmp_path / "jingpin.csv", JINGPIN_HEADERS, [jingpin_row(track="元宇宙")])
    [problem] = rejected(parse_jingpin_applications, path)
    assert "元宇宙" in problem.message and "历史经典产业" in problem.message


# --- writer ---------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_it_round_trips_rows_through_write_sheet(tmp_path: Path, suffix: str) -> None:
    columns = [Column("name", "姓名"), Column("when", "日期")]
    path = write_sheet(tmp_path / f"t{suffix}", ["姓名", "日期"], [["王明", date(2023, 5, 1)]])
    sheet = read_sheet(path, columns)
    assert sheet.rows[0].values["name"] == "王明"
    assert str(sheet.rows[0].values["when"])[:10] == "2023-05-01"
