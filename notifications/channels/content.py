"""What a digest says on each channel: DingTalk markdown / ActionCard, and a short SMS.

The same ``sections`` as the email (notifications/compose.py computes them, ``grouped`` merges
like notices), so every channel says the same thing: each section's headline is its email
subject line (the templates' ``*.subject.txt``: one wording, one place), followed on DingTalk by
the lines a coordinator acts on (stage, deadline in Asia/Shanghai with weekday, what is still
waiting, who is late). SMS carries headlines only, with a link to the case or board.

Names, titles and reasons are typed by people: on DingTalk they are data, not markup. The
platform's markdown subset documents no backslash escape, so its control characters are
replaced by their full-width forms (＊ ＿ ［ ］ …), which read naturally in Chinese and can
form neither emphasis nor a link; line breaks inside a name become spaces.

Limits: DingTalk shows long markdown cut short and refuses very large bodies; a digest stays
within ``MARKDOWN_LIMIT`` UTF-8 bytes, the sections that do not fit counted in a closing line.
An SMS stays within the gateway's segment cap (sign name included), dropping whole sections
from the end first ("等N项") and shortening a single headline only when nothing else is left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from notifications.channels.sms import segment_count
from notifications.compose import grouped
from notifications.render import Renderer

MARKDOWN_LIMIT = 4000  # UTF-8 bytes of a DingTalk markdown body
ITEMS_SHOWN = 5  # cases / late units listed per section on DingTalk

_MD_CONTROL = str.maketrans(
    {
        "*": "＊",
        "_": "＿",
        "`": "｀",
        "[": "［",
        "]": "］",
        "(": "（",
        ")": "）",
        "#": "＃",
        ">": "＞",
        "<": "＜",
        "|": "｜",
        "~": "～",
        "!": "！",
        "\\": "＼",
        "\r": " ",
        "\n": " ",
        "\t": " ",
    }
)


def md(text: Any) -> str:
    """A person's text made safe to place in DingTalk markdown."""
    out = str(text if text is not None else "").translate(_MD_CONTROL)
    # "1. " or "- " at the start of a line would make a list; a leading "+"/"-"/"=" a rule.
    if out and out[0] in "-+=":
        out = "\u200b" + out
    return out


@dataclass(frozen=True)
class ChannelText:
    title: str  # DingTalk's notification title (the chat list shows it)
    text: str
    link: str | None


def link_for(dashboard_url: str | None, sections: Sequence[dict[str, Any]]) -> str | None:
    """The case when the digest is about one case, else the board (the dashboard's front page)."""
    if not dashboard_url:
        return None
    base = dashboard_url.rstrip("/")
    refs: set[str] = set()
    for s in sections:
        if s.get("ref"):
            refs.add(str(s["ref"]))
        refs.update(str(r) for r in s.get("shown") or ())
        refs.update(str(i["ref"]) for i in s.get("items") or () if isinstance(i, dict) and i.get("ref"))
    if len(refs) == 1:
        return f"{base}/cases/{quote(refs.pop(), safe='')}"
    return base + "/"


def headline(renderer: Renderer, section: dict[str, Any]) -> str:
    """The section's email subject line, in one line."""
    text = renderer.env.get_template(f"{section['kind']}.subject.txt").render({"s": section})
    return " ".join(text.split())


