"""How fast the outbox reaches an SMTP server, against what that server can take at all.

    .venv/bin/python bench/bench_dispatch.py [--emails 5000] [--no-pg] [--repeat 3]

One run, all on loopback, the SMTP server (LoopbackSMTP, i.e. aiosmtpd) in its own process so
it has a core to itself rather than fighting the sender for the GIL:

  (a) ceiling: a raw client that pipelines pre-built messages over 1, 2, 4 or 8 connections and
      does nothing else (no waiting for any reply before the next message): the most this
      server accepts;
  (a2) aiosmtplib's sendmail over reused connections, no database: the library alone;
  (b) naive: one new connection per mail, sequentially (what a simple cron script does);
  (c) the dispatcher draining a SQLite outbox: 1 process (4 and 16 connections), then N;
  (d) the same on PostgreSQL, 1 and 4 processes (skipped with --no-pg or if unreachable).

The machine is shared, so load comes and goes: every row after (a) is run ``--repeat`` times,
each time right after a ceiling run, and the median of those pairs' ratios is printed beside the
ratio to the best ceiling seen. Every run is checked: the server must have received each
Message-ID exactly once, and every outbox row must be 'sent'. Prints msgs/s, both ratios, the
server's CPU per message, and peak memory.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path

import aiosmtplib
from sqlalchemy import delete, func, insert, select, update

from models.db import Database
from models.org import Contact, Organisation
from models.outbox import E_PENDING, E_SENT, DeliveryAttempt, Email
from models.schema import upgrade
from notifications.dispatcher import SmtpConfig, dispatch, dispatch_in_processes
from notifications.mime import build_mime, message_id_for

NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
SENDER = "noreply@jxt.zj.gov.cn"
PG_ADMIN_URL = os.environ.get(
    "SHENBAO_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


# --------------------------------------------------------------------------------------------
# The server, in its own process


def _serve(conn: Connection) -> None:
    from notifications.loopback import LoopbackSMTP

    # Bodies are not kept: the bench counts Message-IDs, and 5,000 bodies would only add RSS.
    server = LoopbackSMTP(keep_raw=False).start()
    conn.send(server.port)
    while True:
        command = conn.recv()
        if command == "count":
            conn.send(len(server))
        elif command == "take":
            # Taken and cleared in one step: a reply sent before clearing would let the next
            # run's first messages arrive in between and be wiped.
            ids = [m.message_id for m in server.take()]
            usage = resource.getrusage(resource.RUSAGE_SELF)
            conn.send((ids, usage.ru_utime + usage.ru_stime))
        elif command == "stop":
            server.stop()
            conn.send(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
            return


class ServerProcess:
    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child,), name="loopback-smtp")
        self.process.start()
        self.port: int = self.conn.recv()
        self.cpu_seen = self.take()[1]

    def count(self) -> int:
        self.conn.send("count")
        return self.conn.recv()  # type: ignore[no-any-return]

    def take(self) -> tuple[list[str | None], float]:
        """The Message-IDs received since the last call, and the server's CPU seconds so far."""
        self.conn.send("take")
        return self.conn.recv()  # type: ignore[no-any-return]

    def stop(self) -> int:
        self.conn.send("stop")
        rss: int = self.conn.recv()
        self.process.join()
        return rss


# --------------------------------------------------------------------------------------------
# Messages and outboxes


def build_rows(n: int) -> list[dict[str, object]]:
    rows = []
    for i in range(n):
        key = f"bench:{i}"
        addr = f"contact{i}@qz.example.cn"
        text = "您好：\n请于2026年6月5日17:00前在系统中提交先进制造业集群申报材料。\n" * 6
        html = "<p>您好：</p><p>请于2026年6月5日17:00前在系统中提交先进制造业集群申报材料。</p>" * 6
        subject = "【提醒】2026年先进制造业集群申报材料将于6月5日截止"
        raw = build_mime(
            message_id=message_id_for(key, "bench.shenbao"),
            from_addr=SENDER,
            from_name="浙江省经济和信息化厅",
            to_addr=addr,
            to_name=f"联系人{i}",
            subject=subject,
            text=text,
            html=html,
            date=NOW,
        )
        rows.append(
            {
                "key": key,
                "message_id": message_id_for(key, "bench.shenbao"),
                "contact_id": 1,
                "to_addr": addr,
                "to_name": f"联系人{i}",
                "subject": subject,
                "text_body": text,
                "html_body": html,
                "raw": raw,
                "urgent": False,
                "kinds": "reminder",
                "created_at": NOW,
                "next_attempt_at": NOW,
                "status": E_PENDING,
                "attempts": 0,
                "last_error": "",
            }
        )
    return rows


