"""A small province for the dashboard tests: two cities, a few counties, people of every tier.

杭州市 (330100) with 西湖区 (330106) and 萧山区 (330109); 宁波市 (330200) with 鄞州区 (330212).
Cluster applications are imported through the real importer; people get real tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from calendars.timeutil import parse_instant
from dashboard.auth import issue_token
from models.actions import perform
from models.context import Ctx
from models.db import Database
from models.imports import import_cases
from models.org import Contact, Organisation
from models.sheets import write_sheet
from tests.conftest import CLUSTER, JINGPIN

NOW = parse_instant("2026-06-20T09:00")

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
    "外部编号",
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
    "联系人",
    "联系电话",
    "联系邮箱",
    "外部编号",
]

CLUSTER_ROWS = [
    # 西湖区 applies for itself: a core zone that meets every condition.
    [
        "西湖区",
        "",
        "核心区",
        "人工智能",
        "模型数据服务",
        "创新型产业集群",
        "620",
        "2",
        "1",
        "5",
        "钱进",
        "13905710003",
        "qianjin@xh.gov.cn",
        "SZJX-0001",
    ],
    # 西湖区 again: a collaborative zone under the revenue threshold (原则上: needs a reason).
    [
        "西湖区",
        "",
        "协同区",
        "高端软件",
        "工业软件",
        "创新型产业集群",
        "40",
        "1",
        "1",
        "3",
        "钱进",
        "13905710003",
        "qianjin@xh.gov.cn",
        "SZJX-0002",
    ],
    # Four 新星 applications in 杭州市 (parks), for the quota of 3.
    [
        "西湖云谷产业园管委会",
        "西湖区",
        "新星产业群",
        "新一代信息技术",
        "算力产业",
        "无",
        "15",
        "0",
        "0",
        "1",
        "孙园",
        "13905710011",
        "sunyuan@xh.gov.cn",
        "SZJX-0003",
    ],
    [
        "萧山信息港小镇管委会",
        "萧山区",
        "新星产业群",
        "新一代信息技术",
        "光电（半导体）",
        "无",
        "18",
        "0",
        "0",
        "1",
        "李港",
        "13905710012",
        "ligang@xs.gov.cn",
        "SZJX-0004",
    ],
    [
        "萧山经济技术开发区管委会",
        "萧山区",
        "新星产业群",
        "高端装备",
        "仪器仪表",
        "无",
        "22",
        "0",
        "0",
        "1",
        "周开",
        "13905710013",
        "zhoukai@xs.gov.cn",
        "SZJX-0005",
    ],
    [
        "西湖紫金港科技城管委会",
        "西湖区",
        "新星产业群",
        "高端装备",
        "精密泵阀",
        "无",
        "12",
        "0",
        "0",
        "1",
        "吴紫",
        "13905710014",
        "wuzi@xh.gov.cn",
        "SZJX-0006",
    ],
    # 鄞州区 (宁波市): the other city's data every test tries to reach.
    [
        "鄞州区",
        "",
        "协同区",
        "现代纺织与服装",
        "服装",
        "中小企业特色产业集群",
        "420",
        "1",
        "1",
        "3",
        "郑甬",
        "13905740001",
        "zhengyong@yz.gov.cn",
        "SZJX-0101",
    ],
]
JINGPIN_ROWS = [
    [
        "杭州智算科技有限公司",
        "西湖区",
        "智算一体机 ZS-800",
        "先进制造类",
        "人工智能",
        "2023-06-01",
        "6.5",
        "1500",
        "赵智",
        "13805710021",
        "zhaozhi@zs.example.cn",
        "QYZJ-0001",
    ],
    [
        "宁波甬兴服饰有限公司",
        "鄞州区",
        "功能性户外服装 YX-2",
        "特色（消费品）类",
        "现代纺织与服装",
        "2024-03-01",
        "3.8",
        "900",
        "陈甬",
        "13805740022",
        "chenyong@yx.example.cn",
        "QYZJ-0101",
    ],
]


@dataclass
class Person:
    key: str
    name: str
    email: str
    org_id: str
    token: str = ""
    token_id: int = 0


@dataclass
class World:
    db: Database
    people: dict[str, Person] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # what → case ref

    def token(self, key: str) -> str:
        return self.people[key].token


PEOPLE = [
    # key, name, email, org (division code or org name), programs
    ("province", "严梦玲", "yan@jxt.zj.gov.cn", "330000", "cluster,jingpin"),
    ("hangzhou", "王明", "wangming@hz.gov.cn", "330100", "cluster,jingpin"),
    ("xihu", "林西", "linxi@xh.gov.cn", "330106", "cluster,jingpin"),
    ("ningbo", "陈刚", "chengang@nb.gov.cn", "330200", "cluster,jingpin"),
    ("yinzhou", "方鄞", "fangyin@yz.gov.cn", "330212", "cluster,jingpin"),
]


def build_world(db: Database, make_ctx, tmp_path: Path, *, now: datetime = NOW) -> World:
    world = World(db=db)
    ctx: Ctx = make_ctx("2026-06-01T09:00")
    cluster_file = write_sheet(tmp_path / "集群申报.csv", CLUSTER_HEADERS, CLUSTER_ROWS)
    jingpin_file = write_sheet(tmp_path / "精品申报.csv", JINGPIN_HEADERS, JINGPIN_ROWS)
    with db.write() as session:
        cl = import_cases(session, ctx, CLUSTER, cluster_file)
        jp = import_cases(session, ctx, JINGPIN, jingpin_file)
        for i, (key, name, email, org_id, programs) in enumerate(PEOPLE):
            contact = Contact(
                org_id=org_id,
                name=name,
                email=email,
                programs=programs,
                department="产业处",
                title="科长",
                mobile=f"1380000000{i}",
                updated_at=ctx.now,
            )
            session.add(contact)
            session.flush()
            org = session.get(Organisation, org_id)
            assert org is not None
            issued = issue_token(session, contact, org, ctx.now, days=90)
            world.people[key] = Person(key, name, email, org_id, issued.token, issued.row.id)  # type: ignore[arg-type]
        # An enterprise's own contact was created by the import (联系邮箱).
        from sqlmodel import select

        ent = session.exec(select(Contact).where(Contact.email == "zhaozhi@zs.example.cn")).one()
        ent_org = session.get(Organisation, ent.org_id)
        assert ent_org is not None
        issued = issue_token(session, ent, ent_org, ctx.now, days=90)
        world.people["enterprise"] = Person(
            "enterprise", ent.name, ent.email, ent.org_id, issued.token, issued.row.id
        )  # type: ignore[arg-type]
    names = ["xihu_core", "xihu_collab", "rs1", "rs2", "rs3", "rs4", "yinzhou_collab"]
    world.refs.update(zip(names, cl.created, strict=True))
    world.refs.update(zip(["jp_xihu", "jp_yinzhou"], jp.created, strict=True))
    # The 新星 applications and 鄞州区's are submitted, waiting for their city.
    operator = make_ctx("2026-06-10T10:00")
    for key in ("rs1", "rs2", "rs3", "rs4", "yinzhou_collab"):
        perform(db, operator, world.refs[key], "submit")
    perform(db, operator, world.refs["jp_yinzhou"], "submit")
    with db.read() as session:
        from models.actions import recommendation_case

        for code, key in (("330100", "rec_hangzhou_cl"), ("330200", "rec_ningbo_cl")):
            rec = recommendation_case(session, CLUSTER, code)
            assert rec is not None
            world.refs[key] = rec.ref
        for code, key in (("330100", "rec_hangzhou_jp"), ("330200", "rec_ningbo_jp")):
            rec = recommendation_case(session, JINGPIN, code)
            assert rec is not None
            world.refs[key] = rec.ref
    return world
