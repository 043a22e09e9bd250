"""`shenbao demo`: the two 2026 campaigns played from 05-20 to 08-15 on the embedded default.

A fresh SQLite file, the built-in campaign files, a sample roster and applications across all
11 cities, people acting (and failing to act) at realistic times, a real SMTP server on
loopback started in-process. The clock jumps between the instants that matter; at each one the
engine reconciles and sends. Everything the server receives is saved as .eml files, and the
run ends with a summary a coordinator can read.
"""

from __future__ import annotations

import random
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import click
from sqlalchemy import func
from sqlmodel import select

from calendars.timeutil import format_local, parse_deadline, parse_instant
from flows import output as out
from flows.cli import _rt, cli, handled
from flows.sample_data import write_sample
from models.actions import ActionRefused
from models.case import PROGRAM_LABELS, Case
from models.context import Actor
from models.letters import LetterStore
from models.machines import machine_for
from models.org import Contact, Organisation
from models.outbox import Email, Notification
from models.sheets import parse_roster
from operations import acts
from operations.runtime import Runtime
from operations.settings import Settings

CLUSTER, JINGPIN = "2026-cluster-selection", "2026-jingpin"


@dataclass(order=True)
class Step:
    at: datetime
    what: str
    run: Callable[[Runtime, datetime], str | None]


# The province's coordinator loads the campaigns, imports the platform's sheets, moves deadlines.
PROVINCE = Actor(name="祝博艺", org_id="330000", tier="province")


def _actor(rt: Runtime, org_id: str) -> Actor:
    with rt.db.read() as session:
        org = session.get(Organisation, org_id)
        person = session.exec(select(Contact).where(Contact.org_id == org_id)).first()
    assert org is not None
    return Actor(name=person.name if person else f"{org.name}经办人", org_id=org.id, tier=org.tier)


def _act(
    ref: str, action: str, org_id: str, *, only_in: str | None = None, **kw: object
) -> Callable[[Runtime, datetime], str | None]:
    """An action by ``org_id``'s contact; with ``only_in``, skipped unless the case is in that state
    (the county does not approve what the enterprise never managed to submit)."""

    def run(rt: Runtime, now: datetime) -> str | None:
        if only_in is not None:
            with rt.db.read() as session:
                if session.exec(select(Case.state).where(Case.ref == ref)).one() != only_in:
                    return "skip"
        try:
            acts.act(rt, _actor(rt, org_id), ref, action, now=now, **kw)  # type: ignore[arg-type]
            return None
        except ActionRefused as exc:
            return f"被拒绝：{str(exc).splitlines()[0]}"

    return run


def _attach(ref: str, org_id: str, name: str) -> Callable[[Runtime, datetime], str | None]:
    """The city uploads its sealed letter: a small stand-in PDF, stored like a real upload."""

    def run(rt: Runtime, now: datetime) -> str | None:
        scan = f"%PDF-1.4\n% 演示用签章文件：{ref} {name}\n%%EOF\n".encode()
        try:
            with LetterStore.under(rt.settings.home).attaching(name, scan) as letter:
                acts.act(rt, _actor(rt, org_id), ref, "attach", params={"letter": letter}, now=now)
            return None
        except ActionRefused as exc:
            return f"被拒绝：{str(exc).splitlines()[0]}"

    return run


def _import(kind: str, path: Path) -> Callable[[Runtime, datetime], str | None]:
    def run(rt: Runtime, now: datetime) -> str | None:
        acts.import_cases(rt, PROVINCE, kind, path, now=now)
        return None

    return run


def _directory(path: Path, source: str) -> Callable[[Runtime, datetime], str | None]:
    """The province loads its own address book: people to write to, no roster task done."""

    def run(rt: Runtime, now: datetime) -> str | None:
        acts.import_directory(rt, PROVINCE, path, source=source, now=now)
        return None

    return run


DEMO_ROBOT = "杭州市经信局工作群"


