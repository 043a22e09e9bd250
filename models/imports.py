"""Writing imported files into the engine, all or nothing.

``models.sheets`` (rosters) and ``models.forms`` (applications, by the campaign file's ``form:``)
turn a file into typed rows or a list of problems; this module resolves the
organisations the rows name, checks them against what the database already holds, and only when
nothing at all is wrong writes every row, plus one audit event for the import and one per new
case. A file with one bad row changes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from sqlalchemy import insert
from sqlmodel import Session, col, select

from calendars.campaign import CampaignSpec, RecommenderSpec
from calendars.timeutil import local_date
from models.actions import ActionRefused, act
from models.audit import EventDraft
from models.campaign import Campaign, get_campaign
from models.case import Case
from models.context import Ctx
from models.forms import FormRow, already_imported, attrs_of, iter_form, read_form, title_of
from models.machines import machine_for
from models.org import TIER_LABELS, Contact, Organisation
from models.programs import ProgramName, builtin_programs, builtin_specs, programs_of
from models.reference import county_named, load_divisions, read_as
from models.registry import RefAllocator, bulk_new_cases, city_case_ref, new_case
from models.sheets import ImportProblem, ImportRejected, RosterRow, RosterWords, parse_roster, roster_words


@dataclass
class ImportSummary:
    file: str
    digest: str
    rows: int = 0
    created: list[str] = field(default_factory=list)
    updated: int = 0
    organisations: int = 0
    notes: list[str] = field(default_factory=list)


def _stored_specs(session: Session) -> list[CampaignSpec]:
    return [c.spec() for c in session.exec(select(Campaign).order_by(Campaign.id))]


def stored_programs(session: Session, specs: list[CampaignSpec] | None = None) -> dict[str, ProgramName]:
    """The programs a roster may name: the built-in campaigns' and those of every campaign loaded."""
    specs = _stored_specs(session) if specs is None else specs
    # A file stored before programs were named in it keeps the built-in name and words.
    return builtin_programs() | programs_of(s for s in specs if s.program_name)


def stored_roster_words(session: Session) -> RosterWords:
    """What a roster's columns may be called and its 备注 may name, by every campaign file known:
    the built-in ones and those loaded (a loaded file's official 附件3 headers included)."""
    specs = _stored_specs(session)
    return roster_words([*builtin_specs(), *specs], stored_programs(session, specs))


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:  # a megabyte at a time: an import file can be hundreds of them
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _org_id(prefix: str, *parts: str) -> str:
    return f"{prefix}-{hashlib.sha1('|'.join(parts).encode()).hexdigest()[:10]}"


def resolve_org(session: Session, name: str) -> tuple[Organisation | None, str | None]:
    """A division by any of its spellings, or an organisation already created by an import."""
    division, why = load_divisions().resolve_or_explain(name)
    if division is not None:
        return session.get(Organisation, division.code), None
    org = session.exec(select(Organisation).where(Organisation.name == name.strip())).first()
    if org is not None:
        return org, None
    return None, why


def _too_long(
    problems: list[ImportProblem], path: Path, row: int, checks: list[tuple[str, str | None, Any, str]]
) -> None:
    """Cells longer than their database column: PostgreSQL would refuse the whole import with a
    traceback (and SQLite would store them), so they are reported like any other bad cell."""
    for column, value, model, field_name in checks:
        limit = model.__table__.c[field_name].type.length
        if value and limit and len(value) > limit:
            problems.append(
                ImportProblem(
                    path.name, row, column, f"内容过长（{len(value)} 个字符，最多 {limit} 个）：{value[:20]}…"
                )
            )


# -- rosters and directories ----------------------------------------------------------------
#
# Both are 附件3-shaped files of people. A roster is what a city sends for its own task; a
# directory (the province's address book, last year's roster) only tells shenbao whom to write
# to. Loading people never completes a task: only the city submitting does (``submit``).