def fill_outbox(db: Database, rows: list[dict[str, object]]) -> None:
    upgrade(db)
    with db.write() as session:
        session.add(Organisation(id="bench", name="衢州市经济和信息化局", tier="city"))
        session.flush()
        session.add(
            Contact(id=1, org_id="bench", name="张三", email="zhangsan@qz.example.cn", updated_at=NOW)
        )
        session.flush()
        for start in range(0, len(rows), 500):
            session.execute(insert(Email.__table__), rows[start : start + 500])  # type: ignore[attr-defined]


def reset_outbox(db: Database) -> None:
    with db.write() as session:
        session.execute(delete(DeliveryAttempt))
        session.execute(
            update(Email).values(status=E_PENDING, attempts=0, claimed_by=None, claimed_at=None, sent_at=None)
        )


def check_outbox(db: Database, n: int) -> None:
    with db.read() as session:
        sent = session.execute(
            select(func.count()).select_from(Email).where(Email.status == E_SENT)
        ).scalar_one()
    if sent != n:
        raise SystemExit(f"only {sent} of {n} rows are 'sent'")


# --------------------------------------------------------------------------------------------
# The clients


async def pipelined(port: int, messages: list[bytes], connections: int, window: int = 64) -> int:
    """Blast MAIL/RCPT/DATA/message for many mails without waiting for replies (RFC 2920 style,
    which aiosmtpd's line reader handles even unadvertised); a reader counts the replies."""

    async def one(share: list[bytes]) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()
        writer.write(b"EHLO bench.local\r\n")
        while (await reader.readline())[3:4] != b" ":
            pass
        in_flight = asyncio.Semaphore(window)
        failures = 0

        async def replies() -> None:
            nonlocal failures
            for _ in share:
                for expected in (b"250", b"250", b"354", b"250"):
                    line = await reader.readline()
                    if not line.startswith(expected):
                        failures += 1
                in_flight.release()

        counting = asyncio.create_task(replies())
        for raw in share:
            await in_flight.acquire()
            to = b"contact@qz.example.cn"
            writer.write(
                b"MAIL FROM:<" + SENDER.encode() + b">\r\nRCPT TO:<" + to + b">\r\nDATA\r\n" + raw + b".\r\n"
            )
            if writer.transport.get_write_buffer_size() > 1 << 18:
                await writer.drain()
        await counting
        writer.write(b"QUIT\r\n")
        await writer.drain()
        writer.close()
        return failures

    shares = [messages[i::connections] for i in range(connections)]
    return sum(await asyncio.gather(*(one(s) for s in shares)))


async def lockstep(port: int, messages: list[bytes], connections: int) -> None:
    """aiosmtplib over reused connections, one command at a time: the dispatcher minus the database."""

    async def one(share: list[bytes]) -> None:
        client = aiosmtplib.SMTP(
            hostname="127.0.0.1", port=port, start_tls=False, local_hostname="bench.local"
        )
        await client.connect()
        for raw in share:
            await client.sendmail(SENDER, ["contact@qz.example.cn"], raw)
        await client.quit()

    await asyncio.gather(*(one(messages[i::connections]) for i in range(connections)))


async def connection_per_mail(port: int, messages: list[bytes]) -> None:
    for raw in messages:
        client = aiosmtplib.SMTP(
            hostname="127.0.0.1", port=port, start_tls=False, local_hostname="bench.local"
        )
        await client.connect()
        await client.sendmail(SENDER, ["contact@qz.example.cn"], raw)
        await client.quit()


# --------------------------------------------------------------------------------------------


