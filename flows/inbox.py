"""The sync inbox: platform exports dropped into a folder are synced by ``shenbao serve``.

Layout: ``<inbox>/<批次编号>/<file>.csv|.xlsx`` (``SHENBAO_SYNC_INBOX``, default ``<home>/inbox``).
Each file goes through :func:`operations.acts.sync_platform`, exactly as ``shenbao sync FILE
--campaign <批次编号>`` would, then moves to ``done/`` or ``failed/`` beside it with a ``.txt``
saying in Chinese what happened (``failed/``: a bad layout, a refused step, conflicts or rows
that could not be placed — what ``shenbao sync`` exits 3 or 2 for).

A file still being written must not be read half-way. Two rules, both cheap:

- only names ending in ``.csv`` / ``.xlsx`` (and not hidden, not an Office ``~$`` lock file) are
  read, so writing ``x.xlsx.part`` and renaming it to ``x.xlsx`` when complete is always safe;
- a file modified in the last :data:`SETTLE_SECONDS` is left for the next check, for copy tools
  that write in place under the final name.

Nobody's identity comes with a file in a folder: the audit records the inbox (host and folder)
as who requested the sync, and says that who put the file there is not known.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from calendars.timeutil import format_local
from models.context import Actor
from models.sheets import ImportRejected
from models.sync import SyncReport
from operations import acts
from operations.runtime import Runtime

log = logging.getLogger("shenbao.inbox")

SUFFIXES = (".csv", ".xlsx")
DONE = "done"
FAILED = "failed"
# Long enough for a copy over a slow share to show progress in its modification time.
SETTLE_SECONDS = 30.0


@dataclass(frozen=True)
class InboxOutcome:
    campaign_id: str
    name: str  # the file's name as dropped
    moved_to: Path
    ok: bool  # False: it went to failed/
    summary: str  # the first line of the .txt beside it


def inbox_actor(folder: Path, host: str | None = None) -> Actor:
    """Who requested a sync from the inbox: the folder on this host, never a person."""
    return Actor(name=f"收件箱（放入者未知）@{host or socket.gethostname()}:{folder}")


def ready_files(inbox: Path, *, settle_seconds: float, wall: float) -> list[tuple[str, Path]]:
    """(批次编号, file) for every complete export waiting in the inbox, oldest first."""
    found: list[tuple[float, str, Path]] = []
    if not inbox.is_dir():
        return []
    for folder in sorted(p for p in inbox.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in folder.iterdir():
            if not path.is_file() or path.name.startswith((".", "~$")):
                continue
            if path.suffix.lower() not in SUFFIXES:
                continue
            mtime = path.stat().st_mtime
            if wall - mtime < settle_seconds:
                continue  # perhaps still being copied: the next check takes it
            found.append((mtime, folder.name, path))
    return [(campaign, path) for _m, campaign, path in sorted(found)]


def check_inbox(
    rt: Runtime,
    inbox: Path,
    *,
    now: datetime,
    settle_seconds: float = SETTLE_SECONDS,
    wall: Callable[[], float] = time.time,
    host: str | None = None,
) -> list[InboxOutcome]:
    """Sync every complete file in the inbox, one transaction each, and file it away.

    A database that does not answer leaves the file where it is (and stops this check): the
    next check tries again, and a file synced twice changes nothing the second time.
    """
    from flows.service import is_db_unreachable

    inbox.mkdir(parents=True, exist_ok=True)
    outcomes = []
    for campaign_id, path in ready_files(inbox, settle_seconds=settle_seconds, wall=wall()):
        requested_by = inbox_actor(path.parent, host)
        try:
            report = acts.sync_platform(rt, requested_by, campaign_id, path, now=now)
        except ImportRejected as exc:
            outcome = _file_away(
                campaign_id, path, False, ["未同步：文件格式有误，数据库未作任何修改。", str(exc)]
            )
        except LookupError as exc:  # an unknown campaign folder, or no platform: section
            outcome = _file_away(campaign_id, path, False, [f"未同步：{exc}"])
        except Exception as exc:
            if is_db_unreachable(exc):
                log.error("收件箱：数据库无法访问，%s 留待下次检查", path.name)
                break
            log.exception("收件箱：同步 %s 时出错", path.name)
            outcome = _file_away(
                campaign_id, path, False, [f"未同步：内部错误（{type(exc).__name__}: {exc}）"]
            )
        else:
            outcome = _file_away(campaign_id, path, not report.needs_attention, describe(report, now))
        level = logging.INFO if outcome.ok else logging.WARNING
        log.log(
            level,
            "收件箱 %s/%s：%s（已移至 %s）",
            campaign_id,
            outcome.name,
            outcome.summary,
            outcome.moved_to,
        )
        outcomes.append(outcome)
    return outcomes


def describe(report: SyncReport, now: datetime) -> list[str]:
    """What a coordinator opening the .txt needs: the result first, then what still needs a person."""
    head = f"{report.platform}导出，{report.rows} 行；处理时间 {format_local(now)}"
    lines: list[str]
    if report.refused is not None:
        r = report.refused
        lines = [
            "未同步：有一步被拒绝，整个文件未写入（仅记录了这次拒绝）。",
            head,
            f"第{r.row}行 {r.ref}「{r.action}」被拒绝：{r.message}",
            f"{r.advice}，再把文件放回收件箱。",
        ]
        return lines
    counts = (
        f"新增 {len(report.new)}，状态变化 {len(report.changes)}，无变化 {report.unchanged}，"
        f"无法对应 {len(report.unplaced)}，冲突 {len(report.conflicts)}"
    )
    if report.already_synced_at is not None:
        first = f"该文件已于 {format_local(report.already_synced_at)} 同步过，结果相同，未作任何改动。"
    elif report.needs_attention:
        first = "部分同步：其余各行已写入，以下冲突与无法对应的行未写入，须人工核实。"
    else:
        first = "已同步。"
    lines = [first, head, counts]
    lines += [f"新增 第{n.row}行 {n.ref} {n.title}：{n.state_label}" for n in report.new]
    lines += [
        f"状态变化 第{c.row}行 {c.ref} {c.title}：{c.from_label} → {c.to_label}"
        f"（{' → '.join(c.labels)}；生效时间 {format_local(c.effective_at) if c.effective_at else '同步时'}）"
        for c in report.changes
    ]
    lines += [
        f"不符合申报条件（平台已受理，已按平台记录写入）第{u.row}行 {u.ref}：{'；'.join(u.findings)}"
        for u in report.unqualified
    ]
    lines += [
        f"本导出中没有（此前见于 {a.last_file}，仅提示）{a.ref} {a.title}：{a.state_label}"
        for a in report.absent
    ]
    lines += [f"无法对应 第{u.row}行：{u.why}" for u in report.unplaced]
    lines += [
        f"冲突 第{c.row}行 {c.ref}：平台显示「{c.platform_says}」，shenbao 记录「{c.shenbao_has}」：{c.why}"
        for c in report.conflicts
    ]
    return lines


def _file_away(campaign_id: str, path: Path, ok: bool, lines: list[str]) -> InboxOutcome:
    folder = path.parent / (DONE if ok else FAILED)
    folder.mkdir(exist_ok=True)
    target = _free_name(folder, path.name)
    path.rename(target)
    target.with_name(target.name + ".txt").write_text(
        "\n".join([f"文件：{path.name}", f"批次：{campaign_id}", *lines]) + "\n", encoding="utf-8"
    )
    return InboxOutcome(campaign_id, path.name, target, ok, lines[0])


def _free_name(folder: Path, name: str) -> Path:
    """``name`` in ``folder``, or ``stem-2.ext`` …: a file dropped again never overwrites the first."""
    target = folder / name
    n = 1
    while target.exists():
        n += 1
        target = folder / f"{Path(name).stem}-{n}{Path(name).suffix}"
    return target
