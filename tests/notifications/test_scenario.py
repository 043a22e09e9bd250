"""A campaign season drawn up apart from the demo: 嘉兴市 and two of its counties, 05-26 → 07-31.

Own roster (province, city, two counties, with e-mail), own applications (through the import
path, files written with ``models.sheets.write_sheet``), own script of actions: some submit on
time, one county never does, the city recommends, the province moves the 精品 recommendation
deadline mid-campaign and announces the defence date. The clock jumps between the instants that
matter and the action instants, ticking and sending at each against a real SMTP server on
loopback. What arrives is checked exactly: who got which email when, that nobody who had already
acted was chased for it, that no Message-ID repeats, and that running the season again, or again
after a "restart" (a new Runtime on the same database), sends and writes nothing more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from calendars.campaign import builtin_campaign_files
from calendars.timeutil import format_local, parse_deadline, parse_instant
from flows.cli_notify import simulate_timeline
from flows.sample_data import CLUSTER_HEADERS, JINGPIN_HEADERS, ROSTER_HEADERS
from models.actions import perform, set_deadline
from models.audit import AuditEvent
from models.case import Case
from models.context import Actor, Ctx
from models.imports import import_cases, import_directory, import_roster
from models.letters import check_letter
from models.outbox import Email, Notification
from models.registry import load_campaign, seed_divisions
from models.schema import upgrade
from models.sheets import write_sheet
from notifications.loopback import LoopbackSMTP
from operations.runtime import Runtime
from operations.settings import Settings

CLUSTER, JINGPIN = "2026-cluster-selection", "2026-jingpin"
START, END = parse_instant("2026-05-26T09:00"), parse_instant("2026-07-31T18:00")
DASHBOARD = "https://shenbao.jx.example/"

# 附件3 with an e-mail column: the province's two desks, 嘉兴市's two desks, two counties.
ROSTER_PROVINCE = [
    ["浙江省", "省产业发展中心", "冯晓", "主任科员", "0571-88000001", "集群遴选", "fengxiao@prov.example"],
    ["浙江省", "省技创中心", "韩梅", "工程师", "0571-88000002", "制造精品", "hanmei@prov.example"],
]
ROSTER_JIAXING = [
    ["嘉兴市", "产业处", "许杰", "处长", "13957300001", "集群遴选", "xujie@jx.example"],
    ["嘉兴市", "技术创新处", "朱琳", "科长", "13957300002", "制造精品", "zhulin@jx.example"],
    ["南湖区", "经信局产业科", "沈涛", "科长", "13957300003", "集群遴选、制造精品", "shentao@nh.example"],
    ["海宁市", "经信局", "陆悦", "副局长", "13957300004", "集群遴选、制造精品", "luyue@hn.example"],
]
# No e-mail for the applications' own contacts: the counties' roster people speak for them.
CLUSTER_ROWS = [
    [
        "南湖区",
        "",
        "协同区",
        "人工智能",
        "智能终端",
        "创新型产业集群",
        "230",
        "1",
        "1",
        "3",
        "沈涛",
        "13957300003",
        "",
    ],
    [
        "海宁市",
        "",
        "新星产业群",
        "高端装备",
        "精密泵阀",
        "无",
        "14",
        "0",
        "0",
        "1",
        "陆悦",
        "13957300004",
        "",
    ],
    [
        "海宁市",
        "",
        "协同区",
        "现代纺织与服装",
        "化纤",
        "中小企业特色产业集群",
        "350",
        "1",
        "1",
        "3",
        "陆悦",
        "13957300004",
        "",
    ],
]
# J1 and J3 give an e-mail; J2's enterprise has none, so its reminders go through 海宁市.
JINGPIN_ROWS = [
    [
        "嘉兴南湖精密机械有限公司",
        "南湖区",
        "数控车削中心 NH-200",
        "先进制造类",
        "工业母机与机器人",
        "2023-05-01",
        "4.2",
        "1500",
        "",
        "顾磊",
        "13957301001",
        "gulei@nhjm.example",
    ],
    [
        "海宁经编新材料有限公司",
        "海宁市",
        "阻燃经编面料 HN-7",
        "特色（消费品）类",
        "现代纺织与服装",
        "2023-09-01",
        "3.6",
        "900",
        "",
        "",
        "",
        "",
    ],
    [
        "海宁智能装备有限公司",
        "海宁市",
        "智能皮革裁断机 QD-9",
        "先进制造类",
        "工业母机与机器人",
        "2024-03-01",
        "5.1",
        "1200",
        "",
        "钱芳",
        "13957301003",
        "qianfang@hnzn.example",
    ],
]

# A sealed scan as the domain sees it: a checked letter (the edges store the file).
SCAN = b"%PDF-1.4 sealed"


@dataclass(order=True)
class Action:
    at: datetime
    what: str
    run: Callable[[Runtime, datetime], None]


def _by(rt: Runtime, org: str, person: str) -> Actor:
    from models.imports import resolve_org

    with rt.db.read() as session:
        found, _ = resolve_org(session, org)
    assert found is not None, org
    return Actor(name=person, org_id=found.id, tier=found.tier)


def do(ref: str, action: str, org: str, person: str, **kw: Any) -> Callable[[Runtime, datetime], None]:
    def run(rt: Runtime, now: datetime) -> None:
        perform(rt.db, rt.ctx(_by(rt, org, person), now=now), ref, action, **kw)

    return run


def import_file(kind: str, path: Path) -> Callable[[Runtime, datetime], None]:
    def run(rt: Runtime, now: datetime) -> None:
        ctx = rt.ctx(Actor(name="省经信厅（平台导入）"), now=now)
        with rt.db.write() as session:
            if kind == "directory":
                import_directory(session, ctx, path, source="省厅通讯录 2026-05-26")
            elif kind == "roster":
                # The city sends it; the province's operator loads it as an administrator.
                admin = Actor(name="韩梅", org_id="330000", tier="province", admin_reason="嘉兴市报送的名单")
                import_roster(session, rt.ctx(admin, now=now), path, submit=True)
            else:
                import_cases(session, ctx, kind, path)

    return run


def move(campaign: str, stage: str, due: str, reason: str) -> Callable[[Runtime, datetime], None]:
    def run(rt: Runtime, now: datetime) -> None:
        with rt.db.write() as session:
            set_deadline(
                session,
                rt.ctx(Actor(name="韩梅", org_id="330000", tier="province"), now=now),
                campaign,
                stage,
                parse_deadline(due),
                reason,
            )

    return run


def script(files: dict[str, Path]) -> list[Action]:
    """Who does what when. CL26-00001 南湖区, CL26-00002 海宁市 (新星, never submitted),
    CL26-00003 海宁市; JP26-00001 南湖 enterprise, JP26-00002 海宁 (no e-mail, never submits),
    JP26-00003 海宁 (submits late in the window; 海宁市 never reviews it)."""
    t = parse_instant
    steps = [
        Action(t("2026-05-26T10:00"), "省级名单", import_file("directory", files["roster_province"])),
        Action(t("2026-05-28T10:00"), "集群申报导入", import_file(CLUSTER, files["cluster"])),
        Action(t("2026-05-28T10:05"), "精品申报导入", import_file(JINGPIN, files["jingpin"])),
        Action(t("2026-06-03T14:00"), "嘉兴市名单", import_file("roster", files["roster_jiaxing"])),
        Action(t("2026-06-10T11:00"), "CL26-00003 提交", do("CL26-00003", "submit", "海宁市", "陆悦")),
        Action(t("2026-06-15T10:00"), "JP26-00001 企业提交", do("JP26-00001", "submit", "南湖区", "沈涛")),
        Action(
            t("2026-06-18T15:00"), "JP26-00001 县级审核通过", do("JP26-00001", "approve", "南湖区", "沈涛")
        ),
        Action(t("2026-06-22T10:00"), "CL26-00001 提交", do("CL26-00001", "submit", "南湖区", "沈涛")),
        Action(t("2026-06-29T10:00"), "CL26-00001 推荐", do("CL26-00001", "recommend", "嘉兴市", "许杰")),
        Action(t("2026-06-29T10:30"), "CL26-00003 推荐", do("CL26-00003", "recommend", "嘉兴市", "许杰")),
        Action(
            t("2026-07-01T15:00"),
            "RC26-CL-330400 报送",
            do(
                "RC26-CL-330400",
                "submit",
                "嘉兴市",
                "许杰",
                params={"letter": check_letter("嘉兴市推荐函（签章）.pdf", SCAN)},
            ),
        ),
        Action(t("2026-07-08T10:00"), "JP26-00003 企业提交", do("JP26-00003", "submit", "海宁市", "陆悦")),
        Action(
            t("2026-07-10T10:00"),
            "CL26-00001 初审通过",
            do("CL26-00001", "pass_preliminary", "浙江省", "冯晓"),
        ),
        Action(
            t("2026-07-10T10:00"),
            "CL26-00003 初审未通过",
            do("CL26-00003", "fail_preliminary", "浙江省", "冯晓", reason="集群营收佐证材料不足"),
        ),
        Action(
            t("2026-07-13T10:00"),
            "公布现场答辩截止",
            move(CLUSTER, "defence", "2026-07-30 17:30", "现场答辩定于7月28日至30日"),
        ),
        Action(
            t("2026-07-14T10:00"),
            "CL26-00001 安排答辩",
            do("CL26-00001", "schedule_defence", "浙江省", "冯晓", params={"at": t("2026-07-28T09:30")}),
        ),
        Action(
            t("2026-07-14T16:00"),
            "精品推荐延期",
            move(JINGPIN, "city_recommendation", "2026-07-24", "名额分配需补充论证，统一延期至7月24日"),
        ),
        Action(t("2026-07-22T10:00"), "JP26-00001 市级推荐", do("JP26-00001", "recommend", "嘉兴市", "朱琳")),
        Action(
            t("2026-07-22T14:00"),
            "RC26-JP-330400 报送",
            do(
                "RC26-JP-330400",
                "submit",
                "嘉兴市",
                "朱琳",
                params={"letter": check_letter("推荐意见汇总表（盖章）.pdf", SCAN)},
            ),
        ),
    ]
    return sorted(steps)


def write_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "roster_province": write_sheet(
            folder / "工作人员信息汇总表-省级.csv", ROSTER_HEADERS, ROSTER_PROVINCE
        ),
        "roster_jiaxing": write_sheet(
            folder / "工作人员信息汇总表-嘉兴市.xlsx",
            ROSTER_HEADERS,
            ROSTER_JIAXING,
            title_lines=["工作人员信息汇总表", "设区市：嘉兴市"],
        ),
        "cluster": write_sheet(folder / "集群申报.csv", CLUSTER_HEADERS, CLUSTER_ROWS),
        "jingpin": write_sheet(folder / "精品申报.xlsx", JINGPIN_HEADERS, JINGPIN_ROWS),
    }


def runtime(home: Path, port: int) -> Runtime:
    return Runtime(
        Settings(
            home=home,
            database_url=f"sqlite:///{home / 'shenbao.db'}",
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_security="none",
            mail_from="shenbao@jxt.zj.example",
            mail_from_name="浙江省申报工作提醒",
            dashboard_url=DASHBOARD,
        )
    )


def play(rt: Runtime, actions: list[Action]) -> None:
    """The season: the engine reconciles and sends at every instant that matters and after every action."""
    queue = list(actions)

    def on_step(now: datetime) -> None:
        while queue and queue[0].at <= now:
            action = queue.pop(0)
            action.run(rt, action.at)

    simulate_timeline(
        rt, START, END, step=None, send=True, on_step=on_step, extra_instants=[a.at for a in actions]
    )
    assert not queue


@dataclass(frozen=True)
class Received:
    sent: str  # simulated time the dispatcher handed it over, Beijing time
    to: str
    subject: str
    text: str
    message_id: str


def received(rt: Runtime, smtp: LoopbackSMTP) -> list[Received]:
    with rt.db.read() as session:
        by_id = {e.message_id: e for e in session.exec(select(Email))}
    out = []
    for i, m in enumerate(smtp.messages):
        message = smtp.decoded(i)
        email = by_id[m.message_id]
        assert email.sent_at is not None
        out.append(
            Received(
                format_local(email.sent_at),
                m.rcpt_tos[0],
                str(message["Subject"]),
                message.get_body(("plain",)).get_content().replace("\r\n", "\n"),
                str(m.message_id),
            )
        )
    return out


# Every test reads the one season the module plays (about 2.5 s): one worker runs them all, or
# under xdist each worker played it again for its share of the tests.
pytestmark = pytest.mark.xdist_group("notifications-scenario")


@pytest.fixture(scope="module")
def season(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("scenario")
    with LoopbackSMTP() as smtp:
        rt = runtime(folder / "home", smtp.port)
        upgrade(rt.db)
        audit = rt.audit(create=True)
        with rt.db.write() as session:
            ctx = Ctx(
                now=parse_instant("2026-05-26T08:00"), actor=Actor(name="省经信厅（系统初始化）"), audit=audit
            )
            seed_divisions(session)
            for path in builtin_campaign_files():
                load_campaign(session, ctx, path.read_text(encoding="utf-8"), origin=path.name)
        actions = script(write_files(folder / "files"))
        play(rt, actions)
        first = received(rt, smtp)
        yield {"rt": rt, "smtp": smtp, "mail": first, "folder": folder, "actions": actions}


ROSTER = "报送工作人员信息汇总表（附件3）"
CL_NAME = "第四批省级重点产业集群核心区协同区和“新星”产业群遴选"
JP_NAME = "2026年浙江制造精品推广目录征集"
CL_APP = "线上申报（申报信息表、实施方案及佐证材料）"
CL_REC = "设区市审核推荐并上传推荐函（签章版）"
JP_APP = "企业在线申报（企业之家网，上传盖章承诺书）"
JP_REVIEW = "各地经信部门审核把关"
JP_REC = "按名额推荐并报送推荐意见汇总表（盖章）"
D_ROSTER, D_CL_APP, D_CL_REC = "2026-06-05（周五）24:00", "2026-06-25（周四）24:00", "2026-07-03（周五）24:00"
D_JP_APP, D_JP_V1, D_JP_V2 = "2026-07-10（周五）24:00", "2026-07-20（周一）24:00", "2026-07-24（周五）24:00"
FENG, HAN = "fengxiao@prov.example", "hanmei@prov.example"
XU, ZHU, SHEN, LU = "xujie@jx.example", "zhulin@jx.example", "shentao@nh.example", "luyue@hn.example"
GU, QIAN = "gulei@nhjm.example", "qianfang@hnzn.example"

# (written, handed to the SMTP server, to, subject), Beijing time, in the order they arrived.
# Worked out by hand from the campaign files and the script above, e.g.: the 10 cities that
# never send their roster are escalated to the province on rounds 1–6, but not for their
# recommendations (no application reached them: nothing to review is not late); 嘉兴市 hears
# of each submission in its area; 南湖区 hears of its
# draft on 06-18 and 06-22 and nothing after submitting at 10:00 that day; the lapse notices of
# 00:00 wait for 08:30 (and for Monday after a Saturday); after the 精品 recommendation deadline
# moves on 07-14 16:00, 朱琳 is reminded on the new dates (07-17, 07-22) and the province
# escalated on the new rounds (07-27 … 07-31).
# fmt: off
EXPECTED = [
    ("06-08 09:30", "06-08 09:30", FENG, f"【督办】{ROSTER}已于{D_ROSTER}截止，10个单位逾期未办理"),
    ("06-08 09:30", "06-08 09:30", HAN, f"【督办】{ROSTER}已于{D_ROSTER}截止，10个单位逾期未办理"),
    ("06-10 09:30", "06-10 09:30", FENG, f"【督办】{ROSTER}已于{D_ROSTER}截止，10个单位逾期未办理（第2次督办）"),
    ("06-10 09:30", "06-10 09:30", HAN, f"【督办】{ROSTER}已于{D_ROSTER}截止，10个单位逾期未办理（第2次督办）"),
    ("06-10 11:00", "06-10 11:00", XU, "【通知】CL26-00003 海宁市：提交申报（已提交待市级审核）"),
    ("06-12 09:30", "06-12 09:30", FENG, f"【督办】{ROSTER}已于{D_ROSTER}截止，10个单位逾期未办理（第3次督办）"),
    ("06-12 09:30", "06-12 09:30", HAN, f"【督办】{ROSTER}已于{D_ROSTER}截止，10个单位逾期未办理（第3次督办）"),
    ("06-15 10:00", "06-15 10:00", ZHU, "【通知】JP26-00001 嘉兴南湖精密机械有限公司：数控车削中心 NH-200：提交申报（已提交待县级审核）"),
    ("06-16 09:30", "06-16 09:30", FENG, f"【督办】{ROSTER}已于{D_ROSTER}截止，10个单位逾期未办理（第4次督办）"),
    ("06-16 09:30", "06-16 09:30", HAN, f"【督办】{ROSTER}已于{D_ROSTER}截止，10个单位逾期未办理（第4次督办）"),
    ("06-18 09:00", "06-18 09:00", SHEN, f"【提醒】{CL_APP}将于{D_CL_APP}截止，1项待办（还剩4个工作日）"),
    ("06-18 09:00", "06-18 09:00", LU, f"【提醒】{CL_APP}将于{D_CL_APP}截止，1项待办（还剩4个工作日）"),
    ("06-18 09:30", "06-18 09:30", FENG, f"【督办】{ROSTER}已于{D_ROSTER}截止，10个单位逾期未办理（第5次督办）"),
    ("06-18 09:30", "06-18 09:30", HAN, f"【督办】{ROSTER}已于{D_ROSTER}截止，10个单位逾期未办理（第5次督办）"),
    ("06-18 15:00", "06-18 15:00", GU, "【通知】JP26-00001 嘉兴南湖精密机械有限公司：数控车削中心 NH-200：县级审核通过（县级审核通过待推荐）"),
    ("06-22 09:00", "06-22 09:00", SHEN, f"【提醒】{CL_APP}将于{D_CL_APP}截止，1项待办（还剩3个工作日）"),
    ("06-22 09:00", "06-22 09:00", LU, f"【提醒】{CL_APP}将于{D_CL_APP}截止，1项待办（还剩3个工作日）"),
    ("06-22 10:00", "06-22 10:00", XU, "【通知】CL26-00001 南湖区：提交申报（已提交待市级审核）"),
    ("06-23 09:30", "06-23 09:30", FENG, f"【督办】{ROSTER}已于{D_ROSTER}截止，10个单位逾期未办理（第6次督办）"),
    ("06-23 09:30", "06-23 09:30", HAN, f"【督办】{ROSTER}已于{D_ROSTER}截止，10个单位逾期未办理（第6次督办）"),
    ("06-24 09:00", "06-24 09:00", LU, f"【提醒】{CL_APP}将于{D_CL_APP}截止，1项待办（还剩1个工作日）"),
    ("06-24 10:00", "06-24 10:00", XU, f"【提醒】{CL_APP}将于{D_CL_APP}截止，1个单位尚未办理"),
    ("06-25 08:30", "06-25 08:30", LU, f"【今日截止】{CL_APP}将于{D_CL_APP}截止，1项待办"),
    ("06-25 18:00", "06-25 18:00", LU, f"【今日截止】{CL_APP}将于{D_CL_APP}截止，1项待办"),
    ("06-26 00:00", "06-26 08:30", XU, "【通知】CL26-00002 海宁市：逾期关闭（逾期未提交）"),
    ("06-26 00:00", "06-26 08:30", LU, "【通知】CL26-00002 海宁市：逾期关闭（逾期未提交）"),
    ("06-26 09:00", "06-26 09:00", XU, f"【提醒】{CL_REC}将于{D_CL_REC}截止，1项待办（还剩5个工作日）"),
    ("06-29 10:00", "06-29 10:00", SHEN, "【通知】CL26-00001 南湖区：推荐（市级已推荐）"),
    ("06-29 10:30", "06-29 10:30", LU, "【通知】CL26-00003 海宁市：推荐（市级已推荐）"),
    ("07-01 09:00", "07-01 09:00", XU, f"【提醒】{CL_REC}将于{D_CL_REC}截止，1项待办（还剩2个工作日）"),
    ("07-01 15:00", "07-01 15:00", FENG, "【通知】RC26-CL-330400 嘉兴市推荐报送：报送省经信厅（已报送省经信厅）"),
    ("07-03 09:00", "07-03 09:00", QIAN, f"【提醒】{JP_APP}将于{D_JP_APP}截止，1项待办（还剩5个工作日）"),
    ("07-03 09:00", "07-03 09:00", LU, f"【提醒】{JP_APP}将于{D_JP_APP}截止，1项待办（还剩5个工作日）"),
    ("07-07 09:00", "07-07 09:00", QIAN, f"【提醒】{JP_APP}将于{D_JP_APP}截止，1项待办（还剩3个工作日）"),
    ("07-07 09:00", "07-07 09:00", LU, f"【提醒】{JP_APP}将于{D_JP_APP}截止，1项待办（还剩3个工作日）"),
    ("07-08 10:00", "07-08 10:00", ZHU, "【通知】JP26-00003 海宁智能装备有限公司：智能皮革裁断机 QD-9：提交申报（已提交待县级审核）"),
    ("07-09 10:00", "07-09 10:00", LU, f"【提醒】{JP_APP}将于{D_JP_APP}截止，1个单位尚未办理"),
    ("07-10 08:30", "07-10 08:30", LU, f"【今日截止】{JP_APP}将于{D_JP_APP}截止，1项待办"),
    ("07-10 10:00", "07-10 10:00", XU, "【通知】许杰，您有2条通知（2026-07-10（周五）10:00）"),
    ("07-10 10:00", "07-10 10:00", SHEN, "【通知】CL26-00001 南湖区：初审通过（初审通过）"),
    ("07-10 10:00", "07-10 10:00", LU, "【通知】CL26-00003 海宁市：初审未通过（初审未通过）"),
    ("07-11 00:00", "07-13 08:30", LU, "【通知】JP26-00002 海宁经编新材料有限公司：阻燃经编面料 HN-7：逾期关闭（逾期未提交）"),
    ("07-13 09:00", "07-13 09:00", ZHU, f"【提醒】{JP_REC}将于{D_JP_V1}截止，1项待办（还剩5个工作日）"),
    ("07-13 09:00", "07-13 09:00", LU, f"【提醒】{JP_REVIEW}将于{D_JP_V1}截止，1项待办（还剩5个工作日）"),
    ("07-13 10:00", "07-13 10:00", SHEN, f"【时间调整】{CL_NAME}：现场答辩截止时间调整为2026-07-30（周四）17:30"),
    ("07-14 10:00", "07-14 10:00", XU, "【通知】CL26-00001 南湖区：安排现场答辩（已安排现场答辩）"),
    ("07-14 10:00", "07-14 10:00", SHEN, "【通知】CL26-00001 南湖区：安排现场答辩（已安排现场答辩）"),
    ("07-14 16:00", "07-14 16:00", ZHU, f"【时间调整】{JP_NAME}：{JP_REC}截止时间调整为{D_JP_V2}"),
    ("07-16 09:00", "07-16 09:00", LU, f"【提醒】{JP_REVIEW}将于{D_JP_V1}截止，1项待办（还剩2个工作日）"),
    ("07-17 09:00", "07-17 09:00", ZHU, f"【提醒】{JP_REC}将于{D_JP_V2}截止，1项待办（还剩5个工作日）"),
    ("07-21 09:30", "07-21 09:30", ZHU, f"【督办】{JP_REVIEW}已于{D_JP_V1}截止，1个单位逾期未办理"),
    ("07-21 09:30", "07-21 09:30", LU, f"【逾期】{JP_REVIEW}已于{D_JP_V1}截止，仍有1项未办理"),
    ("07-22 09:00", "07-22 09:00", ZHU, f"【提醒】{JP_REC}将于{D_JP_V2}截止，1项待办（还剩2个工作日）"),
    ("07-22 10:00", "07-22 10:00", GU, "【通知】JP26-00001 嘉兴南湖精密机械有限公司：数控车削中心 NH-200：推荐（已推荐）"),
    ("07-22 10:00", "07-22 10:00", SHEN, "【通知】JP26-00001 嘉兴南湖精密机械有限公司：数控车削中心 NH-200：推荐（已推荐）"),
    ("07-22 14:00", "07-22 14:00", HAN, "【通知】RC26-JP-330400 嘉兴市推荐报送：报送省经信厅（已报送省经信厅）"),
    ("07-22 14:00", "07-22 14:00", QIAN, "【通知】JP26-00003 海宁智能装备有限公司：智能皮革裁断机 QD-9：不予推荐（未推荐）"),
    ("07-22 14:00", "07-22 14:00", LU, "【通知】JP26-00003 海宁智能装备有限公司：智能皮革裁断机 QD-9：不予推荐（未推荐）"),
]
# fmt: on


def _short(when: datetime) -> str:
    text = format_local(when)  # 2026-06-26（周五）08:30
    return f"{text[5:10]} {text[-5:]}"


def test_it_delivers_exactly_the_expected_emails_at_the_expected_times(season: Any) -> None:
    rt = season["rt"]
    with rt.db.read() as session:
        by_id = {e.message_id: e for e in session.exec(select(Email))}
    got = []
    for r in season["mail"]:
        email = by_id[r.message_id]
        assert email.sent_at is not None
        got.append((_short(email.created_at), _short(email.sent_at), r.to, r.subject))
    assert got == EXPECTED


def test_it_never_chases_anyone_for_a_case_already_acted_on(season: Any) -> None:
    """Every case a reminder, escalation or overdue notice listed was still waiting at that stage
    at the simulated instant the email went out, by the audit log's own account of its states."""
    rt = season["rt"]
    with rt.db.read() as session:
        events = session.exec(select(AuditEvent).order_by(AuditEvent.seq)).all()
        refs = {c.id: c.ref for c in session.exec(select(Case))}
        specs = {cid: load_spec(session, cid) for cid in (CLUSTER, JINGPIN)}
        chasing = session.exec(
            select(Notification, Email)
            .join(Email, Email.id == Notification.email_id)
            .where(
                Notification.kind.in_(("reminder", "supervisor_reminder", "overdue", "escalation", "stuck"))
            )
        ).all()
    history: dict[str, list[tuple[datetime, str]]] = {}
    for e in events:
        if e.case_id is not None and e.action in ("create", "state_change"):
            history.setdefault(refs[e.case_id], []).append((e.at, e.to_value or ""))

    def state_at(ref: str, when: datetime) -> str:
        return [state for at, state in history[ref] if at <= when][-1]

    checked = 0
    for n, email in chasing:
        assert n.campaign_id and n.stage_id and email.sent_at is not None
        pending = specs[n.campaign_id].stage(n.stage_id).pending_states
        assert n.payload["shown"], n.key
        for ref in n.payload["shown"]:
            assert state_at(ref, email.sent_at) in pending, (n.key, ref, format_local(email.sent_at))
            checked += 1
    assert checked >= 40


