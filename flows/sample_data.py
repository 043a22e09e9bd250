"""A realistic sample for the demo: a staff roster and applications across all 11 cities.

Written as the spreadsheets coordinators would send (附件3 with an email column, 附1-2 and
附2-3 fields), so the demo goes through the same import path as real files. Deterministic:
the same seed gives the same people, applications and actions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from calendars.timeutil import parse_instant
from models.reference import load_divisions
from models.sheets import write_sheet

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董潘袁蔡蒋余于杜叶程魏苏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红梅鹏辉宇浩凯健俊帆晨曦婷雪琳倩颖博文瑶瑜然昊睿"
)
PINYIN_DOMAINS = {
    "330100": "hz",
    "330200": "nb",
    "330300": "wz",
    "330400": "jx",
    "330500": "huz",
    "330600": "sx",
    "330700": "jh",
    "330800": "qz",
    "330900": "zs",
    "331000": "tz",
    "331100": "ls",
}
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
    "集群联系人",
    "联系人手机",
    "联系人邮箱",
]
JINGPIN_HEADERS = [
    "企业名称",
    "所在县（市、区）",
    "产品名称及型号",
    "产品类别",
    "所在“415X”先进制造业集群赛道",
    "上市日期",
    "近三年研发投入占比（%）",
    "近三年年均销售收入（万元）",
    "推荐单位",
    "联系人",
    "联系电话",
    "联系邮箱",
]
OPEN_TRACKS = [
    ("协同区", "高端软件", "工业软件", 80),
    ("协同区", "智能物联", "智能感知", 260),
    ("核心区", "工业母机与机器人", "模具", 150),
    ("协同区", "电气与农机装备", "农机装备", 45),
    ("协同区", "生物医药与医疗器械", "高端医疗器械", 130),
    ("核心区", "低空经济与商业航天", "低空装备", 75),
    ("协同区", "现代纺织与服装", "化纤", 420),
    ("新星产业群", "高端装备", "精密泵阀", 16),
    ("新星产业群", "现代消费与健康", "宠物用品", 12),
    ("新星产业群", "新一代信息技术", "算力产业", 25),
    ("新星产业群", "绿色石化与新材料", "先进金属材料", 9),
]
PRODUCTS = [
    ("先进制造类", "工业母机与机器人", "五轴联动数控机床 VMC-{n}"),
    ("数字技术融合类", "智能物联", "工业边缘网关 EG-{n}"),
    ("特色（消费品）类", "现代纺织与服装", "功能性户外面料 TX-{n}"),
    ("先进制造类", "电气与农机装备", "智能插秧机 CY-{n}"),
    ("数字技术融合类", "高端软件", "设备预测性维护平台 V{n}"),
    ("特色（消费品）类", "历史经典产业", "龙泉青瓷茶具 LQ-{n}"),
    ("先进制造类", "生物医药与医疗器械", "一次性内窥镜 NK-{n}"),
    ("特色（消费品）类", "现代家居与智能家电", "智能集成灶 JZ-{n}"),
]


@dataclass
class SampleFiles:
    rosters: dict[str, Path]  # "330000" for the province, then one 汇总表 per city code
    cluster: Path
    jingpin: Path


def _person(rng: random.Random, used: set[str]) -> str:
    while True:
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
        if name not in used:
            used.add(name)
            return name


def _mobile(rng: random.Random) -> str:
    return "1" + rng.choice("35789") + "".join(rng.choice("0123456789") for _ in range(9))


def write_sample(folder: Path, *, seed: int = 2026, counties_per_city: int = 3) -> SampleFiles:
    rng = random.Random(seed)
    zj = load_divisions()
    used: set[str] = set()
    folder.mkdir(parents=True, exist_ok=True)
    roster_rows: list[list[str]] = [
        [
            "浙江省",
            "省经信厅产业处",
            "严梦玲",
            "二级调研员",
            "0571-87058343",
            "集群遴选",
            "yanmengling@jxt.zj.example",
        ],
        [
            "浙江省",
            "省产业发展中心",
            "马远博",
            "主任科员",
            "0571-88385817",
            "集群遴选",
            "mayuanbo@jxt.zj.example",
        ],
        [
            "浙江省",
            "省经信厅产业处",
            "祝博艺",
            "二级调研员",
            "0571-87050807",
            "制造精品",
            "zhuboyi@jxt.zj.example",
        ],
        [
            "浙江省",
            "省技创中心",
            "陈诗瑶",
            "工程师",
            "0571-88229695",
            "制造精品",
            "chenshiyao@jxt.zj.example",
        ],
    ]
    used.update({"严梦玲", "马远博", "祝博艺", "陈诗瑶"})
    cluster_rows: list[list[str]] = []
    jingpin_rows: list[list[str]] = []
    city_rows: dict[str, list[list[str]]] = {}
    province_rows = roster_rows
    for city in zj.cities:
        dom = PINYIN_DOMAINS[city.code]
        roster_rows = city_rows.setdefault(city.code, [])
        for program in ("集群遴选", "制造精品"):
            name = _person(rng, used)
            roster_rows.append(
                [
                    city.name,
                    "产业处" if program == "集群遴选" else "技术创新处",
                    name,
                    "处长",
                    _mobile(rng),
                    program,
                    f"{dom}.{(program == '集群遴选' and 'cluster') or 'jingpin'}@jxj.{dom}.example",
                ]
            )
        counties = rng.sample(
            zj.counties_of(city.code), min(counties_per_city, len(zj.counties_of(city.code)))
        )
        for county in counties:
            name = _person(rng, used)
            roster_rows.append(
                [
                    county.name,
                    "经信局产业科",
                    name,
                    "科长",
                    _mobile(rng),
                    "集群遴选、制造精品",
                    f"{dom}.{county.code}@jxj.{dom}.example",
                ]
            )
            # One or two cluster applications per county; the first city also applies for 新星 a lot.
            for _ in range(rng.choice((1, 1, 2))):
                zone, cluster, track, revenue = rng.choice(OPEN_TRACKS)
                if any(r[0] == county.name and r[4] == track for r in cluster_rows):
                    continue
                contact = _person(rng, used)
                cluster_rows.append(
                    [
                        county.name,
                        "",
                        zone,
                        cluster,
                        track,
                        "无" if zone == "新星产业群" else "创新型产业集群",
                        str(revenue),
                        "1",
                        "1",
                        "3",
                        contact,
                        _mobile(rng),
                        f"{county.code}.cluster@gov.{dom}.example",
                    ]
                )
            for i in range(rng.choice((1, 2, 2, 3))):
                category, track, product = rng.choice(PRODUCTS)
                enterprise = f"浙江{county.short}{rng.choice(['精工', '智造', '新材', '科技', '机电'])}{rng.choice(['股份', '集团'])}有限公司"
                contact = _person(rng, used)
                email = f"{county.code}{i}.ent@corp.{dom}.example" if rng.random() < 0.6 else ""
                jingpin_rows.append(
                    [
                        enterprise,
                        county.name,
                        product.format(n=rng.randint(100, 999)),
                        category,
                        track,
                        f"2023-{rng.randint(1, 12):02d}-01",
                        f"{rng.uniform(3.2, 8.0):.1f}",
                        str(rng.choice((900, 1500, 3200, 5600))),
                        "",
                        contact if email else "",
                        _mobile(rng) if email else "",
                        email,
                    ]
                )
    # Hangzhou pushes four 新星 clusters: the fourth will exceed the city's quota of 3.
    hz_counties = [c for c in zj.counties_of("330100") if c.name not in {r[0] for r in cluster_rows}][:4]
    roster_rows = city_rows["330100"]
    for county, (zone, cluster, track, revenue) in zip(
        hz_counties, [t for t in OPEN_TRACKS if t[0] == "新星产业群"], strict=False
    ):
        cluster_rows.append(
            [
                county.name,
                "",
                zone,
                cluster,
                track,
                "无",
                str(revenue + 20),
                "0",
                "0",
                "1",
                _person(rng, used),
                _mobile(rng),
                f"{county.code}.star@gov.hz.example",
            ]
        )
        roster_rows.append(
            [
                county.name,
                "经信局",
                _person(rng, used),
                "副局长",
                _mobile(rng),
                "集群遴选",
                f"hz.{county.code}@jxj.hz.example",
            ]
        )
    rosters = {"330000": folder / "工作人员信息汇总表-省级.csv"}
    write_sheet(rosters["330000"], ROSTER_HEADERS, province_rows)
    for city in zj.cities:
        path = folder / f"工作人员信息汇总表-{city.name}.xlsx"
        write_sheet(
            path,
            ROSTER_HEADERS,
            city_rows[city.code],
            title_lines=["工作人员信息汇总表", f"设区市：{city.name}"],
            footer_lines=["备注：1. 请分别统计汇总集群遴选、制造精品目录征集工作人员汇总"],
        )
        rosters[city.code] = path
    files = SampleFiles(rosters, folder / "集群申报.csv", folder / "制造精品申报.xlsx")
    write_sheet(files.cluster, CLUSTER_HEADERS, cluster_rows)
    write_sheet(files.jingpin, JINGPIN_HEADERS, jingpin_rows, title_lines=["2026年浙江制造精品推荐汇总表"])
    return files


def at(text: str) -> datetime:
    return parse_instant(text)
