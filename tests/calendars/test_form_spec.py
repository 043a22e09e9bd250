"""The import form as a campaign file declares it: choices with their labels, lists taken from
elsewhere in the file, fields that depend on one another; and the errors an author gets."""

from __future__ import annotations

import pytest

from calendars.campaign import CAMPAIGN_DIR, CampaignFileError, load_campaign_file, load_campaign_text

CLUSTER_FILE = CAMPAIGN_DIR / "2026-cluster-selection.yaml"
JINGPIN_FILE = CAMPAIGN_DIR / "2026-jingpin.yaml"


def test_a_choice_is_stored_as_its_value_and_shown_by_its_label() -> None:
    cluster, jingpin = load_campaign_file(CLUSTER_FILE), load_campaign_file(JINGPIN_FILE)
    assert [cluster.column_label("zone_type", z) for z in ("core", "collaborative", "rising_star")] == [
        "核心区",
        "协同区",
        "“新星”产业群",
    ]
    # 附2-3's categories are tables.categories of the same file, names and all.
    assert jingpin.column_label("category", "consumer") == "特色（消费品）类"
    assert jingpin.column_label("category", None) == "" and cluster.column_label("category", "x") == "x"


def test_a_choice_list_comes_from_the_file_once() -> None:
    spec = load_campaign_file(CLUSTER_FILE)
    assert spec.form is not None
    x = spec.form.field("x_system")
    assert x is not None and x.choices[0] == "未来产业先导区" and x.choices[-1] == "无"
    cluster = spec.form.field("cluster")
    assert cluster is not None and cluster.choices == tuple(row["cluster"] for row in spec.tables["clusters"])
    inferred = cluster.infer_from
    assert inferred is not None and inferred.values["模型数据服务"] == "人工智能"


def _with_form_field(line: str) -> str:
    text = JINGPIN_FILE.read_text(encoding="utf-8")
    anchor = "    - {key: launch_date,"
    assert anchor in text
    return text.replace(anchor, f"{line}\n{anchor}", 1)


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (
            "    - {key: grade, label: 等级, type: choice, choices_from: {table: categories, value: id, label: name}, synonyms: {甲: 甲级}}",
            "synonyms 中「甲」对应的「甲级」不在 choices 中",
        ),
        (
            "    - {key: grade, label: 等级, when: {field: launch_date, in: [x]}}",
            "when 引用的「launch_date」应为它之前的字段",
        ),
        ("    - {key: grade, label: 等级, column_of: nothing}", "column_of「nothing」应为有自己列的字段"),
        ("    - {key: grade, label: 等级, case_column: track}", "多个字段写入同一案件列：track"),
    ],
    ids=["synonym-outside-list", "when-names-a-later-field", "column-of-unknown", "two-fields-one-column"],
)
def test_it_names_what_is_wrong_with_a_form_field(line: str, words: str) -> None:
    with pytest.raises(CampaignFileError) as info:
        load_campaign_text(_with_form_field(line), origin="x.yaml")
    assert words in str(info.value)