def channel_directory(folder: Path) -> Path:
    """A small address book that names the channels beside email and 浙政钉 (issue 11): 杭州市's
    work group robot for two of its people, and an SMS number for one who prefers SMS."""
    from flows.sample_data import ROSTER_HEADERS
    from models.sheets import write_sheet

    rows = [
        [
            "杭州市",
            "产业处",
            "周群",
            "科员",
            "13905710101",
            "全部",
            "zhouqun@hz.example",
            "",
            DEMO_ROBOT,
            "钉钉群",
        ],
        [
            "杭州市",
            "产业处",
            "吴信",
            "科员",
            "13905710102",
            "全部",
            "wuxin@hz.example",
            "",
            DEMO_ROBOT,
            "邮件",
        ],
        [
            "杭州市",
            "产业处",
            "郑短",
            "科员",
            "13905710103",
            "全部",
            "zhengduan@hz.example",
            "13905710103",
            "",
            "短信",
        ],
    ]
    return write_sheet(
        folder / "渠道通讯录.xlsx", [*ROSTER_HEADERS, "短信号码", "钉钉群机器人", "接收方式"], rows
    )


def _send_roster(city_code: str, path: Path) -> Callable[[Runtime, datetime], str | None]:
    """The city sends its 附件3: its own person imports it and submits the roster task."""

    def run(rt: Runtime, now: datetime) -> str | None:
        with rt.db.read() as session:
            city = session.get(Organisation, city_code)
        assert city is not None
        sender = next(row.name for row in parse_roster(path) if row.org == city.name)
        actor = Actor(name=sender, org_id=city.id, tier=city.tier)
        acts.import_roster(rt, actor, path, submit=True, now=now)
        return None

    return run


def _deadline(campaign: str, stage: str, when: str, reason: str) -> Callable[[Runtime, datetime], str | None]:
    def run(rt: Runtime, now: datetime) -> str | None:
        acts.move_deadline(rt, PROVINCE, campaign, stage, parse_deadline(when), reason, now=now)
        return None

    return run


def _local(rng: random.Random, day: str, start_hour: int = 9, end_hour: int = 17) -> datetime:
    return parse_instant(
        f"{day}T{rng.randint(start_hour, end_hour - 1):02d}:{rng.choice((0, 15, 30, 45)):02d}"
    )


def _days(start: str, end: str) -> list[str]:
    a, b = datetime.fromisoformat(start), datetime.fromisoformat(end)
    return [(a + timedelta(days=i)).date().isoformat() for i in range((b - a).days + 1)]


def scenario(rt: Runtime, files: object, rng: random.Random) -> list[Step]:
    """Who does what when. Most act in time; some late; some never; a deadline moves."""
    from flows.sample_data import SampleFiles

    assert isinstance(files, SampleFiles)
    steps: list[Step] = [
        Step(
            parse_instant("2026-05-26T09:10"),
            "省厅通讯录导入（只是联系人，不算任何设区市报送）",
            _directory(files.rosters["330000"], "省厅通讯录 2026-05-26"),
        ),
        Step(
            parse_instant("2026-05-26T09:15"),
            "杭州市渠道通讯录导入（钉钉群机器人、短信）",
            _directory(channel_directory(files.rosters["330000"].parent), "杭州市渠道通讯录 2026-05-26"),
        ),
    ]
    # Cities send their staff rosters; 温州 and 丽水 are late, after the province was alerted.
    for code, path in files.rosters.items():
        if code == "330000":
            continue
        day = {"330300": "2026-06-09", "331100": "2026-06-12"}.get(code) or rng.choice(
            _days("2026-05-27", "2026-06-05")
        )
        steps.append(Step(_local(rng, day), f"{path.stem} 报送", _send_roster(code, path)))
    steps.append(
        Step(
            parse_instant("2026-05-28T10:00"),
            "集群申报导入（数智经信工作台导出）",
            _import(CLUSTER, files.cluster),
        )
    )
    steps.append(
        Step(
            parse_instant("2026-05-28T10:05"),
            "精品申报导入（企业之家网导出）",
            _import(JINGPIN, files.jingpin),
        )
    )
    # The province moves the 精品 recommendation deadline mid-campaign.
    steps.append(
        Step(
            parse_instant("2026-07-14T16:00"),
            "省经信厅延长精品推荐截止时间至7月24日",
            _deadline(
                JINGPIN,
                "city_recommendation",
                "2026-07-24",
                "部分设区市名额分配需补充论证，统一延期至7月24日",
            ),
        )
    )
    steps.append(
        Step(
            parse_instant("2026-07-17T10:00"),
            "省经信厅公布现场答辩截止安排",
            _deadline(CLUSTER, "defence", "2026-08-07 17:30", "现场答辩定于8月5日至7日，8月7日17:30前完成"),
        )
    )
    return steps


