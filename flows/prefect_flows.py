"""Prefect flows: the sweeps of `shenbao serve`, a daily status report and file imports, run by Prefect.

Thin on purpose. Each flow builds the runtime from the environment (SHENBAO_*, as a worker's
systemd unit sets it), reads the clock once, and calls the same functions as the CLI and the
service (the named operations in ``operations/``). Prefect adds
retries, logs and a record of every run; the domain neither knows nor cares.

Why one flow per sweep and not one per case: a flow run costs Prefect's bookkeeping (tens of
milliseconds for an async run in local mode, seconds for a deployment run started by a worker),
while reconciling one case costs well under a millisecond. A sweep over every case is one
flow run; bench/bench_prefect.py measures the difference.

Flows are async where they can be: an async flow run costs about a tenth of a sync one here
(no heartbeat thread), and the dispatcher is asyncio anyway. The database work of reconcile
and imports is synchronous SQLAlchemy, so it runs in a worker thread.

Parameters are only what a person would choose (the instant, a file, a campaign): the database
URL and the SMTP password stay in the environment, because Prefect stores and shows parameters.

Importing this module imports Prefect (about a second): only ``shenbao flow`` commands, the
deployments in deploy/prefect.yaml and the smoke tests import it.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from calendars.timeutil import format_deadline, format_local
from flows.service import describe_dispatch, describe_tick, is_db_unreachable
from operations import acts, identity, sweep
from operations.runtime import Runtime
from operations.settings import Settings


def runtime(now: str | None = None) -> Runtime:
    """Settings from the environment, validated once; ``now`` as ``--now`` would give it."""
    return Runtime(Settings(), now_override=now)


# -- reconcile and dispatch --------------------------------------------------------------------


async def _reconcile(rt: Runtime, at: Any) -> dict[str, Any]:
    report = await asyncio.to_thread(sweep.reconcile, rt, at)
    get_run_logger().info("%s 对账：%s", format_local(at), describe_tick(report))
    return report.as_dict()


async def _dispatch(rt: Runtime, at: Any) -> dict[str, Any]:
    report = await asyncio.to_thread(sweep.dispatch, rt, at, worker=sweep.worker_name("prefect"))
    logger = get_run_logger()
    (logger.warning if report.server_unreachable else logger.info)(
        "%s 发送：%s", format_local(at), describe_dispatch(report)
    )
    return asdict(report)


@flow(
    name="shenbao-reconcile",
    retries=2,
    retry_delay_seconds=30,
    description="对账：关闭已截止的窗口，写入到期的提醒、督办与通知，合并成邮件（不发送）。可重复运行。",
)
async def reconcile_flow(now: str | None = None) -> dict[str, Any]:
    rt = runtime(now)
    at = rt.now()
    try:
        return {"now": at.isoformat(), "tick": await _reconcile(rt, at)}
    finally:
        rt.db.dispose()


@flow(
    name="shenbao-dispatch",
    retries=2,
    retry_delay_seconds=30,
    description="发送发件箱中到期的邮件；可多个同时运行（行级认领，不会重复发送）。",
)
async def dispatch_flow(now: str | None = None) -> dict[str, Any]:
    rt = runtime(now)
    at = rt.now()
    try:
        return {"now": at.isoformat(), "sent": await _dispatch(rt, at)}
    finally:
        rt.db.dispose()


@flow(
    name="shenbao-sweep",
    retries=2,
    retry_delay_seconds=30,
    description="对账并发送（shenbao serve 每次唤醒所做的事）：同一时刻读一次时钟。",
)
async def sweep_flow(now: str | None = None) -> dict[str, Any]:
    rt = runtime(now)
    at = rt.now()
    try:
        tick = await _reconcile(rt, at)
        sent = await _dispatch(rt, at)
        return {"now": at.isoformat(), "tick": tick, "sent": sent}
    finally:
        rt.db.dispose()


# -- the daily status report -----------------------------------------------------------------------


def status_report(rt: Runtime, at: Any) -> dict[str, Any]:
    """Where each campaign stands and how the outbox is doing, as data and as Markdown (Chinese)."""
    from sqlalchemy import func, select

    from models.campaign import Campaign
    from models.outbox import E_DEAD, Email
    from models.status import stage_views

    lines = [f"# 申报工作日报（{format_local(at)}）", ""]
    data: dict[str, Any] = {"now": at.isoformat(), "campaigns": [], "outbox": {}, "dead_letters": []}
    with rt.db.read() as session:
        for campaign in session.execute(select(Campaign).order_by(Campaign.id)).scalars():
            views = stage_views(session, campaign, at, rt.calendar)
            data["campaigns"].append(
                {"id": campaign.id, "name": campaign.name, "stages": [v.as_dict() for v in views]}
            )
            lines += [
                f"## {campaign.name}",
                "",
                "| 环节 | 截止时间 | 剩余工作日 | 待办 |",
                "|---|---|---|---|",
            ]
            for v in views:
                due = format_deadline(v.due_at) if v.due_at else "另行通知"
                if v.working_days_left is None:
                    left = "—"
                elif v.working_days_left < 0:
                    left = "已截止"
                else:
                    left = str(v.working_days_left)
                flag = " ⚠" if v.overdue else ""
                lines.append(f"| {v.stage.name} | {due} | {left} | {v.pending}{flag} |")
            lines.append("")
        counts = dict(session.execute(select(Email.status, func.count()).group_by(Email.status)).all())
        data["outbox"] = {str(k): int(v) for k, v in counts.items()}
        dead = session.execute(
            select(Email.to_addr, Email.subject, Email.last_error)
            .where(Email.status == E_DEAD)
            .order_by(Email.id.desc())
            .limit(20)
        ).all()  # type: ignore[union-attr]
        data["dead_letters"] = [{"to": t, "subject": s, "error": e} for t, s, e in dead]
    names = {
        "pending": "待发",
        "sending": "发送中",
        "sent": "已发送",
        "retry": "待重试",
        "dead": "死信",
        "cancelled": "已取消",
    }
    lines += [
        "## 发件箱",
        "",
        "，".join(f"{names.get(k, k)} {v}" for k, v in sorted(data["outbox"].items())) or "空",
        "",
    ]
    if data["dead_letters"]:
        lines += ["### 死信（最近 20 封，需人工处理）", ""]
        lines += [f"- {d['to']}：{d['subject']}（{d['error']}）" for d in data["dead_letters"]]
    data["markdown"] = "\n".join(lines)
    return data


@flow(
    name="shenbao-status-report",
    retries=1,
    retry_delay_seconds=60,
    description="日报：各批次各环节的截止时间与待办数量、发件箱状态与死信。",
)
async def status_report_flow(now: str | None = None) -> dict[str, Any]:
    rt = runtime(now)
    at = rt.now()
    try:
        report = await asyncio.to_thread(status_report, rt, at)
    finally:
        rt.db.dispose()
    overdue = sum(1 for c in report["campaigns"] for s in c["stages"] if s["overdue"])
    get_run_logger().info(
        "%s 日报：%d 个批次，%d 个环节逾期，死信 %d 封",
        format_local(at),
        len(report["campaigns"]),
        overdue,
        report["outbox"].get("dead", 0),
    )
    await create_markdown_artifact(
        markdown=report["markdown"], key="shenbao-status-report", description="申报工作日报"
    )
    return report


# -- imports ---------------------------------------------------------------------------------------


def _retry_if_db_down(_task: Any, _run: Any, state: Any) -> bool:
    """Retry a lost database; a file with bad rows stays bad, so it is not retried."""
    try:
        state.result()
    except Exception as exc:
        return is_db_unreachable(exc)
    return False


@task(retries=2, retry_delay_seconds=10, retry_condition_fn=_retry_if_db_down)
def _import_file(kind: str, path: str, campaign: str | None, now: str | None) -> dict[str, Any]:
    rt = runtime(now)
    try:
        # A worker imports as the person its unit names (SHENBAO_ACTOR="省经信厅/张伟").
        with rt.db.read() as session:
            actor = identity.resolve(session, identity.claim_from(None, None, None, rt.settings.actor))
        at = rt.now()
        if kind == "roster":
            summary = acts.import_roster(rt, actor, Path(path), now=at)
        else:
            summary = acts.import_cases(rt, actor, campaign or "", Path(path), now=at)
        return {"now": at.isoformat(), **summary.__dict__}
    finally:
        rt.db.dispose()


@flow(name="shenbao-import-roster", description="导入工作人员信息汇总表（附件3，含邮箱列）：全有或全无。")
async def import_roster_flow(path: str, now: str | None = None) -> dict[str, Any]:
    result = await asyncio.to_thread(_import_file, "roster", path, None, now)
    get_run_logger().info(
        "%s：%d 行，新建单位 %d 个", Path(path).name, result["rows"], result["organisations"]
    )
    return result


@flow(
    name="shenbao-import-cases",
    description="导入申报（集群遴选 / 制造精品）：全有或全无，有问题的行逐一列出。",
)
async def import_cases_flow(path: str, campaign: str, now: str | None = None) -> dict[str, Any]:
    result = await asyncio.to_thread(_import_file, "cases", path, campaign, now)
    get_run_logger().info("%s：导入 %d 个申报到 %s", Path(path).name, len(result["created"]), campaign)
    return result


# -- for `shenbao flow run` --------------------------------------------------------------------------


def run_by_name(
    name: str, *, now: str | None = None, file: str | None = None, campaign: str | None = None
) -> dict[str, Any]:
    """Run one flow in this process (Prefect's local mode unless PREFECT_API_URL is set)."""
    if name == "reconcile":
        return asyncio.run(reconcile_flow(now=now))
    if name == "dispatch":
        return asyncio.run(dispatch_flow(now=now))
    if name == "sweep":
        return asyncio.run(sweep_flow(now=now))
    if name == "report":
        return asyncio.run(status_report_flow(now=now))
    if name == "import-roster":
        return asyncio.run(import_roster_flow(path=file or "", now=now))
    if name == "import-cases":
        return asyncio.run(import_cases_flow(path=file or "", campaign=campaign or "", now=now))
    raise ValueError(f"未知的流程：{name}")
