"""Status from the platforms: a platform's list export read, matched to cases, walked, audited.

The applications are filed on the provincial platforms (数智经信工作台, 企业之家网), so the
platform, not shenbao, knows who has submitted. ``sync_file`` / ``sync_rows`` bring shenbao's
picture in line with it, so nobody is chased who is done:

- read: the campaign file's ``platform:`` section says which columns mean what and which status
  words mean which state (a changed export layout is a data change);
- match: a row belongs to the case with its platform number, else to the case with the same
  values of the form's ``unique`` fields (applicant and 细分赛道; enterprise and product; credit
  code), read from the export columns named after those fields;
- plan and apply, in one go: each case is walked from its state to the platform's along the
  machine's shortest performable path, each step an ``act`` by :data:`PLATFORM_SYNC`, judged at
  the platform's own time of the action where the export carries it;
- report: new cases, state changes, rows it cannot place, conflicts (the platform contradicts
  the history: listed, never applied).

All of it happens inside a savepoint: a dry run always rolls it back, an apply rolls it back on
the first refusal and keeps only the record of the refusal. Conflicts and unplaceable rows do not
block the rest: they need a person, and holding back 499 unambiguous rows for one contradictory
row would leave shenbao chasing 499 applicants the platform already shows as done.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from calendars.campaign import (
    PLATFORM_FIELDS,
    CampaignFileError,
    CampaignSpec,
    FormSpec,
    PlatformSpec,
    case_column_of,
)
from calendars.timeutil import LOCAL_TZ, format_local, local_date, parse_instant
from models.actions import ActionRefused, act
from models.audit import AuditEvent, EventDraft, events_for_case
from models.campaign import get_campaign
from models.case import Case
from models.context import PLATFORM_SYNC, Ctx
from models.eligibility import case_findings
from models.forms import parser_for, title_of
from models.imports import _county_of, _ensure_org, _ensure_park, _org_id, _too_long, file_digest, resolve_org
from models.machines import SUBMISSION_ROLES, Machine, Transition, machine_for, machine_of
from models.org import Organisation
from models.registry import RefAllocator, new_case
from models.sheet_reading import Column, ImportProblem, ImportRejected, _as_text, _match_columns, read_sheet
from models.sheet_values import _Bad

# How many candidate walks are tried, shortest first. Walks longer than the shortest by more than
# one step are never tried: they are detours (return → resubmit …) the platform never implied.
_MAX_PATHS = 6


# -- the report -------------------------------------------------------------------------------


@dataclass
class NewCase:
    ref: str
    title: str
    row: int
    state: str
    state_label: str


@dataclass
class StateChange:
    ref: str
    title: str
    row: int
    from_state: str
    to_state: str
    from_label: str
    to_label: str
    actions: list[str]  # the machine's actions walked, in order ("correct_lapse", "submit", …)
    labels: list[str]
    effective_at: datetime | None  # the platform's time of the last step; None: when synced
    corrected_lapse: bool = False


@dataclass
class Unqualified:
    """An application the platform accepted that fails the campaign's conditions: the platform is
    the record of who filed, so it is submitted all the same, with its findings for the reviewers."""

    ref: str
    title: str
    row: int
    findings: list[str]  # "✗ [revenue] 上年度营业收入须不低于…", "! [nc_rate] …"


@dataclass
class Absent:
    """A case an earlier export had and this one has not (listed, nothing changed)."""

    ref: str
    title: str
    state_label: str
    last_file: str  # the last synced export that had it


@dataclass
class Unplaced:
    file: str
    row: int | None
    why: str


@dataclass
class Conflict:
    ref: str
    row: int
    platform_says: str
    shenbao_has: str
    why: str


@dataclass
class Refusal:
    row: int
    ref: str
    action: str
    message: str
    rule: str
    advice: str = ""  # what to do before syncing the file again, by the rule refused (advice_for)


# What a coordinator does about a refused step before the file is synced again: one sentence per
# rule, finished by the caller ("后再同步" on the command line, "再放回收件箱" in the inbox).
_ADVICE = {
    "window_closed": "如平台已受理逾期申报（省厅延期），请先用 shenbao deadline set 调整截止时间",
    "quota": (
        "平台上的推荐多于 shenbao 的名额：请先核实名额（批次文件 quotas: 有误的，改正后 shenbao campaign load），"
        "或在 shenbao 中撤销本单位另一项推荐"
    ),
    "recommendation_open": "推荐单位的推荐名单已报送，名单上的推荐不能再改：请先由省厅退回推荐名单",
}


def advice_for(rule: str) -> str:
    return _ADVICE.get(rule, "请先按上述原因在 shenbao 中处理，或从导出中去掉这一行")


@dataclass
class SyncReport:
    campaign_id: str
    platform: str
    source: str  # the file's name, or what the API caller said
    digest: str
    dry_run: bool
    rows: int = 0
    new: list[NewCase] = field(default_factory=list)
    changes: list[StateChange] = field(default_factory=list)
    unplaced: list[Unplaced] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    unchanged: int = 0
    unqualified: list[Unqualified] = field(default_factory=list)
    placed: list[str] = field(default_factory=list)  # the refs of every row matched or created
    absent: list[Absent] = field(default_factory=list)
    refused: Refusal | None = None
    # Set when this very content was synced before and nothing differs: nothing was written.
    already_synced_at: datetime | None = None
    applied: bool = False

    @property
    def needs_attention(self) -> bool:
        return bool(self.refused or self.conflicts or self.unplaced)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["needs_attention"] = self.needs_attention
        return data


class PlatformNotDeclared(LookupError):
    """The campaign file has no ``platform:`` section: there is nothing to read an export by."""


# -- the declaration ----------------------------------------------------------------------------


def platform_of(spec: CampaignSpec, *, origin: str | None = None) -> PlatformSpec:
    """The campaign's platform section, its state names checked against the machine.

    ``campaign load`` checks it too (``origin`` names the file then), so a wrong state is
    reported when the file is loaded, not at the first sync."""
    if spec.platform is None:
        raise PlatformNotDeclared(
            f"批次 {spec.id} 的批次文件没有 platform: 一节（平台导出的列与状态用语），无法同步"
        )
    wrong = unknown_statuses(spec)
    if wrong:
        lines = [f"  platform.statuses.{word}: {message}" for word, message in wrong]
        raise CampaignFileError(
            f"{origin or '批次 ' + spec.id}: 批次文件有 {len(lines)} 处错误：\n" + "\n".join(lines)
        )
    return spec.platform


def unknown_statuses(spec: CampaignSpec) -> list[tuple[str, str]]:
    """(platform word, what is wrong) for each status word mapped to a state the application
    machine lacks: one rule for the sync and for ``campaign validate`` (which puts each at its line)."""
    if spec.platform is None:
        return []
    kind = application_kind(spec)
    # The file's own machine: a file being validated is not loaded yet.
    machine = machine_of(kind, spec.kinds[kind]) if kind in spec.kinds else machine_for(kind)
    known = "、".join(machine.states)
    return [
        (word, f"未知状态「{state}」（应为：{known}）")
        for word, state in spec.platform.statuses.items()
        if state not in machine.states
    ]


def application_kind(spec: CampaignSpec) -> str:
    return spec.application_kind


def _columns(platform: PlatformSpec) -> list[Column]:
    return [Column(key, c.label, c.aliases, required=c.required) for key, c in platform.columns.items()]


def _word(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).split())


# -- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    row: int
    number: str | None
    applicant: str | None
    county: str | None
    # What was applied for: the form's ``unique`` fields but the applicant, in that order
    # (细分赛道; 产品名称及型号; 统一社会信用代码), None where the export left a cell empty.
    items: tuple[str | None, ...]
    zone_type: str | None
    word: str
    state: str
    status_at: datetime | None
    submitted_at: datetime | None
    # The export's other columns named after form fields (申报类别 …), as read: kept by a case the
    # row creates, read only then (a bad cell in a column nobody uses never holds a row back).
    fields: tuple[tuple[str, Any], ...] = ()


def _text(value: Any) -> str | None:
    shown = _as_text(value).strip()
    return shown or None


def _instant(value: Any) -> datetime:
    """A platform time: an Excel date cell or text, Shanghai wall-clock time unless it says."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=LOCAL_TZ) if value.tzinfo is None else value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=LOCAL_TZ)
    text = _as_text(value).strip().replace("/", "-").replace(".", "-", 2)
    return parse_instant(text)


