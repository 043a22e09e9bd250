"""Prefect smoke tests: the real thing, few and together (Prefect costs seconds, not milliseconds).

One Prefect server for the session (`prefect server start` on a free port, its own PREFECT_HOME,
its scheduler off so no schedule fires mid-test):

- the deployments of deploy/prefect.yaml are registered with `prefect deploy`, a process worker
  runs the reconcile and dispatch deployments against PostgreSQL, and the database and a
  loopback SMTP server show the effect;
- the flows run in this process against that server (sweep, status report, imports, a bad file);
- `shenbao flow run` runs a flow in Prefect's local mode, with no server at all.

Everything else tests the domain functions directly; see test_service.py and test_faults.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from calendars.timeutil import parse_instant
from models.case import Case
from models.db import Database
from models.outbox import E_PENDING, E_SENT, Email
from notifications.loopback import LoopbackSMTP
from tests.flows.test_service import (
    REPO,
    SCENARIO,
    drafts,
    lapse_events,
    make_runtime,
    seed_scenario,
    wait_for,
)
from tests.notifications.conftest import free_port

pytestmark = [pytest.mark.prefect]
# The tests that share the session's server run on one xdist worker, so that one server is started;
# the local-mode test needs none and may run beside them.
shares_the_server = pytest.mark.xdist_group("prefect-server")

PREFECT = Path(sys.executable).parent / "prefect"
SHENBAO = Path(sys.executable).parent / "shenbao"
MORNING_AFTER = "2026-06-26T09:00"  # 线上申报 closed at 06-25 24:00


def prefect_env(home: Path, api_url: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SHENBAO_"))}
    env |= {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "COLUMNS": "200",
    }
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env | extra


@dataclass
class PrefectServer:
    url: str  # .../api
    home: Path

    def env(self, **extra: str) -> dict[str, str]:
        return prefect_env(self.home, self.url, **extra)

    def api(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        # The server answers 503 while its own SQLite database is busy (a worker writing run
        # states); Prefect's client retries those with back-off, and so does this one.
        for attempt in range(6):
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    return json.loads(response.read() or b"null")
            except urllib.error.HTTPError as exc:
                if exc.code != 503 or attempt == 5:
                    raise
                time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    def prefect(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(PREFECT), *args], env=self.env(**env), cwd=REPO, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    log = (home / "server.log").open("w")
    # No scheduler service: the deployments' schedules must not start runs during the test.
    env = prefect_env(
        home, None, PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false", PREFECT_SERVER_UI_ENABLED="false"
    )
    server = subprocess.Popen(
        [str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=home,
    )

    def healthy() -> bool:
        if server.poll() is not None:
            raise AssertionError(f"prefect server exited: {(home / 'server.log').read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    try:
        # Seconds on a quiet machine; over a minute at a load average of 15 (a wait, not a check).
        wait_for(healthy, timeout=240, what="the Prefect server")
        yield PrefectServer(url, home)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.fixture
def pg_db(_pg_schema: Database) -> Database:
    from tests.conftest import _truncate

    _truncate(_pg_schema)
    return _pg_schema


@pytest.fixture
def smtp() -> Iterator[LoopbackSMTP]:
    with LoopbackSMTP() as server:
        yield server


def shenbao_env(home: Path, db_url: str, smtp_port: int) -> dict[str, str]:
    return {
        "SHENBAO_HOME": str(home),
        "SHENBAO_DATABASE_URL": db_url,
        "SHENBAO_SMTP_PORT": str(smtp_port),
        "SHENBAO_SRC": str(REPO),
    }


def count(session: Any, table: Any, *where: Any) -> int:
    return int(session.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def run_deployment(server: PrefectServer, name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """Start a run of ``name`` ("flow/deployment") and wait for a final state (the worker runs it)."""
    deployment = server.api("GET", f"/deployments/name/{name}")
    run = server.api("POST", f"/deployments/{deployment['id']}/create_flow_run", {"parameters": parameters})

    def final() -> dict[str, Any] | None:
        state = server.api("GET", f"/flow_runs/{run['id']}")
        return state if state["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

    return wait_for(final, timeout=120, what=f"the run of {name}")  # type: ignore[no-any-return]


# -- deployments, a worker, PostgreSQL -----------------------------------------------------------------------


@shares_the_server
@pytest.mark.heavy
def test_the_deployments_run_on_a_process_worker_against_postgresql(
    prefect_server: PrefectServer, pg_db: Database, tmp_path: Path, smtp: LoopbackSMTP
) -> None:
    rt = make_runtime(pg_db.url, tmp_path / "home", smtp_port=smtp.port)
    seed_scenario(rt)
    env = shenbao_env(tmp_path / "home", pg_db.url, smtp.port)
    prefect_server.prefect("work-pool", "create", "shenbao", "--type", "process", "--overwrite")
    prefect_server.prefect("--no-prompt", "deploy", "--all", "--prefect-file", "deploy/prefect.yaml")
    names = {d["name"] for d in prefect_server.api("POST", "/deployments/filter", {})}
    assert {"sweep", "dispatch", "reconcile", "status-report", "import-roster", "import-cases"} <= names

    worker_log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [str(PREFECT), "worker", "start", "--pool", "shenbao", "--name", "smoke-worker"],
        env=prefect_server.env(PREFECT_WORKER_QUERY_SECONDS="1", **env),
        cwd=tmp_path,
        stdout=worker_log,
        stderr=subprocess.STDOUT,
    )
    try:
        reconciled = run_deployment(prefect_server, "shenbao-reconcile/reconcile", {"now": MORNING_AFTER})
        assert reconciled["state_type"] == "COMPLETED", (tmp_path / "worker.log").read_text()
        # The effect, in the database: the drafts lapsed at 24:00, their notices composed.
        assert drafts(rt) == 0 and len(lapse_events(rt)) == 11
        with rt.db.read() as session:
            composed = count(session, Email, Email.status == E_PENDING)
        assert composed > 0 and len(smtp) == 0  # reconcile composes; it does not send

        dispatched = run_deployment(prefect_server, "shenbao-dispatch/dispatch", {"now": MORNING_AFTER})
        assert dispatched["state_type"] == "COMPLETED", (tmp_path / "worker.log").read_text()
        with rt.db.read() as session:
            sent = count(session, Email, Email.status == E_SENT)
        assert sent == composed == len(smtp)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        worker_log.close()
        rt.db.dispose()


# -- the flows in this process, against the server ----------------------------------------------------------


@pytest.fixture
def prefect_client(prefect_server: PrefectServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_HOME,
        PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW,
        PREFECT_SERVER_ANALYTICS_ENABLED,
        temporary_settings,
    )

    with temporary_settings(
        {
            PREFECT_API_URL: prefect_server.url,
            PREFECT_HOME: str(prefect_server.home),
            PREFECT_SERVER_ANALYTICS_ENABLED: False,
            PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW: "ignore",
        }
    ):
        yield


@shares_the_server
@pytest.mark.heavy
def test_the_flows_run_in_process_sweep_report_and_imports(
    prefect_client: None,
    sqlite_db: Database,
    tmp_path: Path,
    smtp: LoopbackSMTP,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows import prefect_flows
    from models.registry import load_campaign, seed_divisions

    rt = make_runtime(sqlite_db.url, tmp_path / "home", smtp_port=smtp.port)
    for key, value in shenbao_env(tmp_path / "home", sqlite_db.url, smtp.port).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SHENBAO_NOW", raising=False)
    monkeypatch.setenv("SHENBAO_ACTOR", "省经信厅/祝博艺")  # the worker's unit names who imports
    # `shenbao init` without the files: the imports come through the flows.
    from calendars.campaign import builtin_campaign_files
    from models.context import Actor

    with rt.db.write() as session:
        seed_divisions(session)
        ctx = rt.ctx(Actor(name="tester"), now=parse_instant("2026-05-26T09:00"))
        for path in builtin_campaign_files():
            load_campaign(session, ctx, path.read_text(encoding="utf-8"), origin=path.name)

    roster = asyncio.run(
        prefect_flows.import_roster_flow(path=str(SCENARIO / "roster_hangzhou.xlsx"), now="2026-06-01T09:00")
    )
    assert roster["rows"] == 4
    cases = asyncio.run(
        prefect_flows.import_cases_flow(
            path=str(SCENARIO / "cluster_hangzhou.csv"),
            campaign="2026-cluster-selection",
            now="2026-06-01T09:00",
        )
    )
    assert len(cases["created"]) == 11

    swept = asyncio.run(prefect_flows.sweep_flow(now=MORNING_AFTER))
    assert len(swept["tick"]["lapsed"]) == 11
    assert swept["sent"]["sent"] == swept["tick"]["emails"] == len(smtp) > 0

    report = asyncio.run(prefect_flows.status_report_flow(now=MORNING_AFTER))
    assert "# 申报工作日报（2026-06-26（周五）09:00）" in report["markdown"]
    assert report["outbox"]["sent"] == len(smtp)

    # A file with a bad row is refused as a whole, with the row named, and is not retried.
    bad = tmp_path / "bad.csv"
    bad.write_text(
        (SCENARIO / "cluster_hangzhou.csv").read_text(encoding="utf-8").replace("西湖区", "不存在区", 1),
        encoding="utf-8",
    )
    from models.sheets import ImportRejected

    with rt.db.read() as session:
        before = count(session, Case)
    with pytest.raises(ImportRejected, match="不存在区"):
        asyncio.run(prefect_flows.import_cases_flow(path=str(bad), campaign="2026-cluster-selection"))
    with rt.db.read() as session:
        assert count(session, Case) == before  # nothing imported
    rt.db.dispose()


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def result(self) -> None:
        raise self.exc


def test_an_import_is_retried_for_a_lost_database_but_not_for_a_bad_file() -> None:
    from sqlalchemy.exc import OperationalError

    from flows.prefect_flows import _retry_if_db_down
    from models.sheets import ImportRejected

    lost = OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))
    assert _retry_if_db_down(None, None, _Failed(lost)) is True
    assert _retry_if_db_down(None, None, _Failed(ImportRejected([]))) is False


# -- local mode: no server at all ------------------------------------------------------------------------------


@pytest.mark.heavy
def test_shenbao_flow_run_works_in_local_mode_without_a_server(
    sqlite_db: Database, tmp_path: Path, smtp: LoopbackSMTP
) -> None:
    rt = make_runtime(sqlite_db.url, tmp_path / "home", smtp_port=smtp.port)
    seed_scenario(rt)
    env = prefect_env(
        tmp_path / "prefect-home", None, **shenbao_env(tmp_path / "home", sqlite_db.url, smtp.port)
    )
    done = subprocess.run(
        [str(SHENBAO), "--now", MORNING_AFTER, "flow", "run", "sweep"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert "2026-06-26（周五）09:00 对账：" in done.stdout and "逾期关闭 11 件" in done.stdout
    assert "temporary server" in done.stderr  # Prefect's local mode
    assert len(lapse_events(rt)) == 11 and len(smtp) > 0
    rt.db.dispose()
