"""What validate says about the authoring mistakes the blind authors made on 2026-sfx.yaml
(tests/fixtures/blind/2026-sfx-mistakes.sh): each is refused at its line and key, or, where the
file may mean it, loads with a warning told apart from errors; a choice's label in a rule means
its value."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from calendars.campaign import CAMPAIGN_DIR, ByField, CampaignFileError, load_campaign_text
from models.campaign import Campaign
from models.campaign_check import check_campaign
from models.db import Database
from models.registry import load_campaign
from tests.flows.test_cli import Shenbao

SFX = CAMPAIGN_DIR / "available" / "2026-sfx.yaml"
TEXT = SFX.read_text(encoding="utf-8")


def mistake(old: str, new: str) -> str:
    assert TEXT.count(old) == 1, old
    return TEXT.replace(old, new)


def line_of(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


@pytest.mark.parametrize(
    ("old", "new", "key", "said"),
    [
        pytest.param(
            "{id: d-3wd, before: 3, unit: working_days}\n      - {id: d-1wd-city",
            "{id: d-3wd, before: 3, unit: workdays}\n      - {id: d-1wd-city",
            "stages[application].reminders[d-3wd].unit",
            "应为 days（自然日）、working_days（工作日）或 hours（小时）之一，实际为「workdays」",
            id="04-reminder-unit",
        ),
        pytest.param(
            "after: {stage: defence}",
            "after: {stage: defense}",
            "stages[publicity].deadline.after.stage",
            "相对的环节 defense 不存在",
            id="05-relative-missing-stage",
        ),
        pytest.param(
            "values: {create: 7, upgrade: 6}",
            "values: {create: 7, 提升: 6}",
            "eligibility[growth].min.values.提升",
            "「提升」不是字段 category（申报类别）的选项",
            id="by-table-synonym",
        ),
        pytest.param(
            "min: {field: industry_row.tax_min}",
            "min: {field: industry_row.tax_minimum}",
            "eligibility[tax_per_mu].min.field",
            "表 industries 没有列「tax_minimum」（有：id、name、tax_min）",
            id="13-table-column-typo",
        ),
        pytest.param(
            'limits: {"330100": 2, "330200": 2}',
            'limits: {杭州市: 2, "330200": 2}',
            "quotas[city].limits",
            '「杭州市」应写设区市代码 "330100"（杭州市）',
            id="16-quota-limits-city-name",
        ),
        pytest.param(
            'limits: {"330100": 2, "330200": 2}',
            'limits: {"330100": 2, "330299": 2}',
            "quotas[city].limits",
            "「330299」不是设区市代码",
            id="16-quota-limits-unknown-code",
        ),
        pytest.param(
            'limits: {"330100": 2, "330200": 2}',
            'limits: {"330100": 2, "330106": 2}',
            "quotas[city].limits",
            "是西湖区（县（市、区））的代码或名称，本名额按设区市计",
            id="16-quota-limits-county-code",
        ),
        pytest.param(
            "when: {field: category, equals: upgrade}",
            "when: {field: category, equals: 提升}",
            "eligibility[value_added].when.equals",
            "「提升」是导入时认得的其他写法（synonyms），条件中请写 upgrade 或「提升类」",
            id="17-choice-in-unknown",
        ),
        pytest.param(
            "program_words: [示范县创建, 示范县, 高质量发展示范县]",
            "program_words: [集群遴选, 示范县]",
            "program_words[集群遴选]",
            "与已有工作类别「集群遴选」（cluster）的用语",
            id="22-program-words-collide",
        ),
        pytest.param(
            "program_words: [示范县创建, 示范县, 高质量发展示范县]",
            "program_words: [示范县, 全部示范县]",
            "program_words[全部示范县]",
            "会被读作「全部」工作类别",
            id="22-program-word-means-all",
        ),
        pytest.param(
            "prefix: SF",
            "prefix: RC",
            "kinds.sfx_application.prefix",
            "案件编号前缀 RC 已由 kinds.recommendation 使用",
            id="24-dup-prefix",
        ),
        pytest.param(
            "prefix: SF",
            "prefix: RS",
            "kinds.sfx_application.prefix",
            "是引擎内置的工作人员信息汇总表（roster）的前缀",
            id="24-roster-prefix",
        ),
        pytest.param(
            "prefix: SF",
            "prefix: sf",
            "kinds.sfx_application.prefix",
            "应为 2–4 个大写英文字母",
            id="23-prefix-lower",
        ),
    ],
)
def test_it_refuses_a_mistake_at_its_line_and_key(old: str, new: str, key: str, said: str) -> None:
    text = mistake(old, new)
    checked = check_campaign(text, origin="f.yaml")
    assert len(checked.problems) == 1, checked.problems
    assert f"{key}: 第{line_of(text, new.splitlines()[0])}行：" in checked.problems[0]
    assert said in checked.problems[0]


def test_a_duplicate_stage_id_is_named_at_the_duplicate_not_at_the_first_line() -> None:
    text = mistake("  - id: results\n", "  - id: publicity\n")
    problems = check_campaign(text, origin="f.yaml").problems
    second = [i for i, line in enumerate(text.splitlines(), 1) if line == "  - id: publicity"][1]
    assert (
        len(problems) == 1 and f"stages[publicity].id: 第{second}行：环节编号重复：publicity" in problems[0]
    )


def test_a_duplicate_field_key_is_named_at_the_duplicate() -> None:
    text = mistake(
        "    - {key: value_added, label: 2025年规上工业增加值（亿元）",
        "    - {key: growth, label: 2025年规上工业增加值（亿元）",
    )
    problems = check_campaign(text, origin="f.yaml").problems
    line = line_of(text, "{key: growth, label: 2025年规上工业增加值（亿元）")
    assert len(problems) == 1 and f"form.fields[growth].key: 第{line}行：字段编号重复：growth" in problems[0]


def test_a_key_written_twice_is_refused_not_silently_overwritten() -> None:
    text = mistake(
        '    deadline: "2026-09-18 17:00"\n', '    deadline: "2026-09-18 17:00"\n    deadline: 2026-09-25\n'
    )
    problems = check_campaign(text, origin="f.yaml").problems
    first, second = line_of(text, 'deadline: "2026-09-18 17:00"'), line_of(text, "deadline: 2026-09-25")
    assert len(problems) == 1
    assert f"stages[application].deadline: 第{second}行：键 deadline 在第{first}行已写过" in problems[0]


def test_a_yaml_syntax_error_is_said_in_chinese_with_its_line_and_column() -> None:
    text = mistake(
        "    pending_states: [publicised, objected]\n    deadline: {working_days: 5",
        "    pending_states: [publicised, objected]\n   deadline: {working_days: 5",
    )
    with pytest.raises(CampaignFileError) as caught:
        load_campaign_text(text, origin="f.yaml")
    said = str(caught.value)
    line = line_of(text, "   deadline: {working_days: 5")
    assert f"f.yaml: 第{line}行第4列「deadline: {{working_days: 5" in said
    assert "YAML 格式错误：缩进不一致" in said and "while parsing" not in said


def test_a_choice_label_in_a_rule_means_the_choice_value() -> None:
    """FORMAT.md's own example keys a by-table by labels (先进制造类): they are mapped to the
    values cases store, so the rule applies to every case of the category."""
    text = mistake("values: {create: 7, upgrade: 6}", "values: {创建类: 7, 提升类: 6}")
    text = text.replace("when: {field: category, equals: upgrade}", "when: {field: category, equals: 提升类}")
    checked = check_campaign(text, origin="f.yaml")
    assert checked.problems == [] and checked.warnings == [] and checked.spec is not None
    rules = {r.id: r for r in checked.spec.eligibility}
    growth = rules["growth"].min
    assert isinstance(growth, ByField) and growth.values == {"create": Decimal(7), "upgrade": Decimal(6)}
    when = rules["value_added"].when
    assert when is not None and not isinstance(when, tuple) and when.equals == "upgrade"


def test_a_by_table_missing_a_choice_and_an_unreachable_state_are_warnings() -> None:
    text = mistake("values: {create: 7, upgrade: 6}", "values: {create: 7}")
    text = text.replace(
        "      not_designated: 未予命名\n", "      not_designated: 未予命名\n      archived: 已归档\n", 1
    )
    checked = check_campaign(text, origin="f.yaml")
    assert checked.problems == [] and len(checked.warnings) == 2, checked.warnings
    by_table, state = checked.warnings
    assert f"eligibility[growth].min.values: 第{line_of(text, 'values: {create: 7}')}行" in by_table
    assert "没有列出 upgrade（提升类）：这些申报不检查规则 growth" in by_table
    assert f"kinds.sfx_application.states.archived: 第{line_of(text, 'archived: 已归档')}行" in state
    assert "没有案件能进入这个状态" in state


def test_validate_prints_warnings_apart_and_exits_0_for_warnings_only(tmp_path: Path) -> None:
    path = tmp_path / "sfx.yaml"
    path.write_text(mistake("values: {create: 7, upgrade: 6}", "values: {create: 7}"), encoding="utf-8")
    result = Shenbao(tmp_path / "home")("campaign", "validate", str(path), now=None)
    assert "格式正确" in result.stdout and "提示" not in result.stdout
    assert (
        "提示：" in result.stderr
        and "没有列出 upgrade（提升类）" in result.stderr
        and "错误" not in result.stderr
    )


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_load_refuses_what_validate_refuses_and_changes_nothing(seeded: Database, make_ctx: Any) -> None:
    """A kind numbered like the engine's rosters (RS) validated before and loaded, then an import
    crashed on the numbers; load runs validate's checks now."""
    text = mistake("prefix: SF", "prefix: RS")
    with seeded.write() as session, pytest.raises(CampaignFileError) as caught:
        load_campaign(session, make_ctx(), text, origin="sfx.yaml")
    assert "kinds.sfx_application.prefix" in str(caught.value) and "工作人员信息汇总表（roster）" in str(
        caught.value
    )
    with seeded.read() as session:
        assert session.get(Campaign, "2026-sfx") is None