def _parse_row(
    number: int,
    values: Mapping[str, Any],
    spec: CampaignSpec,
    platform: PlatformSpec,
    file: str,
    now: datetime,
) -> _Row | Unplaced:
    item_columns = [spec.platform_column(k) or k for k in spec.match_fields]
    status = _text(values.get("status"))
    if status is None:
        return Unplaced(file, number, f"「{platform.columns['status'].label}」为空")
    statuses = {_word(w): s for w, s in platform.statuses.items()}
    state = statuses.get(_word(status))
    if state is None:
        known = "、".join(platform.statuses)
        return Unplaced(
            file,
            number,
            f"「{platform.columns['status'].label}」：未知的平台状态「{status}」（批次文件 platform.statuses 已有：{known}）",
        )
    times: dict[str, datetime | None] = {}
    for key in ("status_at", "submitted_at"):
        raw = values.get(key)
        if raw is None or _text(raw) is None:
            times[key] = None
            continue
        try:
            times[key] = _instant(raw)
        except ValueError as exc:
            return Unplaced(file, number, f"「{platform.columns[key].label}」无法识别：{exc}")
        if times[key] > now:  # type: ignore[operator]
            return Unplaced(
                file,
                number,
                f"「{platform.columns[key].label}」{format_local(times[key])} 晚于当前时间",  # type: ignore[arg-type]
            )
    zone: str | None = None
    # The platform's 申报类型 is read as the campaign's form reads it (核心区 -> core).
    zone_field = spec.form.column_field("zone_type") if spec.form is not None else None
    if zone_field is not None and _text(values.get("zone_type")) is not None:
        try:
            zone = parser_for(zone_field)(values["zone_type"])
        except _Bad as exc:
            return Unplaced(file, number, f"「{platform.columns['zone_type'].label}」{exc}")
    row = _Row(
        row=number,
        number=_text(values.get("number")),
        applicant=_text(values.get("applicant")),
        county=_text(values.get("county")),
        items=tuple(_text(values.get(c)) for c in item_columns),
        zone_type=zone,
        word=status,
        state=state,
        status_at=times["status_at"],
        submitted_at=times["submitted_at"],
        fields=tuple(
            (k, values[k])
            for k in platform.columns
            if k not in PLATFORM_FIELDS and k not in item_columns and _text(values.get(k)) is not None
        ),
    )
    if row.number is None and not (row.applicant and _item(row.items)):
        return Unplaced(file, number, "既无平台编号，也无申报单位与申报内容，无法对应到案件")
    # Cells longer than the columns they go into: PostgreSQL would refuse the whole sync.
    problems: list[ImportProblem] = []
    label: dict[str, str] = {k: c.label for k, c in platform.columns.items()}
    _too_long(
        problems,
        Path(file),
        number,
        [
            (label.get("number", "number"), row.number, Case, "external_id"),
            (label.get("applicant", "applicant"), row.applicant, Organisation, "name"),
            *(
                # A value the case keeps in an indexed column must fit it; any other is in the title.
                (label.get(c, c), v, Case, c if c in _CASE_COLUMNS else "title")
                for c, v in zip(item_columns, row.items, strict=True)
            ),
        ],
    )
    if problems:
        return Unplaced(file, number, "；".join(f"「{p.column}」{p.message}" for p in problems))
    return row