def import_roster(
    session: Session, ctx: Ctx, path: Path, *, replace: bool = False, submit: bool = False
) -> ImportSummary:
    """附件3 rows become contacts; with ``submit``, the roster task of each city it lists is
    submitted by ``ctx.actor`` (the city itself, or an administrator on its behalf).

    With ``replace`` the file is the complete staff list of the organisations it names, for the
    programs it names: roster people of those organisations who are no longer on it stop
    receiving mail (deactivated, not deleted: their history stays readable). Applicants'
    contacts from application files are left alone.
    """
    rows = parse_roster(path, words=stored_roster_words(session))
    if submit:
        _check_roster_submitter(session, ctx)
    ctx.audit.lock(session)  # contacts are looked up, then inserted: one importer at a time
    resolved = _resolve_people(session, path, rows)
    summary = ImportSummary(file=path.name, digest=file_digest(path), rows=len(rows))
    _upsert_people(session, ctx, resolved, summary, source=lambda row: f"{path.name} 第{row.row}行")
    retired: list[str] = []
    if replace:
        listed = {(org.id, row.name, row.email) for row, org in resolved}
        programs_by_org: dict[str, set[str]] = {}
        for row, org in resolved:
            programs_by_org.setdefault(org.id, set()).update(row.programs)
        for org_id, programs in programs_by_org.items():
            for contact in session.exec(
                select(Contact).where(Contact.org_id == org_id, Contact.active.is_(True))  # type: ignore[attr-defined]
            ):
                if (contact.org_id, contact.name, contact.email) in listed or contact.title == "申报联系人":
                    continue
                if not contact.programs or set(contact.programs.split(",")) & programs:
                    retired.append(_retire(session, ctx, contact))
        if retired:
            summary.notes.append(f"不再在名单上的 {len(retired)} 人已停用：{'、'.join(retired)}")
    ctx.audit.append(
        session,
        EventDraft(
            at=ctx.now,
            actor=ctx.actor.label,
            action="import",
            subject=f"roster:{path.name}",
            to_value=summary.digest,
            reason=f"导入工作人员信息汇总表 {path.name}",
            details={
                "rows": len(rows),
                "created": len(summary.created),
                "updated": summary.updated,
                "replace": replace,
                "submit": submit,
                "deactivated": retired,
            }
            | ctx.actor.audit_details(),
        ),
    )
    tasks = _roster_tasks(session, _cities_by_program(resolved))
    if submit:
        for task in tasks:
            act(session, ctx, task, _submission(task), reason=f"随名单 {path.name} 报送")
            summary.notes.append(f"{task.title}（{task.ref}）已报送")
    else:
        # Said out loud: before, this import alone marked the task done, and people may expect it.
        for task in tasks:
            summary.notes.append(
                f"{task.title}（{task.ref}）仍为待报送：由设区市报送（加 --submit，或 case act {task.ref} {_submission(task)}）"
            )
    return summary


def _submission(task: Case) -> str:
    """The roster machine's action of role ``submit`` from the task's state."""
    return machine_for(task.kind, task.campaign_id).action_for("submit", task.state) or "submit"


def import_directory(
    session: Session, ctx: Ctx, path: Path, *, source: str | None = None, replace_source: str | None = None
) -> ImportSummary:
    """People from any 附件3-shaped file, recorded as coming from ``source`` (by default the file's
    name and today's date, e.g. 「省厅通讯录 2026-05-26」); no task changes.

    A directory is second-hand: it adds and updates people, but never brings back someone a
    roster has retired (an old address book would otherwise restart mail to people who left).
    With ``replace_source`` the file supersedes that earlier source: its people who are not in
    this file are deactivated.
    """
    source = (source or "").strip() or f"{path.stem} {local_date(ctx.now).isoformat()}"
    rows = parse_roster(path, words=stored_roster_words(session))
    ctx.audit.lock(session)
    resolved = _resolve_people(session, path, rows)
    summary = ImportSummary(file=path.name, digest=file_digest(path), rows=len(rows))
    kept_inactive = _upsert_people(
        session, ctx, resolved, summary, source=lambda row: source, reactivate=False
    )
    if kept_inactive:
        summary.notes.append(f"已停用的 {len(kept_inactive)} 人仍保持停用：{'、'.join(kept_inactive)}")
    retired: list[str] = []
    if replace_source is not None:
        listed = {(org.id, row.name, row.email) for row, org in resolved}
        for contact in session.exec(
            select(Contact).where(Contact.source == replace_source, Contact.active.is_(True))  # type: ignore[attr-defined]
        ):
            if (contact.org_id, contact.name, contact.email) not in listed:
                retired.append(_retire(session, ctx, contact))
        summary.notes.append(
            f"「{replace_source}」中不在本表的 {len(retired)} 人已停用"
            + (f"：{'、'.join(retired)}" if retired else "")
        )
    ctx.audit.append(
        session,
        EventDraft(
            at=ctx.now,
            actor=ctx.actor.label,
            action="import",
            subject=f"directory:{source}",
            to_value=summary.digest,
            reason=f"导入通讯录 {path.name}（{source}）",
            details={
                "file": path.name,
                "rows": len(rows),
                "created": len(summary.created),
                "updated": summary.updated,
                "replace_source": replace_source,
                "deactivated": retired,
                "kept_inactive": kept_inactive,
            }
            | ctx.actor.audit_details(),
        ),
    )
    return summary


def _check_roster_submitter(session: Session, ctx: Ctx) -> None:
    """Submitting is the city's act (machines.ROSTER). A province person loading the sheets a
    city mailed in submits on its behalf only explicitly, as an administrator with a reason."""
    actor = ctx.actor
    if actor.is_admin or actor.org_id is None:
        return  # admin passes; a person without an organisation is refused by the action itself
    org = session.get(Organisation, actor.org_id)
    if org is not None and org.tier != "city":
        raise ActionRefused(
            f"随名单报送须由设区市本身办理，{org.name}（{TIER_LABELS.get(org.tier, org.tier)}）不能报送；"
            "代设区市报送请加 --admin 理由（记入审计），或只导入联系人（不加 --submit）",
            rule="roster_submit_by_city",
            data={"org": org.id, "org_tier": org.tier},
        )


