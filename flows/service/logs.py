"""What the service says, for people: Chinese, Shanghai time, one record a line."""

from __future__ import annotations

import logging
import sys
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, ClassVar

from calendars.timeutil import LOCAL_TZ
from flows.output import one_line

if TYPE_CHECKING:
    from notifications.dispatcher import DispatchReport
    from notifications.reconcile import TickReport


def describe_tick(report: TickReport) -> str:
    written = "、".join(f"{k} {v}" for k, v in sorted(report.written.items())) or "无"
    lapsed = f"逾期关闭 {len(report.lapsed)} 件" + (
        f"（{'、'.join(report.lapsed[:5])}{'…' if len(report.lapsed) > 5 else ''}）" if report.lapsed else ""
    )
    waiting = "".join(f"；{where} 的提醒与督办暂缓：{why}" for where, why in sorted(report.waiting.items()))
    return f"新写入 {written}；取消 {report.cancelled}；生成邮件 {report.emails} 封；{lapsed}{waiting}"


def describe_dispatch(report: DispatchReport) -> str:
    text_ = f"发送 {report.sent} 封，待重试 {report.retry}，死信 {report.dead}，复核取消 {report.cancelled}"
    if report.server_unreachable:
        text_ += f"；邮件服务器无法连接，{report.deferred} 封留在发件箱稍后重试"
    return text_


class ShanghaiFormatter(logging.Formatter):
    LEVELS: ClassVar[dict[str, str]] = {
        "DEBUG": "调试",
        "INFO": "信息",
        "WARNING": "警告",
        "ERROR": "错误",
        "CRITICAL": "严重",
    }

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, LOCAL_TZ).strftime("%Y-%m-%d %H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        record.level_zh = self.LEVELS.get(record.levelname, record.levelname)
        return super().format(record)

    def formatMessage(self, record: logging.LogRecord) -> str:
        # Messages carry people's text (reasons, names, cells quoted in errors): one record, one line.
        record.message = one_line(record.message)
        return super().formatMessage(record)


def configure_logging(verbose: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ShanghaiFormatter("%(asctime)s %(level_zh)s %(message)s"))
    logger = logging.getLogger("shenbao")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
    # APScheduler speaks English and chats at INFO on every run; keep its warnings and errors.
    aps = logging.getLogger("apscheduler")
    aps.handlers[:] = [handler]
    aps.setLevel(logging.WARNING)
    aps.propagate = False


def num(value: float) -> str:
    return f"{value:g}"


def duration(delta: timedelta) -> str:
    seconds = abs(delta.total_seconds())
    sign = "快" if delta.total_seconds() > 0 else "慢"
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    return f"{sign} {days} 天 {hours} 小时 {rest // 60} 分"
