"""Writing imported files into the engine, all or nothing.

``models.sheets`` turns a file into typed rows or a list of problems; this module resolves the
organisations the rows name, checks them against what the database already holds, and only when
nothing at all is wrong writes every row, plus one audit event for the import and one per new
case. A file with one bad row changes nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from sqlmodel import Session, select

from models.actions import act
from models.audit import EventDraft
from models.campaign import get_campaign
from models.case import Case
from models.context import Ctx
from models.eligibility import clusters_by_subtrack
from models.org import Contact, Organisation
from models.reference import load_divisions
from models.registry import RefAllocator, bulk_new_cases, city_case_ref, new_case
from models.sheets import (
    ClusterApplicationRow,
    ImportProblem,
    ImportRejected,
    JingpinApplicationRow,
    parse_cluster_applications,
    parse_jingpin_applications,
    parse_roster,
)


@dataclass
class ImportSummary:
    file: str
    digest: str
    rows: int = 0
    created: list[str] = field(default_factory=list)
    updated: int = 0
    organisations: int = 0
    notes: list[str] = field(default_factory=list)


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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


# -- rosters --------------------------------------------------------------------------------


def import_roster(session: Session, ctx: Ctx, path: Path, *, replace: bool = False) -> ImportSummary:
    """附件3 rows become contacts; each city's roster task for those programs is marked submitted.

    With ``replace`` the file is the complete staff list of the organisations it names, for the
    programs it names: roster people of those organisations who are no longer on it stop
    receiving mail (deactivated, not deleted: their history stays readable). Applicants'
    contacts from application files are left alone.
    """
    rows = parse_roster(path)
    ctx.audit.lock(session)  # contacts are looked up, then inserted: one importer at a time
    problems: list[ImportProblem] = []
    resolved: list[tuple[Any, Organisation]] = []
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

    summary = ImportSummary(file=path.name, digest=file_digest(path), rows=len(rows))
    cities_by_program: dict[str, set[str]] = {}
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
            programs = ",".join(sorted(set(contact.programs.split(",")) | set(row.programs)))
        contact.department = row.department or ""
        contact.title = row.title or ""
        contact.mobile = row.mobile_display or row.mobile
        contact.programs = programs
        contact.active = True
        contact.source = f"{path.name} 第{row.row}行"
        contact.updated_at = ctx.now
        session.add(contact)
        if org.city_code and org.tier in ("city", "county"):
            for program in row.programs:
                cities_by_program.setdefault(program, set()).add(org.city_code)
    session.flush()
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
                if set(contact.programs.split(",")) & programs:
                    contact.active, contact.updated_at = False, ctx.now
                    session.add(contact)
                    retired.append(f"{contact.name} <{contact.email}>")
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
                "deactivated": retired,
            },
        ),
    )
    summary.notes += _submit_roster_tasks(session, ctx, cities_by_program, path.name)
    return summary


def _submit_roster_tasks(
    session: Session, ctx: Ctx, cities_by_program: dict[str, set[str]], fname: str
) -> list[str]:
    notes: list[str] = []
    tasks = session.exec(
        select(Case).where(Case.kind == "roster", Case.state.in_(("pending", "returned")))  # type: ignore[attr-defined]
    ).all()
    for task in tasks:
        program = get_campaign(session, task.campaign_id).program
        if task.org_id in cities_by_program.get(program, set()):
            # A consequence of the import, like a cascade: the engine records it, whoever imported
            # (the city itself, or the province loading the sheets it collected).
            act(session, ctx.as_system(), task, "submit", reason=f"导入 {fname}（{ctx.actor.label}）")
            notes.append(f"{task.title}（{task.ref}）已报送")
    return notes


# -- cases ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseSheet:
    """A case file read and typed for one campaign's program, before any lock is taken.

    Reading 50,000 rows takes most of an import; done inside the write transaction it would
    hold SQLite's write lock (BEGIN IMMEDIATE) that long and every other writer would wait,
    then fail with 「数据库正忙」. So the operation reads the campaign in a read session,
    parses, and only then opens the write transaction for the checks against the database.
    """

    path: Path
    program: str
    rows: list[ClusterApplicationRow] | list[JingpinApplicationRow]
    digest: str  # of the bytes read here, recorded in the import's audit event


def read_cases(spec: Any, path: Path) -> CaseSheet:
    """The rows of ``path`` in the form of ``spec``'s program; touches no database."""
    digest = file_digest(path)
    if spec.program == "cluster":
        clusters = clusters_by_subtrack(spec.cluster) if spec.cluster is not None else None
        return CaseSheet(path, "cluster", parse_cluster_applications(path, clusters=clusters), digest)
    return CaseSheet(path, spec.program, parse_jingpin_applications(path), digest)