def _resolve_people(
    session: Session, path: Path, rows: list[RosterRow]
) -> list[tuple[RosterRow, Organisation]]:
    problems: list[ImportProblem] = []
    resolved: list[tuple[RosterRow, Organisation]] = []
    for row in rows:
        _too_long(
            problems,
            path,
            row.row,
            [
                ("处室/科室", row.department, Contact, "department"),
                ("姓名", row.name, Contact, "name"),
                ("职务", row.title, Contact, "title"),
                ("手机号码(浙政钉号码)", row.mobile_display, Contact, "mobile"),
                ("电子邮箱", row.email, Contact, "email"),
            ],
        )
        org, why = resolve_org(session, row.org)
        if org is None:
            problems.append(
                ImportProblem(path.name, row.row, "市、县(市、区)", why or f"未知的单位：{row.org}")
            )
            continue
        resolved.append((row, org))
    if problems:
        raise ImportRejected(problems)
    return resolved


def _upsert_people(
    session: Session,
    ctx: Ctx,
    resolved: list[tuple[RosterRow, Organisation]],
    summary: ImportSummary,
    *,
    source: Callable[[RosterRow], str],
    reactivate: bool = True,
) -> list[str]:
    """Create or update one contact per row (programs accumulate); returns who stayed inactive."""
    kept_inactive: list[str] = []
    for row, org in resolved:
        programs = ",".join(sorted(row.programs))
        contact = session.exec(
            select(Contact).where(
                Contact.org_id == org.id, Contact.name == row.name, Contact.email == row.email
            )
        ).first()
        if contact is None:
            contact = Contact(org_id=org.id, name=row.name, email=row.email, updated_at=ctx.now)
            summary.created.append(f"{org.name} {row.name}")
        else:
            summary.updated += 1
            # One person on both programs, listed once per program (or in two files): both kept.
            # (A person on every program, programs empty, stays on every program.)
            programs = (
                ",".join(sorted(set(contact.programs.split(",")) | set(row.programs)))
                if contact.programs
                else ""
            )
            if not contact.active and not reactivate:
                kept_inactive.append(f"{contact.name} <{contact.email}>")
        contact.department = row.department or ""
        contact.title = row.title or ""
        contact.mobile = row.mobile_display or row.mobile
        contact.zzd_mobile = row.zzd_mobile
        contact.sms_mobile = row.sms_mobile
        contact.robot = row.robot
        contact.prefers = row.prefers
        contact.programs = programs
        contact.active = contact.active or reactivate
        contact.source = source(row)
        contact.updated_at = ctx.now
        session.add(contact)
    session.flush()
    return kept_inactive


def _retire(session: Session, ctx: Ctx, contact: Contact) -> str:
    contact.active, contact.updated_at = False, ctx.now
    session.add(contact)
    return f"{contact.name} <{contact.email}>"


def _cities_by_program(resolved: list[tuple[RosterRow, Organisation]]) -> dict[str, set[str]]:
    """The cities a roster speaks for: its city rows and its counties' cities, per program."""
    cities: dict[str, set[str]] = {}
    for row, org in resolved:
        if org.city_code and org.tier in ("city", "county"):
            for program in row.programs:
                cities.setdefault(program, set()).add(org.city_code)
    return cities


def _roster_tasks(session: Session, cities_by_program: dict[str, set[str]]) -> list[Case]:
    """Open roster tasks (待报送 or 退回补正: not in a final state) of those cities, for those programs."""
    tasks = session.exec(
        select(Case)
        .where(Case.kind == "roster", col(Case.state).not_in(sorted(machine_for("roster").final)))
        .order_by(Case.ref)
    ).all()
    return [
        task
        for task in tasks
        if task.org_id in cities_by_program.get(get_campaign(session, task.campaign_id).program, set())
    ]


# -- cases ------------------------------------------------------------------------------

CHUNK = 5_000  # rows per executemany: the memory an import holds does not grow with the file


@dataclass(frozen=True)
class CaseSheet:
    """A case file read and checked by one campaign's form, before any lock is taken.

    Reading a large file takes most of an import; done inside the write transaction it would
    hold SQLite's write lock (BEGIN IMMEDIATE) that long and every other writer would wait,
    then fail with 「数据库正忙」. So the operation reads the campaign in a read session and
    streams the file once through every check that needs no database (each cell, each row
    against the earlier ones); only then does the write transaction stream it again, to check
    it against the database and write it in chunks. Between the two only the digest and the
    row count are kept: a million rows are never in memory at once.
    """

    path: Path
    program: str
    rows: int  # good rows, all of them (a file with any problem never gets this far)
    digest: str  # of the bytes read here, recorded in the import's audit event
    form: Any = None  # the campaign file's form (calendars.campaign.FormSpec)
    # A form without the 2026 writers (models.forms, ``_import_form``) is read whole: its files
    # are the size of one campaign's applicants, and its cross-row rules want every row at once.
    form_rows: list[Any] | None = None

    def stream(self, problems: list[ImportProblem]) -> Iterator[FormRow]:
        return iter_form(self.form, self.path, problems)


