"""Recommendation quotas (名额): 附2-2 per city, SOE groups ≤5, associations ≤10, brand counties +2,
and the 3 新星 per city of 附件1 五、（二）. A refusal names the quota and what already uses it."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlmodel import Session

from calendars.campaign import CAMPAIGN_DIR
from dashboard.queries import quota_label
from models.actions import ActionRefused, act, get_case, perform
from models.campaign import get_campaign
from models.case import Case
from models.context import Actor, Ctx
from models.db import Database
from models.letters import check_letter
from models.org import Organisation
from models.quota import usage
from models.registry import load_campaign
from tests.models.spine import (
    CLUSTER,
    JINGPIN,
    cluster_case,
    code,
    jingpin_case,
    rec_ref,
    recommender,
    snapshot,
    wait_until_blocked,
)

JINGPIN_FILE = CAMPAIGN_DIR / "2026-jingpin.yaml"

# A sealed scan as the domain sees it: a checked letter (the edges store the file).
SCAN = b"%PDF-1.4 sealed"


def approved(session: Session, ctx: Ctx, n: int, **kwargs: Any) -> list[Case]:
    """``n`` 精品 applications submitted and approved by their county."""
    cases = []
    for _ in range(n):
        case = jingpin_case(session, ctx, **kwargs)
        act(session, ctx, case, "submit")
        if case.recommender_id is None:
            act(session, ctx, case, "approve")
        cases.append(case)
    return cases


def recommend_all(session: Session, ctx: Ctx, cases: list[Case]) -> None:
    for case in cases:
        act(session, ctx, case, "recommend")


def reload_jingpin(db: Database, ctx: Ctx, old: str, new: str) -> None:
    text = JINGPIN_FILE.read_text(encoding="utf-8")
    assert old in text
    with db.write() as session:
        load_campaign(session, ctx, text.replace(old, new), origin="2026-jingpin.yaml（省厅修订）")


def test_it_enforces_zhoushans_quota_of_20(seeded: Database, make_ctx: Any) -> None:
    ctx = make_ctx()
    with seeded.write() as session:
        cases = approved(session, ctx, 21, county="定海区")
        recommend_all(session, ctx, cases[:20])
        refs = [c.ref for c in cases]
    with pytest.raises(ActionRefused) as info:
        perform(seeded, make_ctx(actor=Actor("舟山联络员", code("舟山市"), "city")), refs[20], "recommend")
    message = str(info.value)
    assert info.value.rule == "quota"
    assert "舟山市制造精品推荐名额（附2-2）" in message and "上限 20 个，已使用 20 个" in message
    assert refs[0] in message and "…" in message  # the first ten refs, then an ellipsis
    assert snapshot(seeded, refs[20])[0::3] == ("county_approved", None)


@pytest.mark.parametrize(("city", "county", "quota"), [("杭州市", "西湖区", 60), ("衢州市", "柯城区", 20)])
def test_it_enforces_a_city_quota_changed_in_the_campaign_file(
    seeded: Database, make_ctx: Any, city: str, county: str, quota: int
) -> None:
    reload_jingpin(seeded, make_ctx(), f'"{code(city)}": {quota}', f'"{code(city)}": 1')
    ctx = make_ctx()
    with seeded.write() as session:
        cases = approved(session, ctx, 2, county=county)
        act(session, ctx, cases[0], "recommend")
        refs = [c.ref for c in cases]
    with pytest.raises(ActionRefused, match=f"{city}制造精品推荐名额（附2-2）」：上限 1 个"):
        perform(seeded, make_ctx(), refs[1], "recommend")


@pytest.mark.parametrize(
    ("tier", "name", "limit", "label"),
    [
        ("soe_group", "浙江省能源集团有限公司", 5, "省属企业集团「浙江省能源集团有限公司」推荐名额（≤5）"),
        (
            "association",
            "浙江省仪器仪表行业协会",
            10,
            "省级行业协会「浙江省仪器仪表行业协会」推荐名额（≤10）",
        ),
    ],
)
def test_it_limits_a_direct_recommender(
    seeded: Database, make_ctx: Any, tier: str, name: str, limit: int, label: str
) -> None:
    ctx = make_ctx()
    with seeded.write() as session:
        org = recommender(session, ctx, name, tier)
        cases = approved(session, ctx, limit + 1, county="上城区", recommender_id=org.id)
        recommend_all(session, ctx, cases[:limit])
        last, org_id = cases[-1].ref, org.id
    with pytest.raises(ActionRefused) as info:
        perform(seeded, make_ctx(actor=Actor("联络员", org_id, tier)), last, "recommend")
    assert label in str(info.value) and f"已使用 {limit} 个" in str(info.value)


def test_it_counts_each_soe_group_separately(seeded: Database, make_ctx: Any) -> None:
    ctx = make_ctx()
    with seeded.write() as session:
        a = recommender(session, ctx, "浙江省能源集团有限公司", "soe_group")
        b = recommender(session, ctx, "浙江省机电集团有限公司", "soe_group")
        recommend_all(session, ctx, approved(session, ctx, 5, county="上城区", recommender_id=a.id))
        recommend_all(session, ctx, approved(session, ctx, 5, county="上城区", recommender_id=b.id))
        counts = usage(session, JINGPIN)
    assert counts[f"soe:{a.id}"] == counts[f"soe:{b.id}"] == 5
    assert "city:330100" not in counts


def test_it_leaves_the_city_quota_alone_when_an_soe_group_recommends(seeded: Database, make_ctx: Any) -> None:
    reload_jingpin(seeded, make_ctx(), '"330100": 60', '"330100": 1')
    ctx = make_ctx()
    with seeded.write() as session:
        soe = recommender(session, ctx, "浙江省能源集团有限公司", "soe_group")
        recommend_all(session, ctx, approved(session, ctx, 2, county="上城区", recommender_id=soe.id))
        recommend_all(session, ctx, approved(session, ctx, 1, county="上城区"))
        assert usage(session, JINGPIN) == {f"soe:{soe.id}": 2, "city:330100": 1}


def test_it_gives_a_brand_county_two_extra_slots_for_brand_products(seeded: Database, make_ctx: Any) -> None:
    reload_jingpin(seeded, make_ctx(), "per: county, only: []", 'per: county, only: ["330106"]')
    reload_jingpin(seeded, make_ctx(), "per: county, only: []", 'per: county, only: ["330106"]')  # idempotent
    ctx = make_ctx()
    with seeded.write() as session:
        brand = approved(session, ctx, 3, county="西湖区", brand_aligned=True)
        other = approved(session, ctx, 1, county="西湖区")
        elsewhere = approved(session, ctx, 1, county="上城区", brand_aligned=True)
        recommend_all(session, ctx, [*brand, *other, *elsewhere])
        buckets = [c.quota_bucket for c in [*brand, *other, *elsewhere]]
        # The case page names the quota a case uses the way the file does.
        spec = get_campaign(session, JINGPIN).spec()
        labels = [quota_label(session, spec, b) for b in ("brand:330106", "city:330100")]
    assert buckets == ["brand:330106", "brand:330106", "city:330100", "city:330100", "city:330100"]
    assert labels == ["西湖区先进制造业集群品牌产品单列名额（2个）", "杭州市制造精品推荐名额（附2-2）"]


def test_it_refuses_to_submit_a_recommendation_over_a_quota_lowered_since(
    seeded: Database, make_ctx: Any
) -> None:
    ctx = make_ctx()
    with seeded.write() as session:
        recommend_all(session, ctx, approved(session, ctx, 3, county="定海区"))
    reload_jingpin(seeded, make_ctx(), '"330900": 20', '"330900": 2')
    rc = rec_ref(JINGPIN, code("舟山市"))
    with pytest.raises(ActionRefused) as info:
        perform(
            seeded,
            make_ctx(),
            rc,
            "submit",
            params={"letter": check_letter("推荐意见汇总表（盖章）.pdf", SCAN)},
        )
    assert info.value.rule == "quota"
    assert "舟山市制造精品推荐名额（附2-2）" in str(info.value) and "上限 2 个，已推荐 3 个" in str(
        info.value
    )
    assert snapshot(seeded, rc)[0] == "draft"


def test_it_keeps_the_quota_of_a_recommendation_after_the_case_moves_on(
    seeded: Database, make_ctx: Any
) -> None:
    ctx = make_ctx()
    with seeded.write() as session:
        case = approved(session, ctx, 1, county="定海区")[0]
        act(session, ctx, case, "recommend")
        act(session, ctx, case, "pass_preliminary")
        act(session, ctx, case, "reject", reason="评审未通过")
        assert usage(session, JINGPIN)["city:330900"] == 1
        assert session.get(Organisation, code("舟山市")) is not None


def test_it_refuses_a_cluster_recommendation_list_over_a_rising_star_quota_lowered_since(
    seeded: Database, make_ctx: Any
) -> None:
    ctx = make_ctx()
    with seeded.write() as session:
        for county in ("余杭区", "滨江区", "临平区"):
            case = cluster_case(
                session,
                ctx,
                county=county,
                zone="rising_star",
                cluster="高端装备",
                subtrack="精密泵阀",
                x_system="无",
                revenue="12",
            )
            act(session, ctx, case, "submit")
            act(session, ctx, case, "recommend")
    text = (CAMPAIGN_DIR / "2026-cluster-selection.yaml").read_text(encoding="utf-8")
    with seeded.write() as session:
        load_campaign(
            session,
            ctx,
            text.replace("tiers: [city], limit: 3,", "tiers: [city], limit: 2,"),
            origin="修订",
        )
    with pytest.raises(
        ActionRefused, match="超出名额「杭州市“新星”产业群推荐数量不超过2个」：上限 2 个，已推荐 3 个"
    ):
        perform(
            seeded,
            make_ctx(),
            rec_ref(CLUSTER, "330100"),
            "submit",
            params={"letter": check_letter("函.pdf", SCAN)},
        )


def test_it_refuses_the_fourth_rising_star_when_two_recommendations_race(
    seeded: Database, make_ctx: Any
) -> None:
    """Two coordinators recommend at the same moment: the second must see the first's slot."""
    ctx = make_ctx()
    with seeded.write() as session:
        refs = []
        for county in ("余杭区", "滨江区", "临平区", "钱塘区"):
            case = cluster_case(
                session,
                ctx,
                county=county,
                zone="rising_star",
                cluster="高端装备",
                subtrack="精密泵阀",
                x_system="无",
                revenue="12",
            )
            act(session, ctx, case, "submit")
            refs.append(case.ref)
        for case_ref in refs[:2]:
            act(session, ctx, get_case(session, case_ref), "recommend")
    outcome: dict[str, Any] = {}

    def second() -> None:
        try:
            perform(seeded, make_ctx(), refs[3], "recommend")
            outcome["second"] = "recommended"
        except ActionRefused as exc:
            outcome["second"] = exc.rule

    with seeded.write() as session:
        act(session, ctx, get_case(session, refs[2]), "recommend")  # flushed, not yet committed
        other = threading.Thread(target=second)
        other.start()
        wait_until_blocked(seeded, other)
    other.join(timeout=30)
    assert outcome == {"second": "quota"}
    with seeded.read() as session:
        assert usage(session, CLUSTER)["rising_star:330100"] == 3
