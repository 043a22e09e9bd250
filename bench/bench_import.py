"""`case import` of a 1,000,000-row cluster file, beside commit 7cf4329: wall time and peak memory.

    SHENBAO_BENCH_BASELINE=/work/baseline-7cf4329 .venv/bin/python bench/bench_import.py [--rows 1000000] [--quick] [--no-baseline]

Issue 10: importing 1,000,000 cases took 217 s and 3.85 GB; it must be streamed and stay
within 1 GB. The file is made by a generator (附1-2 columns, as `shenbao case import` reads
them): 20,000 park committees across the 90 counties, 50 细分赛道 each, one contact per park,
an external number per row. Each tree gets a fresh database (`shenbao init` equivalent) and
imports the same file through ``models.imports.import_cases`` (an entry point both commits
have) in one transaction, in its own process; bench/baseline.py measures that process's wall
time and peak RSS.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CLUSTER = "2026-cluster-selection"
HEADER = [
    "申报单位",
    "所在县（市、区）",
    "申报类型",
    "集群名称",
    "细分赛道",
    "当前所属X体系",
    "2025年集群规上企业营业收入（亿元）",
    "省级及以上链主企业数量",
    "省级及以上创新平台数量",
    "省级及以上企业研发机构数量",
    "世界级细分领域",
    "集群联系人",
    "联系人手机",
    "联系人邮箱",
    "外部编号",
]
TRACKS_PER_PARK = 50


def write_file(path: Path, rows: int) -> None:
    """The rows one at a time (a generator, never the whole file in memory)."""
    from models.reference import load_divisions

    counties = [d for d in load_divisions() if d.tier == "county"]
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(HEADER)
        for n in range(rows):
            park, track = divmod(n, TRACKS_PER_PARK)
            county = counties[park % len(counties)]
            out.writerow(
                [
                    f"{county.name}第{park:05d}号产业园",
                    county.name,
                    "协同区",
                    "人工智能",
                    f"智能终端{track:02d}",
                    "创新型产业集群",
                    "260",
                    "1",
                    "1",
                    "3",
                    "否",
                    "赵静",
                    f"139{park:08d}",
                    f"p{park}@park.bench.example",
                    f"SZJX-{n + 1:07d}",
                ]
            )


def _runtime(home: Path) -> Any:
    try:
        from operations.runtime import Runtime
        from operations.settings import Settings
    except ImportError:  # commit 7cf4329: flows/ held them
        from flows.runtime import Runtime  # type: ignore[no-redef]
        from flows.settings import Settings  # type: ignore[no-redef]
    return Runtime(Settings(home=home, database_url=f"sqlite:///{home / 'shenbao.db'}"))


def _phase(phase: str, home: Path, file: Path | None) -> None:
    from calendars.campaign import builtin_campaign_files
    from calendars.timeutil import parse_instant
    from models.context import Actor, Ctx

    rt = _runtime(home)
    now = parse_instant("2026-06-02T10:00")
    result: dict[str, Any] = {}
    if phase == "init":
        from models.registry import load_campaign, seed_divisions
        from models.schema import upgrade

        home.mkdir(parents=True, exist_ok=True)
        upgrade(rt.db)
        audit = rt.audit(create=True)
        with rt.db.write() as session:
            seed_divisions(session)
            ctx = Ctx(now=now, actor=Actor(name="bench"), audit=audit)
            for path in builtin_campaign_files():
                load_campaign(session, ctx, path.read_text(encoding="utf-8"), origin=path.name)
    else:
        from models.imports import import_cases

        assert file is not None
        ctx = Ctx(now=now, actor=Actor(name="bench import"), audit=rt.audit())
        t0 = time.perf_counter()
        with rt.db.write() as session:
            summary = import_cases(session, ctx, CLUSTER, file)
        result = {"created": len(summary.created), "import_s": time.perf_counter() - t0}
    rt.db.dispose()
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="20,000 rows")
    parser.add_argument("--no-baseline", action="store_true", help="HEAD only (the baseline takes minutes)")
    parser.add_argument("--out", type=Path, help="keep the file and databases here")
    parser.add_argument("--phase", choices=("init", "import"), help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        _phase(args.phase, args.home, args.file)
        return
    if args.quick:
        args.rows = 20_000
    sys.path.insert(0, str(HERE))
    from baseline import baseline_tree, head_tree, ratio_line

    trees = [head_tree()] if args.no_baseline else [baseline_tree(), head_tree()]
    root = args.out or Path(tempfile.mkdtemp(prefix="bench-import-"))
    root.mkdir(parents=True, exist_ok=True)
    file = root / f"cluster_{args.rows}.csv"
    t0 = time.perf_counter()
    write_file(file, args.rows)
    print(
        f"{args.rows:,} rows, {file.stat().st_size / 1e6:.0f} MB written in {time.perf_counter() - t0:.0f} s; "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    results = {}
    for tree in trees:
        home = root / tree.name
        if home.exists():
            shutil.rmtree(home)
        tree.run(Path(__file__), "--phase", "init", "--home", str(home))
        r = tree.run(Path(__file__), "--phase", "import", "--home", str(home), "--file", str(file))
        results[tree.name] = r
        print(
            f"  {tree.name:<8} {r.data['created']:,} cases in {r.seconds:.1f} s "
            f"(import {r.data['import_s']:.1f} s), peak RSS {r.peak_mb:.0f} MB",
            flush=True,
        )
    print(f"load {os.getloadavg()[0]:.1f} at the end")
    head = results["HEAD"]
    if len(trees) == 2:
        print("  " + ratio_line("import", results[trees[0].name], head))
    print(f"  target: within 1 GB: {'ok' if head.peak_mb <= 1024 else 'MISSED'} ({head.peak_mb:.0f} MB)")
    if args.out is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
