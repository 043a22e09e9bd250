"""Every edge calls the same operation: `shenbao send` re-checks each mail just before it goes
(however many processes send), and `shenbao tick` reconciles under the same lock as the service.

The CLI's entry point in-process (the processes `send --processes 2` spawns are real), its own
SHENBAO_HOME, a real SMTP server on loopback; for the lock, `shenbao tick` as cron runs it (the
console script in a subprocess) against the real PostgreSQL server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from flows.sample_data import CLUSTER_HEADERS, ROSTER_HEADERS
from models.sheets import write_sheet
from notifications.loopback import LoopbackSMTP
from operations.sweep import RECONCILE_LOCK_KEY
from tests.flows.test_cli import Shenbao

SHENBAO = Path(sys.executable).parent / "shenbao"


def env_for(home: Path, **extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SHENBAO_")}
    return clean | {"SHENBAO_HOME": str(home), "COLUMNS": "200", "SHENBAO_ACTOR": "省经信厅/祝博艺"} | extra


def prepare(home: Path, tmp_path: Path, **env: str) -> Shenbao:
    """杭州市 and two counties with one application each (赵敏 for 西湖区, 钱进 for 余杭区)."""
    roster = write_sheet(
        tmp_path / "名单.csv",
        ROSTER_HEADERS,
        [
            ["杭州市", "产业处", "陈静", "处长", "13905710003", "集群遴选", "chenjing@hz.example"],
            ["西湖区", "经信局产业科", "李娜", "科长", "13905710001", "集群遴选", "lina@xihu.example"],
            ["余杭区", "经信局产业科", "王强", "科长", "13905710002", "集群遴选", "wangqiang@yuhang.example"],
        ],
    )
    row = ["协同区", "人工智能", "智能终端", "创新型产业集群", "260", "1", "1", "3"]
    cluster = write_sheet(
        tmp_path / "集群申报.csv",
        CLUSTER_HEADERS,
        [
            ["西湖区", "", *row, "赵敏", "13905711001", "zm@xihu.example"],
            ["余杭区", "", *row, "钱进", "13905711002", "qj@yuhang.example"],
        ],
    )
    sb = Shenbao(home, **env)
    sb("init", now="2026-05-26T09:00")
    sb("roster", "import", str(roster), "--submit", "--as", "杭州市", "--by", "陈静", now="2026-05-27T10:00")
    sb("case", "import", str(cluster), "--campaign", "2026-cluster-selection", now="2026-06-01T10:00")
    return sb


def test_send_in_two_processes_does_not_remind_a_county_that_submitted_after_the_tick(tmp_path: Path) -> None:
    sb = prepare(tmp_path / "home", tmp_path)
    # The d-7 reminders are written for both counties at 09:00 …
    sb("tick", now="2026-06-18T09:00")
    # … and 余杭区 submits before they go out.
    sb("case", "act", "CL26-00002", "submit", "--as", "余杭区", "--by", "王强", now="2026-06-18T09:05")
    with LoopbackSMTP() as smtp:
        # The two sending processes are real (spawned by `send`); the command itself runs here.
        Shenbao(sb.home, SHENBAO_SMTP_PORT=str(smtp.port))("send", "--processes", "2", now="2026-06-18T09:10")
        received = sorted(m.rcpt_tos[0] for m in smtp.messages)
    assert received == ["lina@xihu.example", "zm@xihu.example"]


def _waiting_for_reconcile_lock(conn: psycopg.Connection) -> bool:
    # A bigint advisory key shows as classid (high 32 bits) / objid (low 32 bits), objsubid 1.
    key = RECONCILE_LOCK_KEY & 0xFFFFFFFFFFFFFFFF
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND classid = %s AND objid = %s AND objsubid = 1 AND pid <> pg_backend_pid()",
        (key >> 32, key & 0xFFFFFFFF),
    ).fetchone()
    return bool(row and row[0])


def test_tick_waits_for_the_reconcile_lock_the_service_holds(tmp_path: Path, fresh_pg_url: str) -> None:
    home = tmp_path / "home"
    env = {"SHENBAO_DATABASE_URL": fresh_pg_url}
    prepare(home, tmp_path, **env)
    with psycopg.connect(fresh_pg_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (RECONCILE_LOCK_KEY,))
        tick = subprocess.Popen(
            [str(SHENBAO), "tick", "--now", "2026-06-18T09:00"],
            env=env_for(home, **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # Either tick queues behind the lock (seen from this side in pg_locks), or it finishes
            # without ever asking for it: poll for whichever happens first.
            while not _waiting_for_reconcile_lock(holder):
                assert tick.poll() is None, (
                    f"tick ran while the reconcile lock was held: {tick.communicate()}"
                )
                time.sleep(0.05)
            assert tick.poll() is None  # still queued: it cannot have finished behind the lock
        finally:
            holder.execute("SELECT pg_advisory_unlock(%s)", (RECONCILE_LOCK_KEY,))
        stdout, stderr = tick.communicate(timeout=120)
    assert tick.returncode == 0, (stdout, stderr)
    assert "对账" in stdout