def case_steps(rt: Runtime, rng: random.Random) -> list[Step]:
    """Actions on the imported cases (planned once the import step has run)."""
    with rt.db.read() as session:
        cases = session.exec(select(Case).order_by(Case.ref)).all()
    steps: list[Step] = []
    # Each city's list is its recommendation case, numbered by the registry (never spelt here).
    lists = {(c.campaign_id, c.org_id): c.ref for c in cases if c.kind == "recommendation"}
    by_city: dict[str, list[Case]] = defaultdict(list)
    for c in cases:
        if c.kind == "cluster_application":
            by_city[c.city_code or ""].append(c)
    never_submitted: list[Case] = []
    for city, apps in sorted(by_city.items()):
        recommended_star = 0
        last_review = parse_instant("2026-07-01T09:00")
        for i, app in enumerate(apps):
            if rng.random() < 0.12:
                never_submitted.append(app)  # lapses at 06-25 24:00
                continue
            submit_at = _local(rng, rng.choice(_days("2026-06-08", "2026-06-25")))
            steps.append(Step(submit_at, f"{app.ref} 提交", _submit_with_overrides(app, {})))
            review = _local(rng, rng.choice(_days("2026-06-29", "2026-07-02")))
            if i == 0 and city in ("330200", "330500"):
                steps.append(
                    Step(
                        review,
                        f"{app.ref} 退回修改",
                        _act(app.ref, "return", city, reason="佐证材料缺少链主企业名单明细"),
                    )
                )
                steps.append(
                    Step(
                        review + timedelta(days=1),
                        f"{app.ref} 修改后重新提交",
                        _submit_with_overrides(app, {}, action="resubmit"),
                    )
                )
                review = review + timedelta(days=1, hours=2)
            last_review = max(last_review, review)
            if app.zone_type == "rising_star":
                recommended_star += 1
                if recommended_star > 3:
                    steps.append(
                        Step(review, f"{app.ref} 推荐（超名额，将被拒绝）", _act(app.ref, "recommend", city))
                    )
                    steps.append(
                        Step(
                            review + timedelta(minutes=20),
                            f"{app.ref} 不予推荐",
                            _act(app.ref, "not_recommend", city, reason="“新星”产业群推荐名额已满（3个）"),
                        )
                    )
                    continue
            steps.append(
                Step(review, f"{app.ref} 推荐", _act(app.ref, "recommend", city, only_in="submitted"))
            )
        rec = lists[("2026-cluster-selection", city)]
        # 衢州 uploads its letter late, after the province has been alerted.
        letter_at = (
            parse_instant("2026-07-06T10:00") if city == "330800" else last_review + timedelta(hours=3)
        )
        steps.append(
            Step(
                letter_at,
                f"{rec} 上传推荐函",
                _attach(rec, city, "推荐函（签章版）.pdf"),
            )
        )
        steps.append(Step(letter_at + timedelta(hours=1), f"{rec} 报送省经信厅", _act(rec, "submit", city)))
    # The province's preliminary review and the defences.
    cluster_apps = [c for c in cases if c.kind == "cluster_application"]
    for app in cluster_apps:
        steps.append(Step(parse_instant("2026-07-16T15:00"), f"{app.ref} 初审", _province_review(app.ref)))
        steps.append(Step(parse_instant("2026-07-20T10:00"), f"{app.ref} 安排答辩", _schedule(app.ref, rng)))
        steps.append(
            Step(
                parse_instant("2026-08-07T18:00"),
                f"{app.ref} 答辩结束",
                _act(app.ref, "hold_defence", "330000", only_in="defence_scheduled"),
            )
        )
        steps.append(Step(parse_instant("2026-08-12T10:00"), f"{app.ref} 评审结果", _result(app.ref, rng)))
    # 精品: enterprises submit, counties approve, cities recommend within quota.
    jingpin_city: dict[str, list[Case]] = defaultdict(list)
    for app in (c for c in cases if c.kind == "jingpin_application"):
        if rng.random() < 0.1:
            continue
        submit_at = _local(rng, rng.choice(_days("2026-06-10", "2026-07-10")))
        steps.append(Step(submit_at, f"{app.ref} 企业提交", _submit_with_overrides(app, {})))
        approve_at = submit_at + timedelta(days=rng.randint(1, 6))
        steps.append(
            Step(
                approve_at,
                f"{app.ref} 县级审核通过",
                _act(app.ref, "approve", app.county_code or "", only_in="submitted"),
            )
        )
        jingpin_city[app.city_code or ""].append(app)
    for city, apps in sorted(jingpin_city.items()):
        day = rng.choice(_days("2026-07-20", "2026-07-24")) if city != "330300" else "2026-07-28"
        at = _local(rng, day, 9, 12)
        for app in apps:
            steps.append(
                Step(at, f"{app.ref} 市级推荐", _act(app.ref, "recommend", city, only_in="county_approved"))
            )
        rec = lists[("2026-jingpin", city)]
        steps.append(
            Step(
                at + timedelta(hours=1),
                f"{rec} 上传汇总表",
                _attach(rec, city, "推荐意见汇总表（盖章）.pdf"),
            )
        )
        steps.append(Step(at + timedelta(hours=2), f"{rec} 报送", _act(rec, "submit", city)))
        # The province's review of the catalogue (its dates were never announced in the notice).
        for app in apps:
            steps.append(
                Step(parse_instant("2026-08-04T15:00"), f"{app.ref} 初审", _province_review(app.ref))
            )
            steps.append(
                Step(
                    parse_instant("2026-08-13T10:00"),
                    f"{app.ref} 评审结果",
                    _result(app.ref, rng, after="prelim_passed"),
                )
            )
    # A county tries to submit after the window closed: refused, and the refusal is audited.
    late = never_submitted[0] if never_submitted else None
    if late is not None:
        steps.append(
            Step(
                parse_instant("2026-06-26T10:00"),
                f"{late.ref} 逾期后尝试提交",
                _act(late.ref, "submit", late.county_code or ""),
            )
        )
    return steps