def load_spec(session: Any, campaign_id: str) -> Any:
    from models.campaign import get_campaign

    return get_campaign(session, campaign_id).spec()


def test_it_stops_chasing_each_person_once_they_have_acted(season: Any) -> None:
    def last(to: str, prefix: str) -> str:
        return max(sent for _w, sent, who, subject in EXPECTED if who == to and subject.startswith(prefix))

    assert last(SHEN, f"【提醒】{CL_APP}") < "06-22 10:00"  # submitted CL26-00001
    assert last(QIAN, f"【提醒】{JP_APP}") < "07-08 10:00"  # submitted JP26-00003
    assert last(XU, f"【提醒】{CL_REC}") < "07-01 15:00"  # sent the city's recommendation
    assert last(ZHU, f"【提醒】{JP_REC}") < "07-22 14:00"
    assert not [
        s for _w, _s, who, s in EXPECTED if who == GU and "提醒" in s
    ]  # 顾磊 acted before any reminder


def test_it_never_repeats_a_message_id_and_sends_every_email_once(season: Any) -> None:
    rt, smtp = season["rt"], season["smtp"]
    ids = smtp.message_ids()
    assert len(ids) == len(set(ids)) == len(EXPECTED)
    with rt.db.read() as session:
        statuses = {(e.status, e.attempts) for e in session.exec(select(Email))}
    assert statuses == {("sent", 1)}


