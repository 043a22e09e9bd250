"""Authoring a campaign file: validate names the line and the key, diff says what changed in
Chinese, and reloading a changed file refuses to strand cases in a state that no longer exists."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select

from calendars.campaign import CAMPAIGN_DIR, CampaignFileError, load_campaign_file, load_campaign_text
from calendars.campaign_diff import diff_campaigns
from models.actions import ActionRefused
from models.audit import AuditEvent
from models.campaign import StageDeadline
from models.campaign_check import check_campaign_text
from models.db import Database
from models.registry import load_campaign
from tests.models.spine import CLUSTER, cluster_case

CLUSTER_FILE = CAMPAIGN_DIR / "2026-cluster-selection.yaml"
TEXT = CLUSTER_FILE.read_text(encoding="utf-8")


def line_of(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


def test_it_names_the_line_the_key_and_what_was_expected() -> None:
    bad = TEXT.replace("    actor: county\n", "    actor: towns\n", 1)
    with pytest.raises(CampaignFileError) as caught:
        load_campaign_text(bad, origin="f.yaml")
    message = str(caught.value)
    assert f"stages[application].actor: 第{line_of(bad, 'actor: towns')}行：应为 province（省）、" in message
    assert "或 recommender（推荐单位）之一，实际为「towns」" in message


def test_it_reports_an_unknown_key_with_its_line() -> None:
    bad = TEXT.replace("    deadline_text: 具体时间和安排另行通知\n", "    deadlien: 2026-08-01\n", 1)
    with pytest.raises(CampaignFileError) as caught:
        load_campaign_text(bad, origin="f.yaml")
    line = line_of(bad, "deadlien")
    assert f"stages[preliminary_review].deadlien: 第{line}行：未知的键" in str(caught.value)


def test_it_refuses_a_state_a_machine_does_not_declare() -> None:
    bad = TEXT.replace("to: prelim_passed, by: [province]", "to: prelim_ok, by: [province]", 1)
    _spec, problems = check_campaign_text(bad, origin="f.yaml")
    assert problems and "prelim_ok" in problems[0] and "不在 states 中" in problems[0]


def test_it_refuses_a_guard_no_code_implements() -> None:
    bad = TEXT.replace("guards: [defence_time]", "guards: [defence_slot]", 1)
    _spec, problems = check_campaign_text(bad, origin="f.yaml")
    assert len(problems) == 1
    assert (
        f"第{line_of(bad, 'defence_slot')}行" in problems[0] and "未知的检查「defence_slot」" in problems[0]
    )


def test_a_field_is_named_once_by_its_form_label() -> None:
    """labels: only for fields the form lacks: a form field named again there is a problem at
    its line, and screens show the form's label whatever labels: says."""
    doubled = TEXT.replace(
        "\ntables:\n", "\nlabels:\n  cluster: 省级重点产业集群\n  source_row: 原表行号\n\ntables:\n", 1
    )
    spec, problems = check_campaign_text(doubled, origin="f.yaml")
    assert len(problems) == 1
    assert f"第{line_of(doubled, 'cluster: 省级重点产业集群')}行" in problems[0]
    assert "labels.cluster" in problems[0] and "集群名称" in problems[0]
    assert spec is not None and spec.field_label("cluster") == "集群名称"
    assert spec.field_label("source_row") == "原表行号"


def test_it_accepts_the_relative_deadline_shapes() -> None:
    extra = (
        "  - id: publicity\n    name: 公示\n    actor: province\n    subject: cluster_application\n"
        "    pending_states: [defence_held]\n    deadline: {working_days: 5, after: {stage: defence}}\n"
        "  - id: resubmission\n    name: 退回后重新提交\n    actor: county\n    subject: cluster_application\n"
        "    pending_states: [returned]\n    deadline: {working_days: 3, after: {action: return}}\n\ntables:\n"
    )
    spec, problems = check_campaign_text(TEXT.replace("\ntables:\n", "\n" + extra, 1), origin="f.yaml")
    assert problems == [] and spec is not None
    publicity = spec.stage("publicity").relative
    assert publicity is not None and publicity.working_days == 5 and publicity.anchor.stage == "defence"
    wrong = extra.replace("after: {stage: defence}", "after: {stage: nowhere}")
    _spec, problems = check_campaign_text(TEXT.replace("\ntables:\n", "\n" + wrong, 1), origin="f.yaml")
    assert problems and "相对的环节 nowhere 不存在" in problems[0]


