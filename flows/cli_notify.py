"""Commands that chase people: tick (reconcile), send (dispatch), simulate, outbox, demo."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import click
from sqlalchemy import func
from sqlmodel import col, select

from calendars.timeutil import format_local, parse_instant
from flows import output as out
from flows.cli import Fail, _actor, _rt, cli, handled, identity_options, json_option
from models.channels import C_FOLDED, ChannelAttempt, ChannelMessage
from models.outbox import E_CANCELLED, E_DEAD, E_PENDING, E_RETRY, E_SENT, DeliveryAttempt, Email
from notifications.channels.base import CHANNEL_LABELS, CHANNELS
from operations import acts, sweep
from operations.runtime import Runtime

# `shenbao send` could reach no SMTP server: nothing was tried, the mail waits in the outbox.
EXIT_SMTP_UNREACHABLE = 6  # 5 is taken: another `shenbao serve` holds the database
# What a coordinator reads after `shenbao send` (the --json keys stay as they are).
_SEND_LABELS = {
    "sent": "已发送",
    "retry": "待重试",
    "deferred": "服务器暂不可达、已放回",
    "unknown": "结果未知（稍后重试）",
    "dead": "死信",
    "cancelled": "发送前复核取消",
    "lost": "租约失效未发",
}
_CHANNEL_OUTCOMES = {
    "sent": "已发送",
    "retry": "待重试",
    "unknown": "结果未知",
    "dead": "死信",
    "cancelled": "复核取消",
    "folded": "并入汇总",
    "fallback": "转其他渠道",
    "duplicate": "今日已发相同内容",
    "lost": "租约失效未发",
}


@cli.command()
@json_option
@click.pass_context
@handled
def tick(ctx: click.Context, as_json: bool) -> None:
    """对账一次：关闭已截止的窗口，写入到期的提醒、督办与通知，合并成每人一封邮件（不发送）。

    可重复运行：再次运行、晚运行或崩溃后重跑都不会产生重复。
    """
    rt = _rt(ctx)
    now = rt.now()
    report = sweep.reconcile(rt, now)
    if as_json:
        out.print_json(report.as_dict())
        return
    written = "、".join(f"{k} {v}" for k, v in sorted(report.written.items())) or "无"
    out.line(
        f"{format_local(now)} 对账：新写入 {written}；取消 {report.cancelled}；"
        f"生成邮件 {report.emails} 封；逾期关闭 {len(report.lapsed)} 件"
    )
    _print_waiting(report.waiting)


def _print_waiting(waiting: dict[str, str]) -> None:
    """Stages whose reminders or escalations wait for a year's working days: said, never silent."""
    for where, why in sorted(waiting.items()):
        out.line(f"  ⚠ {where} 的提醒与督办暂缓：{why}，其余环节照常")


@cli.command()
@click.option("--processes", default=1, show_default=True, help="发送进程数（多进程提高吞吐）")
@json_option
@click.pass_context
@handled
def send(ctx: click.Context, processes: int, as_json: bool) -> None:
    """发送发件箱中到期的邮件（SMTP 设置见 SHENBAO_SMTP_*），失败按指数退避重试，多次失败转入死信。"""
    rt = _rt(ctx)
    report = sweep.dispatch(rt, rt.now(), processes=processes)
    data = report.as_dict() if hasattr(report, "as_dict") else report.__dict__
    if report.server_unreachable and report.sent == 0:
        raise Fail(
            f"无法连接 SMTP 服务器：{report.server_error}。{report.deferred} 封邮件未发送，"
            "已放回发件箱稍后重试（不计入尝试次数）",
            EXIT_SMTP_UNREACHABLE,
            report=data,
        )
    if as_json:
        out.print_json(data)
        return
    counts = [(label, data.get(key)) for key, label in _SEND_LABELS.items()]
    out.line(
        "发送结果："
        + "，".join(f"{label} {n}" for label, n in counts if isinstance(n, int) and (n or label == "已发送"))
    )
    for channel, outcomes in sorted((data.get("channels") or {}).items()):
        words = "，".join(f"{_CHANNEL_OUTCOMES.get(k, k)} {n}" for k, n in sorted(outcomes.items()) if n)
        out.line(f"{CHANNEL_LABELS.get(channel, channel)}：{words}")


