"""``shenbao sync``: bring shenbao in line with a provincial platform's list export."""

from __future__ import annotations

from pathlib import Path

import click

from calendars.timeutil import format_local
from flows import output as out
from flows.cli import (
    EXIT_REFUSED,
    _actor,
    _default_campaign,
    _rt,
    cli,
    handled,
    identity_options,
    json_option,
)
from models.sync import SyncReport
from operations import acts


@cli.command("sync")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--campaign", "campaign_id", help="批次编号，如 2026-cluster-selection")
@click.option("--dry-run", is_flag=True, help="只显示差异（新增、状态变化、无法对应的行、冲突），不写入")
@identity_options
@json_option
@click.pass_context
@handled
def sync(
    ctx: click.Context,
    file: Path,
    campaign_id: str | None,
    dry_run: bool,
    as_org: str | None,
    by: str | None,
    admin_reason: str | None,
    as_json: bool,
) -> None:
    """按平台导出的申报清单（CSV/XLSX）同步案件状态（数智经信工作台、企业之家网）。

    \b
    列名与状态用语在批次文件的 platform: 一节声明；按申报编号、否则按申报单位与赛道（精品：产品）
    对应案件，逐步执行状态机操作（操作人「平台同步」，并记录由谁导入），导出含提交时间/状态时间的，按平台时间判断是否逾期。
    与 shenbao 记录矛盾的行列为冲突、不写入（须先经撤销推荐、退回等决定才能到达的平台状态，
    时间早于案件最后一次变化的较早导出，也是冲突）；其余一次性写入，任何一步被拒绝则全部不写入。
    平台已受理但不符合申报条件的申报照样写入，并列出不符合的条件；此前导出中有、本导出中没有的
    未办结申报列出作提示。同一文件再次同步不会有任何改动。规则见 calendars/campaigns/FORMAT.md 4.1。

    \b
    退出码：0 全部一致或已写入；2 文件有误（缺列等，指明文件、行、列）；
            3 有冲突或无法对应的行（其余已写入），或某一步被拒绝（全部未写入）。
    """
    rt = _rt(ctx)
    campaign_id = _default_campaign(rt, campaign_id)
    requested_by = _actor(rt, as_org, by, admin_reason)  # who hands the export over
    report = acts.sync_platform(rt, requested_by, campaign_id, file, dry_run=dry_run)
    if as_json:
        out.print_json({"ok": not report.needs_attention} | report.as_dict())
    else:
        _print(report)
    if report.needs_attention:
        ctx.exit(EXIT_REFUSED)


def _print(report: SyncReport) -> None:
    head = f"{report.source}（{report.platform}，{report.rows} 行）"
    if report.already_synced_at is not None:
        out.line(
            f"{head}：该文件已于 {format_local(report.already_synced_at)} 同步过，结果相同，未作任何改动"
        )
        _print_open(report)  # what still needs a person is shown again, not forgotten
        return
    if report.new:
        out.table(
            f"新增申报 {len(report.new)} 个",
            ["行", "案件", "名称", "平台状态"],
            [(n.row, n.ref, n.title, n.state_label) for n in report.new],
        )
    if report.changes:
        out.table(
            f"状态变化 {len(report.changes)} 个",
            ["行", "案件", "名称", "原状态", "平台状态", "依次执行", "生效时间"],
            [
                (
                    ch.row,
                    ch.ref,
                    ch.title,
                    ch.from_label,
                    ch.to_label,
                    " → ".join(ch.labels),
                    format_local(ch.effective_at) if ch.effective_at else "同步时",
                )
                for ch in report.changes
            ],
        )
    if report.unqualified:
        out.table(
            f"不符合申报条件的申报 {len(report.unqualified)} 个（平台已受理，按平台记录写入，请审核时核实）",
            ["行", "案件", "名称", "不符合的条件"],
            [(u.row, u.ref, u.title, "\n".join(u.findings)) for u in report.unqualified],
        )
    if report.absent:
        out.table(
            f"此前的导出中有、本导出中没有的申报 {len(report.absent)} 个（仅提示，未作改动；"
            "导出可能只含部分申报，平台上确已删除的请人工核实）",
            ["案件", "名称", "shenbao 状态", "最近一次出现在"],
            [(a.ref, a.title, a.state_label, a.last_file) for a in report.absent],
        )
    _print_open(report)
    if report.refused is not None:
        r = report.refused
        out.error(f"第{r.row}行 {r.ref}「{r.action}」被拒绝：{r.message}")
        out.line(
            (
                "试运行：写入时将整个文件不同步。"
                if report.dry_run
                else "整个文件未同步，数据库未作任何修改（仅记录了这次拒绝）。"
            )
            + f"{r.advice}，然后再同步。"
        )
        return
    summary = (
        f"{head}：新增 {len(report.new)}，状态变化 {len(report.changes)}，无变化 {report.unchanged}，"
        f"无法对应 {len(report.unplaced)}，冲突 {len(report.conflicts)}"
    )
    if report.dry_run:
        out.line(f"{summary}。（试运行，未写入；去掉 --dry-run 后写入）")
    else:
        out.line(f"{summary}。已写入{'，冲突与无法对应的行未写入' if report.needs_attention else ''}。")


def _print_open(report: SyncReport) -> None:
    if report.unplaced:
        out.table(
            f"无法对应的行 {len(report.unplaced)} 个（未写入）",
            ["文件", "行", "原因"],
            [(u.file, u.row, u.why) for u in report.unplaced],
        )
    if report.conflicts:
        out.table(
            f"冲突 {len(report.conflicts)} 个（未写入，须人工核实）",
            ["行", "案件", "平台显示", "shenbao 记录", "原因"],
            [(cf.row, cf.ref, cf.platform_says, cf.shenbao_has, cf.why) for cf in report.conflicts],
        )
