"""`shenbao serve` and `shenbao flow …`: registered on the main CLI by flows.cli._load_extensions.

Neither imports Prefect unless a flow is actually run: `shenbao serve` runs on APScheduler, and
`import prefect` alone costs about a second.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from calendars.timeutil import format_local
from flows import output as out
from flows.cli import Fail, _rt, cli, handled, json_option

FLOW_NAMES = ("reconcile", "dispatch", "sweep", "report", "import-roster", "import-cases")


@cli.command()
@click.option(
    "--interval",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0.05),
    help="周期对账与发送的间隔（分钟）",
)
@click.option(
    "--horizon",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="提前排定关键时刻（截止、提醒、督办、上班时间）的天数",
)
@click.option(
    "--watch",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="检查截止时间是否调整的间隔（秒）；调整后立即对账并重排",
)
@click.option(
    "--db-retry",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="数据库无法访问时，两次重试之间的秒数（每次对账最多试 3 次）",
)
@click.option("--web/--no-web", default=True, show_default=True, help="同时启动看板（若已安装 dashboard）")
@click.option("--host", default="127.0.0.1", show_default=True, help="看板监听地址")
@click.option("--port", default=8080, show_default=True, type=int, help="看板端口")
@click.option("--standby", is_flag=True, help="已有调度服务在运行时不退出，而是等待它停止后接管")
@click.option("-v", "--verbose", is_flag=True, help="日志中也记录无事可做的周期对账")
@click.pass_context
@handled
def serve(
    ctx: click.Context,
    interval: float,
    horizon: float,
    watch: float,
    db_retry: float,
    web: bool,
    host: str,
    port: int,
    standby: bool,
    verbose: bool,
) -> None:
    """运行调度服务：启动时补跑一次对账与发送，之后在每个关键时刻准时唤醒，并周期性对账发送。

    \b
    - 截止时间（如 6 月 25 日 24:00）一到即关闭窗口，不等下一次轮询；
    - 停机期间错过的截止与提醒，在启动时补上，不重复、不遗漏；
    - 截止时间调整后一分钟内重排提醒；
    - 同一数据库只允许一个调度服务（PostgreSQL 咨询锁 / SQLite 文件锁），第二个拒绝启动（退出码 5）；
    - SIGTERM / Ctrl-C：等进行中的任务完成后退出。
    --now 让服务时钟从指定时刻起按真实速度走（演练用）。
    """
    from flows.service import (
        EXIT_LOCKED,
        Service,
        ServiceClock,
        ServiceLocked,
        ServiceOptions,
        configure_logging,
    )
    from models.schema import current_revision, head_revision

    rt = _rt(ctx)
    if current_revision(rt.db) != head_revision(rt.db):
        raise Fail("数据库结构不是最新版本（或尚未建库），请先运行 shenbao init")
    configure_logging(verbose)
    simulated = rt.now_override or rt.settings.now
    clock = ServiceClock.starting_at(rt.now()) if simulated else ServiceClock()
    # The service has its own clock; commands inside it must not see a frozen --now.
    rt.now_override = None
    rt.settings.now = None
    options = ServiceOptions(
        sweep_minutes=interval,
        horizon_days=horizon,
        watch_seconds=watch,
        db_retry_seconds=db_retry,
        web=web,
        host=host,
        port=port,
        standby=standby,
    )
    try:
        Service(rt, options, clock).run()
    except ServiceLocked as exc:
        raise Fail(str(exc), EXIT_LOCKED) from exc


# -- Prefect flows ---------------------------------------------------------------------------------


@cli.group()
def flow() -> None:
    """Prefect 流程：对账、发送、日报、导入。未配置 PREFECT_API_URL 时在本机临时运行（无需服务器）。"""


def prefect_defaults() -> None:
    """Quiet, local-friendly Prefect defaults; an operator's own settings win."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    # The temporary local server takes 6–14 s to come up here; the default timeout is tight.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "60")


@flow.command("run")
@click.argument("name", type=click.Choice(FLOW_NAMES))
@click.option(
    "--file",
    "file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="导入的文件（import-roster / import-cases）",
)
@click.option("--campaign", "campaign_id", help="批次编号（import-cases）")
@json_option
@click.pass_context
@handled
def flow_run(
    ctx: click.Context, name: str, file: Path | None, campaign_id: str | None, as_json: bool
) -> None:
    """运行一个 Prefect 流程：reconcile（对账）、dispatch（发送）、sweep（对账+发送）、report（日报）、
    import-roster / import-cases（导入文件）。"""
    rt = _rt(ctx)
    if name.startswith("import-") and file is None:
        raise Fail(f"{name} 需要 --file 指定导入文件")
    if name == "import-cases" and not campaign_id:
        raise Fail("import-cases 需要 --campaign 指定批次")
    prefect_defaults()
    # Flows read their settings from the environment (as a worker would): never pass the
    # database URL as a parameter, Prefect stores and shows parameters.
    if rt.settings.database_url:
        os.environ["SHENBAO_DATABASE_URL"] = rt.settings.database_url
    from flows import prefect_flows

    result: Any = prefect_flows.run_by_name(
        name, now=rt.now_override, file=str(file) if file else None, campaign=campaign_id
    )
    if as_json:
        out.print_json(result)
        return
    _print_flow_result(name, result)


def _print_flow_result(name: str, result: dict[str, Any]) -> None:
    from calendars.timeutil import parse_instant

    at = format_local(parse_instant(result["now"])) if result.get("now") else ""
    if name == "report":
        out.line(result["markdown"])
        return
    if name.startswith("import-"):
        out.line(
            f"{result['file']}：导入 {len(result['created'])} 个，更新 {result['updated']} 个，"
            f"新建单位 {result['organisations']} 个"
        )
        return
    if "tick" in result:
        t = result["tick"]
        written = "、".join(f"{k} {v}" for k, v in sorted(t["written"].items())) or "无"
        out.line(
            f"{at} 对账：新写入 {written}；取消 {t['cancelled']}；生成邮件 {t['emails']} 封；"
            f"逾期关闭 {len(t['lapsed'])} 件"
        )
    if "sent" in result:
        s = result["sent"]
        out.line(
            f"{at} 发送：成功 {s['sent']}，待重试 {s['retry']}，死信 {s['dead']}，复核取消 {s['cancelled']}"
            + ("；邮件服务器无法连接，邮件留在发件箱" if s.get("server_unreachable") else "")
        )