@dataclass
class Row:
    what: str
    count: int
    rate: float  # msg/s, best run
    server_cpu: float  # the SMTP server's CPU seconds per message: what each client costs it
    paired: float | None  # median of (this run ÷ the ceiling run just before it)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--emails", type=int, default=5000)
    parser.add_argument("--naive", type=int, default=1000, help="mails for the connection-per-mail run")
    parser.add_argument("--repeat", type=int, default=3, help="paired runs per row (the machine is shared)")
    parser.add_argument("--concurrency", default="4,16", help="SMTP connections per process, 1-process runs")
    parser.add_argument(
        "--proc-concurrency", type=int, default=4, help="SMTP connections per process, N-process runs"
    )
    parser.add_argument("--processes", default="2,3,4", help="process counts for the SQLite runs")
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--quick", action="store_true", help="1,000 mails, 200 naive, once, 2 processes")
    args = parser.parse_args()
    if args.quick:
        args.emails, args.naive, args.repeat, args.processes = 1000, 200, 1, "2"
    n = args.emails

    print(
        f"machine: {os.cpu_count()} cores (nproc), Python {platform.python_version()}, {platform.platform()}"
    )
    started = time.perf_counter()
    rows_data = build_rows(n)
    messages = [r["raw"] for r in rows_data]  # type: ignore[misc]
    print(
        f"built {n} messages ({sum(map(len, messages)) / n:.0f} bytes each) in {time.perf_counter() - started:.1f}s"
    )

    server = ServerProcess()
    table: list[Row] = []
    ceiling_runs: list[float] = []
    load_before = os.getloadavg()[0]

    def expect(what: str, count: int) -> float:
        """Check the server got each message once; return its CPU seconds for them."""
        deadline = time.monotonic() + 5
        while server.count() < count and time.monotonic() < deadline:
            time.sleep(0.05)  # a client may finish a hair before the server has filed the last one
        ids, cpu = server.take()
        got, distinct = len(ids), len(set(ids))
        if (got, distinct) != (count, count):
            position = {r["message_id"]: i for i, r in enumerate(rows_data)}
            missing = sorted(position[m] for m in set(position) - set(ids))[:20] if count == n else "?"
            raise SystemExit(
                f"{what}: server received {got} messages, {distinct} distinct; expected {count}; "
                f"first missing (message numbers): {missing}"
            )
        used = cpu - server.cpu_seen
        server.cpu_seen = cpu
        return used

    def timed(what: str, count: int, send: Callable[[], float | None]) -> tuple[float, float]:
        """(msg/s, server CPU seconds per message) of one run; ``send`` may time itself."""
        t = time.perf_counter()
        elapsed = send()
        seconds = elapsed if elapsed is not None else time.perf_counter() - t
        return count / seconds, expect(what, count) / count

    def blast(connections: int) -> Callable[[], None]:
        def run() -> None:
            if failures := asyncio.run(pipelined(server.port, messages, connections)):
                raise SystemExit(f"pipelined client: {failures} unexpected replies")

        return run

    # (a) the ceiling: which connection count gets the most out of the server
    best_connections, best_rate = 1, 0.0
    for connections in (1, 2, 4, 8):
        what = f"ceiling: raw pipelined client, {connections} conn"
        runs = [timed(what, n, blast(connections)) for _ in range(args.repeat)]
        rate, server_cpu = max(runs)
        ceiling_runs.extend(r for r, _ in runs)
        table.append(Row(what, n, rate, server_cpu, None))
        print(f"  {what}: {rate:,.0f} msg/s", flush=True)
        if rate > best_rate:
            best_connections, best_rate = connections, rate

    def measure(what: str, count: int, send: Callable[[], float | None], repeat: int = args.repeat) -> None:
        """Each run right after a ceiling run: the ratio of the pair is what load cannot skew much."""
        rates, ratios, server_cpus = [], [], []
        for _ in range(repeat):
            ceiling, _ = timed("ceiling", n, blast(best_connections))
            ceiling_runs.append(ceiling)
            rate, server_cpu = timed(what, count, send)
            rates.append(rate)
            ratios.append(rate / ceiling)
            server_cpus.append(server_cpu)
        table.append(Row(what, count, max(rates), statistics.median(server_cpus), statistics.median(ratios)))
        print(
            f"  {what}: {max(rates):,.0f} msg/s, {statistics.median(ratios):.0%} of the ceiling beside it",
            flush=True,
        )

    # (a2) aiosmtplib's sendmail over reused connections, without any database work
    for connections in (4, 16):
        measure(
            f"aiosmtplib sendmail, {connections} reused conn, no database",
            n,
            lambda c=connections: asyncio.run(lockstep(server.port, messages, c)),  # type: ignore[misc]
        )

    # (b) one connection per mail
    naive = messages[: args.naive]
    measure(
        "sequential, new connection per mail (aiosmtplib)",
        len(naive),
        lambda: asyncio.run(connection_per_mail(server.port, naive)),
        repeat=1,
    )

    config = SmtpConfig(host="127.0.0.1", port=server.port, local_hostname="bench.local", batch_size=200)

    def dispatcher_rows(label: str, db: Database, process_counts: list[int]) -> None:
        for processes in process_counts:
            counts = (
                [int(c) for c in args.concurrency.split(",")] if processes == 1 else [args.proc_concurrency]
            )
            for concurrency in counts:
                cfg = replace(config, concurrency=concurrency)

                def run(p: int = processes, c: SmtpConfig = cfg) -> float:
                    reset_outbox(db)
                    if p == 1:
                        report = dispatch(db, NOW, c, worker="bench")
                    else:
                        report = dispatch_in_processes(db.url, NOW, c, processes=p)
                    if report.sent != n:
                        raise SystemExit(f"{label}: sent {report.sent} of {n}: {report}")
                    check_outbox(db, n)
                    return report.elapsed_seconds

                measure(f"dispatcher, {label}, {processes} proc × {concurrency} conn", n, run)

    # ru_maxrss only grows: what it gains from here on is what running dispatchers in this
    # process added to the peak (the children's own figure is useless: spawn forks this
    # process before it execs, so each child "peaks" at this size).
    rss_before_dispatch = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    # (c) SQLite
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        fill_outbox(sqlite, rows_data)
        dispatcher_rows("SQLite", sqlite, [1, *[int(p) for p in args.processes.split(",")]])
        sqlite.dispose()

    # (d) PostgreSQL
    if not args.no_pg:
        pg_database(rows_data, lambda db: dispatcher_rows("PostgreSQL", db, [1, 4]))

    server_rss = server.stop()
    ceiling_rate = max(ceiling_runs)
    print()
    print(
        f"ceiling = {ceiling_rate:,.0f} msg/s (best of {len(ceiling_runs)} raw pipelined runs, "
        f"{best_connections} conn); load average {load_before:.1f} → {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores"
    )
    print(
        f"{'run':<58} {'mails':>5} {'best msg/s':>10} {'÷ ceiling':>9} {'÷ ceiling beside':>16} "
        f"{'server µs/msg':>13}"
    )
    for row in table:
        paired = f"{row.paired:.0%}" if row.paired is not None else ""
        print(
            f"{row.what:<58} {row.count:>5} {row.rate:>10,.0f} {row.rate / ceiling_rate:>9.0%} "
            f"{paired:>16} {row.server_cpu * 1e6:>13.0f}"
        )
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\npeak RSS: bench process {rss_before_dispatch:.0f} MiB before the dispatcher runs (it holds the "
        f"{n} pre-built messages), {own:.0f} MiB after; SMTP server process {server_rss / 1024:.0f} MiB"
    )


def pg_database(rows: list[dict[str, object]], use: Callable[[Database], None]) -> None:
    try:
        import psycopg

        admin = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
        conn = psycopg.connect(admin, autocommit=True, connect_timeout=3)
    except Exception as exc:
        print(f"PostgreSQL skipped: {exc}", file=sys.stderr)
        return
    name = f"shenbao_bench_{uuid.uuid4().hex[:8]}"
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db = Database(f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}")
    try:
        fill_outbox(db, rows)
        use(db)
    finally:
        db.dispose()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
