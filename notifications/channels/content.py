"""What one channel message says: the sections of a digest (notifications/compose.py) as DingTalk
markdown for 浙政钉 and robots, or one short Chinese SMS text, with the deadline in Asia/Shanghai
and a link to the board. Kept short on purpose: the email carries the full lists.
"""

from __future__ import annotations

from typing import Any

_KIND_WORDS = {
    "reminder": "提醒",
    "overdue": "逾期",
    "supervisor_reminder": "催办",
    "escalation": "督办",
    "stuck": "督办",
    "notice": "通知",
    "notice_group": "通知",
    "deadline_notice": "截止时间变更",
}


def _line(section: dict[str, Any]) -> str:
    word = _KIND_WORDS.get(section.get("kind", ""), "通知")
    what = section.get("stage_name") or section.get("label") or section.get("title") or ""
    campaign = section.get("campaign_name") or ""
    head = f"【{word}】{campaign}{'·' if campaign and what else ''}{what}"
    if section.get("countdown_text"):
        head += f"：{section['countdown_text']}（截止 {section.get('deadline_text', '')}）"
    elif section.get("deadline_text") and section.get("kind") != "notice":
        head += f"：截止 {section['deadline_text']}"
    if section.get("total"):
        head += f"，待办 {section['total']} 项"
    if section.get("late"):
        head += "，未办：" + "、".join(str(x.get("org", "")) for x in section["late"][:5])
    if section.get("ref"):
        head += f"（{section['ref']}）"
    return head


def render(channel: str, to_name: str, sections: list[dict[str, Any]], link: str | None) -> tuple[str, str]:
    """(title, text) for ``channel``: markdown for zzd/robot, plain text for SMS."""
    urgent = any(s.get("urgent") for s in sections)
    title = ("【紧急】" if urgent else "") + (
        _line(sections[0])[:60] if len(sections) == 1 else f"申报提醒（{len(sections)} 项）"
    )
    lines = [_line(s) for s in sections]
    if channel == "sms":
        text = f"{to_name}您好：" + "；".join(lines)
        if link:
            text += f" 详见 {link}"
        return title, text
    body = "\n".join(f"- {line}" for line in lines)
    text = f"### {title}\n{to_name}：\n{body}"
    if link:
        text += f"\n\n[查看工作台]({link})"
    return title, text