def _streamed(spec: Any) -> bool:
    """Whether a campaign's applications go through the streamed writers of the two shapes they
    know: a county or a park committee applying (附1-2, ``applicant_tier: county_or_park``), or
    an enterprise that a provincial group or association may recommend directly (附2-3,
    ``recommender``). Any other form is written by ``_import_form``."""
    form = spec.form
    return form is not None and (form.applicant_tier == "county_or_park" or form.recommender is not None)


def _rejected(problems: list[ImportProblem]) -> ImportRejected:
    # Stable sort keeps each row's problems in column order; file-level ones come first.
    return ImportRejected(sorted(problems, key=lambda p: -1 if p.row is None else p.row))


# (what: "checked" or "written", rows so far, rows in the file or 0 while still counting)
ImportProgress = Callable[[str, int, int], None]
PROGRESS_EVERY = 50_000  # rows between two progress reports while checking


def read_cases(spec: Any, path: Path, progress: ImportProgress | None = None) -> CaseSheet:
    """Check every row of ``path`` in the form of ``spec``'s program; touches no database."""
    digest = file_digest(path)
    if spec.form is None:
        raise ImportRejected(
            [ImportProblem(path.name, None, None, f"批次 {spec.id} 的文件没有 form:（申报表），不能导入申报")]
        )
    if not _streamed(spec):
        rows = read_form(spec.form, path)
        return CaseSheet(path, spec.program, len(rows), digest, spec.form, form_rows=rows)
    sheet = CaseSheet(path, spec.program, 0, digest, spec.form)
    problems: list[ImportProblem] = []
    count = 0
    for _row in sheet.stream(problems):
        count += 1
        if progress is not None and count % PROGRESS_EVERY == 0:
            progress("checked", count, 0)
    if problems:
        raise _rejected(problems)
    return CaseSheet(path, spec.program, count, digest, spec.form)


def write_cases(
    session: Session,
    ctx: Ctx,
    campaign_id: str,
    sheet: CaseSheet,
    progress: ImportProgress | None = None,
    *,
    chunk: int = CHUNK,
) -> ImportSummary:
    """Check the rows against the database and write them, all or none: every chunk goes into
    the caller's one transaction, so a bad row 900,000 (a county the database does not know)
    still leaves nothing written once the caller rolls back."""
    # Case numbers and the duplicate check read what other writers insert: queue behind them
    # (PostgreSQL; SQLite's BEGIN IMMEDIATE already does) instead of colliding on CL26-00001.
    ctx.audit.lock(session)
    spec = get_campaign(session, campaign_id).spec()
    if spec.program != sheet.program:
        # The campaign was reloaded as another program between the read and the write.
        raise ValueError(f"{sheet.path.name}：活动 {campaign_id} 的申报类型已变为 {spec.program}，请重新导入")
    if file_digest(sheet.path) != sheet.digest:
        raise ImportRejected([ImportProblem(sheet.path.name, None, None, "文件在校验之后被修改，请重新导入")])
    sheet = CaseSheet(sheet.path, sheet.program, sheet.rows, sheet.digest, spec.form, sheet.form_rows)
    if not _streamed(spec):
        return _import_form(session, ctx, spec, sheet)
    assert spec.form is not None  # read_cases refuses a campaign without one
    writer = _CaseWriter(session, ctx, spec, sheet, progress, chunk)
    if spec.form.applicant_tier == "county_or_park":
        return _import_counties_and_parks(session, ctx, spec, sheet, writer)
    return _import_enterprises_with_recommenders(session, ctx, spec, sheet, writer)