def test_it_diffs_deadlines_machines_and_rules_in_chinese() -> None:
    new = (
        TEXT.replace("    deadline: 2026-07-03\n", "    deadline: 2026-07-08\n", 1)
        .replace("core: 500", "core: 450", 1)
        .replace("      selected: 入选\n", "      selected: 入选\n      publicised: 公示中\n", 1)
    )
    lines = diff_campaigns(load_campaign_file(CLUSTER_FILE), load_campaign_text(new, origin="new"))
    assert (
        "环节 city_recommendation（设区市审核推荐并上传推荐函（签章版））：截止时间 2026-07-03（周五）24:00 → 2026-07-08（周三）24:00"
        in lines
    )
    assert "案件类型 cluster_application：新增状态 publicised（公示中）" in lines
    assert "通知附表（tables）.clusters[人工智能].core：500 → 450" in lines
    assert diff_campaigns(load_campaign_file(CLUSTER_FILE), load_campaign_file(CLUSTER_FILE)) == []


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_it_refuses_a_reload_that_strands_cases_and_names_them(seeded: Database, make_ctx: Any) -> None:
    with seeded.write() as session:
        case = cluster_case(session, make_ctx())
        ref = case.ref
    # The draft state is gone from the new file: the case could never move again.
    new = TEXT.replace(
        "    initial: draft\n    states:\n      draft: 填报中\n", "    initial: submitted\n    states:\n", 1
    )
    new = new.replace("from: [draft], to: submitted", "from: [submitted], to: submitted", 1)
    new = new.replace("from: [draft, submitted, returned]", "from: [submitted, returned]", 1)
    new = new.replace(
        "{action: lapse, label: 逾期关闭, from: [draft]",
        "{action: lapse, label: 逾期关闭, from: [submitted]",
        1,
    )
    new = new.replace("to: draft, by: [platform]", "to: submitted, by: [platform]", 1)
    new = new.replace("    pending_states: [draft]\n", "    pending_states: [submitted]\n", 1)
    new = new.replace("    lapse_states: [draft]\n", "    lapse_states: [submitted]\n", 1)
    new = new.replace("    填报中: draft\n    暂存: draft\n    草稿: draft\n", "", 1)
    with pytest.raises(ActionRefused) as caught, seeded.write() as session:
        load_campaign(session, make_ctx(), new, origin="v2.yaml")
    assert caught.value.rule == "campaign_strands_cases"
    assert "状态 draft（填报中）已被删除" in str(caught.value) and ref in str(caught.value)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_a_reload_is_audited_with_its_changes_and_replans_changed_reminders(
    seeded: Database, make_ctx: Any
) -> None:
    new = TEXT.replace(
        "      - {id: d-7, before: 7, unit: days}\n", "      - {id: d-10, before: 10, unit: days}\n", 1
    )
    with seeded.read() as session:
        before = session.get(StageDeadline, (CLUSTER, "application"))
        assert before is not None
        version = before.version
    with seeded.write() as session:
        _, changes = load_campaign(session, make_ctx(), new, origin="v2.yaml")
    assert "环节 application 提醒重排" in changes
    with seeded.read() as session:
        after = session.get(StageDeadline, (CLUSTER, "application"))
        assert after is not None and after.version == version + 1 and after.due_at == before.due_at
        load = session.exec(
            select(AuditEvent).where(AuditEvent.action == "campaign_load").order_by(AuditEvent.seq.desc())  # type: ignore[attr-defined]
        ).first()
    assert load is not None and "提醒" in load.details and "d-10" in load.details


def test_a_per_case_deadline_must_count_from_an_action_of_its_machine_line_and_key() -> None:
    extra = (
        "  - id: resubmission\n    name: 退回后重新提交\n    actor: county\n    subject: cluster_application\n"
        "    pending_states: [returned]\n    deadline: {working_days: 3, after: {action: retrun}}\n\ntables:\n"
    )
    bad = TEXT.replace("\ntables:\n", "\n" + extra, 1)
    with pytest.raises(CampaignFileError) as caught:  # `campaign load` says it the same way
        load_campaign_text(bad, origin="f.yaml")
    for problems in (check_campaign_text(bad, origin="f.yaml")[1], [str(caught.value)]):
        assert len(problems) == 1
        where = f"stages[resubmission].deadline.after.action: 第{line_of(bad, 'action: retrun')}行："
        assert where in problems[0]
        assert "「retrun」不是「集群遴选申报」的操作" in problems[0] and "、return、" in problems[0]


def test_lapse_states_must_be_states_the_machine_lapses() -> None:
    bad = TEXT.replace("    lapse_states: [draft]\n", "    lapse_states: [submitted]\n", 1)
    _spec, problems = check_campaign_text(bad, origin="f.yaml")
    assert len(problems) == 1
    assert f"lapse_states: 第{line_of(bad, 'lapse_states: [submitted]')}行：" in problems[0]
    assert (
        "须是「集群遴选申报」作用为 lapse 的操作（by: [system]）的 from 状态之一（现有：draft）"
        in problems[0]
    )


def test_the_quota_guard_belongs_to_recommend() -> None:
    bad = TEXT.replace("{action: recommend, label: 推荐,", "{action: tuijian, label: 推荐,", 1)
    bad = bad.replace("- {action: withdraw_recommendation,", "- {action: withdraw_recommendation,", 1)
    _spec, problems = check_campaign_text(bad, origin="f.yaml")
    assert any(
        f"kinds.cluster_application.transitions[tuijian].guards: 第{line_of(bad, 'action: tuijian')}行：" in p
        and "只能用于作用为 recommend 的推荐操作（tuijian 的作用为 无）" in p
        for p in problems
    ), problems
