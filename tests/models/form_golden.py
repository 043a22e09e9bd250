"""What the 附1-2 and 附2-3 imports produce, captured so that a change of how the forms are read
(Python readers before, the campaign files' ``form:`` after) can be shown to change nothing.

``capture`` imports the scenario files, the demo's sample files and a list of bad files into one
database and returns every case written (columns and attrs) and every rejection's problems, as
JSON-ready data. ``tests/fixtures/form_golden.json`` holds what the importer produced before the
forms became data; regenerate it only for a change of wording that a commit explains:
``SHENBAO_FORM_GOLDEN=write .venv/bin/pytest -n 0 -q tests/models/test_form_golden.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlmodel import select

from models.case import Case
from models.db import Database
from models.imports import import_cases
from models.sheets import ImportRejected, write_sheet
from tests.fixtures.scenario.make_samples import CLUSTER_HEADERS, JINGPIN_HEADERS

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GOLDEN = FIXTURES / "form_golden.json"
CLUSTER = "2026-cluster-selection"
JINGPIN = "2026-jingpin"

C_ROW: list[Any] = [
    "鄞州区", "", "协同区", "人工智能", "智能终端", "创新型产业集群", 260, 1, 1, 3, "否",
    "周敏", "13600000002", "zm@yz.gov.cn", "",
]  # fmt: skip
J_ROW: list[Any] = [
    1, "宁波精工有限公司", "鄞州区", "数控车床 NB-1", "先进制造类", "工业母机与机器人", "2023-05-01",
    4, 900, "", "周敏", "13600000003", "zm@nbjg.com",
]  # fmt: skip

# One changed cell (column index -> value) per cluster row; each is a file of that one row.
C_BAD: dict[str, dict[int, Any]] = {
    "empty-applicant": {0: ""},
    "park-without-county": {0: "鄞州经济开发区管委会"},
    "unclear-without-county": {0: "某某单位"},
    "unknown-county": {1: "东湖区", 0: "某园区管委会"},
    "county-is-a-city": {1: "宁波市", 0: "某园区管委会"},
    "empty-type": {2: ""},
    "bad-type": {2: "重点区"},
    "two-types": {2: "核心区、协同区"},
    "type-in-words": {2: "申报核心区"},
    "type-english": {2: "rising_star", 3: "新一代信息技术"},
    "unknown-cluster": {3: "元宇宙"},
    "cluster-with-suffix": {3: "人工智能产业集群"},
    "empty-track": {4: ""},
    "empty-x": {5: ""},
    "bad-x": {5: "省级未来工厂"},
    "x-none-word": {5: "暂无"},
    "x-without-province": {5: "现代化交通产业集群"},
    "x-qun": {5: "安全应急产业群"},
    "bad-number": {6: "两百亿"},
    "negative": {6: -5},
    "with-unit": {6: "260亿元"},
    "short-unit": {6: "260亿"},
    "trailing-zero": {6: "260.50"},
    "park-with-county": {0: "鄞州经济开发区管委会", 1: "鄞州区"},
    "subtrack-only-core": {3: "", 2: "核心区"},
    "rising-highland": {2: "“新星”产业群", 3: "高端装备", 4: "精密泵阀"},
    "wrong-unit": {6: "260万元"},
    "fraction-count": {7: 1.5},
    "count-with-unit": {7: "2家"},
    "negative-count": {8: -1},
    "empty-platforms": {8: ""},
    "empty-platforms-other-cluster": {3: "智能物联", 4: "智能感知", 8: ""},
    "world-class-yes": {10: "是"},
    "bad-yes-no": {10: "也许"},
    "empty-contact": {11: ""},
    "bad-phone": {12: "12345"},
    "landline": {12: "0574-87654321"},
    "bad-email": {13: "zm#yz.gov.cn"},
    "long-applicant": {0: "某" * 130 + "园区", 1: "鄞州区"},
    "external-id": {14: "SZJX-9"},
    "nul": {11: "周\x00敏"},
}
J_BAD: dict[str, dict[int, Any]] = {
    "empty-enterprise": {1: ""},
    "empty-county": {2: ""},
    "unknown-county": {2: "东湖区"},
    "empty-product": {3: ""},
    "bad-category": {4: "高新类"},
    "category-short": {4: "数字融合类"},
    "category-consumer": {4: "特色"},
    "bad-track": {5: "元宇宙"},
    "track-suffix": {5: "工业母机与机器人产业集群"},
    "bad-date": {6: "明年"},
    "month-date": {6: "2023年5月"},
    "bad-percent": {7: 130},
    "percent-sign": {7: "3.5%"},
    "sales-unit": {8: "900万元"},
    "sales-short-unit": {8: "900万"},
    "trailing-zero": {7: "4.50", 8: "900.0"},
    "sales-wrong-unit": {8: "9000000元"},
    "negative-sales": {8: -1},
    "soe": {9: "浙江省机电集团有限公司"},
    "association": {9: "浙江省机械工业联合会"},
    "city-recommender": {9: "宁波市"},
    "bad-recommender": {9: "某某公司"},
    "bad-phone": {11: "12345"},
    "bad-email": {12: "zm@"},
    "long-product": {3: "长" * 300},
}


def _cases(db: Database, campaign: str) -> list[dict[str, Any]]:
    with db.read() as session:
        cases = session.exec(select(Case).where(Case.campaign_id == campaign).order_by(Case.ref)).all()
        return [
            {
                "ref": c.ref,
                "kind": c.kind,
                "title": c.title,
                "org_id": c.org_id,
                "city_code": c.city_code,
                "county_code": c.county_code,
                "zone_type": c.zone_type,
                "category": c.category,
                "track": c.track,
                "recommender_id": c.recommender_id,
                "brand_aligned": c.brand_aligned,
                "external_id": c.external_id,
                "attrs": c.attrs,
            }
            for c in cases
            if c.kind not in ("roster", "recommendation")
        ] + [
            {"ref": c.ref, "org_id": c.org_id, "title": c.title}
            for c in cases
            if c.kind == "recommendation" and not (c.org_id or "").startswith("33")
        ]


def _run(db: Database, make_ctx: Any, campaign: str, path: Path) -> list[str] | None:
    try:
        with db.write() as session:
            import_cases(session, make_ctx(), campaign, path)
    except ImportRejected as exc:
        return [str(p) for p in exc.problems]
    return None


def _bad_files(folder: Path) -> list[tuple[str, str, Path]]:
    out: list[tuple[str, str, Path]] = []
    for campaign, headers, good, bad in (
        (CLUSTER, CLUSTER_HEADERS, C_ROW, C_BAD),
        (JINGPIN, JINGPIN_HEADERS, J_ROW, J_BAD),
    ):
        for name, change in bad.items():
            row = list(good)
            for i, v in change.items():
                row[i] = v
            # One row a file, each its own application: a file that passes is written, and
            # the next file must not fail only for repeating it.
            item = 4 if campaign == CLUSTER else 3
            if item not in change:
                row[item] = f"{good[item]}-{name}"
            path = write_sheet(folder / f"{campaign}-{name}.csv", headers, [row])
            out.append((campaign, name, path))
    # Whole-file cases: a missing column, a duplicate row, no cluster column, xlsx.
    out.append((CLUSTER, "duplicate-row", write_sheet(folder / "dup.csv", CLUSTER_HEADERS, [C_ROW, C_ROW])))
    missing = [h for h in CLUSTER_HEADERS if h != "细分赛道"]
    cut = CLUSTER_HEADERS.index("细分赛道")
    out.append(
        (
            CLUSTER,
            "missing-column",
            write_sheet(folder / "miss.csv", missing, [C_ROW[:cut] + C_ROW[cut + 1 :]]),
        )
    )
    at = CLUSTER_HEADERS.index("集群名称")
    no_cluster = CLUSTER_HEADERS[:at] + CLUSTER_HEADERS[at + 1 :]
    wrong = list(C_ROW)
    wrong[0], wrong[4] = "江北区", "智能物联"
    rising = list(C_ROW)
    rising[0], rising[2], rising[4] = "北仑区", "新星产业群", "仪器仪表"
    rows = [r[:at] + r[at + 1 :] for r in (C_ROW, wrong, rising)]
    out.append((CLUSTER, "no-cluster-column", write_sheet(folder / "nocluster.csv", no_cluster, rows)))
    out.append((JINGPIN, "duplicate-row", write_sheet(folder / "jdup.xlsx", JINGPIN_HEADERS, [J_ROW, J_ROW])))
    jmissing = [h for h in JINGPIN_HEADERS if h != "产品类别"]
    cut = JINGPIN_HEADERS.index("产品类别")
    out.append(
        (
            JINGPIN,
            "missing-column",
            write_sheet(folder / "jmiss.xlsx", jmissing, [J_ROW[:cut] + J_ROW[cut + 1 :]]),
        )
    )
    brand = [*J_ROW[:3], "品牌产品 B-1", *J_ROW[4:], "是", "QY-2026-1"]
    out.append(
        (
            JINGPIN,
            "brand-and-number",
            write_sheet(folder / "jbrand.xlsx", [*JINGPIN_HEADERS, "集群品牌产品", "外部编号"], [brand]),
        )
    )
    return out


ZJTX_FILE = Path(__file__).resolve().parents[2] / "calendars" / "campaigns" / "available" / "2026-zjtx.yaml"
ZJTX = "2026-zjtx"
Z_BAD: dict[str, dict[int, Any]] = {
    "bad-code": {1: "12345"},
    "unknown-county": {2: "东湖区"},
    "bad-track": {3: "元宇宙"},
    "track-synonym": {3: "工业六基"},
    "negative-years": {4: -1},
    "negative-revenue": {5: -5},
    "revenue-unit": {5: "8600万元"},
    "trailing-zero": {5: "8600.50", 7: "8.40"},
    "score-over": {10: 101},
    "bad-yes-no": {11: "也许"},
    "bad-email": {15: "x@"},
    "empty-optional": {8: ""},
}


def _zjtx_files(folder: Path) -> list[tuple[str, Path]]:
    """The zjtx sample's first row, changed one cell at a time, each its own enterprise."""
    import csv

    sample = ZJTX_FILE.with_name("2026-zjtx.sample.csv")
    with sample.open(encoding="utf-8-sig", newline="") as fh:
        records = list(csv.reader(fh))
    headers, good = records[1], records[2]
    out: list[tuple[str, Path]] = [("sample", sample)]
    for n, (name, change) in enumerate(Z_BAD.items()):
        row: list[Any] = list(good)
        row[0], row[1], row[16] = f"{good[0]}{n}", f"91330106MA2H0Q{n:02d}3X", f"ZJTX-{n}"
        for i, v in change.items():
            row[i] = v
        out.append((name, write_sheet(folder / f"zjtx-{name}.csv", headers, [row])))
    out.append(("duplicate-row", write_sheet(folder / "zjtx-dup.csv", headers, [good, good])))
    return out


