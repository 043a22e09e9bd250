"""Many identical state changes for one person read as one list, not as many boxes."""

from __future__ import annotations

from types import SimpleNamespace

from notifications.compose import GROUP_NOTICES_FROM, grouped
from notifications.render import Renderer


def _lapse(ref: str) -> dict[str, object]:
    return {
        "kind": "notice",
        "urgent": False,
        "campaign_name": "第四批遴选",
        "action": "lapse",
        "label": "逾期关闭",
        "from": "填报中",
        "to": "逾期未提交",
        "reason": "已于 2026-06-25（周四）24:00 截止",
        "actor": "系统（自动）",
        "at_text": "2026-06-26（周五）00:00",
        "ref": ref,
        "title": f"{ref} 单位",
        "defence_at": None,
    }


def test_it_merges_identical_notices_into_one_section_in_place() -> None:
    other = _lapse("CL26-00009") | {"action": "return", "label": "退回修改", "to": "退回修改"}
    sections = [other, *(_lapse(f"CL26-0000{i}") for i in range(1, 1 + GROUP_NOTICES_FROM))]
    out = grouped(sections)
    assert [s["kind"] for s in out] == ["notice", "notice_group"]
    assert out[1]["total"] == GROUP_NOTICES_FROM
    assert [i["ref"] for i in out[1]["items"]] == [f"CL26-0000{i}" for i in range(1, 1 + GROUP_NOTICES_FROM)]


def test_it_keeps_a_few_notices_apart() -> None:
    sections = [_lapse("CL26-00001"), _lapse("CL26-00002")]
    assert grouped(sections) == sections


def test_it_renders_a_group_with_every_case_listed() -> None:
    section = grouped([_lapse(f"CL26-0000{i}") for i in range(1, 5)])[0]
    context = {
        "contact": SimpleNamespace(name="张伟"),
        "org_name": "杭州市",
        "sections": [section],
        "now_text": "2026-06-26（周五）09:00",
        "dashboard_url": None,
        "from_name": "申报提醒",
    }
    subject, text, html = Renderer().render(context)
    assert subject == "【通知】4项申报：逾期关闭（逾期未提交）"
    assert all(f"CL26-0000{i}" in text and f"CL26-0000{i}" in html for i in range(1, 5))