# -- matching -----------------------------------------------------------------------------------


# Case columns a form field may fill (``case_column``) that a platform cell is checked against.
_CASE_COLUMNS = ("track", "category", "zone_type", "external_id")


def _item(items: Sequence[str | None]) -> str | None:
    """The match fields' values as one key, or None unless every one is filled."""
    if not items or any(not v for v in items):
        return None
    return "\x1f".join(_word(v) for v in items)  # type: ignore[arg-type]


def _keys(
    name: str | None, items: Sequence[str | None], org_id: str | None, by_applicant: bool
) -> set[tuple[str, str, str]]:
    """How a row or case is found without a platform number: by the form's ``unique`` fields,
    the applicant (its organisation, or its name) among them when ``unique`` names it."""
    item = _item(items)
    if item is None:
        return set()
    if not by_applicant:
        return {("unique", "", item)}
    keys = {("org", org_id, item)} if org_id else set()
    if name:
        keys.add(("name", _word(name), item))
    return keys


def _case_value(case: Case, form: FormSpec, key: str) -> str | None:
    """A form field of a case as the import kept it: its attrs, else the case column it fills."""
    value = case.attrs.get(key)
    if value in (None, ""):
        field = form.field(key)
        column = case_column_of(field) if field is not None else None
        value = getattr(case, column) if column is not None else None
    return None if value in (None, "") else str(value)


def _case_keys(case: Case, spec: CampaignSpec) -> set[tuple[str, str, str]]:
    form = spec.form
    if form is None:
        return set()
    items = [_case_value(case, form, k) for k in spec.match_fields]
    return _keys(_case_value(case, form, form.applicant), items, case.org_id, form.applicant in form.unique)


class _Index:
    """The campaign's applications by platform number and by their form ``unique`` values."""

    def __init__(self, session: Session, spec: CampaignSpec) -> None:
        cases = session.exec(
            select(Case)
            .where(Case.campaign_id == spec.id, Case.kind == application_kind(spec))
            .order_by(col(Case.id))
        ).all()
        self.spec = spec
        self.by_number: dict[str, Case] = {}
        self.by_key: dict[tuple[str, str, str], list[Case]] = {}
        for case in cases:
            self.add(case)

    def add(self, case: Case) -> None:
        if case.external_id:
            self.by_number[case.external_id.strip()] = case
        for key in _case_keys(case, self.spec):
            self.by_key.setdefault(key, []).append(case)

    def match(self, session: Session, row: _Row) -> tuple[Case | None, str | None]:
        """The case of a row, or why it cannot be told (a conflict between number and name)."""
        org, _why = resolve_org(session, row.applicant) if row.applicant else (None, None)
        by_name: dict[int, Case] = {}
        form = self.spec.form
        by_applicant = form is not None and form.applicant in form.unique
        for key in _keys(row.applicant, row.items, org.id if org else None, by_applicant):
            for case in self.by_key.get(key, []):
                by_name[case.id] = case  # type: ignore[index]
        numbered = self.by_number.get(row.number) if row.number else None
        if numbered is not None:
            others = [c for c in by_name.values() if c.id != numbered.id]
            if by_name and others and numbered.id not in by_name:
                return None, (
                    f"平台编号 {row.number} 对应 {numbered.ref}（{numbered.title}），"
                    f"而申报单位与申报内容对应 {others[0].ref}（{others[0].title}）"
                )
            return numbered, None
        if len(by_name) > 1:
            refs = "、".join(c.ref for c in by_name.values())
            return None, f"申报单位与申报内容对应多个案件（{refs}），请在平台导出中带上申报编号"
        only = next(iter(by_name.values()), None)
        if only is not None and row.number and only.external_id and only.external_id != row.number:
            return None, f"{only.ref} 登记的平台编号为 {only.external_id}，本行为 {row.number}"
        return only, None


