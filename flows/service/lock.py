"""One scheduler per database: the lock that keeps ``shenbao serve`` one process.

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
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.engine import make_url

from calendars.timeutil import LOCAL_TZ
from models.db import Database
from operations.sweep import advisory_key, worker_name

log = logging.getLogger("shenbao.service")

EXIT_LOCKED = 5
SERVICE_LOCK_KEY = advisory_key("shenbao:serve")


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
