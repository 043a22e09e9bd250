"""The engine knows actions by their role, never by their ids.

tests/fixtures/renamed-actions.yaml is the 专精特新 campaign file with every action of its
application machine renamed (pinyin), the ones the engine acts on given their ``role:``
(``action: tuijian, role: recommend``). Run through the same season as the original
(tests/models/test_state_roles.py: submit, the window closing, review, recommend within the
quota, the city's board, the list going in, the notices), everything one sees is the same.
``campaign validate`` says, with line and key, what is wrong with a file's roles.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from calendars.campaign import CAMPAIGN_DIR, CampaignFileError, load_campaign_file, load_campaign_text
from models.audit import AuditEvent, AuditLog
from models.campaign_check import check_campaign_text
from models.db import Database
from models.machines import describe_action_roles, machines_of
from models.replay import verify
from tests.models.test_state_roles import ORIGINAL, STATE_ROLES, _season

RENAMED = Path(__file__).resolve().parents[1] / "fixtures" / "renamed-actions.yaml"
# The original's actions under the renamed file's ids.
IDS = {
    "submit": "tijiao",
    "resubmit": "chongxin_tijiao",
    "withdraw": "chehui",
    "approve": "xianshen_tongguo",
    "return": "tuihui",
    "recommend": "tuijian",
    "not_recommend": "bu_tuijian",
    "withdraw_recommendation": "chexiao_tuijian",
    "lapse": "yuqi_guanbi",
    "pass_review": "pingshen_tongguo",
    "fail_review": "pingshen_weitongguo",
    "publicise": "gongshi",
    "object": "yiyi",
    "recognise": "rending",
    "not_recognise": "bu_rending",
}
pytestmark = pytest.mark.usefixtures("campaigns_forgotten")
TEXT = ORIGINAL.read_text(encoding="utf-8")
CLUSTER = (CAMPAIGN_DIR / "2026-cluster-selection.yaml").read_text(encoding="utf-8")


def line_of(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


def test_the_renamed_file_renames_every_action_and_keeps_every_role() -> None:
    original = machines_of(load_campaign_file(ORIGINAL))["zjtx_application"]
    renamed = machines_of(load_campaign_file(RENAMED))["zjtx_shenqing"]
    assert {IDS[a] for a in original.actions()} == renamed.actions()
    assert not original.actions() & renamed.actions()
    for t in original.transitions:
        assert renamed.role_of(IDS[t.action]) == t.role, t.action
    for role in STATE_ROLES:
        assert getattr(renamed, role) == getattr(original, role), role
    assert renamed.find_role("recommend", "county_approved").action == "tuijian"  # type: ignore[union-attr]
    assert "tuijian（推荐）→ recommend" in describe_action_roles(renamed)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_a_machine_with_other_action_names_runs_the_same_season(
    seeded: Database, make_ctx: Any, audit: AuditLog
) -> None:
    original = _season(seeded, make_ctx, ORIGINAL)
    renamed = _season(seeded, make_ctx, RENAMED, IDS)
    assert renamed == original
    # The season did what the engine does by role: lapse at the window, refuse a 4th within the
    # quota, decline the undecided when the list goes in, tell people of the lapses.
    assert original["lapsed"] and original["submit_after_lapse"] == "window_closed"
    assert any(o.endswith(":quota") for o in original["recommend"])
    assert "not_recommended" in {s for _r, s in original["states"]}
    assert "lapse_notice" in dict(original["notices"])
    with seeded.read() as session:
        lapses = session.exec(
            select(AuditEvent).where(
                AuditEvent.subject.startswith("case:ZQ"), AuditEvent.to_value == "lapsed"
            )  # type: ignore[attr-defined]
        ).all()
        declined = session.exec(
            select(AuditEvent).where(
                AuditEvent.subject.startswith("case:ZQ"),  # type: ignore[attr-defined]
                AuditEvent.to_value == "not_recommended",
            )
        ).all()
    assert lapses and {json.loads(e.details)["action"] for e in lapses} == {"yuqi_guanbi"}
    assert {json.loads(e.details)["role"] for e in lapses} == {"lapse"}
    assert declined and {json.loads(e.details)["action"] for e in declined} == {"bu_tuijian"}
    with seeded.snapshot() as session:
        assert verify(session, audit).problems == []


def _problems(text: str) -> list[str]:
    _spec, problems = check_campaign_text(text, origin="f.yaml")
    return problems


def test_an_unknown_role_is_named_with_its_line_and_the_roles_listed() -> None:
    bad = TEXT.replace("{action: recommend, label: 推荐,", "{action: tuijian, role: tuijian, label: 推荐,", 1)
    (problem,) = _problems(bad)
    assert (
        f"kinds.zjtx_application.transitions[tuijian].role: 第{line_of(bad, 'role: tuijian')}行：" in problem
    )
    assert "未知的作用「tuijian」" in problem
    assert "recommend（推荐：" in problem and "lapse（逾期关闭：" in problem  # each role with its meaning


def test_an_action_named_after_a_role_keeps_that_role() -> None:
    bad = TEXT.replace(
        "{action: approve, label: 县级初审通过,", "{action: submit, role: resubmit, label: x,", 1
    )
    bad = bad.replace(
        "{action: submit, label: 提交申报,", "{action: tijiao, role: submit, label: 提交申报,", 1
    )
    bad = bad.replace("window_actions: [submit]", "window_actions: [tijiao]", 1)
    (problem,) = _problems(bad)
    assert f"第{line_of(bad, 'role: resubmit, label: x')}行" in problem and ".role" in problem
    assert "操作编号 submit 是作用的名称，只能有作用 submit（而不是 resubmit）" in problem


def test_lapse_is_one_action_of_the_engine() -> None:
    two = TEXT.replace(
        "      - {action: lapse, label: 逾期关闭, from: [draft], to: lapsed, by: [system], notify: [applicant, county]}\n",
        "      - {action: lapse, label: 逾期关闭, from: [draft], to: lapsed, by: [system]}\n"
        "      - {action: yuqi, role: lapse, label: 退回逾期, from: [returned], to: lapsed, by: [system]}\n",
        1,
    )
    (problem,) = _problems(two)
    assert f"transitions[yuqi].role: 第{line_of(two, 'action: yuqi')}行：" in problem
    assert "作用 lapse 只能由一个操作编号担任（已有 lapse，这里又是 yuqi）" in problem
    by_hand = TEXT.replace("to: lapsed, by: [system]", "to: lapsed, by: [county]", 1)
    with pytest.raises(CampaignFileError) as caught:  # `campaign load` refuses it the same way
        load_campaign_text(by_hand, origin="f.yaml")
    assert f"transitions[lapse].by: 第{line_of(by_hand, 'to: lapsed, by: [county]')}行：" in str(caught.value)
    assert "由系统在截止时执行，by 应为 [system]（实际为 [county]）" in str(caught.value)


def test_one_action_of_a_role_from_a_state() -> None:
    bad = TEXT.replace(
        "      - {action: pass_review,",
        "      - {action: tuijian_2, role: recommend, label: 破格推荐, from: [county_approved], to: recommended,"
        " by: [city], guards: [quota]}\n      - {action: pass_review,",
        1,
    )
    (problem,) = _problems(bad)
    assert f"第{line_of(bad, 'action: tuijian_2')}行" in problem
    assert (
        "状态 county_approved 下已有作用为 recommend 的操作 recommend，操作 tuijian_2 不能再担任同一作用"
        in problem
    )


def test_quota_belongs_to_the_recommend_role_whatever_its_id() -> None:
    ok = TEXT.replace(
        "{action: recommend, label: 推荐,", "{action: tuijian, role: recommend, label: 推荐,", 1
    )
    assert _problems(ok) == []
    bad = TEXT.replace(
        "to: county_approved, by: [county], notify",
        "to: county_approved, by: [county], guards: [quota], notify",
        1,
    )
    (problem,) = _problems(bad)
    assert (
        f"transitions[approve].guards: 第{line_of(bad, 'guards: [quota], notify: [applicant]}')}行："
        in problem
    )
    assert "guards: [quota] 只能用于作用为 recommend 的推荐操作（approve 的作用为 无）" in problem


def test_lapse_states_need_an_action_of_role_lapse_from_them() -> None:
    bad = TEXT.replace("{action: lapse, label: 逾期关闭,", "{action: close, label: 逾期关闭,", 1)
    with pytest.raises(CampaignFileError) as caught:
        load_campaign_text(bad, origin="f.yaml")
    message = str(caught.value)
    assert f"stages[application].lapse_states: 第{line_of(bad, 'lapse_states: [draft]')}行：" in message
    assert "作用为 lapse 的操作（by: [system]）的 from 状态之一（现有：无 lapse 操作）" in message
    fixed = bad.replace(
        "{action: close, label: 逾期关闭,", "{action: close, role: lapse, label: 逾期关闭,", 1
    )
    assert _problems(fixed) == []


def test_a_campaign_with_lists_needs_recommend_and_not_recommend() -> None:
    bad = TEXT.replace("{action: recommend, label: 推荐,", "{action: tuijian, label: 推荐,", 1)
    bad = bad.replace("guards: [recommendation_open, quota]", "guards: [recommendation_open]", 1)
    bad = bad.replace("{action: not_recommend, label:", "{action: bu_tuijian, label:", 1)
    first, second = _problems(bad)
    at = f"kinds.zjtx_application.transitions: 第{line_of(bad, '    transitions:')}行："
    assert at in first and at in second
    assert (
        "本批次有推荐名单（kinds.recommendation）、推荐名额（quotas），但「专精特新中小企业申报」没有作用为 recommend 的操作"
        in first
    )
    assert "role: recommend" in first
    assert "没有作用为 not_recommend 的操作" in second and "role: not_recommend" in second


def test_report_none_belongs_to_the_recommendation() -> None:
    bad = TEXT.replace("{action: withdraw, label: 撤回申报,", "{action: report_none, label: 撤回申报,", 1)
    (problem,) = _problems(bad)
    assert (
        f"transitions[report_none]: 第{line_of(bad, 'action: report_none, label: 撤回申报')}行：" in problem
    )
    assert "作用 report_none（报送无推荐）只用于推荐名单 recommendation" in problem


def test_correct_lapse_lives_in_corrections() -> None:
    bad = CLUSTER.replace(
        "      - {action: pass_preliminary,",
        "      - {action: correct_lapse, label: 纠正, from: [lapsed], to: draft, by: [platform]}\n"
        "      - {action: pass_preliminary,",
        1,
    )
    with pytest.raises(CampaignFileError) as caught:
        load_campaign_text(bad, origin="f.yaml")
    assert f"transitions[correct_lapse].action: 第{line_of(bad, 'label: 纠正, from')}行：" in str(
        caught.value
    )
    assert "应写在 corrections 中，而不是 transitions 中" in str(caught.value)


def test_the_cli_offers_and_takes_the_files_own_action_ids(tmp_path: Path) -> None:
    from tests.flows.test_cli import Shenbao

    sh = Shenbao(tmp_path / "home")
    sh("init", now="2026-07-10T10:00")
    sh("campaign", "load", str(RENAMED), now="2026-07-10T10:00")
    sample = CAMPAIGN_DIR / "available" / "2026-zjtx.sample.csv"
    sh("case", "import", str(sample), "--campaign", "2026-pinyin-actions", now="2026-07-10T10:00")
    shown = sh("case", "show", "ZQ26-00003", now="2026-07-10T10:00").stdout
    assert "可执行：提交申报(tijiao)、撤回申报(chehui)" in shown
    refused = sh(
        "case",
        "act",
        "ZQ26-00003",
        "submit",
        "--by",
        "张伟",
        "--admin",
        "测试",
        now="2026-07-10T10:00",
        code=3,
    )
    assert "没有操作 submit" in refused.stderr and "可执行：提交申报(tijiao)" in refused.stderr
    done = sh(
        "case", "act", "ZQ26-00003", "tijiao", "--by", "张伟", "--admin", "测试", now="2026-07-10T10:00"
    )
    assert "ZQ26-00003 宁波甬达密封件有限公司：已提交待县级初审" in done.stdout


def test_diff_says_when_an_action_changes_its_role() -> None:
    from calendars.campaign_diff import diff_campaigns

    text = TEXT.replace(
        "{action: approve, label: 县级初审通过,", "{action: approve, role: attach, label: 县级初审通过,", 1
    )
    changes = diff_campaigns(load_campaign_text(TEXT, origin="a"), load_campaign_text(text, origin="b"))
    assert changes == ["案件类型 zjtx_application：操作 approve 作用 无 → attach"]