# -- walking the machine ------------------------------------------------------------------------


def walks(machine: Machine, source: str, target: str) -> list[list[Transition]]:
    """Paths of actions from ``source`` to ``target``, shortest first (breadth-first).

    The engine's own transitions (lapse) are left out: a platform never lapses anything, and a
    lapse is undone only by the explicit correction. Paths of the shortest length and one step
    longer are kept, in the machine's declaration order; the walk takes the first whose guards
    pass (精品: 已提交 → 已推荐 is ``recommend`` for a direct SOE/association recommender,
    ``approve`` + ``recommend`` through the county otherwise).
    """
    found: list[list[Transition]] = []
    todo: deque[tuple[str, list[Transition]]] = deque([(source, [])])
    while todo and len(found) < _MAX_PATHS:
        state, path = todo.popleft()
        if len(path) >= len(machine.states):
            break
        for t in machine.allowed(state):
            if t.target is None or t.tiers == ("system",):
                continue
            visited = {source, *(p.target for p in path)}
            if found and len(path) + 1 > len(found[0]) + 1:
                return found[:_MAX_PATHS]
            if t.target == target:
                found.append([*path, t])
            elif t.target not in visited:
                todo.append((t.target, [*path, t]))
    return found[:_MAX_PATHS]


@contextmanager
def _savepoint(session: Session) -> Iterator[Callable[[], None]]:
    """A nested transaction the caller may undo; undone, it leaves no audit anchor behind.

    The audit log remembers (``session.info["audit_anchor"]``) the head it writes to the anchor
    file at commit; rolling back a savepoint must restore what it remembered.
    """
    remembered = session.info.get("audit_anchor")
    nested = session.begin_nested()
    undone = False

    def undo() -> None:
        nonlocal undone
        undone = True

    try:
        yield undo
    except BaseException:
        nested.rollback()
        _restore(session, remembered)
        raise
    if undone:
        nested.rollback()
        _restore(session, remembered)
    else:
        # SQLAlchemy fires after_commit when a savepoint is released, and the audit log writes
        # its anchor then: hide the pending head until the real commit, or a dry run (or a later
        # refusal) that undoes the outer savepoint leaves an anchor naming events that never were.
        latest = session.info.pop("audit_anchor", None)
        nested.commit()
        _restore(session, latest)


def _restore(session: Session, remembered: Any) -> None:
    if remembered is None:
        session.info.pop("audit_anchor", None)
    else:
        session.info["audit_anchor"] = remembered


# -- the sync -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    name: str
    digest: str
    # Who handed shenbao the file or the push (a person, or the service's inbox): the changes
    # are 平台同步's, but somebody chose to sync this file, and the audit says who.
    requested_by: str | None = None

    def of(self, row: int) -> dict[str, Any]:
        where: dict[str, Any] = {"file": self.name, "sha256": self.digest, "row": row}
        return where | ({"requested_by": self.requested_by} if self.requested_by else {})


def sync_file(
    session: Session,
    ctx: Ctx,
    campaign_id: str,
    path: Path,
    *,
    dry_run: bool = False,
    requested_by: str | None = None,
) -> SyncReport:
    """Sync a platform list export (CSV/XLSX); raises ImportRejected when its layout is wrong."""
    spec = get_campaign(session, campaign_id).spec()
    platform = platform_of(spec)
    sheet = read_sheet(path, _columns(platform))
    source = _Source(path.name, file_digest(path), requested_by)
    return _sync(session, ctx, spec, platform, [(r.number, r.values) for r in sheet.rows], source, dry_run)


def sync_rows(
    session: Session,
    ctx: Ctx,
    campaign_id: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    source: str,
    dry_run: bool = False,
    requested_by: str | None = None,
) -> SyncReport:
    """Sync rows a platform pushes (JSON objects keyed by the export's headers or by field keys).

    The same columns are recognised as in a file, so a push and an export of one platform agree.
    ``source`` names the sender in the report and the audit; rows are numbered from 1.
    """
    spec = get_campaign(session, campaign_id).spec()
    platform = platform_of(spec)
    columns = _columns(platform)
    headers = sorted({str(k) for r in rows for k in r})
    # Field keys ("status") are accepted as they are; labels and aliases are matched like headers.
    mapping: dict[str, str] = {h: h for h in headers if h in platform.columns}
    by_label = _match_columns(headers, [c for c in columns if c.key not in mapping.values()])
    mapping.update({headers[i]: key for key, i in by_label.items()})
    missing = [c for c in columns if c.required and c.key not in mapping.values()]
    if missing and rows:
        raise ImportRejected(
            [
                ImportProblem(
                    source, None, c.label, f"缺少必填字段「{c.label}」（可用：{c.key}、{'、'.join(c.names)}）"
                )
                for c in missing
            ]
        )
    records = [(i + 1, {mapping[k]: v for k, v in r.items() if k in mapping}) for i, r in enumerate(rows)]
    text = json.dumps(list(rows), ensure_ascii=False, sort_keys=True, default=str)
    return _sync(
        session,
        ctx,
        spec,
        platform,
        records,
        _Source(source, hashlib.sha256(text.encode()).hexdigest(), requested_by),
        dry_run,
    )


