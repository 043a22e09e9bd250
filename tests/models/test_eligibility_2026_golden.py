"""The 2026 rules as data say what the 2026 rules in Python said, word for word.

``data/eligibility_2026_golden.jsonl.gz`` holds 2,244 applications with the findings the Python
rules (``cluster_findings``/``jingpin_findings``, commit fbab442) gave them: every call the
eligibility, quota, action and city-loop tests made, the demo's sample data of twelve seeds
imported through the real importer, and random combinations of every field (closed and open
tracks, cluster names typed as 细分赛道, empty fields, 山区海岛县, 世界级水平, unknown 类别).
Each is run through the engine the campaign files now drive (rule id, severity and text).

One wording changed on purpose (``REWORDED``): an empty 集群赛道 read 「None」 to coordinators
(Python's None printed into the text); it now reads 「」 as an empty 集群赛道 given as "" did.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from calendars.campaign import CAMPAIGN_DIR, CampaignSpec, load_campaign_file
from models.eligibility import findings_for

GOLDEN = Path(__file__).parent / "data" / "eligibility_2026_golden.jsonl.gz"
SPECS = {
    "cluster_application": load_campaign_file(CAMPAIGN_DIR / "2026-cluster-selection.yaml"),
    "jingpin_application": load_campaign_file(CAMPAIGN_DIR / "2026-jingpin.yaml"),
}


def _cases() -> list[dict[str, Any]]:
    with gzip.open(GOLDEN, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


CASES = _cases()
REWORDED = {"集群赛道「None」": "集群赛道「」"}


def _expected(found: list[list[str]]) -> list[list[str]]:
    out = []
    for rule, severity, message in found:
        for old, new in REWORDED.items():
            message = message.replace(old, new)
        out.append([rule, severity, message])
    return out


def _findings(spec: CampaignSpec, case: dict[str, Any]) -> list[list[str]]:
    zone = case["select"] if case["kind"] == "cluster_application" else None
    category = case["select"] if case["kind"] == "jingpin_application" else None
    found = findings_for(
        spec,
        case["kind"],
        case["attrs"],
        zone_type=zone,
        category=category,
        mountain_island=case["mountain_island"],
    )
    return [[f.rule, f.severity, f.message] for f in found]


def test_the_golden_set_covers_every_2026_finding() -> None:
    rules = {f[0] for case in CASES for f in case["findings"]}
    assert len(CASES) > 2000
    assert {"subtrack_is_cluster", "subtrack_missing", "subtrack_mismatch", "track_closed"} <= rules
    assert {"revenue_threshold", "revenue_missing", "core_platforms", "highland_unknown"} <= rules
    assert {"category_unknown", "launch_window", "sales_threshold", "rd_missing"} <= rules


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_the_campaign_file_gives_the_findings_the_python_rules_gave(kind: str) -> None:
    spec = SPECS[kind]
    differ = []
    for case in CASES:
        if case["kind"] != kind:
            continue
        got = _findings(spec, case)
        if got != _expected(case["findings"]):
            differ.append((case["select"], case["mountain_island"], case["attrs"], case["findings"], got))
    shown = "\n".join(f"{d[:3]}\n  was: {d[3]}\n  now: {d[4]}" for d in differ[:5])
    assert not differ, f"{len(differ)} applications get other findings, e.g.:\n{shown}"
