"""Reconcile over 100,000 open cases, against one APScheduler date job per reminder.

    .venv/bin/python bench/bench_reconcile.py [--cases 100000] [--out DIR] [--sample 5000]

One SQLite database, built once (through ``models.registry.bulk_new_cases``, so every case has
its audit event as an import leaves it):

- divisions and both 2026 campaign files, as ``shenbao init`` leaves them;
- contacts the way a roster gives them: 2–3 per county, 2–3 per city, 4 at the province;
- ``--cases`` open applications across the 90 counties, half cluster drafts (the county itself
  or one of ~2,000 parks applies), half 精品 drafts of ~16,000 enterprises without their own
  e-mail (their reminders go through the county, the heaviest way: long "forwarded" lists).

Then, each phase in its own process so that its peak RSS is its own:

1. reconcile at 2026-06-24 10:00 (the d-1wd reminder of 09:00 to every county, the d-1wd-city
   one of 10:00 to every city, the roster escalations of the cities that never sent theirs):
   first pass, then the same instant again (nothing new), then an hour later (nothing new);
   reconcile and compose timed apart;
2. the obvious alternative: one APScheduler date job per reminder in its SQLAlchemyJobStore on
   the same SQLite file, ``add_job(..., id=key, replace_existing=True)`` for every notification
   row the first pass wrote, then for a sample of (case, step) jobs (what "a job per case and
   reminder step" would add at import), extrapolated to every open case;
3. ``shenbao status`` on that database, as a coordinator runs it (subprocess, wall clock), and
   its queries alone in-process.

Prints every figure and the ratios side by side; the figures of one run on this machine are in
bench/README.md ("Reconcile").
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert
from sqlmodel import select

from calendars.campaign import builtin_campaign_files
from calendars.timeutil import format_local, parse_instant
from models.case import Case
from models.context import Actor, Ctx
from models.org import Contact, Organisation
from models.outbox import Notification
from models.reference import load_divisions
from models.registry import bulk_new_cases, load_campaign, seed_divisions
from models.schema import upgrade

try:
    from operations.runtime import Runtime
    from operations.settings import Settings
except ImportError:  # commit 7cf4329 (bench/baseline.py runs this file there too): flows/ held them
    from flows.runtime import Runtime  # type: ignore[no-redef]
    from flows.settings import Settings  # type: ignore[no-redef]

CLUSTER, JINGPIN = "2026-cluster-selection", "2026-jingpin"
BUILT_AT = parse_instant("2026-06-01T10:00")
PASS_AT = parse_instant("2026-06-24T10:00")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董潘袁蔡蒋余于杜叶程魏苏吕丁任沈姚卢姜崔钟谭陆汪范金石廖"
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红梅鹏辉宇浩凯健俊帆晨曦婷雪琳倩颖博文瑶瑜然昊睿"
)
TRACKS = [
    ("collaborative", "人工智能", "智能终端"),
    ("collaborative", "高端软件", "工业软件"),
    ("core", "工业母机与机器人", "模具"),
    ("rising_star", "高端装备", "精密泵阀"),
]
CHUNK = 50_000  # cases per bulk_new_cases call: a million at once would hold GBs of rows and events
PRODUCTS = [("advanced", "工业母机与机器人"), ("digital", "智能物联"), ("consumer", "现代纺织与服装")]


def rss_mb() -> float:
    """This process's peak RSS. VmHWM rather than ru_maxrss: Linux carries ru_maxrss over an
    exec, so a spawned child would report its parent's peak (the 100,000-case build)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------------------------
# Building the database