def _import_form(session: Session, ctx: Ctx, spec: Any, sheet: CaseSheet) -> ImportSummary:
    """Rows of a form the campaign file declares: one case each, all or none."""
    form = spec.form
    path, rows = sheet.path, cast(list[FormRow], sheet.form_rows)
    problems: list[ImportProblem] = []
    counties = _Counties(session, path, form.field(form.county).label)
    seen = {
        tuple(str((attrs or {}).get(k) or "") for k in form.unique): ref
        for ref, attrs in session.exec(
            select(Case.ref, Case.attrs).where(Case.campaign_id == spec.id, Case.kind == form.kind)
        ).all()
    }
    _existing_keys, by_external = _existing(session, spec.id)
    planned: list[tuple[FormRow, Organisation, str]] = []
    for row in rows:
        title = title_of(form, row.values)
        _too_long(problems, path, row.row, [(form.field(form.applicant).label, title, Case, "title")])
        county = counties(str(row.values[form.county]), row.row, problems)
        if county is None:
            continue
        key = tuple(str(row.values.get(k) or "") for k in form.unique)
        if key in seen:
            problems.append(
                ImportProblem(
                    path.name,
                    row.row,
                    form.field(form.unique[-1]).label,
                    already_imported(form, row.values, seen[key]),
                )
            )
        _external_taken(
            problems,
            path,
            row.row,
            form.field("external_id").label,
            row.values.get("external_id"),
            by_external,
        )
        applicant = str(row.values[form.applicant])
        org_id = county.id if form.applicant_tier == "county" else _org_id("ENT", applicant)
        planned.append((row, county, org_id))
    if problems:
        raise ImportRejected(problems)
    summary = ImportSummary(file=path.name, digest=sheet.digest, rows=len(rows), notes=counties.notes())
    orgs: dict[str, Organisation] = {}
    allocate = RefAllocator(session, spec, form.kind)
    new_rows: list[dict[str, Any]] = []
    for row, county, org_id in planned:
        values = row.values
        if org_id != county.id:
            _ensure_org(
                session,
                orgs,
                org_id,
                name=str(values[form.applicant]),
                tier="enterprise",
                city_code=county.city_code,
                county_code=county.id,
                mountain_island=county.mountain_island,
            )
        name, phone, email = (
            values.get(k) if k else None for k in (form.contact_name, form.contact_phone, form.contact_email)
        )
        _add_contact(
            session,
            ctx,
            org_id,
            name,
            phone,
            email,
            spec.program,
            f"{path.name} 第{row.row}行",
        )
        new_rows.append(
            {
                "ref": allocate(),
                "kind": form.kind,
                "org_id": org_id,
                "city_code": county.city_code,
                "county_code": county.id,
                "title": title_of(form, values),
                "track": values.get("track"),
                "category": values.get("category"),
                "external_id": values.get("external_id"),
                "attrs": values | {"source_row": row.row},
            }
        )
    session.flush()
    summary.organisations = len(orgs)
    summary.created = bulk_new_cases(session, ctx, spec, new_rows, reason=f"导入 {path.name}")
    ctx.audit.append(session, _import_event(ctx, spec.id, path, summary))
    return summary


def import_cases(session: Session, ctx: Ctx, campaign_id: str, path: Path) -> ImportSummary:
    """Read and write in the caller's one transaction (it holds the write lock while parsing;
    operations.acts.import_cases reads first instead)."""
    spec = get_campaign(session, campaign_id).spec()
    return write_cases(session, ctx, campaign_id, read_cases(spec, path))


def _county_of(
    session: Session, name: str, path: Path, row: int, column: str, problems: list[ImportProblem]
) -> Organisation | None:
    division, why = county_named(name)
    if division is None:
        problems.append(ImportProblem(path.name, row, column, cast(str, why)))
        return None
    return session.get(Organisation, division.code)


class _Counties:
    """``_county_of`` once per spelling: a million rows name ninety counties."""

    def __init__(self, session: Session, path: Path, column: str) -> None:
        self.session, self.path, self.column = session, path, column
        self.found: dict[str, tuple[Organisation | None, list[str]]] = {}
        # Spellings that reached their county only approximately (吴兴县 for 吴兴区): the
        # summary says how each was read, with the first row that wrote it.
        self.read_as: dict[str, tuple[str, int]] = {}

    def __call__(self, name: str, row: int, problems: list[ImportProblem]) -> Organisation | None:
        if name not in self.found:
            said: list[ImportProblem] = []
            county = _county_of(self.session, name, self.path, row, self.column, said)
            self.found[name] = (county, [p.message for p in said])
            division = county_named(name)[0]
            official = read_as(name, division) if division is not None else None
            if official is not None:
                self.read_as[name] = (official, row)
        county, messages = self.found[name]
        problems.extend(ImportProblem(self.path.name, row, self.column, m) for m in messages)
        return county

    def notes(self) -> list[str]:
        return [
            f"{self.column}“{name}”按“{official}”导入（第{row}行起）"
            for name, (official, row) in self.read_as.items()
        ]


def _existing(session: Session, campaign_id: str) -> tuple[dict[tuple[str, str], str], dict[str, str]]:
    """The campaign's applications by (organisation, item) and by platform number, each to its ref."""
    rows = session.exec(
        select(Case.ref, Case.org_id, Case.track, Case.title, Case.external_id).where(
            Case.campaign_id == campaign_id
        )
    ).all()
    # An application of counties and parks is one applicant and item (its track, 细分赛道); an
    # enterprise's one enterprise and item, which only its title ("企业：产品") carries (its track
    # is a cluster that many of its products share).
    keys = {(org_id, track or title): ref for ref, org_id, track, title, _ext in rows}
    keys |= {(org_id, title): ref for ref, org_id, _track, title, _ext in rows}
    by_external = {ext: ref for ref, _o, _t, _ti, ext in rows if ext}
    return keys, by_external


def _ensure_org(session: Session, cache: dict[str, Organisation], org_id: str, **fields: Any) -> Organisation:
    org = cache.get(org_id) or session.get(Organisation, org_id)
    if org is None:
        org = Organisation(id=org_id, **fields)
        session.add(org)
    cache[org_id] = org
    return org


