from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from models.reference import (
    DEFAULT_DATA_PATH,
    Division,
    load_divisions,
    resolve,
    resolve_or_explain,
)

NOTICE_ORDER = ["杭州", "宁波", "温州", "嘉兴", "湖州", "绍兴", "金华", "衢州", "舟山", "台州", "丽水"]
COUNTIES_PER_CITY = {
    "杭州": 13,
    "宁波": 10,
    "温州": 12,
    "嘉兴": 7,
    "湖州": 5,
    "绍兴": 6,
    "金华": 9,
    "衢州": 6,
    "舟山": 4,
    "台州": 9,
    "丽水": 9,
}
MOUNTAIN_26 = (
    "淳安 永嘉 平阳 苍南 文成 泰顺 武义 磐安 柯城 衢江 江山 常山 开化 龙游 "
    "三门 天台 仙居 莲都 青田 缙云 遂昌 松阳 云和 庆元 景宁 龙泉"
).split()
ISLANDS = ["定海", "普陀", "岱山", "嵊泗", "洞头", "玉环"]


@pytest.fixture(scope="module")
def zj():
    return load_divisions()


# -- the data ---------------------------------------------------------------------------------


def test_it_has_the_province_11_cities_in_notice_order_and_90_counties(zj):
    assert (zj.province.code, zj.province.name, zj.province.tier) == ("330000", "浙江省", "province")
    assert [c.short for c in zj.cities] == NOTICE_ORDER
    assert [c.code for c in zj.cities] == [f"33{i:02d}00" for i in range(1, 12)]
    assert all(c.tier == "city" and c.name == c.short + "市" for c in zj.cities)
    assert len(zj.counties) == 90
    assert len(zj) == 1 + 11 + 90
    assert len(list(zj)) == 102


def test_it_has_the_right_number_of_counties_per_city(zj):
    assert sum(COUNTIES_PER_CITY.values()) == 90
    got = {c.short: len(zj.counties_of(c.code)) for c in zj.cities}
    assert got == COUNTIES_PER_CITY


def test_it_has_unique_codes_prefixed_by_their_city(zj):
    codes = [d.code for d in zj]
    assert len(codes) == len(set(codes))
    names = [d.name for d in zj]
    assert len(names) == len(set(names))
    for county in zj.counties:
        assert len(county.code) == 6 and county.code.isdigit()
        assert county.tier == "county"
        assert county.code[:4] == county.city_code[:4]
        assert county.code[4:] != "00"
        assert county.name.startswith(county.short)
        assert county.kind in {"区", "县级市", "县", "自治县"}


def test_it_matches_the_kind_to_the_name_suffix(zj):
    for county in zj.counties:
        suffix = {"区": "区", "县级市": "市", "县": "县", "自治县": "自治县"}[county.kind]
        assert county.name.endswith(suffix), county
    assert [c.name for c in zj.counties if c.kind == "自治县"] == ["景宁畲族自治县"]


@pytest.mark.parametrize(
    ("code", "name", "city"),
    [
        ("330102", "上城区", "330100"),
        ("330105", "拱墅区", "330100"),
        ("330113", "临平区", "330100"),
        ("330114", "钱塘区", "330100"),
        ("330383", "龙港市", "330300"),
        ("330305", "洞头区", "330300"),
        ("331083", "玉环市", "331000"),
        ("331127", "景宁畲族自治县", "331100"),
        ("330182", "建德市", "330100"),
        ("330127", "淳安县", "330100"),
    ],
)
def test_it_has_the_2026_codes(zj, code, name, city):
    d = zj.county_from_code(code)
    assert d is not None and (d.name, d.city_code) == (name, city)


def test_it_no_longer_has_the_abolished_hangzhou_districts(zj):
    assert zj.by_code("330103") is None  # 下城区
    assert zj.by_code("330104") is None  # 江干区
    names = {c.name for c in zj.counties}
    assert not names & {"下城区", "江干区"}
    assert {"临平区", "钱塘区", "龙港市"} <= names


