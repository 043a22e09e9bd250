"""What changed between two versions of a campaign file, in words a coordinator reads.

Stages (their dates above all), case kinds and their machines, the eligibility rules, the
import form, quotas and the platform mapping. Pure: two parsed files in, lines of Chinese out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from calendars.campaign import CampaignSpec, KindSpec, Stage
from calendars.timeutil import format_deadline

_STAGE_FIELDS = {
    "name": "名称",
    "actor": "办理层级",
    "subject": "案件类型",
    "pending_states": "待办状态",
    "window_actions": "截止后关闭的操作",
    "lapse_states": "截止时自动逾期的状态",
    "instructions": "办理说明",
    "deadline_text": "通知原文",
    "source": "出处",
}
_SECTIONS = {
    "form": "申报表（form）",
    "tables": "通知附表（tables）",
    "derive": "推算的值（derive）",
    "eligibility": "资格条件（eligibility）",
    "quotas": "推荐名额（quotas）",
    "platform": "平台导出（platform）",
    "exports": "上报的表格（exports）",
    "province_contacts": "省级联系人",
}


def _when(value: datetime | None) -> str:
    return format_deadline(value) if value is not None else "另行通知"


def _deadline(stage: Stage) -> str:
    # The rule's one wording (RelativeDeadline.describe: the action by its label, the time of day).
    return stage.relative.describe() if stage.relative is not None else _when(stage.deadline)


def _deadline_rule(stage: Stage) -> Any:
    # What the file says, not how it reads: a renamed action label is not a moved deadline.
    return stage.relative.model_dump() if stage.relative is not None else stage.deadline


def _list(values: Any) -> str:
    return "、".join(map(str, values)) or "（无）"


def _stage_changes(old: Stage, new: Stage) -> list[str]:
    out: list[str] = []
    if _deadline_rule(old) != _deadline_rule(new):
        out.append(f"截止时间 {_deadline(old)} → {_deadline(new)}")
    for key, label in (("opens", "开放时间"), ("closes", "停止督办时间")):
        a, b = getattr(old, key), getattr(new, key)
        if a != b:
            out.append(f"{label} {_when(a) if a else '（无）'} → {_when(b) if b else '（无）'}")
    for key, label in _STAGE_FIELDS.items():
        a, b = getattr(old, key), getattr(new, key)
        if a != b:
            shown = (_list(a), _list(b)) if isinstance(a, tuple) else (a or "（无）", b or "（无）")
            out.append(f"{label} {shown[0]} → {shown[1]}")
    if old.reminders != new.reminders:

        def steps(s: Stage) -> str:
            return _list(
                f"{r.id}（提前{r.before}{ {'days': '天', 'working_days': '个工作日', 'hours': '小时'}[r.unit] }）"
                for r in s.reminders
            )

        out.append(f"提醒 {steps(old)} → {steps(new)}")
    if old.escalation != new.escalation:
        out.append("督办规则已修改")
    return out


def _kind_changes(kind: str, old: KindSpec, new: KindSpec) -> list[str]:
    out: list[str] = []
    for state in old.states:
        if state not in new.states:
            out.append(f"案件类型 {kind}：删除状态 {state}（{old.states[state]}）")
    for state, label in new.states.items():
        if state not in old.states:
            out.append(f"案件类型 {kind}：新增状态 {state}（{label}）")
        elif old.states[state] != label:
            out.append(f"案件类型 {kind}：状态 {state} 名称 {old.states[state]} → {label}")
    if old.initial != new.initial:
        out.append(f"案件类型 {kind}：初始状态 {old.initial} → {new.initial}")
    if set(old.final) != set(new.final):
        out.append(f"案件类型 {kind}：终结状态 {_list(old.final)} → {_list(new.final)}")
    before = {(t.action, t.sources): t for t in old.transitions}
    after = {(t.action, t.sources): t for t in new.transitions}
    old_actions = {t.action: t for t in old.transitions}
    new_actions = {t.action: t for t in new.transitions}
    for action, t in new_actions.items():
        if action not in old_actions:
            role = f"，作用 {t.engine_role}" if t.engine_role else ""
            out.append(
                f"案件类型 {kind}：新增操作 {action}（{t.label}），{_list(t.sources)} → {t.to or '不变'}，"
                f"由 {_list(t.by)} 办理{role}"
            )
    for action, t in old_actions.items():
        if action not in new_actions:
            out.append(f"案件类型 {kind}：删除操作 {action}（{t.label}）")
    for key, t in after.items():
        was = before.get(key)
        if was is None or was == t or t.action not in old_actions:
            if was is None and t.action in old_actions:
                out.append(f"案件类型 {kind}：操作 {t.action} 适用状态改为 {_list(t.sources)}")
            continue
        parts = []
        for attr, label in (
            ("to", "目标状态"),
            ("by", "办理方"),
            ("guards", "检查"),
            ("reason", "须填理由"),
            ("notify", "通知"),
            ("label", "名称"),
            ("engine_role", "作用"),
        ):
            a, b = getattr(was, attr), getattr(t, attr)
            if attr == "engine_role":  # what the engine does at it (FORMAT.md §3)
                a, b = a or "无", b or "无"
            if a != b:
                parts.append(
                    f"{label} {_list(a) if isinstance(a, tuple) else a} → {_list(b) if isinstance(b, tuple) else b}"
                )
        if parts:
            out.append(f"案件类型 {kind}：操作 {t.action} " + "；".join(parts))
    return out


def _ids(items: list[Any]) -> list[Any]:
    """What names each item of a list (a rule's id, a table row's cluster, a derive's key); a
    second rule of the same id (核心区 and 新星 both say subtrack_other) is its id with （2）."""
    out: list[Any] = []
    for x in items:
        name = (
            (x.get("id") or x.get("cluster") or x.get("key") or x.get("highland"))
            if isinstance(x, dict)
            else None
        )
        if name is not None and name in out:
            n = 2
            while f"{name}（{n}）" in out:
                n += 1
            name = f"{name}（{n}）"
        out.append(name)
    return out


def _deep(path: str, a: Any, b: Any, out: list[str]) -> None:
    if a == b:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            if key not in b:
                out.append(f"{path}.{key}：已删除（原为 {a[key]}）")
            elif key not in a:
                out.append(f"{path}.{key}：新增 {b[key]}")
            else:
                _deep(f"{path}.{key}", a[key], b[key], out)
        return
    if isinstance(a, list) and isinstance(b, list):
        ids_a, ids_b = _ids(a), _ids(b)
        if all(ids_a) and all(ids_b) and len(set(ids_a)) == len(ids_a) and len(set(ids_b)) == len(ids_b):
            for i, key in enumerate(ids_a):
                if key not in ids_b:
                    out.append(f"{path}[{key}]：已删除")
                else:
                    _deep(f"{path}[{key}]", a[i], b[ids_b.index(key)], out)
            for key in ids_b:
                if key not in ids_a:
                    out.append(f"{path}[{key}]：新增")
            return
        if all(not isinstance(x, (dict, list)) for x in (*a, *b)):
            gone = [x for x in a if x not in b]
            new = [x for x in b if x not in a]
            out.append(
                f"{path}："
                + "；".join(
                    p
                    for p in (f"删除 {_list(gone)}" if gone else "", f"新增 {_list(new)}" if new else "")
                    if p
                )
                or f"{path}：顺序调整"
            )
            return
    out.append(f"{path}：{a} → {b}")


def diff_campaigns(old: CampaignSpec, new: CampaignSpec) -> list[str]:
    """Every difference that matters to the people running the campaign, one line each."""
    out: list[str] = []
    for key, label in (
        ("id", "批次编号"),
        ("name", "名称"),
        ("notice", "文号"),
        ("issued", "发文日期"),
        ("program", "工作类别"),
    ):
        a, b = getattr(old, key), getattr(new, key)
        if a != b:
            out.append(f"{label}：{a} → {b}")
    old_stages = {s.id: s for s in old.stages}
    new_stages = {s.id: s for s in new.stages}
    for sid, stage in new_stages.items():
        if sid not in old_stages:
            out.append(f"新增环节 {sid}（{stage.name}），截止 {_deadline(stage)}")
    for sid, stage in old_stages.items():
        if sid not in new_stages:
            out.append(f"删除环节 {sid}（{stage.name}）")
        else:
            out += [
                f"环节 {sid}（{new_stages[sid].name}）：{c}" for c in _stage_changes(stage, new_stages[sid])
            ]
    for kind, spec in new.kinds.items():
        if kind not in old.kinds:
            out.append(f"新增案件类型 {kind}（{spec.label}），状态 {_list(spec.states)}")
        else:
            out += _kind_changes(kind, old.kinds[kind], spec)
    for kind, spec in old.kinds.items():
        if kind not in new.kinds:
            out.append(f"删除案件类型 {kind}（{spec.label}）")
    a, b = old.model_dump(mode="json", by_alias=True), new.model_dump(mode="json", by_alias=True)
    for key, label in _SECTIONS.items():
        _deep(label, a.get(key), b.get(key), out)
    return out
