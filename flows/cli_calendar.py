"""``shenbao calendar``: China's working days as versioned legal data."""

from __future__ import annotations

from pathlib import Path

import click

from calendars.workdays import WorkdaysFileError
from flows import output as out
from flows.cli import Fail, _actor, _rt, cli, handled, identity_options, json_option
from operations import acts


@cli.group("calendar")
def calendar_group() -> None:
    """工作日历：加载国务院每年的节假日安排（含调休），重算所有按工作日计算的截止时间与提醒。"""


@calendar_group.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="只显示将会变化的截止时间与提醒，不写入")
@identity_options
@json_option
@click.pass_context
@handled
def calendar_load(
    ctx: click.Context,
    file: Path,
    dry_run: bool,
    as_org: str | None,
    by: str | None,
    admin_reason: str | None,
    as_json: bool,
) -> None:
    """加载一年的节假日安排：YAML 文件（year、source、holidays、working_days），或通知原文（.txt）。

    \b
    通知原文按惯常写法逐条读取，例如：
      一、元旦：1月1日（周五）放假，共1天。
      二、春节：2月6日至2月13日放假调休，共8天。2月14日（周日）上班。
    天数与“共N天”不符、星期与日期不符、读不出的条目，都报错并指明行号，不会跳过。
    每次加载是一个新版本（保存来源与摘要），记入审计；按工作日计算的截止时间逐项重算（各自记入审计），
    并列出变化：环节/案件、原截止 → 新截止（含星期），以及提醒与督办时刻的变化。
    """
    rt = _rt(ctx)
    actor = _actor(rt, as_org, by, admin_reason)
    try:
        report = acts.load_workdays(rt, actor, file, dry_run=dry_run)
    except WorkdaysFileError as exc:
        raise Fail(str(exc)) from exc
    if as_json:
        out.print_json(report.as_dict())
        return
    head = "（试运行，未写入）" if dry_run else ""
    if report.unchanged:
        out.line(f"{report.year}年节假日安排第{report.version}版内容相同，未作改动")
        return
    out.line(
        f"{head}{report.year}年节假日安排第{report.version}版：放假 {report.holidays} 天，调休上班 {report.working_days} 天"
        f"（{report.source}；摘要 {report.digest[:12]}）"
    )
    if report.moved:
        out.line(f"截止时间变化 {len(report.moved)} 项：")
        for m in report.moved:
            out.line(f"  {m.describe()}")
    else:
        out.line("截止时间：无变化")
    if report.wakeups_moved:
        out.line(f"提醒、督办与截止时刻变化 {len(report.wakeups_moved)} 项：")
        for what, old, new in report.wakeups_moved[:50]:
            out.line(f"  {what}：{old or '无'} → {new or '无'}")
        if len(report.wakeups_moved) > 50:
            out.line(f"  …另有 {len(report.wakeups_moved) - 50} 项（--json 可看全部）")
    else:
        out.line("提醒与督办时刻：无变化")