def _sync(
    session: Session,
    ctx: Ctx,
    spec: CampaignSpec,
    platform: PlatformSpec,
    records: Sequence[tuple[int, Mapping[str, Any]]],
    source: _Source,
    dry_run: bool,
) -> SyncReport:
    report = SyncReport(
        campaign_id=spec.id,
        platform=platform.name,
        source=source.name,
        digest=source.digest,
        dry_run=dry_run,
        rows=len(records),
    )
    ctx.audit.lock(session)  # cases are looked up, created and walked: one writer at a time
    with _savepoint(session) as undo:
        _walk_all(session, ctx, spec, platform, records, source, report)
        if dry_run or report.refused is not None:
            undo()
    changed = bool(report.new or report.changes)
    if dry_run:
        return report
    if report.refused is not None:
        ctx.audit.append(
            session,
            EventDraft(
                at=ctx.now,
                actor=PLATFORM_SYNC.label,
                action="refusal",
                subject=f"sync:{spec.id}",
                campaign_id=spec.id,
                reason=f"{source.name} 第{report.refused.row}行（{report.refused.ref}）：{report.refused.message}",
                details={
                    "action": "sync",
                    "rule": report.refused.rule,
                    "source": source.of(report.refused.row),
                },
            ),
        )
        return report
    before = _synced_before(session, spec.id, source.digest)
    if before is not None and not changed:
        report.already_synced_at = before.at
        return report
    ctx.audit.append(
        session,
        EventDraft(
            at=ctx.now,
            actor=PLATFORM_SYNC.label,
            action="sync",
            subject=f"sync:{spec.id}",
            campaign_id=spec.id,
            to_value=source.digest,
            reason=f"同步{platform.name}导出 {source.name}",
            details={
                "file": source.name,
                "sha256": source.digest,
                "requested_by": source.requested_by,
                "rows": report.rows,
                "new": [n.ref for n in report.new],
                "changed": [c.ref for c in report.changes],
                "unchanged": report.unchanged,
                "unqualified": [asdict(u) for u in report.unqualified],
                "placed": report.placed,
                "absent": [a.ref for a in report.absent],
                "unplaced": [asdict(u) for u in report.unplaced],
                "conflicts": [asdict(c) for c in report.conflicts],
            },
        ),
    )
    report.applied = True
    return report


def _synced_before(session: Session, campaign_id: str, digest: str) -> AuditEvent | None:
    return session.exec(
        select(AuditEvent)
        .where(
            AuditEvent.action == "sync", AuditEvent.campaign_id == campaign_id, AuditEvent.to_value == digest
        )
        .order_by(col(AuditEvent.seq))
    ).first()


def _walk_all(
    session: Session,
    ctx: Ctx,
    spec: CampaignSpec,
    platform: PlatformSpec,
    records: Sequence[tuple[int, Mapping[str, Any]]],
    source: _Source,
    report: SyncReport,
) -> None:
    index = _Index(session, spec)
    machine = machine_for(application_kind(spec), spec.id)
    allocate = RefAllocator(session, spec, application_kind(spec))
    seen: dict[int, int] = {}  # case id -> the row that placed it
    for number, values in records:
        parsed = _parse_row(number, values, spec, platform, source.name, ctx.now)
        if isinstance(parsed, Unplaced):
            report.unplaced.append(parsed)
            continue
        case, why = index.match(session, parsed)
        if why is not None:
            report.unplaced.append(Unplaced(source.name, number, why))
            continue
        if case is None:
            created = _new_case(session, ctx, spec, platform, parsed, source, allocate, report)
            if created is None:
                continue
            case = created
            index.add(case)
        elif case.id in seen:
            report.unplaced.append(
                Unplaced(source.name, number, f"与第{seen[case.id]}行是同一申报（{case.ref}）")
            )
            continue
        seen[case.id] = number  # type: ignore[index]
        if parsed.number and not case.external_id:
            case.external_id = parsed.number  # recorded in the sync event with the row
            session.add(case)
        _walk_case(session, ctx, machine, platform, case, parsed, source, report)
        if report.refused is not None:
            return  # all or nothing: the caller undoes what the rows before it did
    placed = session.exec(select(Case).where(col(Case.id).in_(list(seen)))).all() if seen else []
    report.placed = sorted(c.ref for c in placed)
    report.absent = _absent(session, spec, machine, {c.city_code for c in placed}, set(report.placed))


def _absent(
    session: Session, spec: CampaignSpec, machine: Machine, cities: set[str | None], placed: set[str]
) -> list[Absent]:
    """Open cases an earlier export of this campaign had that this one lacks, within the cities
    this one covers (a city's own export says nothing of the others). An export may be partial,
    so this is told, never acted on: a case gone from the platform is for a person to look into."""
    earlier: dict[str, str] = {}  # ref -> the last file that had it
    for event in session.exec(
        select(AuditEvent)
        .where(AuditEvent.action == "sync", AuditEvent.campaign_id == spec.id)
        .order_by(col(AuditEvent.seq))
    ):
        details = json.loads(event.details)
        for ref in details.get("placed") or [*details.get("new", []), *details.get("changed", [])]:
            earlier[ref] = str(details.get("file", ""))
    missing = set(earlier) - placed
    if not missing:
        return []
    cases = session.exec(select(Case).where(col(Case.ref).in_(sorted(missing))).order_by(col(Case.ref))).all()
    return [
        Absent(c.ref, c.title, machine.state_label(c.state), earlier[c.ref])
        for c in cases
        if c.state not in machine.final and c.city_code in cities
    ]


