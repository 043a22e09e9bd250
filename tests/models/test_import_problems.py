"""A rejected application file lists every problem at once, an unknown county with the rest.

Reading only (``read_cases`` touches no database): each writer's form, from the campaign files'
samples and the two built-in forms, with a row naming a county that does not exist (「余航区」)
and a row repeating an earlier one.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from calendars.campaign import CAMPAIGN_DIR, CampaignSpec
from models.campaign_check import check_campaign_text
from models.imports import read_cases
from models.sheets import ImportRejected, write_sheet
from tests.fixtures.scenario.make_samples import CLUSTER_HEADERS, JINGPIN_HEADERS
from tests.models.test_imports import CLUSTER_ROW, JINGPIN_ROW


def spec_of(path: Path) -> CampaignSpec:
    spec, problems = check_campaign_text(path.read_text(encoding="utf-8"), origin=path.name)
    assert spec is not None and problems == []
    return spec


def sample_sheet(name: str) -> tuple[list[str], list[list[object]]]:
    with (CAMPAIGN_DIR / "available" / f"{name}.sample.csv").open(encoding="utf-8-sig") as fh:
        lines = list(csv.reader(fh))
    return lines[1], [list(r) for r in lines[2:4]]  # under the title line: headers, two rows


SAMPLES = ["2026-sttt", "2026-sfx", "2026-zjtx"]
BUILT_IN = {
    "2026-cluster-selection": (
        CLUSTER_HEADERS,
        [CLUSTER_ROW, [*CLUSTER_ROW[:4], "算力基础设施", *CLUSTER_ROW[5:]]],
    ),
    "2026-jingpin": (JINGPIN_HEADERS, [JINGPIN_ROW, [2, "宁波精密有限公司", *JINGPIN_ROW[2:]]]),
}


@pytest.mark.parametrize("name", [*SAMPLES, *BUILT_IN])
def test_an_unknown_county_is_listed_with_the_files_other_problems(name: str, tmp_path: Path) -> None:
    path = CAMPAIGN_DIR / "available" / f"{name}.yaml"
    spec = spec_of(path if path.exists() else CAMPAIGN_DIR / f"{name}.yaml")
    assert spec.form is not None
    headers, rows = BUILT_IN[name] if name in BUILT_IN else sample_sheet(name)
    county = headers.index(spec.form.field(spec.form.county).label)
    unknown = list(rows[0])
    unknown[county] = "余航区"
    sheet = write_sheet(tmp_path / "申报.csv", headers, [unknown, rows[1], rows[1]])

    with pytest.raises(ImportRejected) as info:
        read_cases(spec, sheet)

    found = [(p.row, p.column, p.message) for p in info.value.problems]
    assert [(row, column) for row, column, _ in found] == [
        (2, spec.form.field(spec.form.county).label),
        (4, spec.form.field(spec.form.unique[-1]).label),
    ]
    assert "未知的地区：余航区" in found[0][2] and "与第3行重复" in found[1][2]