def _submit_with_overrides(
    app: Case, overrides: dict[str, str], action: str = "submit"
) -> Callable[[Runtime, datetime], str | None]:
    def run(rt: Runtime, now: datetime) -> str | None:
        actor_org = app.county_code if app.kind == "cluster_application" else app.org_id
        try:
            acts.act(rt, _actor(rt, actor_org or ""), app.ref, action, overrides=overrides, now=now)
            return None
        except ActionRefused as exc:
            if exc.rule == "override_required":
                # The county explains why it applies although a 原则上 condition is not met.
                reasons = {
                    f.rule: "细分领域增长快、龙头企业带动明显，申请按原则上条件审核"
                    for f in exc.findings
                    if f.severity == "in_principle"
                }
                try:
                    acts.act(rt, _actor(rt, actor_org or ""), app.ref, action, overrides=reasons, now=now)
                    return "说明理由后提交"
                except ActionRefused as again:
                    return f"被拒绝：{str(again).splitlines()[0]}"
            return f"被拒绝：{str(exc).splitlines()[0]}"

    return run


def _province_review(ref: str) -> Callable[[Runtime, datetime], str | None]:
    def run(rt: Runtime, now: datetime) -> str | None:
        with rt.db.read() as session:
            state = session.exec(select(Case.state).where(Case.ref == ref)).one()
        if state != "recommended":
            return "skip"
        passed = int(ref[-1]) % 5 != 0
        action, reason = ("pass_preliminary", "") if passed else ("fail_preliminary", "集群营收指标佐证不足")
        return _act(ref, action, "330000", reason=reason)(rt, now)

    return run


def _schedule(ref: str, rng: random.Random) -> Callable[[Runtime, datetime], str | None]:
    day = rng.choice(("2026-08-05", "2026-08-06", "2026-08-07"))
    when = parse_instant(f"{day}T{rng.choice((9, 10, 14, 15)):02d}:00")

    def run(rt: Runtime, now: datetime) -> str | None:
        with rt.db.read() as session:
            state = session.exec(select(Case.state).where(Case.ref == ref)).one()
        if state != "prelim_passed":
            return "skip"
        return _act(ref, "schedule_defence", "330000", params={"at": when})(rt, now)

    return run