def _ensure_park(
    session: Session, cache: dict[str, Organisation], org_id: str, name: str, county: Organisation
) -> Organisation:
    """A park committee applying under its county (created by an import or a platform sync)."""
    return _ensure_org(session, cache, org_id, **_park_fields(name, county))


def _park_fields(name: str, county: Organisation) -> dict[str, Any]:
    return {
        "name": name,
        "tier": "park",
        "city_code": county.city_code,
        "county_code": county.id,
        "mountain_island": county.mountain_island,
    }


def _add_contact(
    session: Session,
    ctx: Ctx,
    org_id: str,
    name: str | None,
    phone: str | None,
    email: str | None,
    program: str,
    source: str,
) -> None:
    """An applicant's contact from a declared form's row (the built-in forms go through
    ``_CaseWriter.contact``, in chunks)."""
    if not (name and email):
        return
    contact = session.exec(
        select(Contact).where(Contact.org_id == org_id, Contact.name == name, Contact.email == email)
    ).first()
    if contact is None:
        session.add(
            Contact(
                org_id=org_id,
                name=name,
                email=email,
                mobile=phone or "",
                programs=program,
                title="申报联系人",
                source=source,
                updated_at=ctx.now,
            )
        )


class _CaseWriter:
    """The organisations, applicant contacts and cases of one import, written ``CHUNK`` rows at a
    time with Core executemany (and one audit event per case), all in the caller's transaction.

    Only what is not yet written is held, plus the ids of the organisations and contacts
    already seen (a few hundred thousand short strings for a million rows)."""

    def __init__(
        self,
        session: Session,
        ctx: Ctx,
        spec: Any,
        sheet: CaseSheet,
        progress: ImportProgress | None,
        chunk: int,
    ) -> None:
        self.session, self.ctx, self.spec, self.path = session, ctx, spec, sheet.path
        self.total, self.progress, self.chunk = sheet.rows, progress, chunk
        kind = spec.form.kind
        self.allocate = RefAllocator(session, spec, kind)
        self.cases: list[dict[str, Any]] = []
        self.new_orgs: dict[str, dict[str, Any]] = {}
        self.orgs: set[str] = set()  # every organisation the file names, existing or new
        self.new_contacts: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.contacts: set[tuple[str, str, str]] = set()
        self.created: list[str] = []

    def org(self, org_id: str, fields: dict[str, Any]) -> None:
        if org_id not in self.orgs:
            self.orgs.add(org_id)
            self.new_orgs[org_id] = {"id": org_id, **fields}

    def contact(
        self, org_id: str, name: str | None, phone: str | None, email: str | None, program: str, row: int
    ) -> None:
        if not (name and email) or (org_id, name, email) in self.contacts:
            return
        self.contacts.add((org_id, name, email))
        self.new_contacts[(org_id, name, email)] = {
            "org_id": org_id,
            "name": name,
            "email": email,
            "mobile": phone or "",
            "programs": program,
            "title": "申报联系人",
            "department": "",
            "active": True,
            "source": f"{self.path.name} 第{row}行",
            "updated_at": self.ctx.now,
        }

    def case(self, row: dict[str, Any]) -> None:
        row["ref"] = self.allocate()
        self.cases.append(row)
        if len(self.cases) >= self.chunk:
            self.flush()

    def flush(self) -> None:
        session = self.session
        if self.new_orgs:
            ids = sorted(self.new_orgs)
            there: set[str] = set()
            for start in range(0, len(ids), 900):  # SQLite's bound-parameter limit
                chunk = ids[start : start + 900]
                there.update(
                    session.exec(select(Organisation.id).where(col(Organisation.id).in_(chunk))).all()
                )
            rows = [o for i, o in self.new_orgs.items() if i not in there]
            if rows:
                session.execute(insert(Organisation), rows)
            self.new_orgs = {}
        if self.new_contacts:
            org_ids = sorted({k[0] for k in self.new_contacts})
            known: set[tuple[str, str, str]] = set()
            for start in range(0, len(org_ids), 900):
                chunk = org_ids[start : start + 900]
                known.update(
                    (o, n, e)
                    for o, n, e in session.exec(
                        select(Contact.org_id, Contact.name, Contact.email).where(
                            col(Contact.org_id).in_(chunk)
                        )
                    ).all()
                )
            rows = [c for k, c in self.new_contacts.items() if k not in known]
            if rows:
                session.execute(insert(Contact), rows)
            self.new_contacts = {}
        if self.cases:
            self.created += bulk_new_cases(
                session, self.ctx, self.spec, self.cases, reason=f"导入 {self.path.name}"
            )
            self.cases = []
            if self.progress is not None:
                self.progress("written", len(self.created), self.total)