@cli.group(invoke_without_command=True)
@click.option(
    "--status",
    type=click.Choice([E_PENDING, E_RETRY, "sending", E_SENT, E_DEAD, E_CANCELLED, C_FOLDED]),
    help="只看某一状态",
)
@click.option(
    "--channel",
    type=click.Choice(["all", *CHANNELS]),
    default="all",
    show_default=True,
    help="只看某一渠道：email 邮件、zzd 浙政钉、robot 钉钉群机器人、sms 短信",
)
@click.option("--limit", default=50, show_default=True)
@json_option
@click.pass_context
@handled
def outbox(ctx: click.Context, status: str | None, channel: str, limit: int, as_json: bool) -> None:
    """查看发件箱：每条消息的渠道、收件人、主题、状态、尝试次数与最后错误；先列出各渠道的死信数。

    死信重新排队：outbox retry（--channel 指定渠道）。
    """
    if ctx.invoked_subcommand is not None:
        return
    rt = _rt(ctx)
    data: list[dict[str, Any]] = []
    with rt.db.read() as session:
        dead = {
            "email": session.exec(select(func.count()).select_from(Email).where(Email.status == E_DEAD)).one()
        }
        for ch, n in session.exec(
            select(ChannelMessage.channel, func.count())
            .where(ChannelMessage.status == E_DEAD)
            .group_by(ChannelMessage.channel)
        ).all():
            dead[ch] = n
        if channel in ("all", "email"):
            query = select(Email).order_by(Email.id.desc()).limit(limit)  # type: ignore[union-attr]
            if status:
                query = query.where(Email.status == status)
            emails = session.exec(query).all()
            last_outcome: dict[int | None, str] = {
                a.email_id: a.outcome
                for a in session.exec(
                    select(DeliveryAttempt)
                    .where(DeliveryAttempt.email_id.in_([e.id for e in emails]))  # type: ignore[attr-defined]
                    .order_by(DeliveryAttempt.id)  # type: ignore[arg-type]
                ).all()
            }
            data += [
                {
                    "channel": "email",
                    "id": e.id,
                    "to": e.to_addr,
                    "name": e.to_name,
                    "subject": e.subject,
                    "status": e.status,
                    # "unknown": handed over, no final reply; maybe delivered, retried hours later.
                    "last_outcome": last_outcome.get(e.id),
                    "attempts": e.attempts,
                    "created_at": e.created_at,
                    "sent_at": e.sent_at,
                    "last_error": e.last_error,
                    "message_id": e.message_id,
                }
                for e in emails
            ]
        if channel != "email":
            cquery = select(ChannelMessage).order_by(ChannelMessage.id.desc()).limit(limit)  # type: ignore[union-attr]
            if channel != "all":
                cquery = cquery.where(ChannelMessage.channel == channel)
            if status:
                cquery = cquery.where(ChannelMessage.status == status)
            messages = session.exec(cquery).all()
            last_of: dict[int | None, str] = {
                a.message_id: a.outcome
                for a in session.exec(
                    select(ChannelAttempt)
                    .where(ChannelAttempt.message_id.in_([m.id for m in messages]))  # type: ignore[attr-defined]
                    .order_by(ChannelAttempt.id)  # type: ignore[arg-type]
                ).all()
            }
            data += [
                {
                    "channel": m.channel,
                    "id": m.id,
                    "to": m.address,
                    "name": m.to_name,
                    "subject": m.title,
                    "status": m.status,
                    "last_outcome": last_of.get(m.id),
                    "attempts": m.attempts,
                    "items": m.items,
                    "created_at": m.created_at,
                    "sent_at": m.sent_at,
                    "last_error": m.last_error,
                    "folded_into": m.folded_into,
                    "fallback_of": m.fallback_of,
                }
                for m in messages
            ]
    data.sort(key=lambda d: d["created_at"], reverse=True)
    data = data[:limit]
    if as_json:
        out.print_json(data)
        return
    dead_line = "，".join(f"{CHANNEL_LABELS.get(ch, ch)} {n}" for ch, n in dead.items() if n)
    out.line(f"死信：{dead_line or '无'}")
    out.table(
        f"发件箱（最近 {len(data)} 条）",
        ["渠道", "编号", "收件人", "主题", "状态", "尝试", "生成", "错误"],
        [
            [
                CHANNEL_LABELS.get(d["channel"], d["channel"]),
                d["id"],
                f"{d['name']} <{d['to']}>",
                d["subject"],
                d["status"]
                + ("（结果未知）" if d["last_outcome"] == "unknown" else "")
                + (f"（并入 #{d['folded_into']}）" if d.get("folded_into") else ""),
                d["attempts"],
                format_local(d["created_at"]),
                d["last_error"][:40],
            ]
            for d in data
        ],
    )


