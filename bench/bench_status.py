"""`shenbao status` on 100,000 cases, cold, against `shenbao --help`, beside commit 7cf4329.

    SHENBAO_BENCH_BASELINE=/work/baseline-7cf4329 .venv/bin/python bench/bench_status.py [--cases 100000] [--rounds 5] [--quick]

Issue 10: `shenbao status` must answer within 1.2x of `shenbao --help` measured in the same
run (the CLI's start-up is the floor: what status adds is its queries, the campaign files and
the calendar). Cold means a fresh process each time, as a coordinator runs it: an unmeasured
first run per tree writes the bytecode (PYTHONDONTWRITEBYTECODE is dropped for the children, as
an installed shenbao has its .pyc files) and each tree's user cache (its own XDG_CACHE_HOME; HEAD
keeps the computed working-day calendar there).

One database of ``--cases`` open cases is built by the baseline's code (bench_reconcile's
builder: counties, parks, enterprises, contacts, both 2026 campaigns) and copied, the copy
upgraded to HEAD's schema. Then, ``--rounds`` times, each tree's `shenbao --help` and
`shenbao status` run one after the other (alternating, so that both trees see the same load);
the figures are the medians. Also lists which heavy packages a `status` process imported.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from baseline import Tree, baseline_tree, head_tree  # noqa: E402

NOW = "2026-06-24T10:00"
HEAVY = ("prefect", "jinja2", "aiosmtplib", "openpyxl", "fastapi", "apscheduler", "uvicorn", "starlette")


def _env(tree: Tree, home: Path) -> dict[str, str]:
    # Bytecode is written and used (the warm-up run writes it), as an installed shenbao has it:
    # with PYTHONDONTWRITEBYTECODE every run compiled the project's modules from source.
    env = {
        k: v
        for k, v in tree.env().items()
        if not k.startswith("SHENBAO_") and k not in ("PYTHONDONTWRITEBYTECODE", "XDG_CACHE_HOME")
    }
    # Each tree its own user cache (HEAD keeps the computed working-day calendar there), warmed
    # by the unmeasured first run like the bytecode: a coordinator runs status more than once.
    return env | {
        "SHENBAO_HOME": str(home),
        "XDG_CACHE_HOME": str(home.parent / f"{tree.name}.cache"),
        "COLUMNS": "200",
        "SHENBAO_BENCH_TREE": tree.name,
    }


def _wall(tree: Tree, home: Path, *args: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one fresh process. At load 8 on 2 cores a process gets
    a fraction of a core and its wall time is mostly waiting for one; its CPU time (user +
    system, from the children's rusage) is what a quiet machine's wall time would be."""
    shenbao = tree.root / ".venv" / "bin" / "shenbao"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([str(shenbao), *args], env=_env(tree, home), check=True, capture_output=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def _heavy_imports(tree: Tree, home: Path) -> list[str]:
    code = (
        "import sys\nfrom flows.cli import main\n"
        f"sys.argv = ['shenbao', 'status', '--now', '{NOW}']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print(' '.join(sorted(m for m in {HEAVY!r} if m in sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [str(tree.python), "-c", code],
        env=_env(tree, home),
        cwd=tree.root,  # "-c" puts the working directory first on sys.path: this tree's packages
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stderr.strip().splitlines()[-1].split() if done.stderr.strip() else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, help="keep the databases here (default: a temporary folder)")
    parser.add_argument(
        "--reuse", action="store_true", help="with --out: keep the database built there before"
    )
    parser.add_argument("--quick", action="store_true", help="5,000 cases, 3 rounds")
    args = parser.parse_args()
    if args.quick:
        args.cases, args.rounds = 5_000, 3
    base, head = baseline_tree(), head_tree()
    root = args.out or Path(tempfile.mkdtemp(prefix="bench-status-"))
    kept = root / "built"
    builder = HERE / "bench_reconcile.py"
    print(f"{args.cases:,} cases, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at the start")
    if not (args.reuse and (kept / "shenbao.db").exists()):
        if kept.exists():
            shutil.rmtree(kept)
        built = base.run(builder, "--phase", "build", "--home", str(kept), "--cases", str(args.cases))
        print(f"  built under {base.name}: {built.data['open_cases']:,} open cases in {built.seconds:.0f} s")
    homes = {tree.name: root / tree.name for tree in (base, head)}
    for home in homes.values():
        if home.exists():
            shutil.rmtree(home)
        shutil.copytree(kept, home)
    head.run(builder, "--phase", "upgrade", "--home", str(homes[head.name]))
    # Each tree's own key file where its settings look for it (7cf4329: in the home).
    walls: dict[str, dict[str, list[float]]] = {
        t.name: {"help": [], "status": [], "help_cpu": [], "status_cpu": []} for t in (base, head)
    }
    for tree in (base, head):  # warm the disk cache and the .pyc files once, unmeasured
        _wall(tree, homes[tree.name], "--help")
        _wall(tree, homes[tree.name], "status", "--now", NOW)
    for _ in range(args.rounds):
        for tree in (base, head):
            for what, argv in (("help", ["--help"]), ("status", ["status", "--now", NOW])):
                wall, cpu = _wall(tree, homes[tree.name], *argv)
                walls[tree.name][what].append(wall)
                walls[tree.name][f"{what}_cpu"].append(cpu)
    print(
        f"load {os.getloadavg()[0]:.1f} after {args.rounds} rounds; medians of fresh processes (wall; CPU):"
    )
    med: dict[str, dict[str, float]] = {}
    for tree in (base, head):
        med[tree.name] = {k: statistics.median(v) for k, v in walls[tree.name].items()}
        m = med[tree.name]
        heavy = _heavy_imports(tree, homes[tree.name])
        print(
            f"  {tree.name:<8} --help {m['help']:.3f} s; {m['help_cpu']:.3f} s   status {m['status']:.3f} s; "
            f"{m['status_cpu']:.3f} s   status/--help {m['status'] / m['help']:.2f}; "
            f"{m['status_cpu'] / m['help_cpu']:.2f}   imported for status: {', '.join(heavy) or 'none of ' + '/'.join(HEAVY)}"
        )
    b, h = med[base.name], med[head.name]
    ratio, cpu_ratio = h["status"] / h["help"], h["status_cpu"] / h["help_cpu"]
    print(
        f"  status {base.name} / HEAD: {b['status'] / h['status']:.2f}x faster (CPU {b['status_cpu'] / h['status_cpu']:.2f}x); "
        f"target status within 1.2x of --help: wall {'ok' if ratio <= 1.2 else 'MISSED'} ({ratio:.2f}), "
        f"CPU {'ok' if cpu_ratio <= 1.2 else 'MISSED'} ({cpu_ratio:.2f})"
    )
    if args.out is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