def write_cases(session: Session, ctx: Ctx, campaign_id: str, sheet: CaseSheet) -> ImportSummary:
    """Check the parsed rows against the database and write them, all or none."""
    # Case numbers and the duplicate check read what other writers insert: queue behind them
    # (PostgreSQL; SQLite's BEGIN IMMEDIATE already does) instead of colliding on CL26-00001.
    ctx.audit.lock(session)
    spec = get_campaign(session, campaign_id).spec()
    if spec.program != sheet.program:
        # The campaign was reloaded as another program between the read and the write.
        raise ValueError(f"{sheet.path.name}：活动 {campaign_id} 的申报类型已变为 {spec.program}，请重新导入")
    if spec.program == "cluster":
        return _import_cluster(session, ctx, spec, sheet)
    return _import_jingpin(session, ctx, spec, sheet)


def import_cases(session: Session, ctx: Ctx, campaign_id: str, path: Path) -> ImportSummary:
    """Read and write in the caller's one transaction (it holds the write lock while parsing;
    operations.acts.import_cases reads first instead)."""
    spec = get_campaign(session, campaign_id).spec()
    return write_cases(session, ctx, campaign_id, read_cases(spec, path))


def _county_of(
    session: Session, name: str, path: Path, row: int, column: str, problems: list[ImportProblem]
) -> Organisation | None:
    division, why = load_divisions().resolve_or_explain(name)
    if division is None or division.tier != "county":
        problems.append(ImportProblem(path.name, row, column, why or f"「{name}」不是县（市、区）"))
        return None
    return session.get(Organisation, division.code)


def _existing(session: Session, campaign_id: str) -> tuple[set[tuple[str, str]], dict[str, str]]:
    rows = session.exec(
        select(Case.ref, Case.org_id, Case.track, Case.title, Case.external_id).where(
            Case.campaign_id == campaign_id
        )
    ).all()
    # A cluster application is one applicant and 细分赛道; a 精品 application one enterprise and
    # product, which only its title ("企业：产品") carries (its track is the 415X cluster).
    keys = {(org_id, track or title) for _ref, org_id, track, title, _ext in rows}
    keys |= {(org_id, title) for _ref, org_id, _track, title, _ext in rows}
    by_external = {ext: ref for ref, _o, _t, _ti, ext in rows if ext}
    return keys, by_external


def _ensure_org(session: Session, cache: dict[str, Organisation], org_id: str, **fields: Any) -> Organisation:
    org = cache.get(org_id) or session.get(Organisation, org_id)
    if org is None:
        org = Organisation(id=org_id, **fields)
        session.add(org)
    cache[org_id] = org
    return org


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