def _result(
    ref: str, rng: random.Random, *, after: str = "defence_held"
) -> Callable[[Runtime, datetime], str | None]:
    selected = rng.random() < 0.7

    def run(rt: Runtime, now: datetime) -> str | None:
        with rt.db.read() as session:
            state = session.exec(select(Case.state).where(Case.ref == ref)).one()
        if state != after:
            return "skip"
        if selected:
            return _act(ref, "select", "330000")(rt, now)
        return _act(ref, "reject", "330000", reason="综合评审得分未进入拟入选范围")(rt, now)

    return run


@cli.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-out"),
    show_default=True,
    help="输出目录：数据库、收到的 .eml 邮件、样例表格",
)
@click.option("--start", default="2026-05-20T08:00", show_default=True, help="模拟开始时间")
@click.option("--until", default="2026-08-15T18:00", show_default=True, help="模拟结束时间")
@click.option("--seed", default=2026, show_default=True, help="样例数据随机种子")
@click.pass_context
@handled
def demo(ctx: click.Context, out_dir: Path, start: str, until: str, seed: int) -> None:
    """演示：全新的 SQLite 库、内置 2026 两个批次、11 个设区市的样例名单与申报，进程内启动本机 SMTP
    服务器，从 5 月 20 日模拟到 8 月 15 日，逐封经 SMTP 真实发送，保存收到的 .eml，最后打印汇总。"""
    from models.registry import seed_divisions
    from models.schema import upgrade
    from notifications.loopback import LoopbackSMTP

    began = time.monotonic()
    if out_dir.exists():
        shutil.rmtree(out_dir)
    (out_dir / "eml").mkdir(parents=True)
    base = _rt(ctx)
    from notifications.channels.local_servers import LocalPlatforms, ManualClock

    # The platforms judge signatures, tokens and rates by the simulation's clock.
    sim_clock = ManualClock(parse_instant(start))
    with LoopbackSMTP(save_dir=out_dir / "eml") as server, LocalPlatforms(clock=sim_clock) as platforms:
        channel_settings = {
            k.removeprefix("SHENBAO_").lower(): v for k, v in platforms.environment([DEMO_ROBOT]).items()
        }
        settings = Settings(
            **channel_settings,  # type: ignore[arg-type]
            home=out_dir,
            database_url=f"sqlite:///{(out_dir / 'shenbao.db').resolve()}",
            smtp_host="127.0.0.1",
            smtp_port=server.port,
            smtp_security="none",
            mail_from="shenbao@jxt.zj.example",
            mail_from_name="浙江省申报工作提醒",
            dashboard_url=base.settings.dashboard_url or "http://127.0.0.1:8080",
        )
        rt = Runtime(settings)
        upgrade(rt.db)
        rt.audit(create=True)
        # The demo signs its checkpoints, so its actors' receipts go out by mail as they would
        # in use (a first run makes the key beside demo-out/, as `shenbao audit keygen` would).
        if not rt.settings.resolved_signing_key_file.exists():
            from operations.checkpoints import keygen

            keygen(rt)
        t0 = parse_instant(start)
        from calendars.campaign import builtin_campaign_files

        with rt.db.write() as session:
            seed_divisions(session)
        for path in builtin_campaign_files():
            acts.load_campaign(rt, PROVINCE, path.read_text(encoding="utf-8"), origin=path.name, now=t0)
        rng = random.Random(seed)
        files = write_sample(out_dir / "samples", seed=seed)
        out.line(
            f"样例表格：{out_dir / 'samples'}（{len(files.rosters)} 份工作人员信息汇总表、集群申报、精品申报）"
        )
        out.line(f"SMTP 服务器：127.0.0.1:{server.port}（进程内，收到的邮件保存为 {out_dir / 'eml'}/*.eml）")
        out.line(
            f"本机平台：浙政钉 {platforms.zzd.url}、钉钉群机器人 {platforms.robot.url}、短信网关 {platforms.sms.url}（进程内）"
        )
        steps = sorted(scenario(rt, files, rng))
        planned_cases = False
        log: Counter[str] = Counter()
        refusals: list[str] = []

        def on_step(now: datetime) -> None:
            nonlocal steps, planned_cases
            sim_clock.set(now)
            due = [s for s in steps if s.at <= now]
            steps = [s for s in steps if s.at > now]
            for step in sorted(due):
                result = step.run(rt, step.at if step.at <= now else now)
                log["actions"] += 1
                if result and result.startswith("被拒绝"):
                    refusals.append(f"{format_local(step.at)} {step.what}：{result}")
            if not planned_cases and now >= parse_instant("2026-05-28T10:05"):
                planned_cases = True
                steps = sorted(steps + case_steps(rt, rng))

        from flows.cli_notify import simulate_timeline

        end = parse_instant(until)
        all_case_times: list[datetime] = []

        def progress(i: int, n: int, now: datetime, entry: dict) -> None:  # type: ignore[type-arg]
            if i % 25 == 0 or i == n:
                out.err_console.print(
                    f"  模拟进度 {i}/{n}：{format_local(now)}，已收到邮件 {len(server)} 封",
                    markup=False,
                    highlight=False,
                )

        rt.progress = progress
        # Action instants are known only after the import; simulate in two legs.
        first_leg_end = parse_instant("2026-05-28T10:05")
        simulate_timeline(
            rt, t0, first_leg_end, step=None, send=True, on_step=on_step, extra_instants=[s.at for s in steps]
        )
        all_case_times = [s.at for s in steps]
        simulate_timeline(
            rt, first_leg_end, end, step=None, send=True, on_step=on_step, extra_instants=all_case_times
        )
        _summary(rt, server, out_dir, refusals, time.monotonic() - began, platforms)


