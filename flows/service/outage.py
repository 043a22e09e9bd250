"""The database not answering: told apart from a bug, and said once per outage."""

from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError, OperationalError

from flows.service.logs import num
from models.db import DatabaseUnavailable, Timeouts, describe_outage

log = logging.getLogger("shenbao.service")


def is_db_unreachable(exc: BaseException) -> bool:
    """A lost or refused connection (worth a retry), as opposed to a bug or bad data."""
    if isinstance(exc, DatabaseUnavailable):
        return True
    if isinstance(exc, OperationalError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return False


class JobStoreOutage(logging.Filter):
    """APScheduler's English "Error getting due jobs from job store", every 10 s while the
    database is down, becomes one Chinese line per outage; the sweeps log their own retries."""

    def __init__(self, timeouts: Timeouts, sweep_minutes: float) -> None:
        super().__init__()
        self.timeouts = timeouts
        self.sweep_minutes = sweep_minutes
        self.reported = False

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("Error getting due jobs from job store"):
            return True
        if not self.reported:
            self.reported = True
            cause = record.args[-1] if isinstance(record.args, tuple) and record.args else record.getMessage()
            log.error(
                "截止时刻唤醒暂停：%s；周期对账照常每 %s 分钟进行并重试，数据库恢复后补做错过的事",
                describe_outage(cause, self.timeouts)
                if isinstance(cause, BaseException)
                else f"数据库无法访问：{cause}",
                num(self.sweep_minutes),
            )
        return False

    def recovered(self) -> None:
        if self.reported:
            self.reported = False
            log.info("数据库已恢复：截止时刻唤醒照常")
