"""`shenbao serve`: one process that wakes at the instants that matter, and the lock that keeps it one.

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
- A heartbeat on the service lock; the dashboard in a thread when it is installed.

The database is the only source of truth. APScheduler's job store (its own table in the same
database) holds wake-up calls, nothing more: losing one delays a reminder, never loses it.

One scheduler per database
--------------------------
APScheduler 3 must never share a job store between two schedulers, and two services would also
race each other's sweeps. :func:`service_lock` gives one holder per database, across processes
and machines, without a table of its own:

- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a connection kept for
  the life of the service, named by ``application_name`` so a refusal can say who holds it.
  When the holder dies its connection drops and the server releases the lock; TCP keepalives
  bound how long a vanished machine can hold it. The heartbeat checks the lock is still ours
  and takes it back after a reconnect (or stops the service if someone else got it).
- SQLite: ``flock`` on ``<database file>.serve.lock`` beside the database (SQLite is one
  machine anyway). The kernel drops the lock when the process dies, however it dies; the file
  records who holds it.

Time
----
The clock is read once per job. ``--now`` (or SHENBAO_NOW) starts the service's clock at that
instant and lets it run at real speed (an offset), so a drill can start a minute before a
deadline and watch it close; APScheduler itself runs on real time and date jobs are planned at
``instant - offset``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from calendars.timeutil import LOCAL_TZ, format_local
from flows.output import one_line
from models.context import Actor
from models.db import Database, DatabaseUnavailable, Timeouts, describe_outage
from operations import sweep
from operations.runtime import Runtime
from operations.sweep import advisory_key, worker_name

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

    from flows.inbox import InboxOutcome
    from notifications.dispatcher import DispatchReport
    from notifications.reconcile import TickReport

log = logging.getLogger("shenbao.service")

SYSTEM = Actor(name="system")
# APScheduler's table in the shenbao database; the name says whose it is.
JOB_TABLE = "shenbao_scheduler_jobs"
WAKE_PREFIX = "wake:"
EXIT_LOCKED = 5


SERVICE_LOCK_KEY = advisory_key("shenbao:serve")
# APScheduler's in-memory store for the jobs re-added at every start (see _build_scheduler).
PERIODIC_STORE = "periodic"
PERIODIC_JOBS = ("sweep", "watch", "heartbeat")


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
                _num(self.sweep_minutes),
            )
        return False

    def recovered(self) -> None:
        if self.reported:
            self.reported = False
            log.info("数据库已恢复：截止时刻唤醒照常")


def describe_tick(report: TickReport) -> str:
    written = "、".join(f"{k} {v}" for k, v in sorted(report.written.items())) or "无"
    lapsed = f"逾期关闭 {len(report.lapsed)} 件" + (
        f"（{'、'.join(report.lapsed[:5])}{'…' if len(report.lapsed) > 5 else ''}）" if report.lapsed else ""
    )
    return f"新写入 {written}；取消 {report.cancelled}；生成邮件 {report.emails} 封；{lapsed}"


def describe_dispatch(report: DispatchReport) -> str:
    text_ = f"发送 {report.sent} 封，待重试 {report.retry}，死信 {report.dead}，复核取消 {report.cancelled}"
    if report.server_unreachable:
        text_ += f"；邮件服务器无法连接，{report.deferred} 封留在发件箱稍后重试"
    return text_


def is_db_unreachable(exc: BaseException) -> bool:
    """A lost or refused connection (worth a retry), as opposed to a bug or bad data."""
    if isinstance(exc, DatabaseUnavailable):
        return True
    if isinstance(exc, OperationalError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return False


# --------------------------------------------------------------------------------------------
# The lock


class ServiceLocked(RuntimeError):
    """Another ``shenbao serve`` holds this database; the message says who and how to proceed."""

    def __init__(self, holder: str, where: str) -> None:
        super().__init__(
            f"同一数据库已有调度服务在运行：{holder}。\n"
            f"一个数据库只能有一个调度进程（{where}），本进程未启动。\n"
            "如需替换，请先停止它（systemctl stop shenbao-serve 或向该进程发送 SIGTERM）；"
            "它异常退出时锁会自动释放。也可用 --standby 等待接管。"
        )
        self.holder = holder


class ServiceLock(Protocol):
    identity: str

    def acquire(self) -> None: ...

    def verify(self) -> bool | None:
        """True: still ours. False: lost to someone else. None: cannot tell (database down)."""
        ...

    def release(self) -> None: ...


def _holder_text(who: str, since: datetime | None, where: str | None = None) -> str:
    parts = [who]
    if since is not None:
        parts.append(f"自 {since.astimezone(LOCAL_TZ):%Y-%m-%d %H:%M:%S}（上海时间）起")
    if where:
        parts.append(f"来自 {where}")
    return "，".join(parts)


@dataclass
class FileServiceLock:
    """``flock`` on a file beside the SQLite database; released by the kernel when we die."""

    path: Path
    identity: str
    _fd: int | None = field(default=None, init=False, repr=False)
    _inode: int | None = field(default=None, init=False, repr=False)

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._read_holder(fd)
            os.close(fd)
            raise ServiceLocked(holder, f"锁文件 {self.path}") from None
        except BaseException:
            os.close(fd)
            raise
        info = {
            "who": self.identity,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": datetime.now(UTC).isoformat(),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info, ensure_ascii=False).encode(), 0)
        os.fsync(fd)
        self._fd, self._inode = fd, os.fstat(fd).st_ino

    @staticmethod
    def _read_holder(fd: int) -> str:
        try:
            info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
            since = datetime.fromisoformat(info["since"]) if info.get("since") else None
            return _holder_text(info.get("who", "未知进程"), since)
        except (ValueError, KeyError, OSError):
            return "未知进程（锁文件内容不可读）"

    def verify(self) -> bool | None:
        if self._fd is None:
            return False
        # Someone deleting the file would let a newcomer lock a new file of the same name: two
        # holders. The lock is only ours while the path still names the file we locked.
        try:
            return os.stat(self.path).st_ino == self._inode
        except FileNotFoundError:
            return False

    def release(self) -> None:
        if self._fd is None:
            return
        # The file stays: unlinking it would open exactly the race verify() guards against.
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = self._inode = None


@dataclass
class PostgresServiceLock:
    """A session advisory lock on a connection of its own, kept for the life of the service."""

    url: str
    identity: str
    key: int = SERVICE_LOCK_KEY
    _conn: Any = field(default=None, init=False, repr=False)

    @property
    def _conninfo(self) -> str:
        return make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)

    def _connect(self) -> Any:
        import psycopg

        # application_name is how a refused second service learns who holds the lock (63 bytes
        # at most, ASCII); keepalives bound how long a vanished machine keeps holding it.
        return psycopg.connect(
            self._conninfo,
            autocommit=True,
            connect_timeout=10,
            application_name=self.identity.encode("ascii", "replace").decode()[:63],
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
        )

    @property
    def _parts(self) -> tuple[int, int]:
        # pg_locks shows a bigint key as two oids: the high and low 32 bits.
        unsigned = self.key & 0xFFFFFFFFFFFFFFFF
        return unsigned >> 32, unsigned & 0xFFFFFFFF

    def acquire(self) -> None:
        conn = self._connect()
        try:
            got = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()[0]
            if not got:
                holder = self._holder(conn)
                raise ServiceLocked(holder, "PostgreSQL 咨询锁")
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _holder(self, conn: Any) -> str:
        hi, lo = self._parts
        row = conn.execute(
            "SELECT a.application_name, host(a.client_addr), a.backend_start, a.pid "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.classid::bigint = %s AND l.objid::bigint = %s",
            (hi, lo),
        ).fetchone()
        if row is None:
            return "未知进程（锁刚刚被释放，请重试）"
        name, addr, since, pid = row
        who = name or "未命名的连接"
        return _holder_text(f"{who}（数据库会话 {pid}）", since, addr or "本机套接字")

    def verify(self) -> bool | None:
        import psycopg

        hi, lo = self._parts
        if self._conn is not None:
            try:
                held = self._conn.execute(
                    "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory' "
                    "AND granted AND objsubid = 1 AND classid::bigint = %s AND objid::bigint = %s",
                    (hi, lo),
                ).fetchone()[0]
                return bool(held)
            except psycopg.Error:
                # The connection is gone, and with it the lock: take it back below.
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None
        try:
            self.acquire()
        except ServiceLocked:
            return False
        except psycopg.Error:
            return None
        log.warning("与数据库的锁连接曾中断，已重新取得调度锁")
        return True

    def release(self) -> None:
        if self._conn is None:
            return
        with contextlib.suppress(Exception):
            self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        with contextlib.suppress(Exception):
            self._conn.close()
        self._conn = None


def service_lock(db: Database, identity: str | None = None) -> ServiceLock:
    """The lock for ``db``: an advisory lock on PostgreSQL, a file lock beside a SQLite file."""
    who = identity or worker_name("shenbao-serve")
    url = make_url(db.url)
    if url.get_backend_name() == "postgresql":
        return PostgresServiceLock(db.url, who)
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ValueError("调度服务需要数据库文件（内存中的 SQLite 数据库无法在进程之间共享）")
        return FileServiceLock(Path(url.database + ".serve.lock").resolve(), who)
    raise ValueError(f"调度服务不支持此数据库：{url.get_backend_name()}（支持 SQLite 与 PostgreSQL）")


# --------------------------------------------------------------------------------------------
# The clock and the plan


@dataclass(frozen=True)
class ServiceClock:
    """Real time plus an offset (zero unless the service was started with --now)."""

    offset: timedelta = timedelta(0)
    real: Callable[[], datetime] = field(default=lambda: datetime.now(UTC), compare=False)

    @classmethod
    def starting_at(cls, start: datetime) -> ServiceClock:
        return cls(offset=start - datetime.now(UTC))

    def now(self) -> datetime:
        return self.real() + self.offset

    def to_real(self, instant: datetime) -> datetime:
        return instant - self.offset


def wake_id(at: datetime) -> str:
    return WAKE_PREFIX + at.astimezone(UTC).isoformat()


def deadline_signature(session: Any) -> str:
    """Changes whenever a deadline moves or a campaign file is (re)loaded: the trigger to re-plan.

    Two tiny tables; reading them every minute costs less than a missed 24:00 closing.
    """
    from models.campaign import Campaign, StageDeadline

    rows = session.execute(
        select(
            StageDeadline.campaign_id, StageDeadline.stage_id, StageDeadline.version, StageDeadline.due_at
        ).order_by(StageDeadline.campaign_id, StageDeadline.stage_id)
    ).all()
    campaigns = session.execute(select(Campaign.id, Campaign.spec_digest).order_by(Campaign.id)).all()
    material = repr([tuple(r) for r in rows]) + repr([tuple(c) for c in campaigns])
    return hashlib.sha1(material.encode()).hexdigest()


@dataclass(frozen=True)
class PlannedWake:
    at: datetime  # the instant in the service's clock
    what: str


def plan_wakeups(rt: Runtime, start: datetime, end: datetime) -> list[PlannedWake]:
    """Every instant in (start, end] that matters, several reasons at one instant merged."""
    from notifications.wakeups import wakeups

    with rt.db.read() as session:
        found = wakeups(session, rt.calendar, start, end)
    merged: dict[datetime, list[str]] = {}
    for w in found:
        merged.setdefault(w.at, []).append(w.what)
    return [PlannedWake(at, "；".join(sorted(set(whats)))) for at, whats in sorted(merged.items())]


@dataclass
class PlanReport:
    planned: int
    added: int
    removed: int
    next: PlannedWake | None


# --------------------------------------------------------------------------------------------
# The service


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


# The running service, for the job functions: a persistent job store keeps a reference to a
# module-level function and picklable arguments, never to an object.
_active: Service | None = None


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
        global _active
        self._take_lock()
        if self.stopping.is_set():
            return
        if _active is not None and _active is not self:
            self.lock.release()
            raise RuntimeError("本进程已有一个调度服务在运行")
        _active = self
        try:
            log.info("调度服务启动：%s，数据库 %s", self.lock.identity, self.rt.db.safe_url)
            if self.clock.offset:
                log.info(
                    "模拟时钟：服务时间从 %s 起按真实速度走（比真实时间%s）",
                    format_local(self.clock.now()),
                    _duration(self.clock.offset),
                )
            self.scheduler = self._build_scheduler()
            # Paused: the catch-up runs before any stored wake-up can fire, and stale wake-ups
            # are removed by the plan before they get the chance.
            self.scheduler.start(paused=True)
            self.sweep("启动补跑")
            self._add_periodic_jobs()
            self.replan("启动")
            self.scheduler.resume()
            self._start_web()
            log.info(
                "调度服务已就绪：每 %s 分钟对账并发送一次，另按 %s 天内的关键时刻准时唤醒",
                _num(self.options.sweep_minutes),
                _num(self.options.horizon_days),
            )
        except BaseException:
            self.stop()
            raise

    def run(self) -> None:
        """Start, then wait for SIGTERM/SIGINT; a second signal exits at once."""
        received: list[int] = []

        def on_signal(signum: int, _frame: Any) -> None:
            received.append(signum)
            name = signal.Signals(signum).name
            if len(received) > 1:
                log.warning("再次收到 %s，立即退出（进行中的发送由租约机制在下次运行时收回）", name)
                os._exit(128 + signum)
            log.info("收到 %s，正在停止：等待进行中的任务完成…", name)
            self.stopping.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start()
            while not self.stopping.wait(1.0):
                if self._web_thread is not None and not self._web_thread.is_alive() and self._web_server:
                    log.error("看板线程已退出，调度继续运行")
                    self._web_server = None
        finally:
            self.stop()
            for s, handler in previous.items():
                signal.signal(s, handler)

    def stop(self) -> None:
        global _active
        self.stopping.set()
        if self.scheduler is not None:
            with contextlib.suppress(Exception):
                # wait=True: a sweep in progress finishes and records its results.
                self.scheduler.shutdown(wait=True)
            self.scheduler = None
        if self._web_server is not None:
            self._web_server.should_exit = True
        if self._web_thread is not None:
            self._web_thread.join(timeout=10)
            self._web_thread = self._web_server = None
        if self._store_db is not None:
            self._store_db.dispose()
            self._store_db = None
        if self._store_outage is not None:
            logging.getLogger("apscheduler.scheduler").removeFilter(self._store_outage)
            self._store_outage = None
        if self._locked:
            self.lock.release()
            self._locked = False
            log.info("调度服务已停止，调度锁已释放")
        if _active is self:
            _active = None

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
                    _num(self.options.standby_poll_seconds),
                )
                waiting = True
            if self.stopping.wait(self.options.standby_poll_seconds):
                return

    # -- the scheduler --------------------------------------------------------------------------
    def _build_scheduler(self) -> BackgroundScheduler:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        # Its own engines (with the same SQLite pragmas): the store's shutdown disposes them.
        self._store_db = Database(self.rt.db.url, timeouts=self.rt.db.timeouts)
        self._store_outage = JobStoreOutage(self.rt.db.timeouts, self.options.sweep_minutes)
        logging.getLogger("apscheduler.scheduler").addFilter(self._store_outage)
        return BackgroundScheduler(
            jobstores={
                # The periodic jobs are re-added at every start, so they need no database, and in
                # memory they keep firing while the database is down: APScheduler skips a store it
                # cannot read, which would otherwise stop the sweeps and their retries too.
                PERIODIC_STORE: MemoryJobStore(),
                # The wake-ups at deadlines stay in the database: they survive a restart.
                "default": SQLAlchemyJobStore(engine=self._store_db.writer, tablename=JOB_TABLE),
            },
            # Sweeps are serialised by a lock; spare threads keep the heartbeat and the watch on
            # time while a long sweep runs.
            executors={"default": ThreadPoolExecutor(max_workers=4)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": self.options.misfire_grace_seconds,
            },
            timezone=LOCAL_TZ,
        )

    def _add_periodic_jobs(self) -> None:
        assert self.scheduler is not None
        o = self.options
        common: dict[str, Any] = {
            "replace_existing": True,
            "coalesce": True,
            "max_instances": 1,
            "jobstore": PERIODIC_STORE,
        }
        for job_id in PERIODIC_JOBS:
            # Earlier versions stored them in the database: one copy of each is enough.
            with contextlib.suppress(Exception):
                self.scheduler.remove_job(job_id, jobstore="default")
        self.scheduler.add_job(
            "flows.service:sweep_job",
            "interval",
            seconds=o.sweep_minutes * 60,
            id="sweep",
            name="周期对账与发送",
            kwargs={"reason": "周期"},
            misfire_grace_time=int(o.sweep_minutes * 60),
            **common,
        )
        self.scheduler.add_job(
            "flows.service:watch_job",
            "interval",
            seconds=o.watch_seconds,
            id="watch",
            name="检查截止时间调整",
            misfire_grace_time=int(o.watch_seconds),
            **common,
        )
        self.scheduler.add_job(
            "flows.service:heartbeat_job",
            "interval",
            seconds=o.heartbeat_seconds,
            id="heartbeat",
            name="调度锁心跳",
            misfire_grace_time=int(o.heartbeat_seconds),
            **common,
        )
        self.scheduler.add_job(
            "flows.service:inbox_job",
            "interval",
            seconds=o.inbox_seconds,
            id="inbox",
            name="同步收件箱中的平台导出",
            misfire_grace_time=max(int(o.inbox_seconds), 1),
            **common,
        )

    def replan(self, reason: str) -> PlanReport:
        """Make the stored wake-ups match the instants that matter from now to the horizon."""
        from apscheduler.triggers.date import DateTrigger

        assert self.scheduler is not None
        now = self.clock.now()
        with self.rt.db.read() as session:
            signature = deadline_signature(session)
        wanted = {
            wake_id(w.at): w
            for w in plan_wakeups(self.rt, now, now + timedelta(days=self.options.horizon_days))
        }
        existing = {job.id: job for job in self.scheduler.get_jobs() if job.id.startswith(WAKE_PREFIX)}
        removed = 0
        for job_id in existing.keys() - wanted.keys():
            with contextlib.suppress(Exception):  # it may have just fired and gone
                self.scheduler.remove_job(job_id)
                removed += 1
        added = 0
        for job_id, w in wanted.items():
            run_at = self.clock.to_real(w.at)
            job = existing.get(job_id)
            if (
                job is not None
                and job.next_run_time is not None
                and abs(job.next_run_time - run_at) < timedelta(seconds=1)
            ):
                continue
            self.scheduler.add_job(
                "flows.service:wake_job",
                DateTrigger(run_date=run_at, timezone=UTC),
                id=job_id,
                name=w.what[:190],
                kwargs={"at": w.at.isoformat(), "what": w.what},
                replace_existing=True,
                coalesce=True,
                misfire_grace_time=self.options.misfire_grace_seconds,
            )
            added += 1
        self._signature = signature
        self._planned_real = time.monotonic()
        upcoming = min(wanted.values(), key=lambda w: w.at, default=None)
        log.info(
            "排定唤醒时刻（%s）：未来 %s 天共 %d 个，新增 %d，移除 %d；下一个 %s %s",
            reason,
            _num(self.options.horizon_days),
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
            log.info("检测到截止时间或批次文件变化：立即对账并重排唤醒时刻")
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
                    _num(self.options.db_retry_seconds),
                )
                if self.stopping.wait(self.options.db_retry_seconds):
                    return None
        return None

    # -- the dashboard --------------------------------------------------------------------------
    def _start_web(self) -> None:
        if not self.options.web:
            log.info("未启动看板（--no-web）")
            return
        import importlib

        try:
            dashboard_app = importlib.import_module("dashboard.app")
        except ModuleNotFoundError as exc:
            if exc.name in ("dashboard", "dashboard.app"):
                log.info("未安装看板模块（dashboard.app），只运行调度")
                return
            raise
        create_app = getattr(dashboard_app, "create_app", None)
        if create_app is None:
            log.info("看板模块没有 create_app，只运行调度")
            return
        import uvicorn

        server = uvicorn.Server(
            uvicorn.Config(
                create_app(self.rt),
                host=self.options.host,
                port=self.options.port,
                log_level="warning",
                proxy_headers=True,
            )
        )
        # Not the main thread: uvicorn then leaves the signal handlers to us.
        thread = threading.Thread(target=server.run, name="shenbao-web", daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if server.started:
            self._web_server, self._web_thread = server, thread
            log.info("看板：http://%s:%d/", self.options.host, self.options.port)
        else:
            log.error("看板未能启动（端口 %d 是否被占用？），调度继续运行", self.options.port)


# --------------------------------------------------------------------------------------------
# Job functions (referenced by name from the persistent job store)


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


# --------------------------------------------------------------------------------------------
# Logging for people: Chinese, Shanghai time


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


def _num(value: float) -> str:
    return f"{value:g}"


def _duration(delta: timedelta) -> str:
    seconds = abs(delta.total_seconds())
    sign = "快" if delta.total_seconds() > 0 else "慢"
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    return f"{sign} {days} 天 {hours} 小时 {rest // 60} 分"


@contextlib.contextmanager
def running(service: Service) -> Iterator[Service]:
    """``with running(Service(...)) as s:`` — started, and stopped whatever happens (tests)."""
    service.start()
    try:
        yield service
    finally:
        service.stop()