def _long_cells(form: Any, row: FormRow, title: str) -> list[tuple[str, str | None, Any, str]]:
    """The cells of a row that go into length-limited columns: the applicant (an organisation's
    name), the title, a recommender, the case's indexed text columns and the contact."""
    from calendars.campaign import case_column_of

    values = row.values

    def label(key: str | None) -> str:
        f = form.field(key) if key else None
        return f.label if f is not None else ""

    applicant = values.get(form.applicant)
    checks: list[tuple[str, str | None, Any, str]] = [
        (label(form.applicant), applicant, Organisation, "name")
    ]
    if title != applicant:
        checks.append((label(form.unique[-1]), title, Case, "title"))
    if form.recommender:
        field = form.recommender.field
        checks.append((label(field), values.get(field), Organisation, "name"))
    for f in form.fields:
        column = case_column_of(f)
        if column in ("track", "external_id") and isinstance(values.get(f.key), str):
            checks.append((f.label, values[f.key], Case, column))
    for key, name in (
        (form.contact_name, "name"),
        (form.contact_phone, "mobile"),
        (form.contact_email, "email"),
    ):
        if key:
            checks.append((label(key), values.get(key), Contact, name))
    return checks


def _external_taken(
    problems: list[ImportProblem],
    path: Path,
    row: int,
    label: str,
    external: Any,
    by_external: dict[str, str],
) -> None:
    """A platform number (外部编号) names one case: a row bringing one already taken is refused."""
    if external and external in by_external:
        problems.append(
            ImportProblem(path.name, row, label, f"外部编号 {external} 已对应案件 {by_external[external]}")
        )


def _row_basics(
    form: Any, row: FormRow, counties: _Counties, problems: list[ImportProblem], path: Path
) -> tuple[str, dict[str, Any], str, str, Any, Organisation | None]:
    """What both streamed writers read first of a row: its title (length-checked with the other
    long cells), its case columns, the applicant, the item that makes it unique (the form's last
    unique field), its platform number and its county (None: a problem is recorded)."""
    values = row.values
    title = title_of(form, values)
    _too_long(problems, path, row.row, _long_cells(form, row, title))
    columns = _columns(form, row)
    county = counties(str(values[form.county]), row.row, problems)
    return (
        title,
        columns,
        str(values[form.applicant]),
        str(values[form.unique[-1]]),
        columns.get("external_id"),
        county,
    )


def _columns(form: Any, row: FormRow) -> dict[str, Any]:
    """The case's indexed columns a row fills (track, zone_type, category, external_id …)."""
    from calendars.campaign import case_column_of

    out: dict[str, Any] = {}
    for f in form.fields:
        column = case_column_of(f)
        if column is not None:
            out[column] = row.values.get(f.key)
    return out


def _contact_of(form: Any, row: FormRow) -> tuple[str | None, str | None, str | None]:
    return cast(
        tuple[str | None, str | None, str | None],
        tuple(
            row.values.get(k) if k else None
            for k in (form.contact_name, form.contact_phone, form.contact_email)
        ),
    )


def _import_counties_and_parks(
    session: Session, ctx: Ctx, spec: Any, sheet: CaseSheet, writer: _CaseWriter
) -> ImportSummary:
    """A form of ``applicant_tier: county_or_park``: a county or a park committee applies, a park
    gets its organisation under its county; one application per applicant and item (the form's
    last unique field)."""
    path, form = sheet.path, spec.form
    county_label = form.field(form.county).label
    item_label = form.field(form.unique[-1]).label
    external_label = form.column_field("external_id").label if form.column_field("external_id") else ""
    problems: list[ImportProblem] = []
    existing, by_external = _existing(session, spec.id)
    counties = _Counties(session, path, county_label)
    applicants: dict[str, str | None] = {}
    rows = 0
    for row in sheet.stream(problems):
        rows += 1
        title, columns, applicant_name, item, external, county = _row_basics(
            form, row, counties, problems, path
        )
        if county is None:
            continue
        if row.is_park:
            org_id = _org_id("PARK", county.id, applicant_name)
        else:
            if applicant_name not in applicants:
                applicant, _ = resolve_org(session, applicant_name)
                applicants[applicant_name] = applicant.id if applicant is not None else None
            org_id = applicants[applicant_name] or _org_id("PARK", county.id, applicant_name)
        if (org_id, item) in existing:
            problems.append(
                ImportProblem(
                    path.name,
                    row.row,
                    item_label,
                    already_imported(form, row.values, existing[(org_id, item)]),
                )
            )
        _external_taken(problems, path, row.row, external_label, external, by_external)
        if problems:
            continue  # nothing more is written (the transaction will roll back), every row still checked
        if org_id != county.id:
            writer.org(org_id, _park_fields(applicant_name, county))
        writer.contact(org_id, *_contact_of(form, row), spec.program, row.row)
        writer.case(
            {
                "kind": form.kind,
                "org_id": org_id,
                "city_code": county.city_code,
                "county_code": county.id,
                "title": title,
                **columns,
                "attrs": attrs_of(form, row),
            }
        )
    if problems:
        raise _rejected(problems)
    writer.flush()
    summary = ImportSummary(
        file=path.name, digest=sheet.digest, rows=rows, created=writer.created, notes=counties.notes()
    )
    summary.organisations = len(writer.orgs)
    ctx.audit.append(session, _import_event(ctx, spec.id, path, summary))
    return summary


