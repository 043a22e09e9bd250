"""Closing the application window over 50,000 drafts: today's code beside commit 7cf4329.

    .venv/bin/python bench/bench_window_close.py [--quick] [--cases 50000] [--no-baseline]

Issue 10 (5.): at 7cf4329 the tick after 06-25 24:00 over 50,000 cluster drafts took 54–62 s and
~900 MB (a notice per case and recipient, 154,755 of them; an ORM flush per email; a single-row
load per case because the preloaded cases fell out of the identity map). The target is one
notice per organisation and recipient listing its lapsed cases, at least 10× faster and within
300 MB.

The same data in each tree, built by this file in that tree's interpreter (its own schema):
divisions and both 2026 campaign files; contacts as a roster gives them (2–3 per county and city,
one in three working on 集群遴选 only, one on 精品 only, one on both; 4 at the province);
``--cases`` cluster drafts, 30% filed by a county itself, the rest by ~1 park per 25 cases
(parks have no contacts of their own, as in bench_reconcile). Then, in a fresh process per tree,
the tick at 2026-06-26 09:00 (every draft lapses; notices, emails) in one transaction, as the
service runs it; wall time and peak RSS are those of that process (bench/baseline.py). The
same instant a second time must write nothing. Only entry points both commits have are used
(models.registry.bulk_new_cases, notifications.reconcile.tick; the runtime moved from flows/ to
operations/ in between).

Figures recorded in bench/README.md ("Closing a window").
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CLOSE_AT = "2026-06-26T09:00"
BUILT_AT = "2026-06-01T10:00"
CLUSTER = "2026-cluster-selection"
TRACKS = [
    ("collaborative", "人工智能", "智能终端"),
    ("collaborative", "高端软件", "工业软件"),
    ("core", "工业母机与机器人", "模具"),
    ("rising_star", "高端装备", "精密泵阀"),
]


def _runtime(home: Path) -> Any:
    try:  # HEAD
        from operations.runtime import Runtime
        from operations.settings import Settings
    except ImportError:  # 7cf4329
        from flows.runtime import Runtime  # type: ignore[no-redef]
        from flows.settings import Settings  # type: ignore[no-redef]
    return Runtime(Settings(home=home, database_url=f"sqlite:///{home / 'shenbao.db'}"))


# -- child: build -----------------------------------------------------------------------------


def build(home: Path, cases: int, seed: int = 2026) -> dict[str, Any]:
    from sqlalchemy import insert
    from sqlmodel import select

    from calendars.campaign import builtin_campaign_files
    from calendars.timeutil import parse_instant
    from models.campaign import Campaign
    from models.context import Actor, Ctx
    from models.org import Contact, Organisation
    from models.reference import load_divisions
    from models.registry import bulk_new_cases, load_campaign, seed_divisions
    from models.schema import upgrade

    rng = random.Random(seed)
    rt = _runtime(home)
    upgrade(rt.db)
    audit = rt.audit(create=True)
    zj = load_divisions()
    counties = [d for d in zj if d.tier == "county"]
    cities = [d for d in zj if d.tier == "city"]
    with rt.db.write() as session:
        ctx = Ctx(now=parse_instant("2026-05-26T09:00"), actor=Actor(name="bench"), audit=audit)
        seed_divisions(session)
        for path in builtin_campaign_files():
            load_campaign(session, ctx, path.read_text(encoding="utf-8"), origin=path.name)
        contacts: list[dict[str, Any]] = []
        for division in [*counties, *cities]:
            for i in range(rng.choice((2, 3))):
                n = len(contacts)
                contacts.append(
                    {
                        "org_id": division.code,
                        "department": "经信局",
                        "name": f"联系人{n:04d}",
                        "title": "科长",
                        "mobile": f"139{n:08d}",
                        "email": f"c{n}@{division.code}.bench.example",
                        "programs": ("cluster", "jingpin", "cluster,jingpin")[i % 3],
                        "active": True,
                        "source": "bench",
                        "updated_at": ctx.now,
                    }
                )
        for i, programs in enumerate(("cluster", "cluster", "jingpin", "jingpin")):
            contacts.append(
                {
                    "org_id": "330000",
                    "department": "经信厅",
                    "name": f"省联系人{i}",
                    "title": "处长",
                    "mobile": f"138{i:08d}",
                    "email": f"p{i}@330000.bench.example",
                    "programs": programs,
                    "active": True,
                    "source": "bench",
                    "updated_at": ctx.now,
                }
            )
        session.execute(insert(Contact), contacts)
        parks = [(f"PARK-b{i:05d}", rng.choice(counties)) for i in range(max(1, cases // 25))]
        session.execute(
            insert(Organisation),
            [
                {
                    "id": oid,
                    "name": f"{c.name}产业园{oid[-5:]}",
                    "tier": "park",
                    "city_code": c.city_code,
                    "county_code": c.code,
                    "mountain_island": c.mountain_island,
                }
                for oid, c in parks
            ],
        )
        spec = next(c.spec() for c in session.exec(select(Campaign)) if c.id == CLUSTER)
        batch = Ctx(now=parse_instant(BUILT_AT), actor=Actor(name="bench import"), audit=audit)
        rows: list[dict[str, Any]] = []
        for i in range(cases):
            if rng.random() < 0.3:
                county = rng.choice(counties)
                org_id, title = county.code, county.name
            else:
                org_id, county = rng.choice(parks)
                title = f"{county.name}产业园{org_id[-5:]}"
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
        for start in range(0, len(rows), 10_000):
            bulk_new_cases(session, batch, spec, rows[start : start + 10_000], reason="bench import")
    rt.db.dispose()
    return {"cases": cases, "contacts": len(contacts), "parks": len(parks)}


# -- child: close ------------------------------------------------------------------------------


def close(home: Path) -> dict[str, Any]:
    from sqlalchemy import func
    from sqlmodel import select

    from calendars.timeutil import parse_instant
    from models.audit import AuditEvent
    from models.case import Case
    from models.context import SYSTEM
    from models.outbox import Email, Notification
    from notifications.reconcile import tick

    rt = _runtime(home)
    now = parse_instant(CLOSE_AT)
    calendar, identity, renderer = rt.calendar, rt.identity, rt.renderer
    calendar.is_working_day(now.date())
    started = time.perf_counter()
    with rt.db.write() as session:
        report = tick(session, rt.ctx(SYSTEM, now=now), calendar, identity, renderer)
    first = time.perf_counter() - started
    started = time.perf_counter()
    with rt.db.write() as session:
        again = tick(session, rt.ctx(SYSTEM, now=now), calendar, identity, renderer)
    second = time.perf_counter() - started
    with rt.db.read() as session:
        lapsed = session.exec(select(func.count()).select_from(Case).where(Case.state == "lapsed")).one()
        events = session.exec(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.to_value == "lapsed")
        ).one()
        notifications = session.exec(select(func.count()).select_from(Notification)).one()
        emails = session.exec(select(func.count()).select_from(Email)).one()
        biggest = session.exec(select(func.max(func.length(Email.raw)))).one()
    rt.db.dispose()
    return {
        "tick_s": first,
        "again_s": second,
        "lapsed": lapsed,
        "lapse_events": events,
        "notifications": notifications,
        "emails": emails,
        "emails_in_tick": report.emails,
        "again_nothing_new": not (again.lapsed or sum(again.written.values()) or again.emails),
        "largest_email_kb": round((biggest or 0) / 1024, 1),
    }


# -- parent ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5,000 drafts instead of 50,000")
    parser.add_argument("--cases", type=int, default=None, help="drafts open when the window closes")
    parser.add_argument("--no-baseline", action="store_true", help="HEAD only (no ratio)")
    parser.add_argument("--child", choices=("build", "close"), help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "build":
        print(json.dumps(build(args.home, args.cases)))
        return 0
    if args.child == "close":
        print(json.dumps(close(args.home)))
        return 0

    sys.path.insert(0, str(HERE))
    from baseline import baseline_tree, head_tree, ratio_line

    cases = args.cases or (5_000 if args.quick else 50_000)
    trees = [head_tree()] if args.no_baseline else [baseline_tree(), head_tree()]
    work = Path(tempfile.mkdtemp(prefix="bench-window-"))
    results: dict[str, Any] = {}
    try:
        for tree in trees:
            home = work / tree.name
            home.mkdir()
            print(f"{tree.name}: 建库 {cases:,} 件草稿 …", file=sys.stderr, flush=True)
            built = tree.run(__file__, "--child", "build", "--home", str(home), "--cases", str(cases))
            print(f"{tree.name}: 建库 {built.seconds:.1f} s", file=sys.stderr, flush=True)
        for tree in trees:  # the measured runs back to back, under the same load
            print(f"{tree.name}: 06-26 09:00 对账（逾期关闭）…", file=sys.stderr, flush=True)
            results[tree.name] = tree.run(__file__, "--child", "close", "--home", str(work / tree.name))
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the audit keys are in <home>.keys, inside it
    load = os.getloadavg()
    print(f"\n关闭申报窗口：{cases:,} 件草稿逾期关闭，load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    for name, r in results.items():
        d = r.data
        print(
            f"  {name:8s} 进程 {r.seconds:6.2f} s（其中对账 {d['tick_s']:.2f} s，重跑 {d['again_s']:.2f} s）"
            f" 峰值 {r.peak_mb:5.0f} MB · 逾期 {d['lapsed']:,} 件，审计 {d['lapse_events']:,} 条，"
            f"通知 {d['notifications']:,} 条，邮件 {d['emails']:,} 封（最大 {d['largest_email_kb']} KB）"
            f"，重跑无新增 {'是' if d['again_nothing_new'] else '否'}"
        )
    head = results["HEAD"]
    ok = (
        head.data["lapsed"] == cases and head.data["lapse_events"] == cases and head.data["again_nothing_new"]
    )
    if not args.no_baseline:
        base = results[trees[0].name]
        print("  " + ratio_line("window close", base, head))
        speed = base.seconds / head.seconds
        print(f"  目标：≥10× 且 ≤300 MB → {'达到' if speed >= 10 and head.peak_mb <= 300 else '未达到'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