@outbox.command("retry")
@click.argument("email_ids", nargs=-1, type=int)
@click.option(
    "--channel",
    type=click.Choice(list(CHANNELS)),
    default="email",
    show_default=True,
    help="死信所在的渠道（编号属于该渠道的发件箱）",
)
@click.option("--all-dead", is_flag=True, help="所有死信")
@click.option("--reason", required=True, help="为何重新排队（记入审计），如：地址已更正")
@identity_options
@json_option
@click.pass_context
@handled
def outbox_retry(
    ctx: click.Context,
    email_ids: tuple[int, ...],
    channel: str,
    all_dead: bool,
    reason: str,
    as_org: str | None,
    by: str | None,
    admin_reason: str | None,
    as_json: bool,
) -> None:
    """把某一渠道的死信重新放回发件箱（立即到期、尝试次数清零），每条记一条审计。"""
    if bool(email_ids) == all_dead:
        raise Fail("请给出邮件编号，或用 --all-dead（二者选一）")
    rt = _rt(ctx)
    actor = _actor(rt, as_org, by, admin_reason)
    requeued = acts.requeue_dead_letters(
        rt, actor, None if all_dead else list(email_ids), reason, channel=channel
    )
    if as_json:
        out.print_json({"channel": channel, "requeued": requeued})
        return
    label = CHANNEL_LABELS.get(channel, channel)
    out.line(f"已重新排队{label} {len(requeued)} 条：{'、'.join(map(str, requeued)) or '无死信'}")


def _parse_step(text: str | None) -> timedelta | None:
    if not text:
        return None
    units = {"m": "minutes", "h": "hours", "d": "days"}
    try:
        return timedelta(**{units[text[-1]]: float(text[:-1])})
    except (KeyError, ValueError):
        raise Fail(f"--step 应如 30m、6h、1d，收到：{text}") from None


def _instants(
    session: Any, rt: Runtime, start: datetime, end: datetime, step: timedelta | None
) -> list[datetime]:
    """Every ``step`` from ``start``, or, without one, every instant that matters. Two wake-ups may
    share an instant (a last-day reminder at 08:30 and the start of working hours): it is ticked
    once, or the timeline would list that instant's emails twice."""
    from notifications.wakeups import wakeups

    if step is None:
        return sorted({w.at for w in wakeups(session, rt.calendar, start, end)})
    instants, t = [], start + step
    while t <= end:
        instants.append(t)
        t += step
    return instants


def _entry(
    session: Any, now: datetime, report: Any, before: int, *, status: str | None = None
) -> dict[str, Any]:
    """One line of the timeline: what the tick did and the emails it wrote (ids above ``before``,
    so a re-run over the same instants lists only its own)."""
    new = session.exec(select(Email).where(col(Email.id) > before).order_by(col(Email.id))).all()
    return {
        "at": now,
        "tick": report.as_dict(),
        "emails": [
            {
                "id": e.id,
                "to": e.to_addr,
                "name": e.to_name,
                "subject": e.subject,
                "status": status or e.status,
            }
            for e in new
        ],
    }


