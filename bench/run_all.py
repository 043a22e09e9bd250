"""Every benchmark of bench/README.md, one after the other, each in its own interpreter.

    .venv/bin/python bench/run_all.py [--full] [--no-pg] [--only recheck,dispatch]

Quick sizes by default (a few minutes in all: the machine is usually shared); ``--full`` runs
the sizes the README's tables were measured with (each script's defaults, tens of minutes).
Each script prints its own figures; this prints a line per script at the end and exits non-zero
if any of them failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# name → script and its arguments; the order runs the cheap ones first. The *-sbs and the
# status and import scripts run commit 7cf4329 beside HEAD (bench/baseline.py; set
# SHENBAO_BENCH_BASELINE to share one baseline checkout between worktrees).
SCRIPTS = {
    "recheck": ["bench_recheck.py"],
    "dispatch": ["bench_dispatch.py"],
    "reconcile": ["bench_reconcile.py"],
    "reconcile-sbs": ["bench_reconcile.py", "--side-by-side"],
    "status": ["bench_status.py"],
    "import": ["bench_import.py"],
    "window": ["bench_window_close.py"],
    "prefect": ["bench_prefect.py"],
    "channel-transports": ["bench_channel_transports.py"],
    "channels": ["bench_channels.py"],
    "audit": ["bench_audit.py"],
    "eligibility": ["bench_eligibility.py"],
}
TAKES_NO_PG = {"recheck", "dispatch", "channel-transports", "channels", "audit"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="the README's sizes instead of --quick")
    parser.add_argument("--no-pg", action="store_true", help="skip PostgreSQL where a script uses it")
    parser.add_argument("--only", default="", help=f"comma-separated, of: {', '.join(SCRIPTS)}")
    args = parser.parse_args()
    chosen = [n.strip() for n in args.only.split(",") if n.strip()] or list(SCRIPTS)
    unknown = [n for n in chosen if n not in SCRIPTS]
    if unknown:
        parser.error(f"--only: unknown benchmark {', '.join(unknown)} (known: {', '.join(SCRIPTS)})")
    # The scripts import the project from the repository root, wherever this is started from.
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))
    }
    results: list[tuple[str, int, float]] = []
    for name in chosen:
        script, *script_args = SCRIPTS[name]
        command = [sys.executable, str(HERE / script), *script_args]
        command += [] if args.full else ["--quick"]
        command += ["--no-pg"] if args.no_pg and name in TAKES_NO_PG else []
        print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
        started = time.perf_counter()
        code = subprocess.run(command, cwd=HERE.parent, env=env).returncode
        results.append((name, code, time.perf_counter() - started))
    print("\n=== summary")
    for name, code, elapsed in results:
        print(f"  {name:10s} {'ok' if code == 0 else f'FAILED (exit {code})':18s} {elapsed:7.1f} s")
    return 0 if all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