def test_a_deadline_on_a_public_holiday_is_a_warning() -> None:
    text = mistake(
        "deadline: 2026-09-30\n    deadline_text: 各设区市经信局于2026年9月30日",
        "deadline: 2026-10-02\n    deadline_text: 各设区市经信局于2026年9月30日",
    )
    checked = check_campaign(text, origin="f.yaml")
    assert checked.problems == [] and len(checked.warnings) == 1
    line = line_of(text, "deadline: 2026-10-02")
    assert (
        f"stages[city_recommendation].deadline: 第{line}行：「设区市推荐并报送推荐函（盖章）」截止时间 2026-10-02（周五）24:00 是国庆节假期"
        in checked.warnings[0]
    )


@pytest.mark.parametrize(
    ("old", "new", "said"),
    [
        pytest.param(
            "field: digital_share, min: 8",
            "field: digital_share, min: 八",
            ["eligibility[digital_share].min: 第{line}行：应为数字；或映射（键: 值），实际为「八」"],
            id="a-word-for-a-threshold",
        ),
        pytest.param(
            "min: {by: category, values: {create: 7, upgrade: 6}}",
            "min: {by: category, valuse: {create: 7, upgrade: 6}}",
            [
                "eligibility[growth].min.values: 第{line}行：缺少必填项",
                "eligibility[growth].min.valuse: 第{line}行：未知的键",
            ],
            id="a-by-table-misspelt",
        ),
    ],
)
def test_a_key_of_several_forms_is_told_once_in_the_form_it_is_closest_to(
    old: str, new: str, said: list[str]
) -> None:
    """``min`` is a number, ``{by: …}`` or ``{field: …}``: pydantic reports each form; the author
    gets one problem per mistake, never ``min.decimal`` / ``min.ByField``."""
    text = mistake(old, new)
    with pytest.raises(CampaignFileError) as caught:
        load_campaign_text(text, origin="f.yaml")
    message = str(caught.value)
    assert (
        f"批次文件有 {len(said)} 处错误" in message and "decimal" not in message and "ByField" not in message
    )
    for part in said:
        assert part.format(line=line_of(text, new)) in message