def capture(db: Database, make_ctx: Any, folder: Path) -> dict[str, Any]:
    """Every file imported in turn into ``db`` (seeded); a file's result is its problems, or
    None when it was written."""
    from flows.sample_data import write_sample

    scenario = FIXTURES / "scenario"
    results: dict[str, Any] = {}
    results["scenario-cluster"] = _run(db, make_ctx, CLUSTER, scenario / "cluster_hangzhou.csv")
    results["scenario-jingpin"] = _run(db, make_ctx, JINGPIN, scenario / "jingpin_mixed.xlsx")
    results["scenario-cluster-again"] = _run(db, make_ctx, CLUSTER, scenario / "cluster_hangzhou.csv")
    results["scenario-jingpin-again"] = _run(db, make_ctx, JINGPIN, scenario / "jingpin_mixed.xlsx")
    sample = write_sample(folder / "sample")
    results["sample-cluster"] = _run(db, make_ctx, CLUSTER, sample.cluster)
    results["sample-jingpin"] = _run(db, make_ctx, JINGPIN, sample.jingpin)
    for campaign, name, path in _bad_files(folder):
        results[f"{campaign}:{name}"] = _run(db, make_ctx, campaign, path)
    # A campaign of another shape (available/2026-zjtx.yaml), loaded as `campaign load` does.
    from models.registry import load_campaign

    with db.write() as session:
        load_campaign(session, make_ctx(), ZJTX_FILE.read_text(encoding="utf-8"), origin=ZJTX_FILE.name)
    for name, path in _zjtx_files(folder):
        results[f"{ZJTX}:{name}"] = _run(db, make_ctx, ZJTX, path)
    results[f"{ZJTX}:sample-again"] = _run(db, make_ctx, ZJTX, ZJTX_FILE.with_name("2026-zjtx.sample.csv"))
    return {"results": results, "cases": {c: _cases(db, c) for c in (CLUSTER, JINGPIN, ZJTX)}}