def test_it_flags_the_26_mountain_counties_and_6_island_counties(zj):
    flagged = {c.short for c in zj.mountain_island_counties}
    assert len(MOUNTAIN_26) == 26 and len(set(MOUNTAIN_26)) == 26
    assert flagged == set(MOUNTAIN_26) | set(ISLANDS)
    assert len(flagged) == 32
    assert not zj.province.mountain_island
    assert not any(c.mountain_island for c in zj.cities)
    assert zj.resolve("龙港").mountain_island is False  # split off 苍南 in 2019; not on the 26 list
    assert zj.resolve("苍南").mountain_island is True


def test_it_documents_the_flag_and_the_missing_brand_list_in_the_yaml():
    head = DEFAULT_DATA_PATH.read_text(encoding="utf-8").split("province:")[0]
    assert "山区 26 县" in head and "运维人员" in head
    assert "先进制造业集群品牌" in head


# -- lookups ----------------------------------------------------------------------------------


def test_it_looks_up_by_code(zj):
    assert zj.by_code("330000") is zj.province
    assert zj.by_code(330100).name == "杭州市"
    assert zj.by_code("330106000000").name == "西湖区"
    assert zj.by_code("999999") is None
    assert zj.county_from_code("330106").name == "西湖区"
    assert zj.county_from_code("330100") is None
    assert zj.county_from_code("nope") is None


def test_it_finds_the_city_of_a_county(zj):
    xihu = zj.by_code("330106")
    assert zj.city_of(xihu).name == "杭州市"
    assert zj.city_of("330383").name == "温州市"
    assert zj.city_of("330100").name == "杭州市"
    assert zj.city_of(zj.province) is None
    with pytest.raises(KeyError):
        zj.city_of("999999")


def test_it_lists_counties_of_a_city_in_code_order(zj):
    hz = zj.counties_of("330100")
    assert [c.code for c in hz] == sorted(c.code for c in hz)
    assert hz[0].name == "上城区" and hz[-1].name == "建德市"
    assert zj.counties_of(zj.cities[8]) == zj.counties_of("330900")
    with pytest.raises(KeyError):
        zj.counties_of("330106")


def test_it_caches_the_default_load():
    assert load_divisions() is load_divisions()
    assert load_divisions(DEFAULT_DATA_PATH) is load_divisions()


# -- resolve ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("杭州市", "330100"),
        ("杭州", "330100"),
        ("杭州市经信局", "330100"),
        ("杭州市经济和信息化局", "330100"),
        ("杭州市本级", "330100"),
        ("西湖区", "330106"),
        ("西湖", "330106"),
        ("杭州市西湖区", "330106"),
        ("杭州西湖", "330106"),
        ("浙江省杭州市西湖区", "330106"),
        ("西湖区经信局", "330106"),
        ("西湖区人民政府", "330106"),
        ("杭州市西湖区经济和信息化局", "330106"),
        ("景宁县", "331127"),
        ("景宁", "331127"),
        ("景宁畲族自治县", "331127"),
        ("丽水市景宁畲族自治县经信局", "331127"),
        ("浙江省", "330000"),
        ("浙江", "330000"),
        ("省经信厅", "330000"),
        ("浙江省经济和信息化厅", "330000"),
        ("省本级", "330000"),
        ("省级", "330000"),
        (" 西湖区 ", "330106"),
        ("\u3000西湖\u3000区\u3000", "330106"),
        ("西 湖 区", "330106"),
        ("（西湖区）", "330106"),
        ("(西湖区)", "330106"),
        ("普陀区（舟山）", "330903"),
        ("普陀(舟山市)", "330903"),
        ("杭州高新区（滨江）", "330108"),
        ("龙港市", "330383"),
        ("温州市龙港市", "330383"),
        ("龙港", "330383"),
        ("临平区", "330113"),
        ("钱塘区", "330114"),
        ("建德市", "330182"),
        ("建德", "330182"),
        ("淳安县", "330127"),
        ("奉化市", "330213"),  # 撤市设区 in 2016; still clearly 奉化
        ("玉环县", "331083"),
        ("下城区", "330105"),  # merged into 拱墅区 in 2021
        ("绍兴县", "330603"),  # became 柯桥区 in 2013, not the city
        ("330383", "330383"),
        ("３３０１１４", "330114"),  # full-width digits
    ],
)
def test_it_resolves_what_coordinators_type(text, code):
    d = resolve(text)
    assert d is not None, resolve_or_explain(text)
    assert d.code == code
    assert resolve_or_explain(text) == (d, None)


