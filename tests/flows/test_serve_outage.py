"""`shenbao serve` through a database outage across a 24:00 closing.

The periodic sweeps keep firing (their jobs live in memory), retry in Chinese, and the first
sweep after the database returns does the missed closing, once. APScheduler's own English
warning about its job store is replaced by one Chinese line.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from notifications.loopback import LoopbackSMTP
from operations.runtime import Runtime
from tests.flows.test_faults import TcpProxy, pg_scenario  # noqa: F401  (pg_scenario is a fixture)
from tests.flows.test_service import ServeProcess, lapse_events, make_runtime, serve_env

# The service's clock starts this long before 24:00. It starts after the imports, so the lead has
# to cover only the start (lock, catch-up sweep, planning): about 2 s at a load of 6; the rest of
# the wait is the price of every run. (40 s until 2026-12: the test took 46 s, mostly waiting.)
LEAD_SECONDS = 16


@pytest.mark.heavy  # about 20 s, most of it waiting for the service's clock to pass 24:00
def test_serve_retries_in_chinese_through_an_outage_and_does_the_missed_closing_once(
    pg_scenario: tuple[Runtime, TcpProxy, LoopbackSMTP],  # noqa: F811
    tmp_path: Path,
) -> None:
    rt, proxy, smtp = pg_scenario
    direct_url = make_url(rt.db.url).set(port=proxy.target[1]).render_as_string(hide_password=False)
    direct = make_runtime(direct_url, tmp_path / "home", smtp_port=smtp.port)
    env = serve_env(tmp_path / "home", rt.db.url, smtp.port) | {"SHENBAO_DB_CONNECT_TIMEOUT": "2"}
    serve = ServeProcess(
        [
            "--now",
            f"2026-06-25T23:59:{60 - LEAD_SECONDS}",
            "serve",
            "--no-web",
            "--interval",
            "0.05",
            "--db-retry",
            "1",
        ],
        env,
    )
    try:
        # The clock started before this line was written: 24:00 comes at most LEAD_SECONDS later.
        serve.wait_for_line("模拟时钟")
        started = time.monotonic()
        serve.wait_for_line("调度服务已就绪")
        proxy.stop()
        assert lapse_events(direct) == [], "the service was too slow to start: 24:00 had passed"
        serve.wait_for_line("截止时刻唤醒暂停")
        serve.wait_for_line("（第 1/3 次），1 秒后重试")
        serve.wait_for_line("（已试 3 次），等下一次唤醒再补")
        # Hold the outage until the service's clock is past 24:00 (the wake-up could not be read).
        time.sleep(max(0.0, started + LEAD_SECONDS + 2 - time.monotonic()))
        assert lapse_events(direct) == []
        proxy.start()
        serve.wait_for_line("逾期关闭 11 件", timeout=90)
        serve.wait_for_line("数据库已恢复")
    finally:
        code = serve.stop()
    assert code == 0, serve.log
    assert "数据库无法访问" in serve.log or "连接数据库超时" in serve.log
    assert "Error getting due jobs" not in serve.log
    # Through the outage, the recovery and the stop, nothing but Chinese lines (the scheduler stops
    # its loop before its executors: no "cannot schedule new futures after shutdown" at SIGTERM).
    assert "Traceback" not in serve.log
    assert "cannot schedule new futures" not in serve.log
    assert serve.log.count("截止时刻唤醒暂停") == 1, serve.log
    events = lapse_events(direct)
    assert len(events) == 11 and len({e.case_id for e in events}) == 11
    direct.db.dispose()