def _new_case(
    session: Session,
    ctx: Ctx,
    spec: CampaignSpec,
    platform: PlatformSpec,
    row: _Row,
    source: _Source,
    allocate: RefAllocator,
    report: SyncReport,
) -> Case | None:
    """A row no case matches: the application was filed on the platform only. It is created the
    way an import creates it (same organisations, same numbering), then walked to its state."""
    form = spec.form
    if form is None or not (row.applicant and _item(row.items)):
        report.unplaced.append(
            Unplaced(
                source.name,
                row.row,
                f"平台编号 {row.number} 不对应任何案件，且缺少申报单位或申报内容，无法新建",
            )
        )
        return None
    problems: list[ImportProblem] = []
    org, _ = resolve_org(session, row.applicant)
    county_name = row.county or (row.applicant if org is not None and org.tier == "county" else None)
    if county_name is None:
        report.unplaced.append(
            Unplaced(source.name, row.row, f"新申报「{row.applicant}」须有所在县（市、区）才能新建")
        )
        return None
    # The column the county was read from: the export's county column, else the applicant's own.
    key = "county" if row.county else "applicant"
    county_column = platform.columns[key].label if key in platform.columns else "所在县（市、区）"
    county = _county_of(session, county_name, Path(source.name), row.row, county_column, problems)
    if county is None:
        report.unplaced += [Unplaced(p.file, p.row, f"「{p.column}」：{p.message}") for p in problems]
        return None
    orgs: dict[str, Organisation] = {}
    kind = application_kind(spec)
    where = f"{source.name} 第{row.row}行"
    # Who applies is the form's word: a county (or a park in it) for itself, or an enterprise.
    if form.applicant_tier == "county_or_park":
        org_id = (
            county.id
            if org is not None and org.id == county.id
            else _org_id("PARK", county.id, row.applicant)
        )
        if org_id != county.id:
            _ensure_park(session, orgs, org_id, row.applicant, county)
    else:
        org_id = _org_id("ENT", row.applicant)
        _ensure_org(
            session,
            orgs,
            org_id,
            name=row.applicant,
            tier="enterprise",
            city_code=county.city_code,
            county_code=county.id,
            mountain_island=county.mountain_island,
        )
    # The case as the form's import would keep what the export says: the applicant and the match
    # fields in attrs (or the case columns they fill), its title from the form's ``title``.
    values: dict[str, Any] = {form.applicant: row.applicant}
    values.update(zip(spec.match_fields, row.items, strict=True))
    if form.county and form.field(form.county) is not None:
        values[form.county] = county.name
    # Whatever else the export says of the application, read as the form reads it (智能工厂 ->
    # smart_factory); a cell the form would refuse is a row it cannot place, naming the column.
    for key, raw in row.fields:
        field = form.field(key)
        if field is None:
            continue
        try:
            values[key] = parser_for(field)(raw)
        except _Bad as exc:
            report.unplaced.append(
                Unplaced(source.name, row.row, f"「{platform.columns[key].label}」：{exc}")
            )
            return None
    columns: dict[str, Any] = {}
    attrs: dict[str, Any] = {}
    for key, value in values.items():
        field = form.field(key)
        column = case_column_of(field) if field is not None else None
        if column is not None:
            columns[column] = value
        if field is None or field.in_attrs:
            attrs[key] = value
    if form.column_field("zone_type") is not None:
        columns["zone_type"] = row.zone_type
    attrs["source_row"] = row.row
    # A field of the title the export does not carry is named as missing, not left blank
    # ("杭州萧山智控科技有限公司：" told nobody what was applied for).
    missing = {f.key: f"（平台导出无{f.label}）" for f in form.fields if values.get(f.key) in (None, "")}
    title = title_of(form, {f.key: None for f in form.fields} | missing | values)
    session.flush()
    case = new_case(
        session,
        Ctx(now=ctx.now, actor=PLATFORM_SYNC, audit=ctx.audit),
        spec,
        kind=kind,
        ref=allocate(),
        org_id=org_id,
        city_code=county.city_code,
        county_code=county.id,
        title=title,
        reason=f"{platform.name}上已有此申报（{where}），shenbao 中尚无",
        external_id=row.number,
        attrs=attrs,
        **columns,
    )
    machine = machine_for(kind, spec.id)
    report.new.append(NewCase(case.ref, title, row.row, row.state, machine.state_label(row.state)))
    return case