def test_it_says_who_to_call_what_to_forward_and_when_to_appear(season: Any) -> None:
    mail = {(r.to, r.sent[5:10] + " " + r.sent[-5:]): r.text for r in season["mail"]}
    escalation = mail[(ZHU, "07-21 09:30")]
    assert (
        "· 海宁市：1 项" in escalation
        and "JP26-00003 海宁智能装备有限公司：智能皮革裁断机 QD-9" in escalation
    )
    assert "联系人 陆悦（副局长） 手机 13957300004 邮箱 luyue@hn.example" in escalation
    forwarded = mail[(LU, "07-03 09:00")]
    assert "以下单位未登记联系人，请代为转告：海宁经编新材料有限公司" in forwarded
    assert "JP26-00002 海宁经编新材料有限公司：阻燃经编面料 HN-7" in forwarded
    defence = mail[(SHEN, "07-14 10:00")]
    assert "答辩时间：2026-07-28（周二）09:30" in defence
    moved = mail[(ZHU, "07-14 16:00")]
    assert f"原为：{D_JP_V1}\n  现为：{D_JP_V2}（第 2 版）" in moved
    assert "原因：名额分配需补充论证，统一延期至7月24日" in moved
    digest = mail[(XU, "07-10 10:00")]
    assert "CL26-00001 南湖区\n事项：初审通过" in digest and "说明：集群营收佐证材料不足" in digest
    assert all(f"查看详情与办理：{DASHBOARD}" in text for text in mail.values())


