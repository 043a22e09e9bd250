"""Putting things into the engine: divisions, campaigns, and new cases with their numbers.

Loading a campaign creates, for every city, its roster task and its recommendation case, so the
engine can chase a city that has done nothing at all. Re-loading a changed campaign file moves
deadlines through ``set_deadline`` (a recorded event), never silently.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, or_
from sqlmodel import Session, col, select

from calendars.campaign import CampaignFileError, CampaignSpec, Stage, spec_digest
from calendars.campaign_diff import diff_campaigns
from models.actions import ActionRefused, set_deadline
from models.audit import EventDraft
from models.campaign import Campaign, StageDeadline
from models.case import Case
from models.context import Ctx
from models.deadlines import calendar_of, record_stage_deadline, replan_stages
from models.machines import machine_for, register
from models.org import Organisation
from models.reference import load_divisions


def kind_prefix(spec: CampaignSpec, kind: str) -> str:
    """The case-number prefix the campaign file gives the kind (``prefix:``)."""
    return machine_for(kind, spec.id).prefix


def program_code(spec: CampaignSpec) -> str:
    """The campaign's code in its cities' case numbers: its application kind's prefix
    (RC26-CL-330100 is 杭州市's recommendation in the cluster campaign)."""
    return kind_prefix(spec, spec.application_kind)


def seed_divisions(session: Session) -> int:
    """Insert the province, 11 cities and 90 counties if missing; returns how many were added."""
    have = set(session.exec(select(Organisation.id)).all())
    rows = []
    for d in load_divisions():
        if d.code in have:
            continue
        rows.append(
            Organisation(
                id=d.code,
                name=d.name,
                tier=d.tier,
                city_code=d.city_code if d.tier != "province" else None,
                county_code=d.code if d.tier == "county" else None,
                mountain_island=d.mountain_island,
            )
        )
    session.add_all(rows)
    session.flush()
    return len(rows)


def campaign_year(spec: CampaignSpec) -> str:
    return f"{spec.issued.year % 100:02d}"


# The engine's own kinds, one case per city (or recommender) and campaign.
CITY_KINDS = ("recommendation", "roster")


def city_code(session: Session, spec: CampaignSpec) -> str:
    """The campaign's code in its cities' case numbers, unique among the campaigns of its year.

    The application kind's prefix (RC26-CL-330100 is 杭州市's recommendation in the cluster
    campaign), as every existing number reads; a second campaign of the same prefix and year (a
    second cluster batch) takes the next free ordinal, RC26-CL2-330100, so two campaigns never
    share a number. A campaign keeps the code its cases already carry (numbers are never
    rewritten: they are in exports, letters and the audit).
    """
    cache: dict[str, str] = session.info.setdefault("city_codes", {})
    if spec.id in cache:
        return cache[spec.id]
    year, base = campaign_year(spec), program_code(spec)
    prefixes = [kind_prefix(spec, k) if k in spec.kinds else machine_for(k).prefix for k in CITY_KINDS]
    own = session.exec(
        select(Case.ref).where(Case.campaign_id == spec.id, col(Case.kind).in_(CITY_KINDS)).limit(1)
    ).first()
    if own is not None:
        code = own.split("-")[1]
    else:
        n = 1
        while True:
            code = base if n == 1 else f"{base}{n}"
            taken = session.exec(
                select(Case.id)
                .where(
                    Case.campaign_id != spec.id,
                    or_(*(col(Case.ref).like(f"{p}{year}-{code}-%") for p in prefixes)),
                )
                .limit(1)
            ).first()
            if taken is None:
                break
            n += 1
    cache[spec.id] = code
    return code


def city_case_ref(session: Session, spec: CampaignSpec, kind: str, org_id: str) -> str:
    """The number of the campaign's ``kind`` case of one city (or SOE group, association)."""
    return f"{kind_prefix(spec, kind)}{campaign_year(spec)}-{city_code(session, spec)}-{org_id}"


class RefAllocator:
    """Hands out case numbers CL26-00001, JP26-00001 … in one transaction.

    Numbers are per kind and year across campaigns so a ref never repeats; the allocator reads
    the highest number once (imports allocate thousands).
    """

    def __init__(self, session: Session, spec: CampaignSpec, kind: str) -> None:
        self.prefix = f"{kind_prefix(spec, kind)}{campaign_year(spec)}-"
        self.next = self._highest(session) + 1

    def _highest(self, session: Session) -> int:
        # Past CL26-99999 numbers grow a digit (an import of a million rows): the longest are
        # the highest, and "CL26-99999" sorts after "CL26-100000", so each length is asked apart.
        # A ref of the same shape that is not a serial (a city's list RC26-SF-330100 when a kind
        # shares the list's prefix, from a file of an earlier release) is passed over, never read
        # as a number: letters sort after digits, so the highest serial is found within a few rows.
        for digits in range(9, 4, -1):
            refs = session.exec(
                select(Case.ref)
                .where(
                    col(Case.ref).like(self.prefix + "_" * digits),
                    col(Case.ref).not_like(self.prefix + "%-%"),  # a city's case: RC26-SF-330100
                )
                .order_by(col(Case.ref).desc())
            )
            for ref in refs:
                serial = ref[len(self.prefix) :]
                if serial.isascii() and serial.isdigit():
                    return int(serial)
        return 0

    def __call__(self) -> str:
        ref = f"{self.prefix}{self.next:05d}"
        self.next += 1
        return ref


def load_campaign(session: Session, ctx: Ctx, text: str, *, origin: str) -> tuple[Campaign, list[str]]:
    """Load or update a campaign from its file text; returns the campaign and what changed.

    Refused for whatever ``shenbao campaign validate`` refuses: one check, so a file that does not
    validate cannot be loaded (a kind numbered like the cities' lists, roster words another
    program has, a quota keyed by a name)."""
    # campaign_check builds on the engine's guards and machines: imported when needed.
    from models.campaign_check import check_campaign
    from models.imports import stored_programs

    # The programs of the campaigns loaded (one stored by an earlier release in a format this one
    # no longer reads is about to be replaced by init: its words are the built-in file's).
    stored = [spec for c in session.exec(select(Campaign)) if (spec := c.stored_spec()) is not None]
    checked = check_campaign(
        text, origin=origin, programs=stored_programs(session, stored), calendar=calendar_of(session, ctx)
    )
    if checked.problems or checked.spec is None:
        raise CampaignFileError("\n".join(checked.problems))
    spec = checked.spec
    digest = spec_digest(text)
    existing = session.get(Campaign, spec.id)
    changes: list[str] = []
    if existing is not None and existing.spec_digest == digest:
        return existing, changes
    if existing is not None and existing.program != spec.program:
        raise ActionRefused(
            f"{origin}: 批次 {spec.id} 已存在且类型为 {existing.program}，不能改为 {spec.program}",
            rule="program_changed",
        )
    # A text stored by an earlier release may be in a format this one no longer reads (the 2026
    # files' figures became tables:/eligibility:/form:): the new file replaces it, with nothing
    # of the old one to compare but the cases' states and the deadlines in force.
    old_spec = existing.stored_spec() if existing is not None else None
    if existing is not None:
        _refuse_stranding(session, old_spec, spec, origin)
    register(spec)  # its kinds are known from here on (numbers, machines of its cases)
    if existing is None:
        campaign = Campaign(
            id=spec.id,
            program=spec.program,
            name=spec.name,
            spec_text=text,
            spec_digest=digest,
            loaded_at=ctx.now,
        )
        session.add(campaign)
        session.flush()
        for stage in spec.stages:
            session.add(_first_deadline(spec.id, stage, ctx.now, "批次文件"))
        ctx.audit.append(
            session,
            EventDraft(
                at=ctx.now,
                actor=ctx.actor.label,
                action="campaign_load",
                subject=f"campaign:{spec.id}",
                campaign_id=spec.id,
                to_value=digest,
                reason=f"加载批次文件 {origin}",
                # The deadlines the load creates at version 1: the replay starts from them.
                details={
                    "name": spec.name,
                    "stages": [s.id for s in spec.stages],
                    "deadlines": {s.id: _iso(s.deadline) for s in spec.stages},
                },
            ),
        )
        changes.append("新建批次")
    else:
        campaign = existing
        register(spec)  # the old text's parse above registered the old kinds again
        what_changed = (
            diff_campaigns(old_spec, spec)
            if old_spec is not None
            else ["批次文件格式升级：数据库中保存的旧版本文本按本版本格式无法读取，按新文件重新加载"]
        )
        campaign.spec_text, campaign.spec_digest, campaign.name = text, digest, spec.name
        campaign.loaded_at = ctx.now
        session.add(campaign)
        # New stages start at version 1, as a new campaign's do; the replay starts from these.
        added = {
            s.id: _iso(s.deadline) for s in spec.stages if session.get(StageDeadline, (spec.id, s.id)) is None
        }
        ctx.audit.append(
            session,
            EventDraft(
                at=ctx.now,
                actor=ctx.actor.label,
                action="campaign_load",
                subject=f"campaign:{spec.id}",
                campaign_id=spec.id,
                from_value=existing.spec_digest,
                to_value=digest,
                reason=f"更新批次文件 {origin}",
                details={"deadlines": added, "changes": what_changed},
            ),
        )
        changes.append(
            "更新批次文件"
            if old_spec is not None
            else "批次文件格式升级（旧文本无法读取，已按新文件重新加载）"
        )
        if old_spec is not None:
            # What the file changed, as recorded above and as `campaign diff` says it; then what
            # the engine did about it (a deadline event, a re-plan).
            changes += what_changed
        # Without the old text, a stage's old file date is the one in force unless a person
        # moved it (a later version): a date the new file changes is then still applied.
        old_deadlines = (
            {s.id: s.deadline for s in old_spec.stages}
            if old_spec is not None
            else _file_dates_in_force(session, spec.id)
        )
        old_stages = {s.id: s for s in old_spec.stages} if old_spec is not None else {}
        for stage in spec.stages:
            was = old_stages.get(stage.id)
            if (
                was is not None
                and old_deadlines.get(stage.id) == stage.deadline
                and _plan_changed(was, stage)
            ):
                _replan(
                    session,
                    ctx,
                    spec.id,
                    stage,
                    reason=f"批次文件 {origin} 修改了提醒或办理对象，重排提醒",
                )
                changes.append(f"环节 {stage.id} 提醒重排")
        for stage in spec.stages:
            row = session.get(StageDeadline, (spec.id, stage.id))
            if stage.id in added:
                session.add(_first_deadline(spec.id, stage, ctx.now, "批次文件新增环节"))
                changes.append(f"新增环节 {stage.id}")
            elif (
                row is not None
                and stage.id in old_deadlines
                and old_deadlines[stage.id] != stage.deadline
                and row.due_at != stage.deadline
            ):
                set_deadline(
                    session, ctx, spec.id, stage.id, stage.deadline, reason=f"批次文件 {origin} 修改"
                )
                changes.append(f"环节 {stage.id} 截止时间调整")
    session.flush()
    # Relative deadlines ("5 working days after …") are planned from their anchors, as events.
    moved = replan_stages(session, ctx, spec.id, reason="批次文件")
    changes += [f"环节 {m.stage_id} 截止时间按相对规则计算为 {m.describe().split('：', 1)[1]}" for m in moved]
    changes += ensure_city_cases(session, ctx, campaign.id, spec)
    return campaign, changes


def _file_dates_in_force(session: Session, campaign_id: str) -> dict[str, Any]:
    """The stages' deadlines still at their first version (as the file had them): what an
    unreadable old text's dates were, as far as they matter to a reload."""
    rows = session.exec(select(StageDeadline).where(StageDeadline.campaign_id == campaign_id)).all()
    return {r.stage_id: r.due_at for r in rows if r.version == 1}


def _refuse_stranding(session: Session, old: CampaignSpec | None, new: CampaignSpec, origin: str) -> None:
    """A reloaded file must still have every state some case of the campaign is in: a case in a
    state the machine no longer knows could never move again (nor be reminded about)."""
    if not new.kinds:
        return
    rows = session.exec(
        select(Case.kind, Case.state, Case.ref).where(Case.campaign_id == new.id).order_by(Case.ref)
    ).all()
    stranded: dict[tuple[str, str], list[str]] = {}
    for kind, state, ref in rows:
        declared = new.kinds.get(kind)
        if declared is None or state not in declared.states:
            stranded.setdefault((kind, state), []).append(ref)
    if not stranded:
        return
    lines = []
    for (kind, state), refs in sorted(stranded.items()):
        old_kind = old.kinds.get(kind) if old is not None else None
        label = old_kind.states.get(state, state) if old_kind else state
        where = f"案件类型 {kind} 已被删除" if kind not in new.kinds else f"状态 {state}（{label}）已被删除"
        listed = "、".join(refs[:10]) + (f"等 {len(refs)} 件" if len(refs) > 10 else "")
        lines.append(f"  {where}，仍有案件处于该状态：{listed}")
    raise ActionRefused(
        f"{origin}: 不能加载：新文件会使 {sum(map(len, stranded.values()))} 件案件停留在不存在的状态\n"
        + "\n".join(lines)
        + "\n请保留这些状态（可不再有操作进入），或先把案件办理到其他状态",
        rule="campaign_strands_cases",
        data={"stranded": {f"{k}:{s}": refs for (k, s), refs in sorted(stranded.items())}},
    )


def _plan_changed(old: Any, new: Any) -> bool:
    """What reminders are planned from, other than the date: a change re-plans them."""
    keys = ("reminders", "escalation", "pending_states", "actor", "subject", "closes", "relative")
    return any(getattr(old, k) != getattr(new, k) for k in keys)


def _replan(session: Session, ctx: Ctx, campaign_id: str, stage: Stage, *, reason: str) -> None:
    """A new version of the stage's deadline with the same date: reminders are keyed by the
    version, so unsent ones of the old plan are cancelled and the new file's are planned."""
    row = session.get(StageDeadline, (campaign_id, stage.id))
    if row is None:
        return
    # Same date: nobody is told of a "new" deadline (notices skip a re-plan).
    record_stage_deadline(session, ctx, campaign_id, stage, row, row.due_at, reason, details={"replan": True})


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def ensure_city_cases(session: Session, ctx: Ctx, campaign_id: str, spec: CampaignSpec) -> list[str]:
    """Every city gets a roster task and a recommendation case for each campaign."""
    have = set(session.exec(select(Case.ref).where(Case.campaign_id == campaign_id)).all())
    created: list[str] = []
    kinds = {s.subject for s in spec.stages} & {"roster", "recommendation"}
    for city in load_divisions().cities:
        for kind in sorted(kinds):
            ref = city_case_ref(session, spec, kind, city.code)
            if ref in have:
                continue
            title = f"{city.name}{'工作人员信息汇总表' if kind == 'roster' else '推荐报送'}"
            new_case(
                session,
                ctx,
                spec,
                kind=kind,
                ref=ref,
                org_id=city.code,
                city_code=city.code,
                county_code=None,
                title=title,
            )
            created.append(ref)
    return [f"新建市级案件 {len(created)} 个"] if created else []


def new_case(
    session: Session,
    ctx: Ctx,
    spec: CampaignSpec,
    *,
    kind: str,
    ref: str,
    org_id: str,
    city_code: str | None,
    county_code: str | None,
    title: str,
    reason: str = "",
    **columns: Any,
) -> Case:
    machine = machine_for(kind, spec.id)
    case = Case(
        ref=ref,
        campaign_id=spec.id,
        kind=kind,
        state=machine.initial,
        state_since=ctx.now,
        org_id=org_id,
        city_code=city_code,
        county_code=county_code,
        title=title,
        created_at=ctx.now,
        updated_at=ctx.now,
        **columns,
    )
    session.add(case)
    session.flush()
    ctx.audit.append(
        session,
        EventDraft(
            at=ctx.now,
            actor=ctx.actor.label,
            action="create",
            subject=f"case:{ref}",
            case_id=case.id,
            campaign_id=spec.id,
            to_value=case.state,
            reason=reason or "新建",
            details={"kind": kind, "title": title},
        ),
    )
    return case


def bulk_new_cases(
    session: Session, ctx: Ctx, spec: CampaignSpec, rows: list[dict[str, Any]], *, reason: str
) -> list[str]:
    """Insert many cases with Core executemany and one audit event each (imports, benchmarks)."""
    if not rows:
        return []
    for row in rows:
        row.setdefault("state", machine_for(row["kind"], spec.id).initial)
        row.setdefault("state_since", ctx.now)
        row.setdefault("created_at", ctx.now)
        row.setdefault("updated_at", ctx.now)
        row.setdefault("campaign_id", spec.id)
        row.setdefault("attrs", {})
        row.setdefault("findings", [])
        row.setdefault("version", 1)
        row.setdefault("brand_aligned", False)
        for key in (
            "zone_type",
            "category",
            "track",
            "recommender_id",
            "quota_bucket",
            "external_id",
            "defence_at",
            "letter",
        ):
            row.setdefault(key, None)
    session.execute(insert(Case), rows)
    refs = [r["ref"] for r in rows]
    ids: dict[str, int] = {}
    for start in range(0, len(refs), 900):  # stay under SQLite's bound-parameter limit
        chunk = refs[start : start + 900]
        ids.update(session.exec(select(Case.ref, Case.id).where(Case.ref.in_(chunk))).all())  # type: ignore[attr-defined]
    ctx.audit.append_many(
        session,
        [
            EventDraft(
                at=ctx.now,
                actor=ctx.actor.label,
                action="create",
                subject=f"case:{r['ref']}",
                case_id=ids[r["ref"]],
                campaign_id=spec.id,
                to_value=r["state"],
                reason=reason,
                details={"kind": r["kind"], "title": r["title"]},
            )
            for r in rows
        ],
    )
    return refs


def _first_deadline(campaign_id: str, stage: Any, now: datetime, reason: str) -> StageDeadline:
    """Version 1 of a stage's deadline, as its campaign file gives it (a new campaign or stage)."""
    return StageDeadline(
        campaign_id=campaign_id,
        stage_id=stage.id,
        due_at=stage.deadline,
        version=1,
        changed_at=now,
        reason=reason,
    )