def _import_cluster(session: Session, ctx: Ctx, spec: Any, sheet: CaseSheet) -> ImportSummary:
    path, rows = sheet.path, cast(list[ClusterApplicationRow], sheet.rows)
    problems: list[ImportProblem] = []
    existing, by_external = _existing(session, spec.id)
    planned: list[tuple[ClusterApplicationRow, Organisation, str, str]] = []
    for row in rows:
        _too_long(
            problems,
            path,
            row.row,
            [
                ("申报单位", row.applicant, Organisation, "name"),
                ("细分赛道", row.track, Case, "track"),
                ("外部编号", row.external_id, Case, "external_id"),
                ("集群联系人", row.contact_name, Contact, "name"),
                ("联系人手机", row.contact_mobile_display, Contact, "mobile"),
                ("联系人邮箱", row.contact_email, Contact, "email"),
            ],
        )
        county = _county_of(session, row.county, path, row.row, "所在县（市、区）", problems)
        if county is None:
            continue
        if row.is_park:
            org_id = _org_id("PARK", county.id, row.applicant)
        else:
            applicant, _ = resolve_org(session, row.applicant)
            org_id = applicant.id if applicant is not None else _org_id("PARK", county.id, row.applicant)
        if (org_id, row.track) in existing:
            problems.append(
                ImportProblem(
                    path.name,
                    row.row,
                    "细分赛道",
                    f"「{row.applicant}」的「{row.track}」申报已在本批次中，不能重复导入",
                )
            )
        if row.external_id and row.external_id in by_external:
            problems.append(
                ImportProblem(
                    path.name,
                    row.row,
                    "外部编号",
                    f"外部编号 {row.external_id} 已对应案件 {by_external[row.external_id]}",
                )
            )
        planned.append((row, county, org_id, row.track))
    if problems:
        raise ImportRejected(problems)

    summary = ImportSummary(file=path.name, digest=sheet.digest, rows=len(rows))
    orgs: dict[str, Organisation] = {}
    allocate = RefAllocator(session, spec, "cluster_application")
    new_rows: list[dict[str, Any]] = []
    for row, county, org_id, track in planned:
        if org_id != county.id:
            _ensure_org(
                session,
                orgs,
                org_id,
                name=row.applicant,
                tier="park",
                city_code=county.city_code,
                county_code=county.id,
                mountain_island=county.mountain_island,
            )
        _add_contact(
            session,
            ctx,
            org_id,
            row.contact_name,
            row.contact_mobile_display,
            row.contact_email,
            "cluster",
            f"{path.name} 第{row.row}行",
        )
        highland = row.cluster_name if row.zone_type == "rising_star" else None
        cluster = row.cluster_name if row.zone_type != "rising_star" else None
        new_rows.append(
            {
                "ref": allocate(),
                "kind": "cluster_application",
                "org_id": org_id,
                "city_code": county.city_code,
                "county_code": county.id,
                "title": row.applicant,
                "zone_type": row.zone_type,
                "track": track,
                "external_id": row.external_id,
                "attrs": {
                    "applicant": row.applicant,
                    "cluster": cluster,
                    "highland": highland,
                    "subtrack": track,
                    "x_system": row.x_system,
                    "revenue": str(row.revenue_2025),
                    "chain_leaders": row.chain_leaders,
                    "innovation_platforms": row.innovation_platforms,
                    "rd_centres": row.rd_institutions,
                    "world_class": row.world_class,
                    "contact_name": row.contact_name,
                    "contact_mobile": row.contact_mobile_display,
                    "contact_email": row.contact_email,
                    "source_row": row.row,
                },
            }
        )
    session.flush()
    summary.organisations = len(orgs)
    summary.created = bulk_new_cases(session, ctx, spec, new_rows, reason=f"导入 {path.name}")
    ctx.audit.append(session, _import_event(ctx, spec.id, path, summary))
    return summary


def _recommender_tier(name: str) -> str | None:
    if "协会" in name or "学会" in name or "联合会" in name:
        return "association"
    if "国资委" in name or "集团" in name or "控股" in name:
        return "soe_group"
    return None


