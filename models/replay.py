"""Replaying the audit: what every case's state and every stage's deadline must be, from the events alone.

The chain proves that no event was changed; the replay proves that no table was changed behind
the events' back (``UPDATE "case" SET state = 'selected'`` writes no event). It rides on the
chain check's one ordered pass over the events, keeping a small trace per case and per stage,
then reads the cases and deadlines once and compares. An edit that a later, legitimate action
would hide (the table agrees with the newest event again) is still caught: every event's
``from_value`` must be the state the events before it left.

What counts: ``create`` (the initial state), ``state_change`` and ``update`` (each one version
more), ``deadline_change`` (due_at and version), ``campaign_load`` (the spec's digest and the
deadlines a load creates at version 1). Refusals, overrides, notices, imports and reconcile
records change no state and are passed over.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from calendars.campaign import spec_digest
from calendars.timeutil import format_deadline, format_local
from models.audit import AuditLog, Problem, RecordedEvent, VerifyReport
from models.campaign import Campaign, StageDeadline
from models.case import Case
from models.machines import MACHINES

if TYPE_CHECKING:
    from models.checkpoint import Keyring

STATE_EVENTS = frozenset({"create", "state_change", "update"})


@dataclass(slots=True, frozen=True)
class _Last:
    """The last event that touched a thing, as a person reads it in a problem (four fields, not
    the whole row: a trace is kept for each of 100,000 cases)."""

    seq: int
    at: datetime
    actor: str
    action: str

    @classmethod
    def of(cls, ev: RecordedEvent) -> _Last:
        return cls(ev.seq, ev.at, ev.actor, ev.action)

    def describe(self) -> str:
        return f"第 {self.seq} 条事件（{self.action}，{format_local(self.at)}，{self.actor}）"


@dataclass(slots=True)
class _CaseTrace:
    ref: str
    state: str
    # None when the case's creation is not in the audit: its version cannot be known.
    version: int | None
    last: _Last
    # The creation's details, which name the kind; parsed only to word a problem.
    created: str = "{}"

    @property
    def kind(self) -> str:
        return str(json.loads(self.created).get("kind", ""))


@dataclass(slots=True)
class _StageTrace:
    due_at: datetime | None
    version: int
    last: _Last


def _state(kind: str, state: str | None) -> str:
    machine = MACHINES.get(kind)
    label = machine.state_label(state) if machine and state else state
    return f"「{label}」（{state}）" if label != state else f"「{state}」"


def _due(value: datetime | None) -> str:
    return format_deadline(value) if value is not None else "另行通知"


def _instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@dataclass
class Replay:
    """Feed it every event in seq order, then ``compare`` with the tables."""

    cases: dict[int, _CaseTrace] = field(default_factory=dict)
    stages: dict[tuple[str, str], _StageTrace] = field(default_factory=dict)
    campaigns: dict[str, tuple[str | None, _Last]] = field(default_factory=dict)
    # Loaded before loads recorded their deadlines: stages no event sets cannot be checked.
    unrecorded_campaigns: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)

    def feed(self, ev: RecordedEvent) -> None:
        if ev.action in STATE_EVENTS and ev.case_id is not None:
            self._case_event(ev, ev.case_id)
        elif ev.action == "deadline_change" and ev.campaign_id:
            self._deadline_event(ev, ev.campaign_id)
        elif ev.action == "campaign_load" and ev.campaign_id:
            self._campaign_event(ev, ev.campaign_id)

    def _case_event(self, ev: RecordedEvent, case_id: int) -> None:
        if ev.action == "create":
            ref = ev.subject.removeprefix("case:")
            self.cases[case_id] = _CaseTrace(ref, ev.to_value or "", 1, _Last.of(ev), ev.details)
            return
        trace = self.cases.get(case_id)
        if trace is None:
            ref = ev.subject.removeprefix("case:")
            self.problems.append(
                Problem(
                    ev.seq,
                    "state_gap",
                    f"案件 {ref}：第 {ev.seq} 条事件改变了它的状态，但审计中此前没有它的新建记录",
                    subject=ev.subject,
                )
            )
            self.cases[case_id] = _CaseTrace(ref, ev.to_value or "", None, _Last.of(ev))
            return
        if ev.from_value != trace.state:
            self.problems.append(
                Problem(
                    ev.seq,
                    "state_gap",
                    f"案件 {trace.ref}：第 {ev.seq} 条事件从{_state(trace.kind, ev.from_value)}出发，但此前的事件"
                    f"（至{trace.last.describe()}）留下的是{_state(trace.kind, trace.state)}：其间状态被绕过审计改动",
                    subject=ev.subject,
                )
            )
        trace.state = ev.to_value or ""
        if trace.version is not None:
            trace.version += 1
        trace.last = _Last.of(ev)

    def _deadline_event(self, ev: RecordedEvent, campaign_id: str) -> None:
        stage_id = ev.subject.removeprefix(f"stage:{campaign_id}/")
        version = int(json.loads(ev.details).get("version", 0))
        due, before = _instant(ev.to_value), _instant(ev.from_value)
        trace = self.stages.get((campaign_id, stage_id))
        if trace is not None and (trace.due_at != before or trace.version + 1 != version):
            self.problems.append(
                Problem(
                    ev.seq,
                    "deadline_gap",
                    f"环节 {campaign_id}/{stage_id}：第 {ev.seq} 条事件把截止时间从 {_due(before)} 改为第 {version} 版，"
                    f"但此前的事件（至{trace.last.describe()}）留下的是 {_due(trace.due_at)}（第 {trace.version} 版）：其间被绕过审计改动",
                    subject=ev.subject,
                )
            )
        self.stages[(campaign_id, stage_id)] = _StageTrace(due, version, _Last.of(ev))

    def _campaign_event(self, ev: RecordedEvent, campaign_id: str) -> None:
        details = json.loads(ev.details)
        deadlines = details.get("deadlines")
        if deadlines is None and campaign_id not in self.campaigns:
            self.unrecorded_campaigns.add(campaign_id)
        for stage_id, due in (deadlines or {}).items():
            self.stages[(campaign_id, stage_id)] = _StageTrace(_instant(due), 1, _Last.of(ev))
        self.campaigns[campaign_id] = (ev.to_value, _Last.of(ev))

    # -- comparing ---------------------------------------------------------------------------
    def compare(self, session: Session, report: VerifyReport, *, batch: int = 5000) -> None:
        report.problems += self.problems
        report.problems += self._compare_cases(session, report, batch)
        report.problems += self._compare_stages(session, report)
        report.problems += self._compare_campaigns(session)

    def _compare_cases(self, session: Session, report: VerifyReport, batch: int) -> Iterator[Problem]:
        # Five columns: SQLModel's select() is typed for at most four, SQLAlchemy's for any.
        rows = session.execute(
            sa_select(col(Case.id), col(Case.ref), col(Case.kind), col(Case.state), col(Case.version))
            .order_by(col(Case.id))
            .execution_options(yield_per=batch)
        )
        for case_id, ref, kind, state, version in rows:
            report.cases += 1
            trace = self.cases.pop(case_id, None)
            subject = f"case:{ref}"
            if trace is None:
                yield Problem(
                    0,
                    "state",
                    f"案件 {ref}：表中状态为{_state(kind, state)}，但审计中没有它的任何事件（未经记录新建）",
                    subject=subject,
                )
                continue
            if state != trace.state:
                yield Problem(
                    trace.last.seq,
                    "state",
                    f"案件 {ref}：表中状态为{_state(kind, state)}，按审计事件应为{_state(kind, trace.state)}"
                    f"（最后一条相关事件：{trace.last.describe()}）",
                    subject=subject,
                )
            elif trace.version is not None and version != trace.version:
                yield Problem(
                    trace.last.seq,
                    "version",
                    f"案件 {ref}：表中版本为 {version}，按审计事件应为 {trace.version}"
                    f"（最后一条相关事件：{trace.last.describe()}）",
                    subject=subject,
                )
        for trace in self.cases.values():
            yield Problem(
                trace.last.seq,
                "case_missing",
                f"案件 {trace.ref}：审计中存在（最后为{_state(trace.kind, trace.state)}，{trace.last.describe()}），"
                "但案件表中已没有这一行",
                subject=f"case:{trace.ref}",
            )

    def _compare_stages(self, session: Session, report: VerifyReport) -> Iterator[Problem]:
        for row in session.exec(
            select(StageDeadline).order_by(col(StageDeadline.campaign_id), col(StageDeadline.stage_id))
        ):
            report.stages += 1
            key = (row.campaign_id, row.stage_id)
            subject = f"stage:{row.campaign_id}/{row.stage_id}"
            trace = self.stages.pop(key, None)
            if trace is None:
                if row.campaign_id in self.unrecorded_campaigns and row.version == 1:
                    report.stages_unchecked += 1
                    continue
                yield Problem(
                    0,
                    "deadline",
                    f"环节 {row.campaign_id}/{row.stage_id}：表中截止时间为 {_due(row.due_at)}（第 {row.version} 版），"
                    "但审计中没有它的记录",
                    subject=subject,
                )
                continue
            if row.due_at != trace.due_at or row.version != trace.version:
                yield Problem(
                    trace.last.seq,
                    "deadline",
                    f"环节 {row.campaign_id}/{row.stage_id}：表中截止时间为 {_due(row.due_at)}（第 {row.version} 版），"
                    f"按审计事件应为 {_due(trace.due_at)}（第 {trace.version} 版）（最后一条相关事件：{trace.last.describe()}）",
                    subject=subject,
                )
        for (campaign_id, stage_id), trace in self.stages.items():
            yield Problem(
                trace.last.seq,
                "deadline_missing",
                f"环节 {campaign_id}/{stage_id}：审计中截止时间为 {_due(trace.due_at)}（第 {trace.version} 版，"
                f"{trace.last.describe()}），但截止时间表中已没有这一行",
                subject=f"stage:{campaign_id}/{stage_id}",
            )

    def _compare_campaigns(self, session: Session) -> Iterator[Problem]:
        # The campaign file holds the rules (windows, lapses, quotas): it is state too.
        for campaign in session.exec(select(Campaign).order_by(col(Campaign.id))):
            subject = f"campaign:{campaign.id}"
            loaded = self.campaigns.get(campaign.id)
            if loaded is None:
                yield Problem(0, "campaign", f"批次 {campaign.id}：审计中没有加载它的记录", subject=subject)
                continue
            digest, last = loaded
            if campaign.spec_digest != digest or spec_digest(campaign.spec_text) != digest:
                yield Problem(
                    last.seq,
                    "campaign",
                    f"批次 {campaign.id}：表中的批次文件与审计记录的摘要不符（最后一条相关事件：{last.describe()}）",
                    subject=subject,
                )


def verify(
    session: Session,
    log: AuditLog,
    *,
    keyring: Keyring | None = None,
    kept: Sequence[tuple[str, str]] = (),
) -> VerifyReport:
    """The whole audit check: the chain and its anchor, then every table against the events.

    Give it a session that sees one snapshot (``Database.snapshot``): a writer committing between
    the pass over the events and the read of the cases would otherwise look like tampering.
    """
    replay = Replay()
    report = log.verify(session, on_event=replay.feed, keyring=keyring, kept=kept)
    replay.compare(session, report)
    return report