def _section_lines(s: dict[str, Any]) -> list[str]:
    kind = s["kind"]
    lines: list[str] = []
    if s.get("campaign_name"):
        lines.append(f"- 批次：{md(s['campaign_name'])}")
    if kind in ("reminder", "overdue", "supervisor_reminder", "escalation", "stuck"):
        lines.append(f"- 环节：{md(s.get('stage_name'))}")
        deadline = f"- 截止：{md(s.get('deadline_text'))}"
        if s.get("countdown_text") and not s.get("overdue"):
            deadline += f"（{md(s['countdown_text'])}）"
        elif s.get("overdue"):
            deadline += "（已逾期）"
        lines.append(deadline)
    if kind in ("reminder", "overdue"):
        lines.append(f"- 尚未办理：{s.get('total', 0)} 项")
        for item in (s.get("items") or [])[:ITEMS_SHOWN]:
            lines.append(f"  - {md(item.get('ref'))} {md(item.get('title'))}（{md(item.get('state'))}）")
        more = int(s.get("total") or 0) - min(ITEMS_SHOWN, len(s.get("items") or []))
        if more > 0:
            lines.append(f"  - …… 等另外 {more} 项")
        if s.get("forwarded"):
            lines.append(f"- 请代为转告：{'、'.join(md(o) for o in s['forwarded'])}")
    elif kind in ("supervisor_reminder", "escalation", "stuck"):
        late = s.get("late") or []
        lines.append(f"- 未办理的单位：{len(late)} 个")
        for unit in late[:ITEMS_SHOWN]:
            lines.append(f"  - {md(unit.get('org'))}：{unit.get('count', 0)} 项")
        if len(late) > ITEMS_SHOWN:
            lines.append(f"  - …… 等另外 {len(late) - ITEMS_SHOWN} 个单位")
    elif kind == "notice":
        lines.append(f"- 事项：{md(s.get('ref'))} {md(s.get('title'))}")
        lines.append(f"- 状态：{md(s.get('from'))} → {md(s.get('to'))}")
        if s.get("defence_at"):
            lines.append(f"- 答辩时间：{md(s['defence_at'])}")
        if s.get("reason"):
            lines.append(f"- 说明：{md(s['reason'])}")
    elif kind == "notice_group":
        lines.append(f"- {s.get('total', 0)} 项申报：{md(s.get('label'))}")
        for item in (s.get("items") or [])[:ITEMS_SHOWN]:
            lines.append(f"  - {md(item.get('ref'))} {md(item.get('title'))}")
        if int(s.get("total") or 0) > ITEMS_SHOWN:
            lines.append(f"  - …… 等另外 {int(s['total']) - ITEMS_SHOWN} 项")
    elif kind == "deadline_notice":
        lines.append(f"- 环节：{md(s.get('stage_name'))}")
        lines.append(f"- 截止时间：{md(s.get('from_text'))} → {md(s.get('to_text'))}")
        if s.get("reason"):
            lines.append(f"- 原因：{md(s['reason'])}")
    return lines


def dingtalk_markdown(
    renderer: Renderer,
    sections: Sequence[dict[str, Any]],
    *,
    contact_name: str,
    dashboard_url: str | None = None,
    limit: int = MARKDOWN_LIMIT,
) -> ChannelText:
    """One digest as DingTalk markdown (an ActionCard when there is a link to open)."""
    merged = grouped(list(sections))
    heads = [headline(renderer, s) for s in merged]
    title = heads[0] if len(heads) == 1 else f"申报提醒：{len(heads)}项事宜需要您关注"
    intro = f"{md(contact_name)}同志，您好："
    closing = "时间均为北京时间。"
    blocks: list[str] = []
    used = len(intro.encode()) + len(closing.encode()) + 200  # room for the "等N项" line
    for number, (section, head) in enumerate(zip(merged, heads, strict=True), start=1):
        prefix = f"{number}. " if len(merged) > 1 else ""
        block = "\n".join([f"#### {prefix}{md(head)}", *_section_lines(section)])
        size = len(block.encode()) + 2
        if used + size > limit and blocks:
            rest = len(merged) - len(blocks)
            blocks.append(f"…… 另有 {rest} 项事宜未列出，请打开看板查看。")
            break
        if used + size > limit:  # one section alone is too long: its headline and first lines
            block = block.encode()[: max(0, limit - used)].decode("utf-8", "ignore").rsplit("\n", 1)[0]
        blocks.append(block)
        used += size
    text = "\n\n".join([intro, *blocks, closing])
    return ChannelText(title=title[:64], text=text, link=link_for(dashboard_url, merged))


def sms_text(
    renderer: Renderer,
    sections: Sequence[dict[str, Any]],
    *,
    link: str | None,
    sign_name: str = "申报提醒",
    max_segments: int = 3,
) -> str:
    """A short Chinese SMS: the headlines, then the link; within ``max_segments`` parts."""
    merged = grouped(list(sections))
    heads = [headline(renderer, s) for s in merged]
    tail = f" 详情：{link}" if link else ""

    def compose(shown: list[str], hidden: int) -> str:
        if len(heads) == 1:
            body = shown[0]
        else:
            body = f"您有{len(heads)}项申报事宜：" + "；".join(f"{i}.{h}" for i, h in enumerate(shown, 1))
            if hidden:
                body += f"；等{hidden}项"
        return body + tail

    def fits(text: str) -> bool:
        return segment_count(f"【{sign_name}】{text}") <= max_segments

    for count in range(len(heads), 0, -1):
        text = compose(heads[:count], len(heads) - count)
        if fits(text):
            return text
    # Even the first headline alone is too long: shorten it (the link stays whole).
    first = heads[0]
    while first and not fits(compose([first + "…"], len(heads) - 1)):
        first = first[:-1]
    return compose([first + "…"], len(heads) - 1)
