"""The 2026 application forms: 附1-2 (集群申报信息表) and 附2-3 (制造精品推荐汇总表), checked
against the names the campaign file lists (``FormVocabulary``). A campaign of another shape
declares its form in its file instead (``models.forms``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from typing import Any

from models.sheet_reading import (
    CellValue,
    Column,
    ImportProblem,
    PathLike,
    ProductCategory,
    ZoneType,
    _as_text,
    _header_base,
    _nfkc,
    iter_sheet,
)
from models.sheet_values import (
    _MISSING,
    _Bad,
    _build_table,
    _canon_key,
    _count,
    _date,
    _email,
    _enum_parser,
    _finish,
    _non_negative_decimal,
    _norm_name,
    _percent,
    _phone,
    _RowReader,
    _Seen,
    _text_value,
    _yes_no,
)

_ZONE_TABLE: dict[str, ZoneType] = _build_table(
    [
        ("core", "core"),
        ("collaborative", "collaborative"),
        ("rising_star", "rising_star"),
    ]
)


def _zone_type(value: CellValue) -> ZoneType:
    shown = _as_text(value)
    k = _canon_key(shown)
    if k in _ZONE_TABLE:
        return _ZONE_TABLE[k]
    core, collab, star = "核心区" in k, "协同区" in k, "新星" in k
    if core + collab + star > 1:
        raise _Bad(f"申报类型限选1个：{shown}")
    if core:
        return "core"
    if collab:
        return "collaborative"
    if star:
        return "rising_star"
    raise _Bad(f"申报类型不在可选范围内：{shown} (可选：核心区、协同区、新星产业群)")


@dataclass(frozen=True)
class FormVocabulary:
    """The names a 2026-shaped form checks its cells against, from the campaign file: the
    clusters of 附1-1, the "X" systems of 附1-2, the 精品 tracks, and the clusters whose
    applicants may leave 创新平台 empty (附1-2 第4项)."""

    clusters: tuple[str, ...] = ()
    x_systems: tuple[str, ...] = ()
    tracks: tuple[str, ...] = ()
    platforms_optional_for: frozenset[str] = frozenset()

    def cluster_name(self) -> Callable[[CellValue], str]:
        table = _build_table((n, n) for n in self.clusters)
        return _enum_parser(table, "集群名称", self.clusters, ("产业集群", "集群"))

    def track(self) -> Callable[[CellValue], str]:
        short = [(t.removesuffix("产业"), t) for t in self.tracks if t.endswith("产业")]
        table = _build_table([*((n, n) for n in self.tracks), *short])
        return _enum_parser(table, "集群赛道", self.tracks, ("产业集群", "集群", "赛道"))

    def x_system(self) -> Callable[[CellValue], str]:
        choices = (*self.x_systems, "无")
        table: dict[str, str] = {}
        for x in choices:
            table[_canon_key(x)] = x
            table[_canon_key(x.removeprefix("省"))] = x
            table[_canon_key(x.replace("产业群", "产业集群"))] = x
        for none in ("暂无", "否", "/", "-", "—", "不属于"):
            table[_canon_key(none)] = "无"
        return _enum_parser(table, "当前所属X体系", choices, ("类型",))


@cache
def builtin_vocabulary() -> FormVocabulary:
    """What the built-in campaign files say (a reader called without a campaign)."""
    from calendars.campaign import builtin_campaign_files, load_campaign_file

    specs = [load_campaign_file(p) for p in builtin_campaign_files()]
    return vocabulary_of(*specs)


def vocabulary_of(*specs: Any) -> FormVocabulary:
    clusters: list[str] = []
    x_systems: list[str] = []
    tracks: list[str] = []
    optional: set[str] = set()
    for spec in specs:
        if spec.cluster is not None:
            # 附1-1's clusters: the campaign file's tables.clusters, which the rules read too.
            names = [str(row["cluster"]) for row in spec.tables.get("clusters", ()) if row.get("cluster")]
            clusters += [n for n in names if n not in clusters]
            x_systems += [x for x in spec.cluster.x_systems if x not in x_systems]
            optional |= set(spec.cluster.platforms_optional_for)
        if spec.jingpin is not None:
            tracks += [t for t in spec.jingpin.tracks if t not in tracks]
    return FormVocabulary(tuple(clusters), tuple(x_systems), tuple(tracks), frozenset(optional))


_CATEGORY_TABLE: dict[str, ProductCategory] = _build_table(
    [
        ("先进制造", "advanced"),
        ("先进制造类", "advanced"),
        ("advanced", "advanced"),
        ("数字技术融合", "digital"),
        ("数字技术融合类", "digital"),
        ("数字融合类", "digital"),
        ("digital", "digital"),
        ("特色（消费品）类", "consumer"),
        ("特色消费品", "consumer"),
        ("特色类", "consumer"),
        ("特色", "consumer"),
        ("消费品类", "consumer"),
        ("消费品", "consumer"),
        ("consumer", "consumer"),
    ]
)
_category = _enum_parser(
    _CATEGORY_TABLE, "产品类别", ("先进制造类", "数字技术融合类", "特色（消费品）类"), ("产品",)
)

_PARK_MARKERS = (
    "园区",
    "开发区",
    "高新区",
    "新区",
    "管委会",
    "产业园",
    "工业园",
    "园",
    "集聚区",
    "示范区",
    "度假区",
    "保税区",
    "试验区",
    "功能区",
    "合作区",
    "港区",
    "经济区",
    "小镇",
    "基地",
)


def _is_park(applicant: str) -> bool | None:
    """True for a park committee, False for a county-level government, None if unclear."""
    name = _header_base(_nfkc(applicant).replace(" ", ""))
    if any(m in name for m in _PARK_MARKERS):
        return True
    if re.search(r"[县市区]$", name):
        return False
    return None


# --------------------------------------------------------------------------------------------
# 附1-2 浙江省先进制造业集群申报信息表 (the fields the rules need)
# --------------------------------------------------------------------------------------------

_COUNTY_ALIASES = ("所在县", "所在县市区", "所属县(市、区)", "所在县(市、区)", "所在区县", "所在地")

CLUSTER_COLUMNS: tuple[Column, ...] = (
    Column(
        "applicant",
        "申报单位",
        ("县(市、区)/园区名称", "县(市区)园区名称", "园区名称", "申报主体", "申报地区", "申报单位名称"),
    ),
    Column("county", "所在县（市、区）", _COUNTY_ALIASES, required=False),
    Column("zone_type", "申报类型", ("申报类型(限选1个)", "类型", "申报类别")),
    Column(
        "cluster_name",
        "集群名称",
        ("省级重点产业集群", "所属集群", "产业集群", "集群名称/产业高地", "产业高地"),
        required=False,
    ),
    Column("track", "细分赛道", ("细分赛道(限选1个)", "赛道", "申报赛道")),
    Column(
        "x_system",
        "当前所属X体系",
        ("当前所属“X”体系类型", "当前所属X体系类型", "所属X体系", "X体系", "X体系类型"),
    ),
    Column(
        "revenue_2025",
        "2025年集群规上企业营业收入（亿元）",
        ("2025年集群规上企业营业收入", "集群规上企业营业收入", "规上企业营业收入", "营业收入"),
    ),
    Column("chain_leaders", "省级及以上链主企业数量", ("链主企业数量", "链主企业数")),
    Column("innovation_platforms", "省级及以上创新平台数量", ("创新平台数量", "创新平台数")),
    Column("rd_institutions", "省级及以上企业研发机构数量", ("企业研发机构数量", "研发机构数量")),
    Column(
        "world_class",
        "世界级细分领域",
        ("细分领域竞争力达到世界级水平", "是否世界级细分领域", "世界级"),
        required=False,
    ),
    Column("contact_name", "集群联系人", ("联系人",)),
    Column(
        "contact_mobile",
        "联系人手机",
        ("集群联系人手机", "联系人移动电话", "移动电话", "联系电话", "手机", "手机号码"),
    ),
    Column("contact_email", "联系人邮箱", ("集群联系人邮箱", "邮箱", "电子邮箱"), required=False),
    Column("external_id", "外部编号", ("平台编号", "申报编号", "编号"), required=False),
)


@dataclass(frozen=True, slots=True)
class ClusterApplicationRow:
    row: int
    applicant: str  # 县（市、区）/园区名称 as typed
    county: str  # 所在县（市、区）; the applicant itself when a county applies
    is_park: bool  # True when the applicant is (or may be) a park committee rather than a county
    zone_type: ZoneType
    cluster_name: (
        str | None
    )  # canonical 省级重点产业集群 for core/collaborative; 产业高地 text for rising_star
    track: str  # 细分赛道 as typed (checked against 附1-1 by the rules, not here)
    x_system: str  # one of the campaign file's x_systems, or 无
    revenue_2025: Decimal  # 亿元
    chain_leaders: int
    innovation_platforms: int | None  # None only where the form exempts it (人工智能、高端软件)
    rd_institutions: int
    world_class: bool
    contact_name: str
    contact_mobile: str
    contact_mobile_display: str
    contact_email: str | None
    external_id: str | None


def parse_cluster_applications(
    path: PathLike,
    *,
    sheet_name: str | None = None,
    clusters: Mapping[str, str] | None = None,
    vocabulary: FormVocabulary | None = None,
) -> list[ClusterApplicationRow]:
    """``clusters`` maps each 细分赛道 (and each cluster's own name, which people type there too)
    to its 集群, from the campaign file's 附1-1: 附1-2 itself has no cluster column, so a row
    without one takes the cluster of its 细分赛道, or None when that cannot be told (the
    eligibility rules then say why)."""
    problems: list[ImportProblem] = []
    rows = list(
        iter_cluster_applications(
            path, problems, sheet_name=sheet_name, clusters=clusters, vocabulary=vocabulary
        )
    )
    return _finish(problems, rows)


def iter_cluster_applications(
    path: PathLike,
    problems: list[ImportProblem],
    *,
    sheet_name: str | None = None,
    clusters: Mapping[str, str] | None = None,
    vocabulary: FormVocabulary | None = None,
) -> Iterator[ClusterApplicationRow]:
    """``parse_cluster_applications`` as a stream: the good rows one at a time, every problem
    (a bad cell, a row repeating an earlier one) added to ``problems`` as it is found. Only
    what the cross-row rule needs is kept: one key per row (the duplicate check)."""
    clusters = clusters or {}
    words = vocabulary or builtin_vocabulary()
    _cluster_name, _x_system = words.cluster_name(), words.x_system()
    sheet, sheet_rows = iter_sheet(path, CLUSTER_COLUMNS, sheet_name=sheet_name, problems=problems)
    seen = _Seen(sheet, problems, "track")
    for row in sheet_rows:
        r = _RowReader(sheet, row, problems)
        applicant = r.get("applicant", _text_value)
        county = r.get("county", _text_value, required=False)
        zone_type = r.get("zone_type", _zone_type)
        if zone_type == "rising_star":
            cluster_name = r.get("cluster_name", _text_value, required=False)
        elif zone_type is _MISSING:
            cluster_name = _MISSING
        else:
            cluster_name = r.get("cluster_name", _cluster_name, required=False)
        track = r.get("track", _text_value)
        if cluster_name is None and isinstance(track, str):
            cluster_name = clusters.get(track)
        x_system = r.get("x_system", _x_system, empty_message="必填项为空（不属于任何“X”体系请填「无」）")
        revenue = r.get("revenue_2025", _non_negative_decimal(("亿元", "亿")))
        chain_leaders = r.get("chain_leaders", _count)
        exempt = isinstance(cluster_name, str) and cluster_name in words.platforms_optional_for
        platforms = r.get("innovation_platforms", _count, required=not exempt)
        rd_institutions = r.get("rd_institutions", _count)
        world_class = r.get("world_class", _yes_no, required=False, default=False)
        contact_name = r.get("contact_name", _text_value)
        contact_mobile = r.get("contact_mobile", _phone)
        contact_email = r.get("contact_email", _email, required=False)
        external_id = r.get("external_id", _text_value, required=False)

        is_park = True
        if isinstance(applicant, str):
            park = _is_park(applicant)
            is_park = park is not False
            if county is None:
                if park is False:
                    county = applicant  # a county applying for itself
                else:
                    r.problem(
                        "county",
                        f"申报单位「{applicant}」是园区，须填写所在县（市、区）"
                        if park
                        else f"无法从申报单位「{applicant}」判断所在县（市、区），请填写",
                    )
        if r.ok and seen.first(
            row.number,
            (_norm_name(applicant), _norm_name(track)),
            f"「{applicant}」申报细分赛道「{track}」",
        ):
            yield (
                ClusterApplicationRow(
                    row=row.number,
                    applicant=applicant,
                    county=county,
                    is_park=is_park,
                    zone_type=zone_type,
                    cluster_name=cluster_name,
                    track=track,
                    x_system=x_system,
                    revenue_2025=revenue,
                    chain_leaders=chain_leaders,
                    innovation_platforms=platforms,
                    rd_institutions=rd_institutions,
                    world_class=world_class,
                    contact_name=contact_name,
                    contact_mobile=contact_mobile.normalized,
                    contact_mobile_display=contact_mobile.display,
                    contact_email=contact_email,
                    external_id=external_id,
                )
            )


# --------------------------------------------------------------------------------------------
# 附2-3 浙江制造精品推荐汇总表 + the 征集要求 figures
# --------------------------------------------------------------------------------------------

JINGPIN_COLUMNS: tuple[Column, ...] = (
    Column("enterprise", "企业名称", ("申报企业", "企业", "申报单位", "单位名称")),
    Column("county", "所在县（市、区）", (*_COUNTY_ALIASES, "地区", "所在地区")),
    Column("product", "产品名称及型号", ("产品名称和型号", "产品名称", "产品")),
    Column("category", "产品类别", ("类别", "产品类型")),
    Column(
        "track",
        "所在“415X”先进制造业集群赛道",
        ("415X先进制造业集群赛道", "所在集群赛道", "集群赛道", "所属集群", "赛道"),
    ),
    Column("launch_date", "上市日期", ("上市时间", "产品上市时间", "产品上市日期")),
    Column(
        "rd_ratio",
        "近三年研发投入占比（%）",
        ("近三年研发投入占比", "研发投入占比", "近三年研发投入占主营业务收入比重", "研发投入占比(%)"),
    ),
    Column("avg_sales", "近三年年均销售收入（万元）", ("近三年年均销售收入", "年均销售收入")),
    Column("recommender", "推荐单位", ("推荐机构",), required=False),
    Column("brand_product", "集群品牌产品", ("是否集群品牌产品", "集群品牌"), required=False),
    Column("contact_name", "联系人", (), required=False),
    Column("contact_phone", "联系电话", ("联系电话(手机)", "手机", "联系人手机"), required=False),
    Column("contact_email", "联系邮箱", ("邮箱", "电子邮箱", "联系人邮箱"), required=False),
    Column("external_id", "外部编号", ("平台编号", "申报编号", "编号"), required=False),
)


@dataclass(frozen=True, slots=True)
class JingpinApplicationRow:
    row: int
    enterprise: str
    county: str
    product: str  # 产品名称及型号
    category: ProductCategory
    track: str  # one of the campaign file's jingpin.tracks
    launch_date: date  # month-only dates mean the 1st
    rd_ratio: Decimal  # percent, e.g. Decimal("3.5") for 3.5%
    avg_sales: Decimal  # 万元
    recommender: str | None  # SOE group / association recommending directly
    brand_product: bool
    contact_name: str | None
    contact_phone: str | None
    contact_phone_display: str | None
    contact_email: str | None
    external_id: str | None


def parse_jingpin_applications(
    path: PathLike, *, sheet_name: str | None = None, vocabulary: FormVocabulary | None = None
) -> list[JingpinApplicationRow]:
    problems: list[ImportProblem] = []
    rows = list(iter_jingpin_applications(path, problems, sheet_name=sheet_name, vocabulary=vocabulary))
    return _finish(problems, rows)


def iter_jingpin_applications(
    path: PathLike,
    problems: list[ImportProblem],
    *,
    sheet_name: str | None = None,
    vocabulary: FormVocabulary | None = None,
) -> Iterator[JingpinApplicationRow]:
    """``parse_jingpin_applications`` as a stream (see ``iter_cluster_applications``)."""
    _jingpin_track = (vocabulary or builtin_vocabulary()).track()
    sheet, sheet_rows = iter_sheet(path, JINGPIN_COLUMNS, sheet_name=sheet_name, problems=problems)
    seen = _Seen(sheet, problems, "product")
    for row in sheet_rows:
        r = _RowReader(sheet, row, problems)
        enterprise = r.get("enterprise", _text_value)
        county = r.get("county", _text_value)
        product = r.get("product", _text_value)
        category = r.get("category", _category)
        track = r.get("track", _jingpin_track)
        launch_date = r.get("launch_date", _date)
        rd_ratio = r.get("rd_ratio", _percent)
        avg_sales = r.get("avg_sales", _non_negative_decimal(("万元", "万")))
        recommender = r.get("recommender", _text_value, required=False)
        brand = r.get("brand_product", _yes_no, required=False, default=False)
        contact_name = r.get("contact_name", _text_value, required=False)
        phone = r.get("contact_phone", _phone, required=False)
        contact_email = r.get("contact_email", _email, required=False)
        external_id = r.get("external_id", _text_value, required=False)
        if r.ok and seen.first(
            row.number,
            (_norm_name(enterprise), _norm_name(product)),
            f"「{enterprise}」的产品「{product}」",
        ):
            yield (
                JingpinApplicationRow(
                    row=row.number,
                    enterprise=enterprise,
                    county=county,
                    product=product,
                    category=category,
                    track=track,
                    launch_date=launch_date,
                    rd_ratio=rd_ratio,
                    avg_sales=avg_sales,
                    recommender=recommender,
                    brand_product=brand,
                    contact_name=contact_name,
                    contact_phone=phone.normalized if phone else None,
                    contact_phone_display=phone.display if phone else None,
                    contact_email=contact_email,
                    external_id=external_id,
                )
            )
