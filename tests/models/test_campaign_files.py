"""Campaign files: the two built-in 2026 files, what they say, how a broken file is reported,
and what loading (and re-loading) one does to the database."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from calendars.campaign import (
    CAMPAIGN_DIR,
    CampaignFileError,
    builtin_campaign_files,
    load_campaign_file,
    load_campaign_text,
)
from calendars.timeutil import format_deadline
from models.actions import ActionRefused
from models.campaign import Campaign, StageDeadline
from models.case import Case
from models.db import Database
from models.registry import CITY_KINDS, load_campaign
from tests.models.spine import CLUSTER, JINGPIN, events, n_events

CLUSTER_FILE = CAMPAIGN_DIR / "2026-cluster-selection.yaml"
JINGPIN_FILE = CAMPAIGN_DIR / "2026-jingpin.yaml"
SPECS = {CLUSTER: load_campaign_file(CLUSTER_FILE), JINGPIN: load_campaign_file(JINGPIN_FILE)}


def local(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_it_ships_both_2026_campaigns() -> None:
    assert [p.name for p in builtin_campaign_files()] == ["2026-cluster-selection.yaml", "2026-jingpin.yaml"]
    assert {s.program for s in SPECS.values()} == {"cluster", "jingpin"}
    assert all(s.notice == "浙制高办〔2026〕30号" for s in SPECS.values())


@pytest.mark.parametrize(
    ("campaign", "stage", "instant", "shown"),
    [
        (CLUSTER, "roster", "2026-06-06T00:00+08:00", "2026-06-05（周五）24:00"),
        (CLUSTER, "application", "2026-06-26T00:00+08:00", "2026-06-25（周四）24:00"),
        (CLUSTER, "city_recommendation", "2026-07-04T00:00+08:00", "2026-07-03（周五）24:00"),
        (JINGPIN, "roster", "2026-06-06T00:00+08:00", "2026-06-05（周五）24:00"),
        (JINGPIN, "application", "2026-07-11T00:00+08:00", "2026-07-10（周五）24:00"),
        (JINGPIN, "city_recommendation", "2026-07-21T00:00+08:00", "2026-07-20（周一）24:00"),
    ],
)
def test_it_reads_each_dated_stage_as_the_instant_the_notice_means(
    campaign: str, stage: str, instant: str, shown: str
) -> None:
    due = SPECS[campaign].stage(stage).deadline
    assert due == local(instant)
    assert due is not None and format_deadline(due) == shown


@pytest.mark.parametrize(
    ("campaign", "stage"),
    [(CLUSTER, "preliminary_review"), (CLUSTER, "defence"), (CLUSTER, "selection"), (JINGPIN, "review")],
)
def test_it_leaves_stages_to_be_announced_without_a_date(campaign: str, stage: str) -> None:
    s = SPECS[campaign].stage(stage)
    assert s.deadline is None and not s.announced and "另行通知" in s.deadline_text


def test_it_opens_both_application_windows_on_the_day_of_the_notice() -> None:
    for spec in SPECS.values():
        assert spec.stage("application").opens == local("2026-05-26T00:00+08:00")
        assert spec.stage("application").window_actions == ("submit",)
        assert spec.stage("application").lapse_states == ("draft",)


def test_it_carries_the_quota_table_of_annex_2_2() -> None:
    by_id = {q.id: q for q in SPECS[JINGPIN].quotas}
    assert by_id["city"].limits == {
        "330100": 60,
        "330200": 50,
        "330300": 45,
        "330400": 40,
        "330500": 30,
        "330600": 30,
        "330700": 30,
        "330800": 20,
        "330900": 20,
        "331000": 45,
        "331100": 20,
    }
    assert (by_id["soe"].limit, by_id["assoc"].limit, by_id["brand"].limit) == (5, 10, 2)
    assert by_id["brand"].overflow and by_id["brand"].per == "county" and by_id["brand"].only == ()


def test_it_carries_the_sales_thresholds_and_launch_window_of_annex_2() -> None:
    spec = SPECS[JINGPIN]
    assert [(c["id"], c["min_sales"], c["min_sales_mountain_island"]) for c in spec.tables["categories"]] == [
        ("advanced", 800, 500),
        ("digital", 600, 300),
        ("consumer", 600, 300),
    ]
    rules = {r.id: r for r in spec.eligibility}
    launch = rules["launch_window"]
    assert (str(launch.date_from), str(launch.date_to), rules["rd_ratio"].min) == (
        "2023-01-01",
        "2024-12-31",
        Decimal("3"),
    )
    assert spec.form is not None and (track := spec.form.field("track")) is not None
    assert len(track.choices) == 16 and track.choices[-1] == "历史经典产业"
    assert rules["track_unknown"].in_ == track.choices  # one list (a YAML anchor), read twice


def test_it_carries_the_tracks_of_annex_1_1() -> None:
    spec = SPECS[CLUSTER]
    clusters = spec.tables["clusters"]
    closed = {t["cluster"] for t in clusters if not t["open"]}
    assert closed == {
        "集成电路",
        "新能源汽车及零部件",
        "高端船舶与海工装备",
        "新能源与新型储能",
        "现代家居与智能家电",
        "绿色石化",
        "高端新材料",
    }
    assert len(clusters) == 15
    revenue = next(r for r in spec.eligibility if r.id == "revenue_threshold")
    assert revenue.mountain_island_factor == Decimal("0.7")
    assert next(q for q in spec.quotas if q.id == "rising_star").limit == 3
    assert {h["threshold"] for h in spec.tables["highlands"]} == {10}


# -- broken files ---------------------------------------------------------------------------------


def broken(tmp_path: Path, old: str, new: str) -> CampaignFileError:
    text = CLUSTER_FILE.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "2026-cluster-selection.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(CampaignFileError) as info:
        load_campaign_file(path)
    assert str(path) in str(info.value)
    return info.value


def test_it_names_the_file_and_the_field_of_an_impossible_deadline(tmp_path: Path) -> None:
    exc = broken(tmp_path, 'deadline: "2026-06-25 24:00"', 'deadline: "2026-06-31 24:00"')
    assert "stages[application].deadline" in str(exc) and "2026-06-31" in str(exc)


def test_it_names_the_file_and_the_field_of_an_impossible_unquoted_date(tmp_path: Path) -> None:
    text = CLUSTER_FILE.read_text(encoding="utf-8").replace("deadline: 2026-07-03", "deadline: 2026-07-32")
    with pytest.raises(CampaignFileError, match=r"stages\[city_recommendation\]\.deadline"):
        load_campaign_text(text, origin="2026-cluster-selection.yaml")


def test_it_names_the_stage_of_an_unknown_tier(tmp_path: Path) -> None:
    exc = broken(tmp_path, "    actor: county\n", "    actor: town\n")
    assert "stages[application].actor" in str(exc)


def test_it_refuses_an_unknown_key(tmp_path: Path) -> None:
    exc = broken(tmp_path, "working_hours:", "colour: red\nworking_hours:")
    assert "colour" in str(exc)


def test_it_refuses_a_time_of_24_30(tmp_path: Path) -> None:
    exc = broken(tmp_path, 'deadline: "2026-06-25 24:00"', 'deadline: "2026-06-25 24:30"')
    assert "stages[application].deadline" in str(exc) and "24:00" in str(exc)


def test_it_refuses_two_stages_with_one_id(tmp_path: Path) -> None:
    exc = broken(tmp_path, "  - id: defence\n", "  - id: application\n")
    assert "环节编号重复：application" in str(exc)


def test_it_refuses_a_campaign_without_its_form(tmp_path: Path) -> None:
    text = CLUSTER_FILE.read_text(encoding="utf-8")
    cut = text[: text.index("\ntables:\n")] + "\n"
    with pytest.raises(CampaignFileError, match="缺少申报表 form:"):
        load_campaign_text(cut, origin="x.yaml")


def test_it_names_the_file_of_broken_yaml(tmp_path: Path) -> None:
    exc = broken(tmp_path, "stages:\n", "stages: [\n")
    assert "YAML" in str(exc)


def test_it_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CampaignFileError, match="无法读取"):
        load_campaign_file(tmp_path / "nope.yaml")


# -- loading into the database ------------------------------------------------------------------------


def test_it_creates_a_roster_task_and_a_recommendation_for_every_city(seeded: Database) -> None:
    with seeded.read() as session:
        cases = list(session.exec(select(Case)))
    for campaign in (CLUSTER, JINGPIN):
        for kind in ("roster", "recommendation"):
            assert len([c for c in cases if c.campaign_id == campaign and c.kind == kind]) == 11


def test_it_keeps_the_whole_file_in_the_database(seeded: Database) -> None:
    with seeded.read() as session:
        campaign = session.get(Campaign, CLUSTER)
    assert campaign is not None and campaign.spec_text == CLUSTER_FILE.read_text(encoding="utf-8")
    assert campaign.spec() == SPECS[CLUSTER]


def test_it_changes_nothing_when_the_same_file_is_loaded_again(seeded: Database, make_ctx: Any) -> None:
    count = n_events(seeded)
    with seeded.write() as session:
        _, changes = load_campaign(
            session, make_ctx(), CLUSTER_FILE.read_text(encoding="utf-8"), origin="again"
        )
    assert changes == [] and n_events(seeded) == count


def test_it_records_a_deadline_moved_by_a_new_version_of_the_file(seeded: Database, make_ctx: Any) -> None:
    text = CLUSTER_FILE.read_text(encoding="utf-8").replace("deadline: 2026-07-03", "deadline: 2026-07-08")
    with seeded.write() as session:
        _, changes = load_campaign(session, make_ctx(), text, origin="2026-cluster-selection.yaml（延期）")
    assert "环节 city_recommendation 截止时间调整" in changes
    with seeded.read() as session:
        row = session.get(StageDeadline, (CLUSTER, "city_recommendation"))
    assert row is not None and (row.due_at, row.version) == (local("2026-07-09T00:00+08:00"), 2)
    moved = events(seeded, action="deadline_change")[-1]
    assert "延期" in moved.reason and "2026-07-08（周三）24:00" in moved.details


def test_it_adds_a_stage_added_to_the_file(seeded: Database, make_ctx: Any) -> None:
    extra = (
        "  - id: site_visit\n    name: 现场核查\n    actor: province\n    subject: cluster_application\n"
        "    pending_states: [defence_held]\n    deadline: null\n\ntables:\n"
    )
    text = CLUSTER_FILE.read_text(encoding="utf-8").replace("\ntables:\n", "\n" + extra, 1)
    with seeded.write() as session:
        _, changes = load_campaign(session, make_ctx(), text, origin="v2")
    assert "新增环节 site_visit" in changes
    with seeded.read() as session:
        assert session.get(StageDeadline, (CLUSTER, "site_visit")) is not None


def test_it_refuses_to_change_a_campaigns_program(seeded: Database, make_ctx: Any) -> None:
    text = JINGPIN_FILE.read_text(encoding="utf-8").replace("id: 2026-jingpin", f"id: {CLUSTER}", 1)
    with seeded.write() as session, pytest.raises(ActionRefused, match="不能改为 jingpin"):
        load_campaign(session, make_ctx(), text, origin="wrong.yaml")


@pytest.mark.usefixtures("campaigns_forgotten")
def test_two_campaigns_of_one_prefix_and_year_number_their_city_cases_apart(
    seeded: Database, make_ctx: Any
) -> None:
    """A second cluster batch in 2026: its cities' cases cannot be RC26-CL-330100 again (the
    first batch's); they take the next code, and the first batch's numbers stay as they were."""
    text = (CAMPAIGN_DIR / "2026-cluster-selection.yaml").read_text(encoding="utf-8")
    second = re.sub(r"(?m)^id: .*$", "id: 2026-cluster-second", text, count=1)
    with seeded.write() as session:
        load_campaign(session, make_ctx(), second, origin="second.yaml")
        load_campaign(session, make_ctx(), second, origin="second.yaml")  # reloaded: nothing new
    with seeded.read() as session:
        refs = {
            (c.campaign_id, c.kind): c.ref
            for c in session.exec(select(Case).where(Case.org_id == "330100", col(Case.kind).in_(CITY_KINDS)))
        }
        assert (
            session.exec(select(Case).where(Case.campaign_id == "2026-cluster-second")).all().__len__() == 22
        )
    assert refs[("2026-cluster-selection", "recommendation")] == "RC26-CL-330100"
    assert refs[("2026-cluster-selection", "roster")] == "RS26-CL-330100"
    assert refs[("2026-cluster-second", "recommendation")] == "RC26-CL2-330100"
    assert refs[("2026-cluster-second", "roster")] == "RS26-CL2-330100"


# -- the rule language's own mistakes: each names the key (rules by id) and the line -----------


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize(
    ("old", "new", "key", "said"),
    [
        (
            "{field: track.open, equals: false}]",
            "{field: trak.open, equals: false}]",
            "eligibility[track_closed].when[1].field",
            "「trak.open」不是已知的字段",
        ),
        (
            "lookup: {table: highlands,",
            "lookup: {table: highland,",
            "derive[star].lookup",
            "表「highland」不在 tables 中（已有：clusters、highlands）",
        ),
        (
            "match: [{column: subtracks, field: subtrack}]}}",
            "match: [{column: subtrack, field: subtrack}]}}",
            "derive[subtrack_cluster].lookup",
            "表「clusters」没有列「subtrack」",
        ),
        (
            "低于规模门槛（门槛{threshold}亿元",
            "低于规模门槛（门槛{thresold}亿元",
            "eligibility[revenue_threshold].message",
            "message 中的「thresold」不是已知的字段",
        ),
        (
            'name: "{recommender}核心区协同区推荐（不限数量）"',
            'name: "{city}核心区协同区推荐（不限数量）"',
            "quotas[cluster].name",
            "{recommender}、{unit} 或 {limit}",
        ),
    ],
)
def test_it_names_the_rule_the_line_and_what_a_reference_could_be(
    tmp_path: Path, old: str, new: str, key: str, said: str
) -> None:
    exc = broken(tmp_path, old, new)
    text = CLUSTER_FILE.read_text(encoding="utf-8").replace(old, new, 1)
    assert f"{key}: 第{_line_of(text, new)}行：" in str(exc) and said in str(exc)


def test_it_refuses_a_condition_with_two_tests(tmp_path: Path) -> None:
    exc = broken(tmp_path, "{field: x_system, equals: 无}]", "{field: x_system, equals: 无, empty: true}]")
    assert "eligibility[x_system_required].when" in str(exc) and "只能有一种判断" in str(exc)


def test_it_refuses_a_rule_with_neither_field_nor_when(tmp_path: Path) -> None:
    old = "{id: x_system_required, severity: in_principle, when: [{field: zone_type, in: [core, collaborative]}, {field: x_system, equals: 无}],"
    exc = broken(tmp_path, old, "{id: x_system_required, severity: in_principle,")
    assert "eligibility[x_system_required]" in str(exc) and "须写 field（检查哪个字段）或 when" in str(exc)


def test_it_refuses_a_quota_for_a_tier_that_does_not_recommend(tmp_path: Path) -> None:
    exc = broken(tmp_path, "tiers: [city], limit: 3,", "tiers: [cities], limit: 3,")
    assert "quotas[rising_star].tiers: 第" in str(exc) and "「cities」不是推荐单位的类别" in str(exc)