def _import_jingpin(session: Session, ctx: Ctx, spec: Any, sheet: CaseSheet) -> ImportSummary:
    path, rows = sheet.path, cast(list[JingpinApplicationRow], sheet.rows)
    problems: list[ImportProblem] = []
    existing, by_external = _existing(session, spec.id)
    planned: list[tuple[JingpinApplicationRow, Organisation, str, str | None]] = []
    for row in rows:
        _too_long(
            problems,
            path,
            row.row,
            [
                ("企业名称", row.enterprise, Organisation, "name"),
                ("产品名称及型号", f"{row.enterprise}：{row.product}", Case, "title"),
                ("推荐单位", row.recommender, Organisation, "name"),
                ("外部编号", row.external_id, Case, "external_id"),
                ("联系人", row.contact_name, Contact, "name"),
                ("联系电话", row.contact_phone_display, Contact, "mobile"),
                ("联系邮箱", row.contact_email, Contact, "email"),
            ],
        )
        county = _county_of(session, row.county, path, row.row, "所在县（市、区）", problems)
        if county is None:
            continue
        ent_id = _org_id("ENT", row.enterprise)
        if (ent_id, f"{row.enterprise}：{row.product}") in existing:
            problems.append(
                ImportProblem(
                    path.name,
                    row.row,
                    "产品名称及型号",
                    f"「{row.enterprise}」的「{row.product}」已在本批次中，不能重复导入",
                )
            )
        if row.external_id and row.external_id in by_external:
            problems.append(
                ImportProblem(
                    path.name,
                    row.row,
                    "外部编号",
                    f"外部编号 {row.external_id} 已对应案件 {by_external[row.external_id]}",
                )
            )
        recommender_id: str | None = None
        if row.recommender:
            rec_div = load_divisions().resolve(row.recommender)
            if rec_div is not None and rec_div.tier == "city":
                recommender_id = None  # the city itself: the default
            else:
                tier = _recommender_tier(row.recommender)
                if tier is None:
                    problems.append(
                        ImportProblem(
                            path.name,
                            row.row,
                            "推荐单位",
                            f"「{row.recommender}」不是设区市、省属企业集团（名称含“集团”）或省级行业协会（名称含“协会”）",
                        )
                    )
                    continue
                recommender_id = _org_id("SOE" if tier == "soe_group" else "ASSOC", row.recommender)
        planned.append((row, county, ent_id, recommender_id))
    if problems:
        raise ImportRejected(problems)

    summary = ImportSummary(file=path.name, digest=sheet.digest, rows=len(rows))
    orgs: dict[str, Organisation] = {}
    allocate = RefAllocator(session, spec, "jingpin_application")
    new_rows: list[dict[str, Any]] = []
    for row, county, ent_id, recommender_id in planned:
        _ensure_org(
            session,
            orgs,
            ent_id,
            name=row.enterprise,
            tier="enterprise",
            city_code=county.city_code,
            county_code=county.id,
            mountain_island=county.mountain_island,
        )
        if recommender_id is not None:
            assert row.recommender is not None
            tier = _recommender_tier(row.recommender) or "association"
            _ensure_org(session, orgs, recommender_id, name=row.recommender, tier=tier)
        _add_contact(
            session,
            ctx,
            ent_id,
            row.contact_name,
            row.contact_phone_display,
            row.contact_email,
            "jingpin",
            f"{path.name} 第{row.row}行",
        )
        new_rows.append(
            {
                "ref": allocate(),
                "kind": "jingpin_application",
                "org_id": ent_id,
                "city_code": county.city_code,
                "county_code": county.id,
                "title": f"{row.enterprise}：{row.product}",
                "category": row.category,
                "track": row.track,
                "recommender_id": recommender_id,
                "brand_aligned": row.brand_product,
                "external_id": row.external_id,
                "attrs": {
                    "enterprise": row.enterprise,
                    "product": row.product,
                    "track": row.track,
                    "launch_date": row.launch_date.isoformat(),
                    "rd_ratio": str(row.rd_ratio),
                    "avg_sales": str(row.avg_sales),
                    "recommender": row.recommender,
                    "contact_name": row.contact_name,
                    "contact_mobile": row.contact_phone_display,
                    "contact_email": row.contact_email,
                    "source_row": row.row,
                },
            }
        )
    session.flush()
    # SOE groups and associations recommend directly: each gets its recommendation case.
    for org_id, org in orgs.items():
        if org.tier in ("soe_group", "association"):
            ref = city_case_ref(spec, "recommendation", org_id)
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
    summary.organisations = len(orgs)
    summary.created = bulk_new_cases(session, ctx, spec, new_rows, reason=f"导入 {path.name}")
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