def _channel_summary(rt: Runtime, platforms: object) -> None:
    """Per channel: messages in the outbox by status, and what the local platform received."""
    from models.channels import ChannelMessage
    from notifications.channels.base import CHANNEL_LABELS
    from notifications.channels.local_servers import LocalPlatforms

    assert isinstance(platforms, LocalPlatforms)
    with rt.db.read() as session:
        by_status = session.exec(
            select(ChannelMessage.channel, ChannelMessage.status, func.count()).group_by(
                ChannelMessage.channel, ChannelMessage.status
            )
        ).all()
        mobiles = {m for m in session.exec(select(Contact.zzd_mobile)).all() if m}
        numbers = {m for m in session.exec(select(Contact.sms_mobile)).all() if m}
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for channel, status, n in by_status:
        counts[channel][status] = n
    received = {
        "zzd": sum(len(platforms.zzd.notifications_to(m)) for m in mobiles),
        "robot": len(platforms.robot.messages(DEMO_ROBOT)),
        "sms": sum(len(platforms.sms.texts_to(n)) for n in numbers),
    }
    for channel in ("zzd", "robot", "sms"):
        c = counts[channel]
        out.line(
            f"{CHANNEL_LABELS[channel]}：生成 {sum(c.values())} 条，已发送 {c.get('sent', 0)}，"
            f"并入汇总 {c.get('folded', 0)}，取消 {c.get('cancelled', 0)}，死信 {c.get('dead', 0)}，"
            f"待发 {c.get('pending', 0) + c.get('retry', 0)}；本机平台实际收到 {received[channel]} 条"
        )