def _not_a_recommender(recommender: RecommenderSpec, name: str) -> str:
    """Why a named recommender is refused, in the form's own words for the tiers."""

    def words(tier: str) -> str:
        return "“" + "”“".join(getattr(recommender, tier)) + "”"

    return (
        f"「{name}」不是设区市、{TIER_LABELS['soe_group']}（名称含{words('soe_group')}之一）"
        f"或{TIER_LABELS['association']}（名称含{words('association')}之一）"
    )


def _import_enterprises_with_recommenders(
    session: Session, ctx: Ctx, spec: Any, sheet: CaseSheet, writer: _CaseWriter
) -> ImportSummary:
    """A form of ``applicant_tier: enterprise`` with a ``recommender:`` field: an enterprise
    applies in its county, recommended by its city or directly by the SOE group or association
    the field names (told apart by the form's words); one application per title."""
    path, form = sheet.path, spec.form
    county_label = form.field(form.county).label
    item_label = form.field(form.unique[-1]).label
    external_label = form.column_field("external_id").label if form.column_field("external_id") else ""
    recommender_label = form.field(form.recommender.field).label if form.recommender else ""
    problems: list[ImportProblem] = []
    existing, by_external = _existing(session, spec.id)
    counties = _Counties(session, path, county_label)
    recommenders: dict[str, tuple[str, str]] = {}  # id -> (name, tier): SOE groups and associations
    rows = 0
    for row in sheet.stream(problems):
        rows += 1
        values = row.values
        title, columns, enterprise, _item, external, county = _row_basics(form, row, counties, problems, path)
        if county is None:
            continue
        ent_id = _org_id("ENT", enterprise)
        if (ent_id, title) in existing:
            problems.append(
                ImportProblem(
                    path.name, row.row, item_label, already_imported(form, values, existing[(ent_id, title)])
                )
            )
        _external_taken(problems, path, row.row, external_label, external, by_external)
        recommender_id: str | None = None
        named = values.get(form.recommender.field) if form.recommender else None
        if named:
            rec_div = load_divisions().resolve(named)
            if rec_div is not None and rec_div.tier == "city":
                recommender_id = None  # the city itself: the default
            else:
                tier = form.recommender.tier_of(named)
                if tier is None:
                    problems.append(
                        ImportProblem(
                            path.name, row.row, recommender_label, _not_a_recommender(form.recommender, named)
                        )
                    )
                    continue
                recommender_id = _org_id("SOE" if tier == "soe_group" else "ASSOC", named)
                recommenders[recommender_id] = (named, tier)
        if problems:
            continue  # nothing more is written (the transaction will roll back), every row still checked
        writer.org(
            ent_id,
            {
                "name": enterprise,
                "tier": "enterprise",
                "city_code": county.city_code,
                "county_code": county.id,
                "mountain_island": county.mountain_island,
            },
        )
        if recommender_id is not None:
            name, tier = recommenders[recommender_id]
            writer.org(
                recommender_id,
                {
                    "name": name,
                    "tier": tier,
                    "city_code": None,
                    "county_code": None,
                    "mountain_island": False,
                },
            )
        writer.contact(ent_id, *_contact_of(form, row), spec.program, row.row)
        writer.case(
            {
                "kind": form.kind,
                "org_id": ent_id,
                "city_code": county.city_code,
                "county_code": county.id,
                "title": title,
                **columns,
                "recommender_id": recommender_id,
                "attrs": attrs_of(form, row),
            }
        )
    if problems:
        raise _rejected(problems)
    writer.flush()
    # SOE groups and associations recommend directly: each gets its recommendation case.
    for org_id in sorted(recommenders):
        org = session.get(Organisation, org_id)
        if org is None or org.tier not in ("soe_group", "association"):
            continue
        ref = city_case_ref(session, spec, "recommendation", org_id)
        if session.exec(select(Case.id).where(Case.ref == ref)).first() is None:
            new_case(
                session,
                ctx,
                spec,
                kind="recommendation",
                ref=ref,
                org_id=org_id,
                city_code=None,
                county_code=None,
                title=f"{org.name}推荐报送",
                reason=f"导入 {path.name}",
            )
    summary = ImportSummary(
        file=path.name, digest=sheet.digest, rows=rows, created=writer.created, notes=counties.notes()
    )
    summary.organisations = len(writer.orgs)
    ctx.audit.append(session, _import_event(ctx, spec.id, path, summary))
    return summary


def _import_event(ctx: Ctx, campaign_id: str, path: Path, summary: ImportSummary) -> EventDraft:
    return EventDraft(
        at=ctx.now,
        actor=ctx.actor.label,
        action="import",
        subject=f"import:{path.name}",
        campaign_id=campaign_id,
        to_value=summary.digest,
        reason=f"导入申报 {path.name}",
        details={
            "rows": summary.rows,
            "created": len(summary.created),
            "first": summary.created[0] if summary.created else None,
            "last": summary.created[-1] if summary.created else None,
        },
    )