def _walk_case(
    session: Session,
    ctx: Ctx,
    machine: Machine,
    platform: PlatformSpec,
    case: Case,
    row: _Row,
    source: _Source,
    report: SyncReport,
) -> None:
    says = f"「{row.word}」（{machine.state_label(row.state)}）"
    has = f"「{machine.state_label(case.state)}」"
    if case.state == row.state:
        report.unchanged += 1
        return
    correction: Transition | None = None
    original = start = case.state
    entered: datetime | None = None  # when the case entered the state it lapsed from
    if case.state in machine.lapsed:
        correction = machine.find_role("correct_lapse", case.state)
        before, entered = _before_lapse(session, case, correction)
        if row.state in (machine.initial, before):
            # Still where it lapsed on the platform (填报中 after the deadline, 退回修改 after its
            # resubmission deadline; or an export older than the lapse): the lapse stands.
            report.unchanged += 1
            return
        start = before if correction is not None else case.state
    else:
        stale = _older_than_history(session, machine, case, row)
        if stale is not None:
            report.conflicts.append(Conflict(case.ref, row.row, says, has, stale))
            return
    paths = walks(machine, start, row.state)
    if correction is not None:
        # The lapse is undone only by a submission (a resubmission, after a return) the platform
        # recorded before the deadline that lapsed the case.
        paths = [p for p in paths if p[0].role in SUBMISSION_ROLES]
    walkable = [p for p in paths if not any(t.needs_reason for t in p[:-1])]
    if paths and not walkable:
        # A decision that needs a reason (撤销推荐, 退回修改, 不予推荐) is taken only when it is
        # the state the platform shows, never guessed on the way to it: walked silently, a
        # 市级推荐 case shown as 已提交 lost its recommendation and its quota place.
        guessed = "、".join(dict.fromkeys(t.label for t in paths[0][:-1] if t.needs_reason))
        why = (
            f"由「{machine.state_label(case.state)}」到平台状态须先经「{guessed}」，平台导出未显示这一决定，"
            "须人工核实（确为平台上的回退的，请在 shenbao 中由有权限的单位办理并说明理由）"
        )
        report.conflicts.append(Conflict(case.ref, row.row, says, has, why))
        return
    paths = walkable
    if not paths:
        why = (
            f"平台状态在 shenbao 记录的「{machine.state_label(case.state)}」之前或无法由其到达，"
            "须人工核实（可能是平台或 shenbao 一方记录有误）"
        )
        report.conflicts.append(Conflict(case.ref, row.row, says, has, why))
        return
    if correction is not None:
        submitted = _submission_time(row, entered)
        if submitted is None:
            given = row.submitted_at or row.status_at
            why = (
                f"shenbao 已于 {format_local(case.state_since)} 逾期关闭；平台导出未给出提交时间，"
                "无法判断是否按时提交（请导出含「提交时间」列的清单）"
                if given is None
                else f"shenbao 已于 {format_local(case.state_since)} 逾期关闭；平台导出的时间 {format_local(given)} "
                f"早于案件进入「{machine.state_label(start)}」的 {format_local(entered)}，"  # type: ignore[arg-type]
                "不是逾期关闭前的那次提交（可能是较早的导出），逾期关闭维持"
            )
            report.conflicts.append(Conflict(case.ref, row.row, says, has, why))
            return
    refusal: Refusal | None = None  # of the shortest path, when no path passes its guards
    for path in paths:
        with _savepoint(session) as undo:
            try:
                if correction is not None:
                    _correct(session, ctx, case, correction, start, row, entered, platform, source)
                effective, findings = _walk(session, ctx, case, path, row, platform, source, entered)
            except _StepRefused as exc:
                undo()
                if refusal is None:
                    refusal = Refusal(
                        row.row,
                        case.ref,
                        exc.action,
                        str(exc.refusal),
                        exc.refusal.rule,
                        advice_for(exc.refusal.rule),
                    )
                continue
        report.changes.append(
            StateChange(
                ref=case.ref,
                title=case.title,
                row=row.row,
                from_state=original,
                to_state=row.state,
                from_label=has.strip("「」"),
                to_label=machine.state_label(row.state),
                actions=[*([correction.action] if correction else []), *(t.action for t in path)],
                labels=[*([correction.label] if correction else []), *(t.label for t in path)],
                effective_at=effective,
                corrected_lapse=correction is not None,
            )
        )
        if findings:
            report.unqualified.append(Unqualified(case.ref, case.title, row.row, findings))
        return
    report.refused = refusal


class _StepRefused(Exception):
    def __init__(self, action: str, refusal: ActionRefused) -> None:
        super().__init__(str(refusal))
        self.action, self.refusal = action, refusal


def _platform_details(
    platform: PlatformSpec, row: _Row, source: _Source, effective: datetime | None, synced: datetime
) -> dict[str, Any]:
    return {
        "platform": platform.name,
        "status": row.word,
        "effective_at": effective.isoformat() if effective else None,
        "synced_at": synced.isoformat(),
        "source": source.of(row.row),
    }


def _before_lapse(session: Session, case: Case, correction: Transition | None) -> tuple[str, datetime | None]:
    """The state a lapsed case lapsed from (填报中, or 退回修改 at its resubmission deadline) and
    when it entered that state (None: it was created in it), read from its audit."""
    changes = [e for e in events_for_case(session, case.id) if e.action == "state_change"]  # type: ignore[arg-type]
    lapse = next((i for i in range(len(changes) - 1, -1, -1) if changes[i].to_value == case.state), None)
    if lapse is None or not changes[lapse].from_value:
        return (correction.target if correction and correction.target else case.state), None
    before = changes[lapse].from_value
    entered = next((e.at for e in reversed(changes[:lapse]) if e.to_value == before), None)
    return before, entered  # type: ignore[return-value]


