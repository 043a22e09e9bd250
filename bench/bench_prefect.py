"""What Prefect costs here, and why shenbao runs one flow per sweep and not one flow per case.

    .venv/bin/python bench/bench_prefect.py [--cases 50] [--runs 30] [--sync-runs 10] [--no-worker]

All on this machine, Prefect 3.8.8 in local mode (no PREFECT_API_URL: a temporary server in
this process, its own PREFECT_HOME in a temporary directory), a SQLite database filled with the
demo's sample campaign data (all 11 cities) through the normal import path:

  (1) `import prefect` in a fresh interpreter (what a CLI command would pay for importing it);
  (2) the first flow run (starts the temporary server), then the overhead of an empty flow run,
      async and sync (a sync run starts a heartbeat thread);
  (3) the domain alone: one reconcile sweep over every case (`operations.sweep.reconcile`), and
      the per-case decision (is a reminder due, has the window closed) for one case;
  (4) the two designs side by side: ONE async flow that sweeps every case, against N async flow
      runs of one case each (and a few sync ones, extrapolated to N); ratios printed;
  (5) unless --no-worker: a real `prefect server start` and a process worker, and the latency
      of a deployment run (create → completed) registered with `flow.from_source(...).deploy()`:
      what each run costs in the distributed set-up.

Then an extrapolation to a province-sized campaign: flow runs per day and the Prefect time they
cost, for a sweep every 5 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NOW_TEXT = "2026-06-20T10:00"  # mid-campaign: reminders due, windows open


def _quiet_prefect(home: Path) -> None:
    """Local mode in a throw-away home; set before Prefect is imported."""
    for key in [k for k in os.environ if k.startswith("PREFECT_")]:
        del os.environ[key]
    os.environ.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW="ignore",
        PREFECT_LOGGING_LEVEL="WARNING",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="90",
    )


def _timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _median(samples: list[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


# -- the data -------------------------------------------------------------------------------------


def build_database(folder: Path) -> Any:
    from calendars.campaign import builtin_campaign_files
    from calendars.timeutil import parse_instant
    from flows.sample_data import write_sample
    from models.context import Actor
    from models.imports import import_cases, import_roster
    from models.registry import load_campaign, seed_divisions
    from models.schema import upgrade
    from operations.runtime import Runtime
    from operations.settings import Settings

    rt = Runtime(Settings(home=folder / "home", database_url=f"sqlite:///{folder / 'bench.db'}"))
    upgrade(rt.db)
    rt.audit(create=True)
    actor = Actor(name="bench")
    with rt.db.write() as session:
        seed_divisions(session)
        ctx = rt.ctx(actor, now=parse_instant("2026-05-26T09:00"))
        for path in builtin_campaign_files():
            load_campaign(session, ctx, path.read_text(encoding="utf-8"), origin=path.name)
    files = write_sample(folder / "sample")
    with rt.db.write() as session:
        ctx = rt.ctx(actor, now=parse_instant("2026-06-01T09:00"))
        for path in files.rosters.values():
            import_roster(session, ctx, path)
        import_cases(session, ctx, "2026-cluster-selection", files.cluster)
        import_cases(session, ctx, "2026-jingpin", files.jingpin)
    return rt


def application_ids(rt: Any) -> list[int]:
    from sqlalchemy import select

    from models.case import Case

    with rt.db.read() as session:
        return list(
            session.execute(
                select(Case.id)
                .where(
                    Case.kind.in_(  # type: ignore[attr-defined]
                        ("cluster_application", "jingpin_application")
                    )
                )
                .order_by(Case.id)
            ).scalars()
        )


def count_cases(rt: Any) -> int:
    from sqlalchemy import func, select

    from models.case import Case

    with rt.db.read() as session:
        return int(session.execute(select(func.count()).select_from(Case)).scalar_one())


def check_case(rt: Any, case_id: int, now: datetime) -> list[str]:
    """The per-case decision a one-flow-per-case design would make: which reminder step is due,
    has the window closed. Read-only, so it flatters that design (the real one also writes)."""
    from models.campaign import Campaign, deadlines_of
    from models.case import Case
    from notifications.schedule import WorkingHours, latest_due_step, reminder_time

    found: list[str] = []
    with rt.db.read() as session:
        case = session.get(Case, case_id)
        campaign = session.get(Campaign, case.campaign_id)  # type: ignore[union-attr]
        spec = campaign.spec()  # type: ignore[union-attr]
        hours = WorkingHours.parse(spec.working_hours)
        deadlines = deadlines_of(session, spec.id)
        for stage in spec.stages:
            if stage.subject != case.kind or case.state not in stage.pending_states:  # type: ignore[union-attr]
                continue
            row = deadlines.get(stage.id)
            due = row.due_at if row else stage.deadline
            if due is None:
                continue
            if due <= now and case.state in stage.lapse_states:  # type: ignore[union-attr]
                found.append(f"{stage.id}:lapse")
                continue
            steps = [(s, reminder_time(s, due, rt.calendar, hours)) for s in stage.reminders]
            step = latest_due_step(steps, now)
            if step is not None:
                found.append(f"{stage.id}:{step[0].id}")
    return found


# -- a real server and worker ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _api(url: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def deployment_latency(folder: Path, runs: int) -> dict[str, float]:
    """Server + process worker in subprocesses; ``runs`` deployment runs of an empty flow, one by one."""
    prefect = Path(sys.executable).parent / "prefect"
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    home = folder / "prefect-server"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")} | {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
    }
    started = time.perf_counter()
    server = subprocess.Popen(
        [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=home,
    )
    worker = None
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.perf_counter() - started > 120:
                    raise RuntimeError("prefect server did not start") from None
                time.sleep(0.1)
        server_start = time.perf_counter() - started
        client_env = env | {"PREFECT_API_URL": url, "PREFECT_WORKER_QUERY_SECONDS": "1"}
        subprocess.run(
            [str(prefect), "work-pool", "create", "bench", "--type", "process"],
            env=client_env,
            check=True,
            capture_output=True,
            cwd=REPO,
        )
        deploy = (
            "from prefect import flow\n"
            f"flow.from_source(source={str(REPO)!r}, entrypoint='bench/bench_prefect.py:noop_flow')"
            ".deploy(name='noop', work_pool_name='bench', print_next_steps=False)\n"
        )
        subprocess.run(
            [sys.executable, "-c", deploy], env=client_env, check=True, capture_output=True, cwd=REPO
        )
        worker = subprocess.Popen(
            [str(prefect), "worker", "start", "--pool", "bench"],
            env=client_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=home,
        )
        deployment = _api(url, "GET", "/deployments/name/bench-noop/noop")
        latencies = []
        for _ in range(runs):
            t0 = time.perf_counter()
            run = _api(url, "POST", f"/deployments/{deployment['id']}/create_flow_run", {})
            while True:
                state = _api(url, "GET", f"/flow_runs/{run['id']}")["state_type"]
                if state in ("COMPLETED", "FAILED", "CRASHED"):
                    break
                time.sleep(0.05)
            if state != "COMPLETED":
                raise RuntimeError(f"deployment run ended {state}")
            latencies.append(time.perf_counter() - t0)
        return {"server_start": server_start, "run_median": _median(latencies), "run_min": min(latencies)}
    finally:
        for proc in (worker, server):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()


# The flow the deployment runs: nothing, so the measurement is Prefect's alone. Defined only when
# this file is loaded as a deployment's entrypoint, so that running the bench imports Prefect
# after its settings are in place (and can time the import).
if __name__ != "__main__":
    from prefect import flow as _flow

    @_flow(name="bench-noop")
    async def noop_flow() -> None:
        return None


# -- main -------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=50, help="N: per-case flow runs to time (default 50)")
    parser.add_argument("--runs", type=int, default=30, help="empty async flow runs to time")
    parser.add_argument("--sync-runs", type=int, default=10, help="sync flow runs to time (each ~1 s)")
    parser.add_argument("--deployment-runs", type=int, default=5)
    parser.add_argument("--no-worker", action="store_true", help="skip the server + worker measurement")
    parser.add_argument(
        "--province-cases",
        type=int,
        default=3000,
        help="cases in the extrapolation (both 2026 campaigns, all levels, is a few thousand)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--quick", action="store_true", help="N = 10, 10 async and 2 sync runs, no worker")
    args = parser.parse_args()
    if args.quick:
        args.cases, args.runs, args.sync_runs, args.no_worker = 10, 10, 2, True

    folder = Path(tempfile.mkdtemp(prefix="bench-prefect-"))
    _quiet_prefect(folder / "prefect-home")
    figures: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU, Python {platform.python_version()}"
    }

    # (1) import cost, in fresh interpreters
    code = "import time; t=time.perf_counter(); import prefect; print(time.perf_counter()-t)"
    imports = [
        float(
            subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                text=True,
                check=True,
                env=os.environ.copy(),
            ).stdout
        )
        for _ in range(3)
    ]
    figures["import_prefect"] = _median(imports)

    # (3) the domain alone
    from calendars.timeutil import parse_instant
    from operations.sweep import reconcile as reconcile_at

    now = parse_instant(NOW_TEXT)
    rt = build_database(folder)
    ids = application_ids(rt)[: args.cases]
    n = len(ids)
    figures["cases_in_database"] = count_cases(rt)
    figures["n"] = n
    figures["sweep_first"] = _timed(lambda: reconcile_at(rt, now))  # writes the reminders
    figures["sweep_steady"] = _median([_timed(lambda: reconcile_at(rt, now)) for _ in range(5)])
    figures["case_check"] = _median([_timed(lambda i=i: check_case(rt, i, now)) for i in ids])

    # (2) Prefect's own cost
    from prefect import flow

    @flow(name="bench-empty-async")
    async def empty_async() -> None:
        return None

    @flow(name="bench-empty-sync")
    def empty_sync() -> None:
        return None

    @flow(name="bench-sweep")
    async def sweep_flow() -> None:
        await asyncio.to_thread(reconcile_at, rt, now)

    @flow(name="bench-one-case")
    async def one_case_flow(case_id: int) -> None:
        await asyncio.to_thread(check_case, rt, case_id, now)

    @flow(name="bench-one-case-sync")
    def one_case_sync(case_id: int) -> None:
        check_case(rt, case_id, now)

    figures["first_run"] = _timed(lambda: asyncio.run(empty_async()))
    figures["async_overhead"] = _median(
        [_timed(lambda: asyncio.run(empty_async())) for _ in range(args.runs)]
    )
    figures["sync_overhead"] = _median([_timed(empty_sync) for _ in range(args.sync_runs)])

    # (4) side by side
    figures["one_flow_sweep"] = _median([_timed(lambda: asyncio.run(sweep_flow())) for _ in range(3)])
    figures["n_async_flows"] = _timed(lambda: [asyncio.run(one_case_flow(i)) for i in ids])
    sync_sample = ids[: args.sync_runs]
    figures["n_sync_flows_extrapolated"] = (
        _timed(lambda: [one_case_sync(i) for i in sync_sample]) * n / max(len(sync_sample), 1)
    )

    # (5) the distributed set-up
    if not args.no_worker:
        figures["deployment"] = deployment_latency(folder, args.deployment_runs)

    rt.db.dispose()
    report(figures, args.province_cases)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False))
    shutil.rmtree(folder, ignore_errors=True)


def report(f: dict[str, Any], province: int) -> None:
    n = f["n"]
    print(f"\nPrefect 3.8.8, local mode — {f['machine']}")
    print(
        f"database: SQLite, {f['cases_in_database']} cases (sample data, 11 cities); N = {n} applications\n"
    )
    print("Prefect itself")
    print(f"  import prefect (fresh interpreter)        {_ms(f['import_prefect'])}")
    print(f"  first flow run (temporary server start)   {_ms(f['first_run'])}")
    print(f"  empty async flow run                      {_ms(f['async_overhead'])}")
    print(
        f"  empty sync flow run                       {_ms(f['sync_overhead'])}"
        f"   ({f['sync_overhead'] / f['async_overhead']:.0f}× async)"
    )
    if "deployment" in f:
        d = f["deployment"]
        print(f"  prefect server start                      {_ms(d['server_start'])}")
        print(
            f"  deployment run on a process worker        {_ms(d['run_median'])}   (create → completed, median)"
        )
    print("\nThe domain alone")
    print(f"  reconcile sweep, all cases, writing        {_ms(f['sweep_first'])}")
    print(f"  reconcile sweep, all cases, nothing new    {_ms(f['sweep_steady'])}")
    print(f"  per-case decision, one case                {_ms(f['case_check'])}")
    print(f"\nOne sweep vs one flow per case (N = {n})")
    one = f["one_flow_sweep"]
    print(f"  1 async flow sweeping every case           {_ms(one)}")
    print(
        f"  N async flows, one case each               {_ms(f['n_async_flows'])}   ({f['n_async_flows'] / one:.0f}× the sweep)"
    )
    print(
        f"  N sync flows, one case each (extrapolated) {_ms(f['n_sync_flows_extrapolated'])}"
        f"   ({f['n_sync_flows_extrapolated'] / one:.0f}× the sweep)"
    )
    overhead_share = 1 - (f["case_check"] / (f["n_async_flows"] / n))
    print(f"  share of a per-case run that is Prefect    {overhead_share:.1%}")
    sweeps_per_day = 24 * 60 // 5
    per_case_runs = province * sweeps_per_day
    print(f"\nExtrapolated: {province:,} cases, a sweep every 5 minutes ({sweeps_per_day} sweeps a day)")
    print(
        f"  one flow per sweep: {sweeps_per_day:,} runs/day, Prefect cost "
        f"{sweeps_per_day * f['async_overhead']:,.0f} s/day in local mode"
    )
    print(
        f"  one flow per case:  {per_case_runs:,} runs/day, Prefect cost "
        f"{per_case_runs * f['async_overhead'] / 3600:,.1f} h/day in local mode"
    )
    if "deployment" in f:
        per_run = f["deployment"]["run_median"]
        print(
            f"                      as deployment runs: {per_case_runs * per_run / 3600:,.0f} worker-hours/day "
            f"(one per case every 5 minutes would need {per_case_runs * per_run / 86400:,.0f} runs in parallel)"
        )


if __name__ == "__main__":
    main()
