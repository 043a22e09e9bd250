"""Eligibility from the notice: blocks stop, "原则上" findings need a recorded reason.

The rule tests are pure (附1-1 and 附件2 二、 against ``models.eligibility``); the last tests
submit real cases and check what the guard does and what the audit records.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from calendars.campaign import CAMPAIGN_DIR, load_campaign_file
from models.actions import ActionRefused, get_case, perform
from models.db import Database
from models.eligibility import Finding, findings_for
from tests.models.spine import cluster_case, events, jingpin_case, n_events, snapshot

# The rules are the campaign files' eligibility: blocks, run by the one engine.
CLUSTER_SPEC = load_campaign_file(CAMPAIGN_DIR / "2026-cluster-selection.yaml")
JINGPIN_SPEC = load_campaign_file(CAMPAIGN_DIR / "2026-jingpin.yaml")


def cluster(
    zone: str = "collaborative", *, mountain_island: bool = False, **attrs: Any
) -> dict[str, Finding]:
    base = {
        "cluster": "人工智能",
        "subtrack": "智能终端",
        "x_system": "创新型产业集群",
        "revenue": "250",
        "chain_leaders": 1,
        "innovation_platforms": 1,
        "rd_centres": 3,
    }
    if zone == "rising_star":
        base |= {
            "cluster": None,
            "highland": "高端装备",
            "subtrack": "仪器仪表",
            "x_system": "无",
            "revenue": "12",
        }
    found = findings_for(
        CLUSTER_SPEC,
        "cluster_application",
        base | attrs,
        zone_type=zone,
        category=None,
        mountain_island=mountain_island,
    )
    return {f.rule: f for f in found}


def jingpin(category: str = "advanced", *, mountain_island: bool = False, **attrs: Any) -> dict[str, Finding]:
    base = {"track": "工业母机与机器人", "launch_date": "2023-06-01", "avg_sales": "900", "rd_ratio": "4"}
    found = findings_for(
        JINGPIN_SPEC,
        "jingpin_application",
        base | attrs,
        zone_type=None,
        category=category,
        mountain_island=mountain_island,
    )
    return {f.rule: f for f in found}


# -- 集群遴选 (附1-1, 四、（一）) ---------------------------------------------------------------------


@pytest.mark.parametrize("zone", ["core", "collaborative", "rising_star"])
def test_it_finds_nothing_wrong_with_a_complete_application(zone: str) -> None:
    extra = {"revenue": "600"} if zone == "core" else {}  # 人工智能 核心区: 500 亿元
    assert cluster(zone, **extra) == {}


@pytest.mark.parametrize(
    "name",
    [
        "集成电路",
        "新能源汽车及零部件",
        "高端船舶与海工装备",
        "新能源与新型储能",
        "现代家居与智能家电",
        "绿色石化",
        "高端新材料",
    ],
)
def test_it_blocks_a_closed_track(name: str) -> None:
    found = cluster("core", cluster=name, subtrack="任意")
    assert list(found) == ["track_closed"]
    assert found["track_closed"].severity == "block" and name in found["track_closed"].message


def test_it_blocks_a_cluster_that_is_not_in_the_table() -> None:
    found = cluster(cluster="元宇宙")
    assert found["track_unknown"].severity == "block" and "人工智能" in found["track_unknown"].message


def test_it_blocks_a_subtrack_outside_a_closed_list() -> None:
    found = cluster(cluster="电气与农机装备", subtrack="光伏逆变器", revenue="100")
    assert found["subtrack_unknown"].severity == "block"
    assert "农机装备、智慧农机" in found["subtrack_unknown"].message


def test_it_says_a_cluster_name_typed_as_the_subtrack_is_not_a_subtrack_and_lists_the_valid_ones() -> None:
    for named in ("智能物联", None):  # 附1-2 has no cluster column: the name may come from nowhere else
        found = cluster(cluster=named, subtrack="智能物联")
        assert list(found) == ["subtrack_is_cluster"] and found["subtrack_is_cluster"].severity == "block"
        message = found["subtrack_is_cluster"].message
        assert "不属于" not in message
        assert "集群名称「智能物联」" in message and "智能感知、智能网络、智能计算、智能控制" in message


def test_it_infers_the_cluster_from_the_subtrack_alone() -> None:
    assert cluster(cluster=None, subtrack="智能感知") == {}  # 智能物联 协同区: 200 亿元
    below = cluster(cluster=None, subtrack="智能感知", revenue="150")
    assert "门槛200亿元" in below["revenue_threshold"].message


def test_it_says_a_missing_subtrack_is_missing_and_lists_the_clusters_subtracks() -> None:
    found = cluster(cluster="智能物联", subtrack="")
    assert list(found) == ["subtrack_missing"]
    assert "未填写细分赛道" in found["subtrack_missing"].message
    assert "智能感知、智能网络、智能计算、智能控制" in found["subtrack_missing"].message


def test_it_blocks_a_subtrack_of_another_cluster_naming_both() -> None:
    found = cluster(cluster="智能物联", subtrack="智能终端")
    assert list(found) == ["subtrack_mismatch"]
    assert "「智能终端」属于「人工智能」" in found["subtrack_mismatch"].message


def test_it_cannot_infer_a_cluster_from_an_unlisted_subtrack_and_says_so() -> None:
    found = cluster(cluster=None, subtrack="数控机床")
    assert list(found) == ["subtrack_unknown"]
    assert "无法确定所属集群" in found["subtrack_unknown"].message


def test_it_only_notes_a_subtrack_covered_by_deng() -> None:  # "模具、增材制造等"
    found = cluster(cluster="工业母机与机器人", subtrack="数控机床", revenue="100")
    assert {r: f.severity for r, f in found.items()} == {"subtrack_other": "info"}


@pytest.mark.parametrize(
    ("zone", "name", "subtrack", "threshold"),
    [
        ("core", "人工智能", "智能终端", 500),
        ("collaborative", "人工智能", "智能终端", 200),
        ("core", "智能物联", "智能感知", 1000),
        ("collaborative", "高端软件", "工业软件", 50),
        ("core", "低空经济与商业航天", "低空装备", 60),
        ("collaborative", "现代纺织与服装", "化纤", 300),
        ("core", "生物医药与医疗器械", "CXO", 250),
        ("collaborative", "电气与农机装备", "农机装备", 30),
    ],
)
def test_it_applies_the_revenue_threshold_of_the_track_in_principle(
    zone: str, name: str, subtrack: str, threshold: int
) -> None:
    assert "revenue_threshold" not in cluster(zone, cluster=name, subtrack=subtrack, revenue=str(threshold))
    below = cluster(zone, cluster=name, subtrack=subtrack, revenue=str(threshold - Decimal("0.1")))
    assert below["revenue_threshold"].severity == "in_principle"
    assert f"门槛{threshold}亿元" in below["revenue_threshold"].message


def test_it_lowers_the_revenue_threshold_by_30_percent_in_a_mountain_island_county() -> None:
    assert "revenue_threshold" not in cluster(revenue="140", mountain_island=True)  # 200 × 0.7
    found = cluster(revenue="139.9", mountain_island=True)
    assert found["revenue_threshold"].severity == "in_principle"
    assert "山区海岛县下调30%后为140亿元" in found["revenue_threshold"].message
    assert "revenue_threshold" in cluster(revenue="140", mountain_island=False)


def test_it_lowers_the_rising_star_threshold_in_a_mountain_island_county() -> None:
    assert "revenue_threshold" not in cluster("rising_star", revenue="7", mountain_island=True)
    assert "revenue_threshold" in cluster("rising_star", revenue="9.9")


def test_it_mentions_the_world_class_exception_when_the_form_claims_it() -> None:
    found = cluster(revenue="100", world_class=True)
    assert "世界级水平" in found["revenue_threshold"].message


def test_it_blocks_a_missing_revenue() -> None:
    assert cluster(revenue="")["revenue_missing"].severity == "block"


def test_it_wants_a_chain_leader_for_a_core_zone_in_principle() -> None:
    found = cluster("core", revenue="600", chain_leaders=0)
    assert {r: f.severity for r, f in found.items()} == {"core_chain_leader": "in_principle"}


@pytest.mark.parametrize(
    ("platforms", "rd", "flagged"), [(0, 2, True), (0, 3, False), (1, 0, False), (None, 2, True)]
)
def test_it_wants_a_platform_or_three_rd_centres_for_a_core_zone(
    platforms: Any, rd: int, flagged: bool
) -> None:
    found = cluster("core", revenue="600", innovation_platforms=platforms, rd_centres=rd)
    assert ("core_platforms" in found) is flagged
    if flagged:
        assert found["core_platforms"].severity == "in_principle"


def test_it_does_not_ask_a_collaborative_zone_for_core_conditions() -> None:
    assert cluster(chain_leaders=0, innovation_platforms=0, rd_centres=0) == {}


@pytest.mark.parametrize("zone", ["core", "collaborative"])
def test_it_wants_a_zone_applicant_in_the_x_system_in_principle(zone: str) -> None:
    found = cluster(zone, revenue="600", x_system="无")
    assert found["x_system_required"].severity == "in_principle"


def test_it_wants_a_rising_star_applicant_outside_the_x_system_in_principle() -> None:
    found = cluster("rising_star", x_system="中小企业特色产业集群")
    assert found["rising_star_in_x"].severity == "in_principle"
    assert "中小企业特色产业集群" in found["rising_star_in_x"].message


def test_it_finds_a_rising_star_highland_from_its_subtrack() -> None:
    assert cluster("rising_star", highland=None, subtrack="宠物用品") == {}


def test_it_only_notes_a_rising_star_subtrack_not_listed() -> None:  # "包括但不限于"
    found = cluster("rising_star", subtrack="工业气体")
    assert {r: f.severity for r, f in found.items()} == {"subtrack_other": "info"}


def test_it_blocks_a_rising_star_outside_the_four_highlands() -> None:
    found = cluster("rising_star", highland="现代服务业", subtrack="会展")
    assert found["highland_unknown"].severity == "block"


# -- 制造精品 (附件2 二、) ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "plain", "mountain"), [("advanced", 800, 500), ("digital", 600, 300), ("consumer", 600, 300)]
)
def test_it_blocks_sales_below_the_category_threshold(category: str, plain: int, mountain: int) -> None:
    assert jingpin(category, avg_sales=str(plain)) == {}
    below = jingpin(category, avg_sales=str(plain - 1))
    assert (
        below["sales_threshold"].severity == "block"
        and f"不低于{plain}万元" in below["sales_threshold"].message
    )
    assert jingpin(category, avg_sales=str(mountain), mountain_island=True) == {}
    low = jingpin(category, avg_sales=str(mountain - 1), mountain_island=True)
    assert (
        "山区海岛县企业" in low["sales_threshold"].message
        and f"不低于{mountain}万元" in low["sales_threshold"].message
    )


@pytest.mark.parametrize(
    ("launched", "ok"),
    [("2022-12-31", False), ("2023-01-01", True), ("2024-12-31", True), ("2025-01-01", False)],
)
def test_it_blocks_a_product_launched_outside_2023_2024(launched: str, ok: bool) -> None:
    found = jingpin(launch_date=launched)
    assert ("launch_window" not in found) is ok
    if not ok:
        assert (
            found["launch_window"].severity == "block"
            and "2023年1月1日至2024年12月31日" in found["launch_window"].message
        )


def test_it_blocks_rd_below_three_percent() -> None:
    assert jingpin(rd_ratio="3") == {}
    assert jingpin(rd_ratio="2.99")["rd_ratio"].severity == "block"


def test_it_blocks_a_track_outside_the_catalogue() -> None:
    assert jingpin(track="房地产")["track_unknown"].severity == "block"
    assert jingpin(track="历史经典产业") == {}


def test_it_blocks_an_unknown_category() -> None:
    assert list(jingpin("luxury")) == ["category_unknown"]


# -- the guard: blocks, overrides and what is recorded --------------------------------------------------


def test_it_refuses_a_closed_track_even_with_an_override(seeded: Database, make_ctx: Any) -> None:
    with seeded.write() as session:
        ref = cluster_case(session, make_ctx(), zone="core", cluster="集成电路", subtrack="芯片设计").ref
    with pytest.raises(ActionRefused) as info:
        perform(seeded, make_ctx(), ref, "submit", overrides={"track_closed": "我们很强"})
    assert info.value.rule == "eligibility" and "不开放" in str(info.value)
    assert snapshot(seeded, ref)[0] == "draft"


def test_it_refuses_an_in_principle_finding_without_a_reason(seeded: Database, make_ctx: Any) -> None:
    with seeded.write() as session:
        ref = cluster_case(session, make_ctx(), revenue="150").ref
    with pytest.raises(ActionRefused) as info:
        perform(seeded, make_ctx(), ref, "submit")
    assert info.value.rule == "override_required"
    # The domain says what is missing; each edge words how to give a reason (no CLI flag here).
    assert "revenue_threshold" in str(info.value) and "--" not in str(info.value)
    assert [f.rule for f in info.value.findings] == ["revenue_threshold"]


def test_it_records_an_override_reason_as_its_own_audit_event(seeded: Database, make_ctx: Any) -> None:
    with seeded.write() as session:
        ref = cluster_case(session, make_ctx(), revenue="150").ref
    count = n_events(seeded)
    perform(seeded, make_ctx(), ref, "submit", overrides={"revenue_threshold": "细分领域竞争力达世界级水平"})
    assert n_events(seeded) == count + 2
    change, override = events(seeded)[-2:]
    assert (change.action, change.to_value) == ("state_change", "submitted")
    assert (override.action, override.subject, override.from_value, override.to_value, override.reason) == (
        "override",
        f"case:{ref}",
        "revenue_threshold",
        "overridden",
        "细分领域竞争力达世界级水平",
    )
    assert "低于规模门槛" in override.details
    with seeded.read() as session:
        findings = get_case(session, ref).findings
    assert (
        findings[0]["rule"] == "revenue_threshold" and findings[0]["override"] == "细分领域竞争力达世界级水平"
    )


def test_it_needs_every_in_principle_finding_overridden(seeded: Database, make_ctx: Any) -> None:
    with seeded.write() as session:
        ref = cluster_case(
            session, make_ctx(), zone="core", revenue="600", chain_leaders=0, x_system="无"
        ).ref
    with pytest.raises(ActionRefused) as info:
        perform(seeded, make_ctx(), ref, "submit", overrides={"core_chain_leader": "链主企业在培育中"})
    assert "x_system_required" in str(info.value) and "core_chain_leader" not in str(info.value)
    perform(
        seeded,
        make_ctx(),
        ref,
        "submit",
        overrides={"core_chain_leader": "链主企业在培育中", "x_system_required": "列入下一批X体系"},
    )
    assert snapshot(seeded, ref)[0] == "submitted"


def test_it_refuses_an_override_of_a_rule_that_did_not_fire(seeded: Database, make_ctx: Any) -> None:
    with seeded.write() as session:
        ref = cluster_case(session, make_ctx()).ref
    with pytest.raises(ActionRefused) as info:
        perform(seeded, make_ctx(), ref, "submit", overrides={"revenue_threshold": "以防万一"})
    assert info.value.rule == "override_unknown" and "revenue_threshold" in str(info.value)


def test_it_uses_the_mountain_island_flag_of_the_applicants_county(seeded: Database, make_ctx: Any) -> None:
    with seeded.write() as session:
        mountain = cluster_case(session, make_ctx(), county="淳安县", revenue="150").ref
        plain = cluster_case(session, make_ctx(), county="桐庐县", revenue="150").ref
    perform(seeded, make_ctx(), mountain, "submit")
    assert snapshot(seeded, mountain)[0] == "submitted"
    with pytest.raises(ActionRefused, match="revenue_threshold"):
        perform(seeded, make_ctx(), plain, "submit")


def test_it_checks_a_rising_star_in_the_x_system_on_submission(seeded: Database, make_ctx: Any) -> None:
    with seeded.write() as session:
        ref = cluster_case(
            session,
            make_ctx(),
            zone="rising_star",
            cluster="高端装备",
            subtrack="精密泵阀",
            x_system="中小企业特色产业集群",
            revenue="12",
        ).ref
    with pytest.raises(ActionRefused, match="rising_star_in_x"):
        perform(seeded, make_ctx(), ref, "submit")
    perform(seeded, make_ctx(), ref, "submit", overrides={"rising_star_in_x": "将退出原X体系"})
    assert snapshot(seeded, ref)[0] == "submitted"


def test_it_applies_the_island_sales_threshold_to_a_zhoushan_product(seeded: Database, make_ctx: Any) -> None:
    with seeded.write() as session:
        island = jingpin_case(session, make_ctx(), county="嵊泗县", category="digital", avg_sales="300").ref
        plain = jingpin_case(session, make_ctx(), county="鄞州区", category="digital", avg_sales="300").ref
    perform(seeded, make_ctx(), island, "submit")
    assert snapshot(seeded, island)[0] == "submitted"
    with pytest.raises(ActionRefused, match="sales_threshold"):
        perform(seeded, make_ctx(), plain, "submit")


def test_it_checks_eligibility_again_on_resubmission(seeded: Database, make_ctx: Any) -> None:
    with seeded.write() as session:
        ref = cluster_case(session, make_ctx(), revenue="150").ref
    perform(seeded, make_ctx(), ref, "submit", overrides={"revenue_threshold": "理由一"})
    perform(seeded, make_ctx(), ref, "return", reason="补充材料")
    with pytest.raises(ActionRefused, match="revenue_threshold"):
        perform(seeded, make_ctx(), ref, "resubmit")
    perform(seeded, make_ctx(), ref, "resubmit", overrides={"revenue_threshold": "理由二"})
    assert snapshot(seeded, ref)[0] == "submitted"
