"""Run by bench_eligibility.py under one tree: every golden application through findings_for,
``rounds`` times, timed in-process (the interpreter's start and the file's parse excluded).
Uses only what fbab442 and HEAD both have: ``findings_for`` and ``load_campaign_file``."""

from __future__ import annotations

import gzip
import json
import sys
import time

from calendars.campaign import CAMPAIGN_DIR, load_campaign_file
from models.eligibility import findings_for

golden, rounds = sys.argv[1], int(sys.argv[2])
with gzip.open(golden, "rt", encoding="utf-8") as fh:
    cases = [json.loads(line) for line in fh]
specs = {
    "cluster_application": load_campaign_file(CAMPAIGN_DIR / "2026-cluster-selection.yaml"),
    "jingpin_application": load_campaign_file(CAMPAIGN_DIR / "2026-jingpin.yaml"),
}
calls = 0
started = time.perf_counter()
for _ in range(rounds):
    for case in cases:
        cluster = case["kind"] == "cluster_application"
        findings_for(
            specs[case["kind"]],
            case["kind"],
            case["attrs"],
            zone_type=case["select"] if cluster else None,
            category=None if cluster else case["select"],
            mountain_island=case["mountain_island"],
        )
        calls += 1
seconds = time.perf_counter() - started
print(json.dumps({"calls": calls, "seconds": seconds, "us_per_call": seconds / calls * 1e6}))