def _summary(
    rt: Runtime, server: object, out_dir: Path, refusals: list[str], elapsed: float, platforms: object = None
) -> None:
    from notifications.loopback import LoopbackSMTP

    assert isinstance(server, LoopbackSMTP)
    tier_names = {
        "province": "省级",
        "city": "设区市",
        "county": "县（市、区）",
        "park": "园区",
        "enterprise": "企业",
        "soe_group": "省属企业",
        "association": "协会",
    }
    kind_names = {
        "reminder": "提醒",
        "supervisor_reminder": "督促下级",
        "overdue": "逾期告知",
        "escalation": "督办",
        "notice": "状态通知",
        "lapse_notice": "逾期关闭",
        "deadline_notice": "时间调整",
        "stuck": "滞留督办",
        "audit_checkpoint": "审计检查点",
        "receipt": "审计回执",
    }
    with rt.db.read() as session:
        rows = session.exec(
            select(
                Notification.campaign_id,
                Notification.stage_id,
                Notification.kind,
                Organisation.tier,
                Notification.status,
                Notification.contact_id,
            )
            .join(Contact, Contact.id == Notification.contact_id)
            .join(Organisation, Organisation.id == Contact.org_id)
        ).all()
        emails = session.exec(select(Email)).all()
        campaigns = {c: n for c, n in session.exec(select(Case.campaign_id, Case.campaign_id)).all()}
        from models.campaign import Campaign

        specs = {c.id: c.spec() for c in session.exec(select(Campaign)).all()}
    # The whole check, as `shenbao audit verify` runs it: the log, its signed checkpoints, the
    # chain, then state replayed.
    from operations.checkpoints import verify_log

    report = verify_log(rt)
    _ = campaigns
    table: Counter[tuple[str, str, str, str]] = Counter()
    people: dict[tuple[str, str, str, str], set[int]] = defaultdict(set)
    cancelled = 0
    for campaign_id, stage_id, kind, tier, status, contact_id in rows:
        if status == "cancelled":
            cancelled += 1
            continue
        stage_name = "（案件状态变化）"
        if campaign_id and stage_id:
            stage_name = specs[campaign_id].stage(stage_id).name
        key = (
            PROGRAM_LABELS.get(specs[campaign_id].program, specs[campaign_id].program)
            if campaign_id
            else "-",
            stage_name,
            kind_names.get(kind, kind),
            tier_names.get(tier, tier),
        )
        table[key] += 1
        people[key].add(contact_id)
    out.line("")
    out.line("════ 演示汇总 ════")
    out.table(
        "各环节提醒、督办与通知（条目数 / 涉及人数）",
        ["批次", "环节", "类型", "收件人层级", "条目", "人数"],
        [[*k, n, len(people[k])] for k, n in sorted(table.items())],
    )
    status = Counter(e.status for e in emails)
    out.line(
        f"邮件：生成 {len(emails)} 封（每人每次合并为一封），已发送 {status.get('sent', 0)}，"
        f"取消 {status.get('cancelled', 0)}，死信 {status.get('dead', 0)}，待发 {status.get('pending', 0) + status.get('retry', 0)}"
    )
    out.line(
        f"SMTP 服务器实际收到 {len(server)} 封，Message-ID 不重复：{len(set(server.message_ids())) == len(server)}"
    )
    if platforms is not None:
        _channel_summary(rt, platforms)
    out.line(f"发送前复核取消或被新提醒取代的条目：{cancelled}")
    if refusals:
        out.line(f"被拒绝的操作（已记入审计）：{len(refusals)} 次，例如：")
        for r in refusals[:4]:
            out.line(f"  · {r}")
    out.line(f"审计链：{'完好' if report.ok else '发现问题'}，共 {report.checked} 条事件")
    with rt.db.read() as session:
        outcome = session.exec(
            select(Case.campaign_id, Case.kind, Case.state, func.count())
            .where(Case.kind.in_(("cluster_application", "jingpin_application")))  # type: ignore[attr-defined]
            .group_by(Case.campaign_id, Case.kind, Case.state)
        ).all()
    by_campaign: dict[str, list[str]] = defaultdict(list)
    for campaign_id, kind, state, n in sorted(outcome, key=lambda r: (r[0], -r[3])):
        by_campaign[campaign_id].append(f"{machine_for(kind).state_label(state)} {n}")
    for campaign_id, parts in by_campaign.items():
        program = PROGRAM_LABELS.get(specs[campaign_id].program, specs[campaign_id].program)
        out.line(f"{program}申报结果（模拟结束时）：{'，'.join(parts)}")
    example = next((e for e in emails if "escalation" in e.kinds and e.status == "sent"), None) or (
        emails[0] if emails else None
    )
    if example is not None:
        out.line("")
        out.line(f"示例邮件（{format_local(example.created_at)} 发给 {example.to_name} <{example.to_addr}>）")
        out.line(f"主题：{example.subject}")
        out.line(example.text_body)
    out.line(f"输出目录：{out_dir.resolve()}（shenbao.db、eml/、samples/）；用时 {elapsed:.1f} 秒")
