"""The job functions APScheduler calls, by name (a persistent job store keeps a reference to a
module-level function and picklable arguments, never to an object); they find the running service."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from flows.service.outage import is_db_unreachable
from models.db import describe_outage

if TYPE_CHECKING:
    from flows.service.process import Service

log = logging.getLogger("shenbao.service")

# The running service of this process (one at most).
_active: Service | None = None


def activate(service: Service) -> None:
    global _active
    if _active is not None and _active is not service:
        raise RuntimeError("本进程已有一个调度服务在运行")
    _active = service


def deactivate(service: Service) -> None:
    global _active
    if _active is service:
        _active = None


def _service() -> Service | None:
    if _active is None:
        log.warning("调度服务未在运行，忽略一个遗留的任务")
    return _active


def sweep_job(reason: str = "周期") -> None:
    service = _service()
    if service is not None and not service.stopping.is_set():
        service.sweep(reason)


def wake_job(at: str, what: str) -> None:
    service = _service()
    if service is not None and not service.stopping.is_set():
        service.sweep(f"唤醒（{what}）", not_before=datetime.fromisoformat(at))


def watch_job() -> None:
    service = _service()
    if service is not None and not service.stopping.is_set():
        try:
            service.watch()
        except Exception as exc:
            if not is_db_unreachable(exc):
                raise
            log.error("检查截止时间调整失败：%s，稍后再查", describe_outage(exc, service.rt.db.timeouts))


def inbox_job() -> None:
    service = _service()
    if service is not None and not service.stopping.is_set():
        service.check_inbox()


def heartbeat_job() -> None:
    service = _service()
    if service is not None and not service.stopping.is_set():
        service.heartbeat()