def test_it_resolves_the_city_level_with_a_city_hint():
    assert resolve("市本级", city_hint="宁波").code == "330200"
    assert resolve("市经信局", city_hint="330300").code == "330300"
    div, msg = resolve_or_explain("市本级")
    assert div is None and "未指明是哪个设区市" in msg


def test_it_rejects_a_county_outside_the_hinted_city():
    assert resolve("西湖", city_hint="杭州").code == "330106"
    assert resolve("西湖", city_hint="杭州市经信局").code == "330106"
    div, msg = resolve_or_explain("西湖", city_hint="宁波")
    assert div is None
    assert msg == "“西湖”是杭州市西湖区，不属于宁波市"
    assert resolve("浙江省", city_hint="宁波").tier == "province"


def test_it_explains_an_unknown_name():
    div, msg = resolve_or_explain("XX")
    assert div is None
    assert msg == "未知的地区：XX（应为设区市或县（市、区）名称，如“杭州市”“西湖区”）"
    assert resolve("北京市") is None
    assert resolve("") is None
    assert resolve("临") is None  # no prefix guessing
    div, msg = resolve_or_explain("杭州市高新区")
    assert div is None and "杭州市下没有名为“高新区”的县（市、区）" in msg
    assert resolve_or_explain("999999") == (None, "未知的行政区划代码：999999")
    div, msg = resolve_or_explain("西湖", city_hint="北京")
    assert div is None and msg.startswith("未知的设区市：北京")


def test_it_explains_a_former_name_split_between_two_districts():
    div, msg = resolve_or_explain("江干区")
    assert div is None
    assert "杭州市上城区" in msg and "杭州市钱塘区" in msg and "撤销" in msg
    assert resolve("杭州市江干区") is None


@pytest.fixture
def ambiguous(tmp_path: Path):
    data = yaml.safe_load(DEFAULT_DATA_PATH.read_text(encoding="utf-8"))
    data["counties"].append(
        {
            "code": "330199",
            "name": "新城区",
            "short": "新城",
            "city": "330100",
            "kind": "区",
            "mountain_island": False,
        }
    )
    data["counties"].append(
        {
            "code": "330299",
            "name": "新城县",
            "short": "新城",
            "city": "330200",
            "kind": "县",
            "mountain_island": True,
        }
    )
    path = tmp_path / "zj.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return load_divisions(path)


def test_it_names_the_candidates_when_a_short_name_is_ambiguous(ambiguous):
    assert len(ambiguous.counties) == 92
    div, msg = ambiguous.resolve_or_explain("新城")
    assert div is None
    assert "不唯一" in msg and "杭州市新城区" in msg and "宁波市新城县" in msg
    assert ambiguous.resolve("新城") is None
    assert ambiguous.resolve("新城区").code == "330199"  # the full name is unique
    assert ambiguous.resolve("新城", city_hint="宁波").code == "330299"
    assert ambiguous.resolve("宁波市新城").code == "330299"
    assert ambiguous.resolve("新城（杭州）").code == "330199"


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"code": "330299", "city": "330100"}, "does not belong"),
        ({"kind": "县"}, "does not match kind"),
        ({"code": "330106"}, "duplicate codes"),
        ({"mountain_island": "yes"}, "mountain_island"),
        ({"short": "东湖"}, "short name"),
    ],
)
def test_it_refuses_inconsistent_data(tmp_path: Path, patch, message):
    data = yaml.safe_load(DEFAULT_DATA_PATH.read_text(encoding="utf-8"))
    entry = {"code": "330199", "name": "新城区", "short": "新城", "city": "330100", "kind": "区"}
    entry["mountain_island"] = False
    entry.update(patch)
    data["counties"].append(entry)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_divisions(path)


def test_it_returns_frozen_divisions(zj):
    d = zj.counties[0]
    assert isinstance(d, Division)
    with pytest.raises(AttributeError):
        d.name = "x"  # type: ignore[misc]
    zj.cities.clear()  # a copy: the cached data is untouched
    assert len(zj.cities) == 11
