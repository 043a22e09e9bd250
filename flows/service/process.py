"""The scheduler process: its life cycle, its sweeps and its plan of wake-ups.

What it does
------------
- At start, a catch-up sweep (reconcile + dispatch) at ``now``: being down across a deadline
  loses nothing (reconcile is level-triggered and looks at what is true now) and duplicates
  nothing (every outbox row has a unique key).
- Date jobs at every instant from :func:`notifications.wakeups.wakeups` over a horizon (60 days):
  a window that closes at 24:00 is closed at 24:00, not at the next poll.
- A periodic sweep (every 5 minutes): whatever a wake-up missed is only delayed.
- A watch (every minute) on the deadlines in force: a moved deadline is swept at once and the
  wake-ups are re-planned; the plan is also renewed every few hours so the horizon moves on.
- A heartbeat on the service lock (flows/service/lock.py); the dashboard in a thread when it is
  installed (flows/service/web.py).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from calendars.timeutil import format_local
from flows.service import jobs
from flows.service.lock import ServiceLock, ServiceLocked, service_lock
from flows.service.logs import describe_dispatch, describe_tick, duration, num
from flows.service.outage import JobStoreOutage, is_db_unreachable
from flows.service.plan import PlanReport, ServiceClock, deadline_signature, plan_wakeups
from flows.service.scheduler import (
    add_periodic_jobs,
    build_scheduler,
    release_outage_filter,
    sync_wakeups,
)
from flows.service.signals import stop_on_signals
from flows.service.web import start_web, stop_web
from models.db import Database, describe_outage
from operations import sweep
from operations.runtime import Runtime
from operations.sweep import worker_name

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

    from flows.inbox import InboxOutcome
    from notifications.dispatcher import DispatchReport
    from notifications.reconcile import TickReport

log = logging.getLogger("shenbao.service")


@dataclass(frozen=True)
class ServiceOptions:
    sweep_minutes: float = 5.0
    horizon_days: float = 60.0
    watch_seconds: float = 60.0
    replan_hours: float = 6.0
    heartbeat_seconds: float = 30.0
    # A database that does not answer is tried this many times per sweep, this far apart.
    db_attempts: int = 3
    db_retry_seconds: float = 10.0
    # A wake-up missed (machine asleep, process busy) still runs if it is at most this late;
    # APScheduler's default of 1 s would silently drop it.
    misfire_grace_seconds: int = 24 * 3600
    web: bool = True
    host: str = "127.0.0.1"
    port: int = 8080
    standby: bool = False
    standby_poll_seconds: float = 15.0
    # How often the sync inbox (flows/inbox.py) is checked for platform exports.
    inbox_seconds: float = 60.0


@dataclass
class SweepResult:
    at: datetime
    reason: str
    tick: TickReport | None = None
    sent: DispatchReport | None = None
    error: str | None = None
    attempts: int = 0
    # Another dispatch was still draining the outbox: this sweep only reconciled.
    dispatch_skipped: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "reason": self.reason,
            "attempts": self.attempts,
            "error": self.error,
            "tick": self.tick.as_dict() if self.tick else None,
            "sent": asdict(self.sent) if self.sent else None,
        }


class Service:
    """The scheduler process. ``start()``/``stop()`` for tests; ``run()`` for ``shenbao serve``."""

    def __init__(
        self,
        rt: Runtime,
        options: ServiceOptions | None = None,
        clock: ServiceClock | None = None,
        *,
        lock: ServiceLock | None = None,
    ) -> None:
        self.rt = rt
        self.options = options or ServiceOptions()
        self.clock = clock or ServiceClock()
        self.lock = lock or service_lock(rt.db)
        self.stopping = threading.Event()
        self.worker = worker_name("serve")
        self.scheduler: BackgroundScheduler | None = None
        self.last_sweep: SweepResult | None = None
        self._reconcile_lock = threading.Lock()
        self._dispatch_lock = threading.Lock()
        self._signature: str | None = None
        self._planned_real: float = 0.0
        self._store_db: Database | None = None
        self._store_outage: JobStoreOutage | None = None
        self._web_server: Any = None
        self._web_thread: threading.Thread | None = None
        self._locked = False

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._take_lock()
        if self.stopping.is_set():
            return
        try:
            jobs.activate(self)
        except RuntimeError:
            self.lock.release()
            self._locked = False
            raise
        try:
            log.info("调度服务启动：%s，数据库 %s", self.lock.identity, self.rt.db.safe_url)
            if self.clock.offset:
                log.info(
                    "模拟时钟：服务时间从 %s 起按真实速度走（比真实时间%s）",
                    format_local(self.clock.now()),
                    duration(self.clock.offset),
                )
            self.scheduler, self._store_db, self._store_outage = build_scheduler(self.rt.db, self.options)
            # Paused: the catch-up runs before any stored wake-up can fire, and stale wake-ups
            # are removed by the plan before they get the chance.
            self.scheduler.start(paused=True)
            self.sweep("启动补跑")
            add_periodic_jobs(self.scheduler, self.options)
            self.replan("启动")
            self.scheduler.resume()
            self._start_web()
            log.info(
                "调度服务已就绪：每 %s 分钟对账并发送一次，另按 %s 天内的关键时刻准时唤醒",
                num(self.options.sweep_minutes),
                num(self.options.horizon_days),
            )
        except BaseException:
            self.stop()
            raise

    def run(self) -> None:
        """Start, then wait for SIGTERM/SIGINT; a second signal exits at once."""
        with stop_on_signals(self.stopping):
            try:
                self.start()
                while not self.stopping.wait(1.0):
                    if self._web_thread is not None and not self._web_thread.is_alive() and self._web_server:
                        log.error("看板线程已退出，调度继续运行")
                        self._web_server = None
            finally:
                self.stop()

    def stop(self) -> None:
        self.stopping.set()
        if self.scheduler is not None:
            # wait=True: a sweep in progress finishes and records its results. The scheduler's
            # own loop is stopped before its executors (flows/service/scheduler.py says why).
            try:
                self.scheduler.shutdown(wait=True)
            except Exception as exc:  # not started (a failed start), or already down
                log.debug("调度器停止：%s", exc)
            self.scheduler = None
        stop_web(self._web_server, self._web_thread)
        self._web_thread = self._web_server = None
        if self._store_db is not None:
            self._store_db.dispose()
            self._store_db = None
        if self._store_outage is not None:
            release_outage_filter(self._store_outage)
            self._store_outage = None
        if self._locked:
            self.lock.release()
            self._locked = False
            log.info("调度服务已停止，调度锁已释放")
        jobs.deactivate(self)

    def _take_lock(self) -> None:
        waiting = False
        while True:
            try:
                self.lock.acquire()
                self._locked = True
                if waiting:
                    log.info("备用模式：原调度服务已停止，本进程接管")
                return
            except ServiceLocked as exc:
                if not self.options.standby:
                    raise
                # Said once; then quietly, every standby_poll_seconds, until the holder goes.
                log.log(
                    logging.DEBUG if waiting else logging.INFO,
                    "备用模式：已有调度服务在运行（%s），每 %s 秒检查一次，待其停止后接管",
                    exc.holder,
                    num(self.options.standby_poll_seconds),
                )
                waiting = True
            if self.stopping.wait(self.options.standby_poll_seconds):
                return

    # -- the plan -------------------------------------------------------------------------------
    def replan(self, reason: str) -> PlanReport:
        """Make the stored wake-ups match the instants that matter from now to the horizon."""
        assert self.scheduler is not None
        now = self.clock.now()
        with self.rt.db.read() as session:
            signature = deadline_signature(session)
        wanted = plan_wakeups(self.rt, now, now + timedelta(days=self.options.horizon_days))
        added, removed = sync_wakeups(self.scheduler, wanted, self.clock, self.options.misfire_grace_seconds)
        self._signature = signature
        self._planned_real = time.monotonic()
        upcoming = min(wanted, key=lambda w: w.at, default=None)
        log.info(
            "排定唤醒时刻（%s）：未来 %s 天共 %d 个，新增 %d，移除 %d；下一个 %s %s",
            reason,
            num(self.options.horizon_days),
            len(wanted),
            added,
            removed,
            format_local(upcoming.at) if upcoming else "无",
            upcoming.what if upcoming else "",
        )
        return PlanReport(len(wanted), added, removed, upcoming)

    def watch(self) -> bool:
        """Re-plan when a deadline moved (sweeping first: it may have moved into the past)."""
        with self.rt.db.read() as session:
            signature = deadline_signature(session)
        if signature != self._signature:
            log.info("检测到截止时间、批次文件或节假日安排变化：立即对账并重排唤醒时刻")
            self.rt.refresh_calendar()  # a year's arrangement may have been loaded
            self.sweep("截止时间调整")
            self.replan("截止时间调整")
            return True
        if time.monotonic() - self._planned_real >= self.options.replan_hours * 3600:
            self.replan("定期")
            return True
        return False

    def heartbeat(self) -> None:
        held = self.lock.verify()
        if held is False:
            log.error("调度锁已被其他进程取得：本进程停止，以免两个调度器同时运行")
            self.stopping.set()
        elif held is None:
            log.warning("无法确认调度锁（数据库暂时无法访问），继续运行并稍后再查")

    def check_inbox(self) -> list[InboxOutcome]:
        """Sync the platform exports dropped into the inbox (flows/inbox.py)."""
        from flows.inbox import check_inbox

        return check_inbox(self.rt, self.rt.settings.resolved_sync_inbox, now=self.clock.now())

    # -- the work -------------------------------------------------------------------------------
    def sweep(self, reason: str, *, not_before: datetime | None = None) -> SweepResult:
        """Reconcile, then dispatch, at one reading of the clock; each retried if the database is down.

        Reconciles queue behind each other (they are short). A dispatch may be long (a rate-limited
        server, a big outbox): a sweep that finds one running only reconciles, so a 24:00 closing
        never waits behind mail, and each dispatch is bounded to about one sweep interval.
        """
        now = self.clock.now()
        if not_before is not None and now < not_before:
            # A date job never fires early on the same clock; this only guards the edge.
            now = not_before
        result = SweepResult(at=now, reason=reason)
        with self._reconcile_lock:
            result.tick = self._retrying(result, "对账", lambda: sweep.reconcile(self.rt, now))
        if result.tick is not None and not self.stopping.is_set():
            if self._dispatch_lock.acquire(blocking=False):
                try:
                    result.sent = self._retrying(
                        result,
                        "发送",
                        lambda: sweep.dispatch(self.rt, now, worker=self.worker, limit=self._dispatch_limit),
                    )
                finally:
                    self._dispatch_lock.release()
            else:
                result.dispatch_skipped = True
        if result.error is None and result.tick is not None:
            if self._store_outage is not None:
                self._store_outage.recovered()
            busy = not result.tick.nothing_new or (result.sent is not None and result.sent.handled)
            level = logging.INFO if busy or reason != "周期" else logging.DEBUG
            sent = (
                describe_dispatch(result.sent)
                if result.sent is not None
                else "上一轮发送仍在进行，本轮只对账"
            )
            log.log(level, "%s %s：对账 %s；%s", format_local(now), reason, describe_tick(result.tick), sent)
        self.last_sweep = result
        return result

    @property
    def _dispatch_limit(self) -> int | None:
        rate = self.rt.settings.mail_rate_per_second
        return max(int(rate * self.options.sweep_minutes * 60), 1) if rate > 0 else None

    def _retrying(self, result: SweepResult, what: str, step: Callable[[], Any]) -> Any:
        """``step()``, tried ``db_attempts`` times while the database does not answer."""
        attempts = max(self.options.db_attempts, 1)
        when = f"{format_local(result.at)} {result.reason}"
        for attempt in range(1, attempts + 1):
            result.attempts = max(result.attempts, attempt)
            try:
                value = step()
                result.error = None
                return value
            except Exception as exc:
                if not is_db_unreachable(exc):
                    result.error = f"{type(exc).__name__}: {exc}"
                    log.exception("%s：%s出错（已回滚；下次唤醒照常处理）", when, what)
                    return None
                result.error = describe_outage(exc, self.rt.db.timeouts)
                if attempt == attempts:
                    log.error(
                        "%s：%s失败，%s（已试 %d 次），等下一次唤醒再补", when, what, result.error, attempts
                    )
                    return None
                log.error(
                    "%s：%s失败，%s（第 %d/%d 次），%s 秒后重试",
                    when,
                    what,
                    result.error,
                    attempt,
                    attempts,
                    num(self.options.db_retry_seconds),
                )
                if self.stopping.wait(self.options.db_retry_seconds):
                    return None
        return None

    # -- the dashboard --------------------------------------------------------------------------
    def _start_web(self) -> None:
        if not self.options.web:
            log.info("未启动看板（--no-web）")
            return
        started = start_web(self.rt, self.options.host, self.options.port)
        if started is not None:
            self._web_server, self._web_thread = started


@contextlib.contextmanager
def running(service: Service) -> Iterator[Service]:
    """``with running(Service(...)) as s:`` — started, and stopped whatever happens (tests)."""
    service.start()
    try:
        yield service
    finally:
        service.stop()
