"""The eligibility engine driven by the campaign files beside the Python rules it replaced.

    .venv/bin/python bench/bench_eligibility.py [--rounds 20] [--quick]

Runs the 2,244 golden applications of tests/models/data/eligibility_2026_golden.jsonl.gz
through ``findings_for`` under commit fbab442 (``cluster_findings``/``jingpin_findings`` in
Python; a detached worktree with its own venv, made on first use by bench/baseline.py) and
under HEAD (``eligibility:`` + ``derive:`` of the 2026 files), alternately, in one run. Prints
microseconds per application and the ratio. The submit guard calls this once per action; the
figure says what a rule written as data costs against one written in code.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from baseline import baseline_tree, head_tree  # bench/ is sys.path[0]

HERE = Path(__file__).resolve().parent
GOLDEN = HERE.parent / "tests" / "models" / "data" / "eligibility_2026_golden.jsonl.gz"
OLD = "fbab442"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="passes over the golden set per side")
    parser.add_argument("--repeat", type=int, default=3, help="alternating runs per side")
    parser.add_argument("--quick", action="store_true", help="2 rounds, 1 run per side")
    args = parser.parse_args()
    rounds, repeat = (2, 1) if args.quick else (args.rounds, args.repeat)
    root = os.environ.get("SHENBAO_BENCH_ELIGIBILITY_BASELINE")
    if root:
        os.environ["SHENBAO_BENCH_BASELINE"] = root
    else:
        os.environ.pop("SHENBAO_BENCH_BASELINE", None)  # that one is 7cf4329's
    base, head = baseline_tree(OLD), head_tree()
    snippet = HERE / "eligibility_snippet.py"
    old: list[float] = []
    new: list[float] = []
    for _ in range(repeat):
        old.append(base.run(snippet, str(GOLDEN), str(rounds)).data["us_per_call"])
        new.append(head.run(snippet, str(GOLDEN), str(rounds)).data["us_per_call"])
    o, n = min(old), min(new)
    print(
        f"findings_for over 2,244 applications × {rounds}: {OLD} (Python rules) {o:.1f} µs · "
        f"HEAD (campaign file rules) {n:.1f} µs per application · HEAD/{OLD} = {n / o:.2f}×"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
