"""The rule language of FORMAT.md 第 5 节 on a campaign of its own: tables, derive, conditions,
rules without a field, stop, missing. Pure: a file's text in, findings out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from calendars.campaign import load_campaign_text
from models.eligibility import rule_findings

ZJTX = Path(__file__).resolve().parents[2] / "calendars" / "campaigns" / "available" / "2026-zjtx.yaml"

# 专精特新 with a 附件 table of its own: 领域 → 门槛, and rules that read it.
RULES = """
tables:
  domains:
    - {domain: 工业基础领域, short: [工业六基], min_revenue: 800, open: true}
    - {domain: 重点产业链关键环节, min_revenue: 1000, open: true}
    - {domain: 其他, open: false}
derive:
  - {key: row, lookup: {table: domains, match: [{column: domain, field: track}, {column: short, field: track}]}}
  - {key: floor, cases: [{when: {field: row.open, equals: true}, value: "{row.min_revenue}"}], else: 0}
  - {key: open_domains, join: {table: domains, where: {field: open, equals: true}, item: "{domain}（{min_revenue}万元）", sep: "；"}}
  - {key: who, first: [contact_name, enterprise], default: 无名}
eligibility:
  - {id: domain_unknown, when: {field: row, empty: true}, stop: true, message: "领域「{track}」不在附表中（可选：{open_domains}）"}
  - {id: domain_closed, when: {field: row.open, equals: false}, stop: true, message: "「{row.domain}」本批不受理"}
  - {id: revenue, field: revenue, min: {field: floor}, mountain_island_factor: "0.5", basis: "（山区海岛县减半为{limit}万元）",
     missing: {id: revenue_blank, severity: info, message: "{who}未填营业收入"},
     message: "营业收入{value}万元低于{threshold}万元{basis}"}
  - {id: not_listed, field: track, in: {field: row.domain}, severity: info, message: "领域写作「{value}」，按「{row.domain}」审核"}
"""


def spec() -> Any:
    text = ZJTX.read_text(encoding="utf-8")
    head = text[: text.index("\neligibility:")]
    tail = text[text.index("\nquotas:") :]
    return load_campaign_text(head + "\n" + RULES + tail, origin="rules.yaml")


SPEC = spec()


def found(mountain_island: bool = False, **attrs: Any) -> list[tuple[str, str, str]]:
    fields = {"enterprise": "甲公司", "track": "工业基础领域", "revenue": "900"} | attrs
    return [
        (f.rule, f.severity, f.message) for f in rule_findings(SPEC, fields, mountain_island=mountain_island)
    ]


def test_a_lookup_tries_each_match_over_the_whole_table_and_a_list_column_contains() -> None:
    assert found() == []
    assert found(track="工业六基", revenue="900") == [
        ("not_listed", "info", "领域写作「工业六基」，按「工业基础领域」审核")
    ]


def test_a_rule_without_a_field_speaks_when_its_condition_holds_and_stop_ends_the_check() -> None:
    assert found(track="元宇宙", revenue="1") == [
        (
            "domain_unknown",
            "block",
            "领域「元宇宙」不在附表中（可选：工业基础领域（800万元）；重点产业链关键环节（1000万元））",
        )
    ]
    assert found(track="其他", revenue="1") == [("domain_closed", "block", "「其他」本批不受理")]


def test_a_threshold_from_a_derived_value_with_the_mountain_island_factor_and_its_basis() -> None:
    assert found(track="重点产业链关键环节", revenue="999") == [
        ("revenue", "block", "营业收入999万元低于1000万元")
    ]
    assert found(True, track="重点产业链关键环节", revenue="499") == [
        ("revenue", "block", "营业收入499万元低于1000万元（山区海岛县减半为500万元）")
    ]
    assert found(True, track="重点产业链关键环节", revenue="500") == []


def test_missing_says_it_the_notices_way_with_first_and_default() -> None:
    assert found(revenue="") == [("revenue_blank", "info", "甲公司未填营业收入")]
    assert found(revenue=None, enterprise=None) == [("revenue_blank", "info", "无名未填营业收入")]
    assert found(revenue=None, contact_name="张三") == [("revenue_blank", "info", "张三未填营业收入")]


def test_an_empty_field_is_in_no_list() -> None:
    from calendars.campaign import Condition

    assert Condition.model_validate({"field": "x", "not_in": ["a"]}).holds({"x": ""})
    assert not Condition.model_validate({"field": "x", "in": ["a"]}).holds({"x": None})
    assert Condition.model_validate({"field": "x", "empty": True}).holds({})
    assert Condition.model_validate({"field": "r.c", "differs_from": "y"}).holds({"r": {"c": "a"}, "y": "b"})
    assert not Condition.model_validate({"field": "r.c", "differs_from": "y"}).holds(
        {"r": {"c": "a"}, "y": "a"}
    )