def test_it_adds_nothing_when_the_season_is_played_again(season: Any) -> None:
    rt, smtp = season["rt"], season["smtp"]
    before = counts(rt)

    timeline = simulate_timeline(
        rt, START, END, step=None, send=True, extra_instants=[a.at for a in season["actions"]]
    )

    assert counts(rt) == before and len(smtp) == len(EXPECTED)
    assert all(entry["tick"]["written"] == {} and not entry["tick"]["lapsed"] for entry in timeline)


def test_it_adds_nothing_after_a_restart_on_the_same_database(season: Any) -> None:
    smtp = season["smtp"]
    restarted = runtime(season["folder"] / "home", smtp.port)  # a new process: nothing cached
    before = counts(restarted)

    simulate_timeline(restarted, START, END, step=None, send=True)

    assert counts(restarted) == before and len(smtp) == len(EXPECTED)
    with restarted.db.read() as session:
        assert restarted.audit().verify(session).ok


def counts(rt: Runtime) -> dict[str, int]:
    from sqlalchemy import func

    from models.outbox import DeliveryAttempt

    with rt.db.read() as session:
        return {
            m.__name__: int(session.exec(select(func.count()).select_from(m)).one())
            for m in (Notification, Email, DeliveryAttempt, AuditEvent, Case)
        }