def _older_than_history(session: Session, machine: Machine, case: Case, row: _Row) -> str | None:
    """Why a row cannot move its case when the platform's times are all older than the case's last
    change (an export made before shenbao recorded it), else None. A case never changed since it
    was created is not judged so: a platform submission often predates the import."""
    times = [t for t in (row.status_at, row.submitted_at) if t is not None]
    if not times:
        return None
    changes = [e for e in events_for_case(session, case.id) if e.action == "state_change"]  # type: ignore[arg-type]
    if not changes or max(times) >= changes[-1].at:
        return None
    last, latest = changes[-1], max(times)
    if latest.astimezone(LOCAL_TZ).time() == time(0) and local_date(latest) == local_date(last.at):
        return None  # a date without a time of day ("2026-08-06") says no more than the day
    return (
        f"平台导出的时间（最晚 {format_local(max(times))}）早于 shenbao 记录的最后一次变化"
        f"（{format_local(last.at)} 进入「{machine.state_label(last.to_value or case.state)}」），"
        "可能是较早的导出，未写入；请用最新的导出同步"
    )


def _submission_time(row: _Row, not_before: datetime | None) -> datetime | None:
    """The platform's time of the submission a step records: 提交时间, unless it is older than the
    state the case is submitted from (a platform that keeps the first submission's time after a
    return), then 状态时间, which is no earlier than the submission; None when neither fits."""
    for at in (row.submitted_at, row.status_at):
        if at is not None and (not_before is None or at >= not_before):
            return at
    return None


def _correct(
    session: Session,
    ctx: Ctx,
    case: Case,
    t: Transition,
    back_to: str,
    row: _Row,
    entered: datetime | None,
    platform: PlatformSpec,
    source: _Source,
) -> None:
    """Undo the lapse by an audited correction at the time of the sync: history is not rewritten,
    the lapse stays in the audit and the correction says why it no longer stands. The case goes
    back to the state it lapsed from, where the platform's submission (or resubmission) starts."""
    submitted = _submission_time(row, entered)
    assert submitted is not None
    reason = f"{platform.name}记录该申报于 {format_local(submitted)} 提交（{source.name} 第{row.row}行），逾期关闭不成立"
    from_state = case.state
    case.state, case.state_since, case.updated_at = back_to, ctx.now, ctx.now
    case.version += 1
    session.add(case)
    ctx.audit.append(
        session,
        EventDraft(
            at=ctx.now,
            actor=PLATFORM_SYNC.label,
            action="state_change",
            subject=f"case:{case.ref}",
            case_id=case.id,
            campaign_id=case.campaign_id,
            from_value=from_state,
            to_value=case.state,
            reason=reason,
            details={
                "action": t.action,
                "label": t.label,
                **_platform_details(platform, row, source, submitted, ctx.now),
            },
        ),
    )
    session.flush()


def _walk(
    session: Session,
    ctx: Ctx,
    case: Case,
    path: list[Transition],
    row: _Row,
    platform: PlatformSpec,
    source: _Source,
    entered: datetime | None = None,
) -> tuple[datetime | None, list[str]]:
    """Each step an ``act`` by the platform sync, judged at the platform's time of that action:
    the submission at 提交时间 (unless older than ``entered``, the state it leaves), the other
    steps at 状态时间, and when the export has no time at the time of the sync.

    Returns the time of the last step and the conditions the submission fails, if any: the
    platform accepted it, so it is not refused (``act`` does not block the platform sync), but
    the audit says which rules it fails, and a 原则上 rule records the platform's acceptance as
    its reason, as a person's submission records theirs."""
    effective: datetime | None = None
    unmet: list[str] = []
    for t in path:
        # 状态时间 is no earlier than any step before it: judging a step at it never lets a late
        # submission pass; a submission judged at 提交时间 is judged exactly.
        effective = (_submission_time(row, entered) if t.role in SUBMISSION_ROLES else None) or row.status_at
        at = effective or ctx.now
        reason = f"{platform.name}显示「{row.word}」（{source.name} 第{row.row}行）"
        overrides: dict[str, str] = {}
        if "eligibility" in t.guards:
            found = [
                f
                for f in case_findings(session, get_campaign(session, case.campaign_id).spec(), case)
                if f.severity in ("block", "in_principle")
            ]
            unmet = [f"{'✗' if f.severity == 'block' else '!'} [{f.rule}] {f.message}" for f in found]
            overrides = {f.rule: f"{reason}，平台已受理" for f in found if f.severity == "in_principle"}
            if unmet:
                reason += "；平台已受理，不符合的申报条件：" + "；".join(unmet)
        step = Ctx(now=at, actor=PLATFORM_SYNC, audit=ctx.audit)
        try:
            act(
                session,
                step,
                case,
                t.action,
                reason=reason,
                overrides=overrides,
                params={"platform": _platform_details(platform, row, source, effective, ctx.now)},
            )
        except ActionRefused as exc:
            raise _StepRefused(t.action, exc) from exc
        session.flush()
    return effective, unmet
