"""mypy against a recorded baseline that may only shrink (``make test`` runs it before pytest).

    .venv/bin/python tests/typecheck.py            # fail if any file has more errors than recorded
    .venv/bin/python tests/typecheck.py --update   # record today's errors (after fixing some)

The baseline (tests/mypy-baseline.txt) holds each error as mypy prints it, without its line
number, so that editing a file above an old error does not make it look new. A file passes
while it has no more errors than recorded; one with fewer asks for the baseline to be lowered,
so that the errors fixed today cannot come back unnoticed tomorrow.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "tests" / "mypy-baseline.txt"
ERROR = re.compile(r"^(?P<path>[^:\s]+\.py):(?P<line>\d+): error: (?P<message>.*)$")


def packages() -> list[str]:
    """The packages pyproject.toml names that exist in this tree (one may still be on its way)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    names: list[str] = config["tool"]["mypy"]["packages"]
    return [name for name in names if (ROOT / name / "__init__.py").exists()]


def run_mypy() -> list[str]:
    """The errors of today's tree, normalised, in mypy's order."""
    targets = [arg for name in packages() for arg in ("-p", name)]
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--no-pretty", "--hide-error-context", *targets],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    # 0: clean, 1: type errors; anything else is mypy itself failing (bad config, crash).
    if done.returncode not in (0, 1):
        sys.exit(f"mypy failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")
    errors = []
    for line in done.stdout.splitlines():
        match = ERROR.match(line)
        if match:
            errors.append(f"{match['path']}: {match['message']}")
    return errors


def read_baseline(path: Path = BASELINE) -> list[str]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def write_baseline(errors: list[str], path: Path = BASELINE) -> None:
    header = (
        "# mypy errors accepted for now, one a line, without line numbers (tests/typecheck.py).\n"
        "# Only ever shrinks: fix errors, then run `.venv/bin/python tests/typecheck.py --update`.\n"
    )
    path.write_text(header + "".join(f"{e}\n" for e in sorted(errors)), encoding="utf-8")


def per_file(errors: list[str]) -> Counter[str]:
    return Counter(error.split(": ", 1)[0] for error in errors)


def compare(current: list[str], baseline: list[str]) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Files with more errors than recorded (with the errors not in the baseline), and files
    with fewer (with how many fewer)."""
    now, before = per_file(current), per_file(baseline)
    unrecorded = Counter(current) - Counter(baseline)
    worse = {
        path: sorted(e for e in unrecorded.elements() if e.startswith(f"{path}: "))
        for path in sorted(now)
        if now[path] > before[path]
    }
    better = {path: before[path] - now[path] for path in sorted(before) if now[path] < before[path]}
    return worse, better


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--update", action="store_true", help="record today's errors as the baseline")
    args = parser.parse_args(argv)
    current = run_mypy()
    if args.update:
        write_baseline(current)
        print(f"mypy baseline: {len(current)} errors in {len(per_file(current))} files -> {BASELINE.name}")
        return 0
    baseline = read_baseline()
    worse, better = compare(current, baseline)
    for path, errors in worse.items():
        print(f"{path}: more mypy errors than the baseline records; new:")
        for error in errors:
            print(f"  {error.split(': ', 1)[1]}")
    for path, fewer in better.items():
        print(
            f"{path}: {fewer} mypy error(s) fewer than the baseline: lower it with tests/typecheck.py --update"
        )
    print(f"mypy: {len(current)} errors, baseline {len(baseline)}" + (" — FAILED" if worse else ""))
    return 1 if worse else 0


if __name__ == "__main__":
    sys.exit(main())