def simulate_timeline(
    rt: Runtime,
    start: datetime,
    until: datetime,
    *,
    step: timedelta | None,
    send: bool,
    on_step: Any = None,
    extra_instants: list[datetime] | None = None,
) -> list[dict[str, Any]]:
    """Move the clock from ``start`` to ``until``, ticking (and sending) at each instant.

    Without ``step`` the clock jumps from one instant that matters to the next (deadlines,
    reminder steps, escalation rounds, the start of working hours), which is what the
    scheduler service does in real time.
    """
    from notifications.wakeups import wakeups

    with rt.db.read() as session:
        instants = _instants(session, rt, start, until, step)
    remaining = sorted(set(instants) | {i for i in (extra_instants or []) if start < i <= until})
    timeline: list[dict[str, Any]] = []
    i = 0
    while remaining:
        now = remaining.pop(0)
        i += 1
        if on_step is not None:
            on_step(now)
        with rt.db.read() as session:
            # Emails this step writes: a re-run over the same instants lists only its own.
            before = session.exec(select(func.max(Email.id))).one() or 0
        done = sweep.step(rt, now, send=send)
        with rt.db.read() as session:
            entry = _entry(session, now, done.tick, before)
        if done.sent is not None:
            entry["sent"] = dict(done.sent.__dict__)
        timeline.append(entry)
        if step is None and on_step is not None:
            # An action may have moved a deadline or announced one: its reminder steps and
            # escalation rounds are new instants, planned afresh as the scheduler service does.
            with rt.db.read() as session:
                fresh = {w.at for w in wakeups(session, rt.calendar, now, until)}
            remaining = sorted(set(remaining) | fresh)
        if rt.progress:
            rt.progress(i, i + len(remaining), now, entry)
    return timeline


@cli.command()
@click.option("--until", "until", required=True, metavar="TIME", help="模拟到此时刻，如 2026-08-15")
@click.option("--step", metavar="间隔", help="固定步长（30m、6h、1d）；默认按各关键时刻跳转")
@click.option("--dry-run", is_flag=True, help="只看不做：结束时回滚所有写入，不发送任何邮件")
@click.option(
    "--send/--no-send", "do_send", default=True, show_default=True, help="每步之后是否通过 SMTP 发送"
)
@json_option
@click.pass_context
@handled
def simulate(
    ctx: click.Context, until: str, step: str | None, dry_run: bool, do_send: bool, as_json: bool
) -> None:
    """从当前时间（--now）推进时钟到 --until，每一步对账并发送，打印将要（或已经）发出的邮件时间线。"""
    rt = _rt(ctx)
    start, end = rt.now(), parse_instant(until)
    if end <= start:
        raise Fail(f"--until（{format_local(end)}）应晚于当前时间（{format_local(start)}）")
    if dry_run:
        timeline = _dry_run(rt, start, end, _parse_step(step))
    else:
        rt.progress = _progress_printer(as_json)
        timeline = simulate_timeline(rt, start, end, step=_parse_step(step), send=do_send)
    if as_json:
        out.print_json(timeline)
        return
    _print_timeline(timeline, dry_run=dry_run)


def _progress_printer(quiet: bool) -> Any:
    def progress(i: int, n: int, now: datetime, entry: dict[str, Any]) -> None:
        if not quiet:
            out.err_console.print(
                f"[{i}/{n}] {format_local(now)}  新邮件 {len(entry['emails'])} 封",
                markup=False,
                highlight=False,
            )

    return progress


def _dry_run(rt: Runtime, start: datetime, end: datetime, step: timedelta | None) -> list[dict[str, Any]]:
    """The same steps as the real run, in one transaction that is rolled back: nothing stays,
    nothing is sent."""
    timeline = []
    with sweep.rehearsal(rt) as rehearsal:
        session = rehearsal.session
        for now in _instants(session, rt, start, end, step):
            before = session.exec(select(func.max(Email.id))).one() or 0
            done = sweep.step(rt, now, send=False, within=rehearsal)
            timeline.append(_entry(session, now, done.tick, before, status="dry-run"))
    return timeline


def _print_timeline(timeline: list[dict[str, Any]], *, dry_run: bool) -> None:
    total = 0
    for entry in timeline:
        if not entry["emails"] and not entry["tick"]["lapsed"]:
            continue
        out.line(f"── {format_local(entry['at'])}")
        if entry["tick"]["lapsed"]:
            out.line(f"   逾期关闭：{'、'.join(entry['tick']['lapsed'])}")
        for e in entry["emails"]:
            total += 1
            out.line(f"   → {e['name']} <{e['to']}>  {e['subject']}")
    out.line(f"共 {total} 封邮件{'（演练，未写入、未发送）' if dry_run else ''}")
    waiting: dict[str, str] = {}
    for entry in timeline:
        waiting |= entry["tick"].get("waiting") or {}
    _print_waiting(waiting)