def build(home: Path, cases: int, seed: int = 2026) -> dict[str, Any]:
    rng = random.Random(seed)
    rt = Runtime(Settings(home=home, database_url=f"sqlite:///{home / 'shenbao.db'}"))
    upgrade(rt.db)
    audit = rt.audit(create=True)
    zj = load_divisions()
    counties = [d for d in zj if d.tier == "county"]
    cities = [d for d in zj if d.tier == "city"]
    started = time.perf_counter()
    with rt.db.write() as session:
        ctx = Ctx(now=parse_instant("2026-05-26T09:00"), actor=Actor(name="bench"), audit=audit)
        seed_divisions(session)
        for path in builtin_campaign_files():
            load_campaign(session, ctx, path.read_text(encoding="utf-8"), origin=path.name)

        contacts: list[dict[str, Any]] = []
        used: set[str] = set()

        def person() -> str:
            while True:
                name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
                if name not in used:
                    used.add(name)
                    return name

        def add(org_id: str, programs: str) -> None:
            n = len(contacts)
            contacts.append(
                {
                    "org_id": org_id,
                    "department": "经信局",
                    "name": person(),
                    "title": "科长",
                    "mobile": f"139{n:08d}",
                    "email": f"c{n}@{org_id}.bench.example",
                    "programs": programs,
                    "active": True,
                    "source": "bench",
                    "updated_at": ctx.now,
                }
            )

        for division in [*counties, *cities]:
            for i in range(rng.choice((2, 3))):
                add(division.code, ("cluster", "jingpin", "cluster,jingpin")[i % 3])
        for programs in ("cluster", "cluster", "jingpin", "jingpin"):
            add("330000", programs)
        session.execute(insert(Contact), contacts)

        # Parks (cluster applicants) and enterprises (精品 applicants), ~1 per 25 and 3 cases.
        n_cluster, n_jingpin = cases // 2, cases - cases // 2
        parks = [(f"PARK-b{i:05d}", rng.choice(counties)) for i in range(max(1, n_cluster // 25))]
        ents = [(f"ENT-b{i:06d}", rng.choice(counties)) for i in range(max(1, n_jingpin // 3))]
        session.execute(
            insert(Organisation),
            [
                {
                    "id": oid,
                    "name": f"{c.name}{kind}{oid[-5:]}",
                    "tier": tier,
                    "city_code": c.city_code,
                    "county_code": c.code,
                    "mountain_island": c.mountain_island,
                }
                for rows, kind, tier in ((parks, "产业园", "park"), (ents, "科技有限公司", "enterprise"))
                for oid, c in rows
            ],
        )
        by_code = {c.code: c for c in counties}
        spec_cluster = next(s for s in _specs(session) if s.id == CLUSTER)
        spec_jingpin = next(s for s in _specs(session) if s.id == JINGPIN)
        batch = Ctx(now=BUILT_AT, actor=Actor(name="bench import"), audit=audit)
        rows: list[dict[str, Any]] = []
        for i in range(n_cluster):
            if rng.random() < 0.3:
                county = rng.choice(counties)
                org_id, title = county.code, county.name
            else:
                org_id, c = rng.choice(parks)
                county, title = c, f"{c.name}产业园{org_id[-5:]}"
            zone, cluster, track = rng.choice(TRACKS)
            rows.append(
                {
                    "ref": f"CL26-{i + 1:05d}",
                    "kind": "cluster_application",
                    "org_id": org_id,
                    "city_code": county.city_code,
                    "county_code": county.code,
                    "title": title,
                    "zone_type": zone,
                    "track": track,
                    "attrs": {"cluster": cluster, "subtrack": track, "revenue": "250"},
                }
            )
            if len(rows) == CHUNK:
                bulk_new_cases(session, batch, spec_cluster, rows, reason="bench import")
                rows = []
        bulk_new_cases(session, batch, spec_cluster, rows, reason="bench import")
        rows = []
        for i in range(n_jingpin):
            org_id, c = ents[i % len(ents)]
            category, track = rng.choice(PRODUCTS)
            rows.append(
                {
                    "ref": f"JP26-{i + 1:05d}",
                    "kind": "jingpin_application",
                    "org_id": org_id,
                    "city_code": by_code[c.code].city_code,
                    "county_code": c.code,
                    "title": f"{c.name}企业{org_id[-6:]}：产品{i}",
                    "category": category,
                    "track": track,
                    "attrs": {"product": f"产品{i}", "avg_sales": "900"},
                }
            )
            if len(rows) == CHUNK:
                bulk_new_cases(session, batch, spec_jingpin, rows, reason="bench import")
                rows = []
        bulk_new_cases(session, batch, spec_jingpin, rows, reason="bench import")
    elapsed = time.perf_counter() - started
    with rt.db.read() as session:
        open_cases = session.exec(
            select(func.count()).select_from(Case).where(Case.state.in_(("draft", "pending")))
        ).one()  # type: ignore[attr-defined]
        n_contacts = session.exec(select(func.count()).select_from(Contact)).one()
    rt.db.dispose()
    return {
        "build_s": elapsed,
        "open_cases": open_cases,
        "contacts": n_contacts,
        "parks": len(parks),
        "enterprises": len(ents),
    }


def _specs(session: Any) -> list[Any]:
    from models.campaign import Campaign

    return [c.spec() for c in session.exec(select(Campaign))]


# --------------------------------------------------------------------------------------------
# Phase 1: reconcile (child process)


def _passes(home: str, passes: list[tuple[str, datetime]], out: Any) -> None:
    out.put(run_passes(home, passes))


def run_passes(home: str, passes: list[tuple[str, datetime]]) -> dict[str, Any]:
    """Reconcile and compose at each instant in turn, each in its own transaction, as a tick does."""
    from notifications.compose import compose
    from notifications.reconcile import reconcile

    rt = Runtime(Settings(home=Path(home), database_url=f"sqlite:///{Path(home) / 'shenbao.db'}"))
    audit = rt.audit()
    identity, renderer, calendar = rt.identity, rt.renderer, rt.calendar
    calendar.is_working_day(PASS_AT.date())  # the year's holidays, loaded once per process anyway
    results: dict[str, Any] = {}
    for label, now in passes:
        ctx = Ctx(now=now, actor=Actor(name="system"), audit=audit)
        t0 = time.perf_counter()
        with rt.db.write() as session:
            report = reconcile(session, ctx, calendar)
            session.flush()
            t1 = time.perf_counter()
            report.emails = compose(session, now, calendar, identity, renderer)
            t2 = time.perf_counter()
        t3 = time.perf_counter()
        results[label] = {
            "at": now,
            "reconcile_s": t1 - t0,
            "compose_s": t2 - t1,
            "commit_s": t3 - t2,
            "total_s": t3 - t0,
            "written": dict(report.written),
            "emails": report.emails,
            "cancelled": report.cancelled,
            "lapsed": len(report.lapsed),
        }
    with rt.db.read() as session:
        keys = [(k, d) for k, d in session.exec(select(Notification.key, Notification.due_at))]
    results["notification_keys"] = keys
    results["peak_rss_mb"] = rss_mb()
    rt.db.dispose()
    return results


# --------------------------------------------------------------------------------------------
# Phase 2: one APScheduler date job per reminder (child process)


def _apscheduler_phase(home: str, keys: list[tuple[str, datetime]], sample: int, out: Any) -> None:
    from apscheduler.job import Job
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.date import DateTrigger

    url = f"sqlite:///{Path(home) / 'shenbao.db'}"
    scheduler = BackgroundScheduler(timezone="Asia/Shanghai")  # never started: the store alone is measured
    store = SQLAlchemyJobStore(url=url, tablename="bench_apscheduler_jobs")
    store.start(scheduler, "default")

    def job(key: str, at: datetime) -> Job:
        return Job(
            scheduler,
            id=key,
            func="logging:info",
            args=(key,),
            kwargs={},
            trigger=DateTrigger(run_date=at),
            executor="default",
            name=key,
            misfire_grace_time=None,
            coalesce=True,
            max_instances=1,
            next_run_time=at,
        )

    def add_all(items: list[tuple[str, datetime]]) -> float:
        t0 = time.perf_counter()
        for key, at in items:
            j = job(key, at)
            try:
                store.add_job(j)
            except Exception:  # ConflictingIdError: replace_existing=True means update
                store.update_job(j)
        return time.perf_counter() - t0

    results: dict[str, Any] = {}
    results["per_row_add_s"] = add_all(keys)
    results["per_row_replan_s"] = add_all(keys)  # a deadline move re-adds every job (replace_existing)
    t0 = time.perf_counter()
    store.get_due_jobs(PASS_AT - timedelta(days=30))  # a wake-up with nothing due
    results["per_row_idle_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    due = store.get_due_jobs(PASS_AT + timedelta(hours=1))
    results["per_row_due_s"] = time.perf_counter() - t0
    results["per_row_due"] = len(due)
    store.remove_all_jobs()
    # A job per (case, reminder step): the jobs an import of ``sample`` cases would add for
    # the one step due at 09:00; the rest is extrapolated (the cost is flat per job).
    items = [(f"case:{i}:d-1wd", PASS_AT - timedelta(hours=1)) for i in range(sample)]
    results["per_case_sample_add_s"] = add_all(items)
    results["per_case_sample"] = sample
    t0 = time.perf_counter()
    due = store.get_due_jobs(PASS_AT)
    results["per_case_due_s"] = time.perf_counter() - t0
    store.remove_all_jobs()
    store.shutdown()
    results["peak_rss_mb"] = rss_mb()
    out.put(results)


# --------------------------------------------------------------------------------------------
# Phase 3: shenbao status


def _status_timing(home: Path) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHENBAO_")} | {
        "SHENBAO_HOME": str(home),
        "COLUMNS": "200",
    }
    shenbao = Path(sys.executable).parent / "shenbao"
    walls = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run(
            [str(shenbao), "status", "--now", "2026-06-24T10:00"], env=env, check=True, capture_output=True
        )
        walls.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    subprocess.run([str(shenbao), "--help"], env=env, check=True, capture_output=True)
    startup = time.perf_counter() - t0

    from models.status import board, stage_views

    rt = Runtime(Settings(home=home, database_url=f"sqlite:///{home / 'shenbao.db'}"))
    queries = []
    for _ in range(3):
        t0 = time.perf_counter()
        with rt.db.read() as session:
            from models.campaign import Campaign

            for c in session.exec(select(Campaign).order_by(Campaign.id)):
                kind = "cluster_application" if c.program == "cluster" else "jingpin_application"
                board(session, c.id, kind)
                stage_views(session, c, PASS_AT, rt.calendar)
        queries.append(time.perf_counter() - t0)
    rt.db.dispose()
    return {"status_wall_s": min(walls), "cli_startup_s": startup, "status_queries_s": min(queries)}


# --------------------------------------------------------------------------------------------


def _child(target: Any, *args: Any) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, out))
    proc.start()
    result = out.get(timeout=3600)
    proc.join()
    if proc.exitcode:
        raise RuntimeError(f"{target.__name__} exited with {proc.exitcode}")
    return result  # type: ignore[no-any-return]


def _print_passes(title: str, results: dict[str, Any], labels: list[str]) -> None:
    print(f"\n{title} (peak RSS {results['peak_rss_mb']:.0f} MB):")
    for label in labels:
        r = results[label]
        extra = f", lapsed {r['lapsed']:,}" if r["lapsed"] else ""
        print(
            f"  {label:<11} {format_local(r['at'])}  total {r['total_s']:7.3f} s  (reconcile {r['reconcile_s']:.3f}, "
            f"compose {r['compose_s']:.3f}, commit {r['commit_s']:.3f})  written {r['written']}  "
            f"emails {r['emails']}{extra}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument(
        "--sample", type=int, default=5_000, help="(case, step) jobs actually added to APScheduler"
    )
    parser.add_argument(
        "--no-window", action="store_true", help="skip the window-closing pass (slowest part)"
    )
    parser.add_argument("--out", type=Path, help="keep the database here (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="5,000 cases, 500 jobs, no window closing")
    parser.add_argument(
        "--side-by-side",
        action="store_true",
        help="only the reconcile passes, under commit 7cf4329 and under HEAD in one run (bench/baseline.py); "
        "--cases defaults to 1,000,000 here, 20,000 with --quick",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="with --side-by-side --out DIR: keep the database built there before",
    )
    parser.add_argument(
        "--phase", choices=("build", "upgrade", "passes"), help=argparse.SUPPRESS
    )  # one tree's child
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        _phase(args.phase, args.home, args.cases)
        return
    if args.side_by_side:
        cases = (
            20_000
            if args.quick and args.cases == 100_000
            else 1_000_000
            if args.cases == 100_000
            else args.cases
        )
        side_by_side(cases, args.out, args.reuse)
        return
    if args.quick:
        args.cases, args.sample, args.no_window = 5_000, 500, True

    home = args.out or Path(tempfile.mkdtemp(prefix="bench-reconcile-"))
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, load {load:.1f}; "
        f"SQLite in {home}"
    )
    built = build(home, args.cases)
    print(
        f"built: {built['open_cases']:,} open cases ({built['parks']:,} parks, {built['enterprises']:,} "
        f"enterprises), {built['contacts']} contacts in {built['build_s']:.1f} s (peak RSS {rss_mb():.0f} MB)"
    )

    rec = _child(
        _passes,
        str(home),
        [("first", PASS_AT), ("again", PASS_AT), ("hour_later", PASS_AT + timedelta(hours=1))],
    )
    keys = rec.pop("notification_keys")
    _print_passes("reconcile + compose, one transaction each", rec, ["first", "again", "hour_later"])

    aps = _child(_apscheduler_phase, str(home), keys, args.sample)
    per_job = aps["per_case_sample_add_s"] / aps["per_case_sample"]
    extrapolated = per_job * built["open_cases"]
    print(f"\nAPScheduler SQLAlchemyJobStore on the same SQLite (peak RSS {aps['peak_rss_mb']:.0f} MB):")
    print(
        f"  one job per notification row ({len(keys)}): add {aps['per_row_add_s']:.3f} s, re-plan "
        f"{aps['per_row_replan_s']:.3f} s, wake-up with nothing due {aps['per_row_idle_s'] * 1000:.1f} ms, "
        f"loading the {aps['per_row_due']} due jobs {aps['per_row_due_s'] * 1000:.1f} ms"
    )
    print(
        f"  one job per (case, step): {aps['per_case_sample']:,} added in {aps['per_case_sample_add_s']:.2f} s "
        f"({per_job * 1000:.2f} ms/job) -> {built['open_cases']:,} cases x 1 step ≈ {extrapolated:.0f} s; "
        f"loading {aps['per_case_sample']:,} due jobs {aps['per_case_due_s'] * 1000:.0f} ms"
    )

    status = _status_timing(home)
    print(
        f"\nshenbao status: {status['status_wall_s']:.3f} s wall (CLI start-up alone "
        f"{status['cli_startup_s']:.3f} s; the status queries {status['status_queries_s'] * 1000:.0f} ms)"
    )

    first, noop = rec["first"]["total_s"], rec["again"]["total_s"]
    plan = rec["first"]["reconcile_s"]
    print("\nside by side (ratio = APScheduler / reconcile):")
    print(
        f"  deciding what is due   reconcile {plan:.3f} s  vs  add_job per row written {aps['per_row_add_s']:.3f} s "
        f"(x{aps['per_row_add_s'] / plan:.2f}); per (case, step) ≈ {extrapolated:.0f} s (x{extrapolated / plan:.0f})"
    )
    print(f"  + composing the emails {rec['first']['compose_s']:.3f} s (a fired job would do the same work)")
    print(
        f"  nothing new            reconcile {noop:.3f} s  vs  scheduler wake-up {aps['per_row_idle_s'] * 1000:.1f} ms "
        f"(x{aps['per_row_idle_s'] / noop:.2f})"
    )
    print(
        f"  a deadline moves       next reconcile pass (as above)  vs  re-adding every job: "
        f"{aps['per_row_replan_s']:.3f} s per row written, ≈ {extrapolated:.0f} s per (case, step)"
    )
    print(
        f"  targets                first < 5 s: {'ok' if first < 5 else 'MISSED'} ({first:.2f}); nothing new < 0.5 s: "
        f"{'ok' if noop < 0.5 else 'MISSED'} ({noop:.3f}); peak < 500 MB: "
        f"{'ok' if rec['peak_rss_mb'] < 500 else 'MISSED'} ({rec['peak_rss_mb']:.0f}); "
        f"status < 1 s: {'ok' if status['status_wall_s'] < 1 else 'MISSED'} ({status['status_wall_s']:.2f})"
    )

    if not args.no_window:
        # Not a target: the cluster window closing over every draft at once (06-25 24:00), then
        # the 精品 d-7 reminder of 07-03 forwarded through the counties for every enterprise.
        closing = _child(
            _passes,
            str(home),
            [
                ("close", parse_instant("2026-06-26T00:00")),
                ("close again", parse_instant("2026-06-26T00:00")),
                ("jp d-7", parse_instant("2026-07-03T09:00")),
                ("jp again", parse_instant("2026-07-03T09:00")),
            ],
        )
        closing.pop("notification_keys")
        _print_passes(
            "window closes, then the 精品 reminder", closing, ["close", "close again", "jp d-7", "jp again"]
        )
    if args.out is None:
        shutil.rmtree(home, ignore_errors=True)
        # The audit key goes beside the home, not in it (Settings.secrets_dir).
        shutil.rmtree(home.with_name(f"{home.name}.keys"), ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Side by side with commit 7cf4329 (issue 10: first pass >= 2x, nothing new >= 5x, <= 600 MB)

SIDE_PASSES = [("first", PASS_AT), ("again", PASS_AT), ("hour_later", PASS_AT + timedelta(hours=1))]


def _phase(phase: str, home: Path, cases: int) -> None:
    """One tree's child (bench/baseline.py measures its wall time and peak RSS): the last
    stdout line is a JSON object."""
    import json

    if phase == "build":
        home.mkdir(parents=True, exist_ok=True)
        result: dict[str, Any] = build(home, cases)
    elif phase == "upgrade":
        # The baseline's database brought to this tree's schema, as `shenbao init` upgrades one.
        rt = Runtime(Settings(home=home, database_url=f"sqlite:///{home / 'shenbao.db'}"))
        key = rt.settings.resolved_key_file
        if not key.exists():  # 7cf4329 kept the audit key in the home; this tree keeps it beside
            key.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(home / "audit.key", key)
        t0 = time.perf_counter()
        before, after = upgrade(rt.db)
        result = {"from": before, "to": after, "upgrade_s": time.perf_counter() - t0}
        _own_campaign_files(rt)
        rt.db.dispose()
    else:
        result = run_passes(str(home), SIDE_PASSES)
        result.pop("notification_keys")
    print(json.dumps(result, default=str, ensure_ascii=False))


def _own_campaign_files(rt: Any) -> None:
    """This tree's own texts of the two campaign files in place of the baseline's, stored as
    they are (their stages and deadlines are the same): since the declared forms and rules
    (main at 28b1d83) this tree's campaign schema refuses 7cf4329's texts, and
    `shenbao campaign load` cannot replace them either (it parses the stored one first)."""
    from sqlalchemy import update as sql_update

    from calendars.campaign import load_campaign_text
    from models.campaign import Campaign

    try:
        from calendars.campaign import spec_digest
    except ImportError:  # a tree without it has no campaign schema of its own to satisfy
        return
    with rt.db.write() as session:
        for path in builtin_campaign_files():
            text = path.read_text(encoding="utf-8")
            spec = load_campaign_text(text, origin=path.name)
            session.execute(
                sql_update(Campaign)
                .where(Campaign.id == spec.id)  # type: ignore[arg-type]
                .values(spec_text=text, spec_digest=spec_digest(text))
            )


def side_by_side(cases: int, out: Path | None, reuse: bool = False) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from baseline import baseline_tree, head_tree

    base, head = baseline_tree(), head_tree()
    root = out or Path(tempfile.mkdtemp(prefix="bench-reconcile-sbs-"))
    script = Path(__file__).resolve()
    load = os.getloadavg()[0]
    print(f"{cases:,} open cases, {os.cpu_count()} CPUs, load {load:.1f} at the start; SQLite under {root}")
    homes = {tree.name: root / tree.name for tree in (base, head)}
    kept = root / "built"
    if not (reuse and (kept / "shenbao.db").exists()):
        # One database, built by the baseline's code; HEAD gets a copy upgraded to its schema
        # (the same data on both sides, and a million cases are built once, not twice).
        if kept.exists():
            shutil.rmtree(kept)
        built = base.run(script, "--phase", "build", "--home", str(kept), "--cases", str(cases))
        print(f"  built under {base.name}: {built.data['open_cases']:,} open cases in {built.seconds:.0f} s")
    for home in homes.values():
        if home.exists():
            shutil.rmtree(home)
        shutil.copytree(kept, home)
    upgraded = head.run(script, "--phase", "upgrade", "--home", str(homes[head.name]))
    print(
        f"  copy upgraded to HEAD's schema ({upgraded.data['from']} -> {upgraded.data['to']}) in {upgraded.seconds:.0f} s"
    )
    # The two measured runs back to back, so that both see the same load.
    runs = {
        tree.name: tree.run(script, "--phase", "passes", "--home", str(homes[tree.name]))
        for tree in (base, head)
    }
    b, h = runs[base.name], runs[head.name]
    print(f"load {os.getloadavg()[0]:.1f} after the passes")
    for label in ("first", "again", "hour_later"):
        rb, rh = b.data[label], h.data[label]
        print(
            f"  {label:<10} {base.name} {rb['total_s']:7.3f} s (reconcile {rb['reconcile_s']:.3f}, compose "
            f"{rb['compose_s']:.3f})  HEAD {rh['total_s']:7.3f} s (reconcile {rh['reconcile_s']:.3f}, compose "
            f"{rh['compose_s']:.3f})  {rb['total_s'] / rh['total_s']:6.1f}x   written {rb['written']} / {rh['written']}"
        )
    print(f"  peak RSS of the passes: {base.name} {b.peak_mb:.0f} MB, HEAD {h.peak_mb:.0f} MB")
    first = b.data["first"]["total_s"] / h.data["first"]["total_s"]
    again = b.data["again"]["total_s"] / h.data["again"]["total_s"]
    print(
        f"  targets: first pass >= 2x: {'ok' if first >= 2 else 'MISSED'} ({first:.1f}x); nothing new >= 5x: "
        f"{'ok' if again >= 5 else 'MISSED'} ({again:.1f}x); peak <= 600 MB: "
        f"{'ok' if h.peak_mb <= 600 else 'MISSED'} ({h.peak_mb:.0f} MB)"
    )
    if out is None:
        shutil.rmtree(root, ignore_errors=True)  # the homes and their audit keys are all under it


if __name__ == "__main__":
    main()
