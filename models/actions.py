"""Acting on cases: the state machine, its guards, the audit record, in one transaction.

``act`` changes nothing unless every check passes; a refusal raises :class:`ActionRefused`
and the caller rolls back, then records the refusal itself (``perform`` does both), so a
refused action leaves only its audit record behind.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, true, update
from sqlmodel import Session, col, select

from calendars.campaign import CampaignSpec, Stage
from calendars.timeutil import format_deadline, format_local, local_date
from calendars.workdays import UnknownYearError
from models import quota as quotas
from models.audit import AuditEvent, EventDraft
from models.campaign import Campaign, CaseDeadline, StageDeadline, get_campaign, stage_deadline
from models.case import Case
from models.context import PLATFORM_SYNC, SYSTEM, Actor, Ctx
from models.db import Database
from models.deadlines import (
    calendar_of,
    case_deadline,
    case_met,
    record_stage_deadline,
    replan_stages,
    stage_completed,
)
from models.eligibility import Finding, case_findings
from models.letters import Letter, letter_on_file
from models.machines import (
    LIST_IN_ROLES,
    RECOMMENDER_ROLES,
    SUBMISSION_ROLES,
    Machine,
    Transition,
    machine_for,
)
from models.org import TIER_LABELS, Organisation


class ActionRefused(Exception):
    """An action that is not allowed now.

    The message says what is wrong, in Chinese, and nothing about how to put it right from any
    one edge: the CLI and the web each add their own hint for ``rule`` (a flag, a form field).
    ``data`` holds the facts behind the refusal (stage, deadline, allowed actions …) for programs.
    """

    def __init__(
        self,
        message: str,
        *,
        rule: str,
        findings: list[Finding] | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.rule = rule
        self.findings = findings or []
        self.data = data or {}


class CaseNotFound(LookupError):
    pass


# -- lookups -----------------------------------------------------------------------------


def get_case(session: Session, ref: str, *, lock: bool = False) -> Case:
    query = select(Case).where(Case.ref == ref.strip())
    if lock:
        query = query.with_for_update()
    case = session.exec(query).first()
    if case is None and ref.strip().isdigit():
        case = session.get(Case, int(ref))
    if case is None:
        raise CaseNotFound(f"找不到案件：{ref}")
    return case


def offered(machine: Machine, state: str) -> list[Transition]:
    """What people can do: the engine's own actions (lapse at a deadline) are never offered."""
    return [t for t in machine.allowed(state) if "system" not in t.tiers]


def describe_allowed(machine: Machine, state: str) -> str:
    allowed = offered(machine, state)
    if not allowed:
        return "无（已办结）"
    return "、".join(f"{t.label}({t.action})" for t in allowed)


def _allowed_data(machine: Machine, state: str) -> dict[str, Any]:
    return {
        "state": state,
        "allowed": [{"action": t.action, "label": t.label} for t in offered(machine, state)],
    }


# -- permissions ---------------------------------------------------------------------------


def within_jurisdiction(org: Organisation, case: Case) -> bool:
    """Whether an organisation's staff may see and act on a case."""
    if org.tier == "province":
        return True
    if org.tier == "city":
        return case.city_code == org.id
    if org.tier == "county":
        return case.county_code == org.id or case.org_id == org.id
    if org.tier in ("soe_group", "association"):
        return case.recommender_id == org.id or case.org_id == org.id
    return case.org_id == org.id  # park, enterprise


def _check_actor(session: Session, actor: Actor, case: Case, t: Transition) -> None:
    if actor.is_engine or actor.is_admin:
        return
    if actor.org_id is None:
        # Nobody acts as "the operator": a person acts for an organisation, or explicitly as admin.
        raise ActionRefused(
            f"{actor.name}未说明代表哪个单位办理，不能执行「{t.label}」",
            rule="actor_missing",
            data={"person": actor.name},
        )
    org = session.get(Organisation, actor.org_id)
    if org is None:
        raise ActionRefused(
            f"操作人所属单位不存在：{actor.org_id}", rule="actor_unknown", data={"org": actor.org_id}
        )
    tier = "county" if org.tier == "park" and "park" not in t.tiers else org.tier
    if org.tier not in t.tiers and tier not in t.tiers:
        who = "、".join(TIER_LABELS.get(x, x) for x in t.tiers if x != "system") or "系统"
        raise ActionRefused(
            f"「{t.label}」须由{who}操作，{org.name}（{TIER_LABELS.get(org.tier, org.tier)}）无权执行",
            rule="tier",
            data={"action": t.action, "tiers": list(t.tiers), "org": org.id, "org_tier": org.tier},
        )
    if not within_jurisdiction(org, case):
        raise ActionRefused(
            f"{org.name}无权处理案件 {case.ref}（不在本单位管辖范围内）",
            rule="jurisdiction",
            data={"ref": case.ref, "org": org.id},
        )
    # Seeing a case is not deciding it: only the case's own recommender (the city, or the SOE
    # group / association it is filed through) recommends it and uses its quota.
    if t.role in RECOMMENDER_ROLES and org.tier != "province":
        rid = case.recommender_id or case.city_code
        if rid != org.id:
            owner = session.get(Organisation, rid) if rid else None
            raise ActionRefused(
                f"{case.ref} 由{owner.name if owner else rid}推荐，{org.name}无权「{t.label}」（不在本单位推荐范围内）",
                rule="jurisdiction",
                data={"ref": case.ref, "org": org.id, "recommender": rid},
            )


# -- guards ------------------------------------------------------------------------------


def window_due(session: Session, case: Case, stage: Stage) -> datetime | None:
    """When ``stage`` closes for ``case``: the case's own deadline at a per-case stage (N working
    days after its return), else the stage's; the one answer for the guard and for a refusal."""
    if stage.relative is not None and stage.relative.per_case:
        return case_deadline(session, case, stage)
    return stage_deadline(session, case.campaign_id, stage).due_at


def _guard_window(session: Session, ctx: Ctx, spec: CampaignSpec, case: Case, t: Transition) -> None:
    stage = spec.window_stage_for(t.action, case.kind)
    if stage is None:
        return
    if stage.opens is not None and ctx.now < stage.opens:
        raise ActionRefused(
            f"「{stage.name}」尚未开放，开放时间为 {format_local(stage.opens)}",
            rule="window_not_open",
            data={"stage": stage.id, "opens": stage.opens.isoformat()},
        )
    due = window_due(session, case, stage)
    if due is not None and ctx.now >= due:
        raise ActionRefused(
            f"「{stage.name}」已于 {format_deadline(due)} 截止，逾期不再受理（{stage.basis(due) or stage.source}）",
            rule="window_closed",
            data={"stage": stage.id, "deadline": due.isoformat()},
        )


def _guard_eligibility(
    session: Session,
    ctx: Ctx,
    spec: CampaignSpec,
    case: Case,
    overrides: dict[str, str],
    *,
    blocking: bool = True,
) -> list[Finding]:
    found = case_findings(session, spec, case)
    if not blocking:
        return found
    blocks = [f for f in found if f.severity == "block"]
    if blocks:
        raise ActionRefused(
            "不符合申报条件：\n" + "\n".join(f"  ✗ [{f.rule}] {f.message}" for f in blocks),
            rule="eligibility",
            findings=found,
        )
    rules = {f.rule for f in found}
    unknown = sorted(set(overrides) - rules)
    if unknown:
        raise ActionRefused(
            f"说明理由的规则 {'、'.join(unknown)} 不在本次检查结果中（本次检查结果：{'、'.join(sorted(rules)) or '无'}）",
            rule="override_unknown",
            findings=found,
            data={"unknown": unknown, "rules": sorted(rules)},
        )
    missing = [f for f in found if f.severity == "in_principle" and not overrides.get(f.rule, "").strip()]
    if missing:
        raise ActionRefused(
            "以下条件为“原则上”要求，未满足时须记录理由后方可继续：\n"
            + "\n".join(f"  ! [{f.rule}] {f.message}" for f in missing),
            rule="override_required",
            findings=found,
            data={"rules": [f.rule for f in missing]},
        )
    return found


def _recommender_of(session: Session, case: Case) -> Organisation | None:
    rid = case.recommender_id or case.city_code
    return session.get(Organisation, rid) if rid else None


def recommendation_case(session: Session, campaign_id: str, recommender_id: str) -> Case | None:
    return session.exec(
        select(Case).where(
            Case.campaign_id == campaign_id, Case.kind == "recommendation", Case.org_id == recommender_id
        )
    ).first()


def list_in(session: Session, case: Case) -> Case | None:
    """The recommendation that already went in for ``case``'s recommender, if it has: one in a
    final state of its machine (报送 or 无推荐), fixed until the province returns it."""
    recommender = _recommender_of(session, case)
    if recommender is None:
        return None
    rec = recommendation_case(session, case.campaign_id, recommender.id)
    if rec is None:
        return None
    return rec if rec.state in machine_for(rec.kind, rec.campaign_id).final else None


def _guard_recommendation_open(session: Session, case: Case) -> None:
    rec = list_in(session, case)
    if rec is not None:
        recommender = _recommender_of(session, case)
        reported_none = rec.state in machine_for(rec.kind, rec.campaign_id).reported_none
        what = "无推荐" if reported_none else "推荐"
        raise ActionRefused(
            f"{recommender.name if recommender else rec.org_id}的{what}已于 {format_local(rec.state_since)} "
            f"报送省经信厅（{rec.ref}），不能再调整；如需调整请由省经信厅退回推荐",
            rule="recommendation_submitted",
            data={"recommendation": rec.ref, "state": rec.state, "since": rec.state_since.isoformat()},
        )


def the_citys(spec: CampaignSpec, city_id: str) -> Any:
    """The SQL condition for which of a city's applications are the city's to decide (the one
    rule, used by the actions and the dashboard): where the form names a direct recommender (an
    SOE group or association, ``form.recommender``), what is filed through one is not the city's;
    otherwise every application of its counties is."""
    if spec.form is None or spec.form.recommender is None:
        return true()
    return Case.recommender_id.is_(None) | (Case.recommender_id == city_id)  # type: ignore[union-attr]


def on_list(session: Session, spec: CampaignSpec, recommender: Organisation | str) -> Any:
    """The query for the applications a recommender decides on (the one rule for whose list it is).

    An SOE group or association recommends what is filed through it; a city what its counties
    filed, but what is filed through a direct recommender (``the_citys``).
    """
    campaign_id = spec.id
    org_id = recommender if isinstance(recommender, str) else recommender.id
    org = session.get(Organisation, org_id) if isinstance(recommender, str) else recommender
    query = select(Case).where(
        Case.campaign_id == campaign_id,
        Case.kind != "recommendation",
        Case.kind != "roster",
    )
    if org is not None and org.tier in ("soe_group", "association"):
        return query.where(Case.recommender_id == org_id)
    return query.where(Case.city_code == org_id, the_citys(spec, org_id))


def application_machines(spec: CampaignSpec) -> list[Machine]:
    """The machines of the kinds a recommender decides on (all but the engine's own)."""
    return [machine_for(k, spec.id) for k in spec.kinds if k not in ("recommendation", "roster")] or [
        machine_for(spec.application_kind, spec.id)
    ]


def in_role(spec: CampaignSpec, role: str) -> Any:
    """Cases of the campaign's application kinds in the states of a machine role (``on_list``,
    ``with_recommender`` …), as one SQL condition: the roles are the file's, not names."""
    return or_(
        *(
            and_(Case.kind == m.kind, col(Case.state).in_(sorted(getattr(m, role))))
            for m in application_machines(spec)
        )
    )


def nothing_to_review(session: Session, campaign_id: str, recommender_id: str) -> bool:
    """No application has reached the recommender: it is reminded that it may report 无推荐, and
    not counted as late until one arrives."""
    spec = get_campaign(session, campaign_id).spec()
    query = on_list(session, spec, recommender_id).where(in_role(spec, "with_recommender"))
    return session.exec(query.limit(1)).first() is None


def _guard_history_order(session: Session, ctx: Ctx, case: Case, action: str) -> None:
    """A person's action is recorded at ``ctx.now`` (``--now``): not before what the case's own
    history already holds, or its history would read out of order (a submission recorded before
    the return it answers). The engine is exempt: a lapse is stamped at its deadline, a platform's
    record at the platform's time. Refusals are attempts, not the case's facts: they do not count."""
    latest = session.exec(
        select(AuditEvent.at, AuditEvent.action)
        .where(AuditEvent.case_id == case.id, AuditEvent.action != "refusal")
        .order_by(col(AuditEvent.at).desc())
        .limit(1)
    ).first()
    if latest is None or latest[0] <= ctx.now:
        return
    raise ActionRefused(
        f"{case.ref} 最近一条记录在 {format_local(latest[0])}，不能把操作记在它之前"
        f"（本次时间 {format_local(ctx.now)}）；请用更晚的时间（--now）或不写 --now",
        rule="before_history",
        data={"action": action, "latest_event_at": latest[0].isoformat(), "now": ctx.now.isoformat()},
    )


def _guard_empty_list(session: Session, spec: CampaignSpec, rec: Case) -> None:
    listed = session.exec(on_list(session, spec, rec.org_id).where(in_role(spec, "on_list"))).all()
    if listed:
        refs = "、".join(c.ref for c in listed[:5]) + ("等" if len(listed) > 5 else "")
        raise ActionRefused(
            f"{rec.title}已推荐 {len(listed)} 项（{refs}），不能报送“无推荐”；请报送推荐，或先撤销推荐",
            rule="list_not_empty",
            data={"recommendation": rec.ref, "recommended": [c.ref for c in listed]},
        )


def _guard_reviewed(session: Session, case: Case, machine: Machine) -> None:
    recommender = _recommender_of(session, case)
    direct = recommender is not None and recommender.tier in ("soe_group", "association")
    if case.state in machine.unreviewed and not direct:
        raise ActionRefused(
            f"{case.ref} 尚未经县级经信部门审核通过（当前：{machine.state_label(case.state)}），不能推荐",
            rule="not_reviewed",
            data={"ref": case.ref, "state": case.state},
        )


# -- the action ------------------------------------------------------------------------------


# The guards a campaign file's machine may name (each implemented in ``act`` below).
GUARDS = frozenset(
    {
        "window",
        "eligibility",
        "recommendation_open",
        "reviewed",
        "empty_list",
        "quota",
        "letter",
        "defence_time",
    }
)


def act(
    session: Session,
    ctx: Ctx,
    case: Case,
    action: str,
    *,
    reason: str = "",
    overrides: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
) -> AuditEvent:
    """Perform ``action`` on ``case`` at ``ctx.now`` by ``ctx.actor``, or raise ActionRefused."""
    overrides = {k: v for k, v in (overrides or {}).items()}
    params = dict(params or {})
    machine = machine_for(case.kind, case.campaign_id)
    t = machine.find(action, case.state)
    if t is None:
        if action not in machine.actions():
            raise ActionRefused(
                f"「{machine.label}」没有操作 {action}（当前状态「{machine.state_label(case.state)}」）",
                rule="unknown_action",
                data={"action": action} | _allowed_data(machine, case.state),
            )
        label = next(x.label for x in machine.transitions if x.action == action)
        if case.state in machine.lapsed:
            spec = get_campaign(session, case.campaign_id).spec()
            stage = spec.window_stage_for(action, case.kind)
            if stage is not None:
                due = window_due(session, case, stage)
                closed = f"已于 {format_deadline(due)} 截止" if due else "已截止"
                raise ActionRefused(
                    f"{case.ref} 当前状态为「{machine.state_label(case.state)}」：「{stage.name}」{closed}，"
                    f"逾期不再受理，不能执行「{label}」",
                    rule="window_closed",
                    data={"action": action, "stage": stage.id, "deadline": due.isoformat() if due else None}
                    | _allowed_data(machine, case.state),
                )
        raise ActionRefused(
            f"{case.ref} 当前状态为「{machine.state_label(case.state)}」，不能执行「{label}」",
            rule="state",
            data={"action": action} | _allowed_data(machine, case.state),
        )
    if "system" in t.tiers and not ctx.actor.is_system:
        # Not even an administrator: a lapse is the deadline's doing, never a person's choice.
        raise ActionRefused(
            f"「{t.label}」由系统在截止时自动执行，任何人不能手动执行",
            rule="system_only",
            data={"action": action},
        )
    _check_actor(session, ctx.actor, case, t)
    if t.needs_reason and not reason.strip():
        raise ActionRefused(f"「{t.label}」须填写理由", rule="reason_required", data={"action": action})

    campaign = get_campaign(session, case.campaign_id)
    spec = campaign.spec()
    found: list[Finding] = []
    if t.guards:
        ctx.audit.lock(session)  # the guards count what concurrent writers change
    if "window" not in t.guards:
        # The campaign file may put any action in a stage's window (a resubmission within 5
        # working days of the return), whatever guards the machine names.
        _guard_window(session, ctx, spec, case, t)
    for guard in t.guards:
        if guard == "window":
            _guard_window(session, ctx, spec, case, t)
        elif guard == "eligibility":
            # A submission the platform accepted is a fact shenbao records, not a request it may
            # refuse (it often lacks the form's figures); the findings are kept for the reviewers.
            found = _guard_eligibility(
                session, ctx, spec, case, overrides, blocking=ctx.actor != PLATFORM_SYNC
            )
        elif guard == "recommendation_open":
            # The engine's own cascade runs while the recommendation is being submitted.
            if ctx.actor != SYSTEM:
                _guard_recommendation_open(session, case)
        elif guard == "reviewed":
            _guard_reviewed(session, case, machine)
        elif guard == "empty_list":
            _guard_empty_list(session, spec, case)
        elif guard == "quota":
            _guard_quota(session, spec, case)
        elif guard == "letter":
            # Only a stored file counts: a name typed anywhere is not a sealed letter.
            if not (isinstance(params.get("letter"), Letter) or letter_on_file(case)):
                raise ActionRefused("报送前须上传签章版推荐函/推荐意见汇总表", rule="letter_missing")
        elif guard == "defence_time":
            if not isinstance(params.get("at"), datetime):
                raise ActionRefused("安排现场答辩须给出答辩时间", rule="defence_time")
        else:  # a guard named in a machine but not implemented is a programming error
            raise RuntimeError(f"unknown guard {guard}")

    if t.role == "attach" and not isinstance(params.get("letter"), Letter):
        raise ActionRefused("上传签章推荐函/汇总表须给出文件", rule="letter_missing")
    if not ctx.actor.is_engine:
        # Last: a rule of the case itself (its window, its state) says more than the order.
        _guard_history_order(session, ctx, case, action)

    from_state = case.state
    details: dict[str, Any] = {"action": action, "label": t.label} | ctx.actor.audit_details()
    letter = params.pop("letter", None)
    if params:
        details["params"] = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in params.items()}
    if "eligibility" in t.guards:
        # Replace, never keep, the findings of an earlier check: a fixed application is clean.
        case.findings = [
            f.as_dict() | ({"override": overrides[f.rule]} if f.rule in overrides else {}) for f in found
        ]
        details["findings"] = case.findings
    if case.kind == "recommendation" and isinstance(letter, Letter):
        # The letter given with attach, submit or resubmit is the one on file.
        case.letter = letter.name
        case.attrs = {**case.attrs, "letter": letter.as_dict()}
    if case.kind == "recommendation" and ("letter" in t.guards or isinstance(letter, Letter)):
        # The digest in the audit is what ties the file on disk to what was sent.
        details["letter"] = letter_on_file(case)
    if "defence_time" in t.guards:  # the guard made sure the time is given
        case.defence_at = params["at"]
        details["defence_at"] = format_local(params["at"])
    if "quota" in t.guards and case.kind != "recommendation":
        case.quota_bucket = session.info.pop("claimed_quota", None)
    elif t.role == "withdraw_recommendation" or (
        case.quota_bucket and t.target is not None and t.target not in machine.on_list
    ):
        # Off the list (withdrawn from it, or sent back by whatever action the file names): the
        # slot is free again.
        details["released_quota"], case.quota_bucket = case.quota_bucket, None
    if t.role in SUBMISSION_ROLES and case.kind != "recommendation":
        # Arrived after its recommender's list went in: the city and the province are told
        # (notices.py reads this), and the city decides once the province returns the list.
        late = list_in(session, case)
        if late is not None:
            details["late_for"] = {"recommendation": late.ref, "state": late.state}

    if t.target is not None:
        case.state = t.target
        case.state_since = ctx.now
    case.updated_at = ctx.now
    case.version += 1
    session.add(case)

    drafts = [
        EventDraft(
            at=ctx.now,
            actor=ctx.actor.label,
            action="state_change" if t.target else "update",
            subject=f"case:{case.ref}",
            case_id=case.id,
            campaign_id=case.campaign_id,
            from_value=from_state,
            to_value=case.state,
            reason=reason,
            details=details,
        )
    ]
    for rule, why in sorted(overrides.items()):
        drafts.append(
            EventDraft(
                at=ctx.now,
                actor=ctx.actor.label,
                action="override",
                subject=f"case:{case.ref}",
                case_id=case.id,
                campaign_id=case.campaign_id,
                from_value=rule,
                to_value="overridden",
                reason=why,
                details={"finding": next((f.message for f in found if f.rule == rule), "")}
                | ctx.actor.audit_details(),
            )
        )
    events = ctx.audit.append_many(session, drafts)

    # Deadlines counting from this action: the case's own (returned: 5 working days to come back),
    # and stages counting from a stage this action completes (the list published: 公示 begins).
    case_met(session, ctx, spec, case, action)
    stage_completed(session, ctx, spec, case, action)
    if case.kind == "recommendation" and t.role in LIST_IN_ROLES:
        _cascade_not_recommended(session, ctx, spec, case)
    return events[0]


def _guard_quota(session: Session, spec: CampaignSpec, case: Case) -> None:
    if case.kind == "recommendation":
        org = session.get(Organisation, case.org_id)
        problems = quotas.over_quota(session, spec, case.campaign_id, org) if org else []
        if problems:
            raise ActionRefused("；".join(problems), rule="quota")
        return
    try:
        quota = quotas.claim(session, spec, case, _recommender_of(session, case))
    except quotas.QuotaExceeded as exc:
        raise ActionRefused(str(exc), rule="quota") from exc
    session.info["claimed_quota"] = quota.bucket


def _cascade_not_recommended(session: Session, ctx: Ctx, spec: CampaignSpec, rec: Case) -> None:
    """Submitting a recommendation closes the choice: cases not on it are not recommended.

    Undecided ones (waiting for the city, or returned for revision and not back yet: left out, a
    returned application could come back only to find nobody able to decide it)."""
    org = session.get(Organisation, rec.org_id)
    query = on_list(session, spec, org or rec.org_id).where(in_role(spec, "undecided"))
    system = ctx.as_system()
    for case in session.exec(query.order_by(Case.ref)).all():
        t = machine_for(case.kind, case.campaign_id).find_role("not_recommend", case.state)
        if t is None:
            continue
        act(
            session,
            system,
            case,
            t.action,
            reason=f"未列入{org.name if org else rec.org_id}报送的推荐（{rec.ref}）",
        )


def record_refusal(
    session: Session,
    ctx: Ctx,
    subject: str,
    action: str,
    exc: ActionRefused,
    *,
    case_id: int | None = None,
    campaign_id: str | None = None,
    state: str | None = None,
) -> None:
    ctx.audit.append(
        session,
        EventDraft(
            at=ctx.now,
            actor=ctx.actor.label,
            action="refusal",
            subject=subject,
            case_id=case_id,
            campaign_id=campaign_id,
            from_value=state,
            to_value=state,
            reason=str(exc),
            details={
                "action": action,
                "rule": exc.rule,
                "findings": [f.as_dict() for f in exc.findings],
                "data": exc.data,
            }
            | ctx.actor.audit_details(),
        ),
    )


def perform(
    db: Database,
    ctx: Ctx,
    ref: str,
    action: str,
    *,
    reason: str = "",
    overrides: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
) -> Case:
    """Act in one transaction; on refusal roll it back and record only the refusal."""
    try:
        with db.write() as session:
            case = get_case(session, ref, lock=True)
            act(session, ctx, case, action, reason=reason, overrides=overrides, params=params)
            return case
    except ActionRefused as exc:
        with db.write() as session:
            case = get_case(session, ref)
            record_refusal(
                session,
                ctx,
                f"case:{case.ref}",
                action,
                exc,
                case_id=case.id,
                campaign_id=case.campaign_id,
                state=case.state,
            )
        raise


# -- deadlines and closings ---------------------------------------------------------------------


def set_deadline(
    session: Session, ctx: Ctx, campaign_id: str, stage_id: str, due_at: datetime | None, reason: str
) -> StageDeadline:
    """Announce or move a stage's deadline: a new version, recorded with its reason."""
    campaign = get_campaign(session, campaign_id)
    stage = campaign.spec().stage(stage_id)
    if not reason.strip():
        raise ActionRefused("设定或调整截止时间须填写理由", rule="reason_required", data={"stage": stage_id})
    row = session.get(StageDeadline, (campaign_id, stage_id))
    if row is None:
        row = StageDeadline(
            campaign_id=campaign_id, stage_id=stage_id, due_at=stage.deadline, version=1, changed_at=ctx.now
        )
    old = row.due_at
    if old == due_at:
        raise ActionRefused(
            f"「{stage.name}」截止时间已是 {format_deadline(due_at) if due_at else '另行通知'}",
            rule="deadline_unchanged",
            data={"stage": stage_id, "deadline": due_at.isoformat() if due_at else None},
        )
    if due_at is not None:
        _refuse_a_year_not_loaded(session, ctx, stage.name, stage_id, due_at)
    record_stage_deadline(session, ctx, campaign_id, stage, row, due_at, reason)
    session.flush()
    # Stages counting from this one ("5 working days after", "3 working days before") move with it.
    replan_stages(session, ctx, campaign_id, after_stage=stage_id, reason=f"「{stage.name}」截止时间调整")
    return row


def _refuse_a_year_not_loaded(session: Session, ctx: Ctx, name: str, stage_id: str, due_at: datetime) -> None:
    """A date in a year whose working days are not loaded could be neither counted down nor
    reminded nor escalated: refused, as ``campaign load`` refuses it in a file (what it counts
    into such a year from here stays 另行通知 with the reason, and is planned once it is loaded)."""
    try:
        calendar_of(session, ctx).is_working_day(local_date(due_at - timedelta(microseconds=1)))
    except UnknownYearError as exc:
        raise ActionRefused(
            f"「{name}」截止时间 {format_deadline(due_at)} 在{exc.year}年：{exc}；加载后再设定",
            rule="workdays_not_loaded",
            data={"stage": stage_id, "deadline": due_at.isoformat(), "year": exc.year},
        ) from exc


def close_windows(session: Session, ctx: Ctx, *, campaign_id: str | None = None) -> list[Any]:
    """Lapse every case still open at a deadline that has passed (e.g. drafts at 06-25 24:00;
    a returned application not back within its own 5 working days).

    Level-triggered: it looks at what is true at ``ctx.now``, so running it late or twice is
    harmless (a lapsed case has left the lapse states). Each lapse is a system action in the
    audit, with the deadline as its reason, as ``act`` records an action (and its role); the cases
    are changed in bulk because a window closing over a province's drafts is thousands of
    identical transitions at one instant. A stage whose deadline is per case (``after:
    {action: …}``) lapses each case at its own deadline. Returns the lapsed cases as rows with
    ``id``, ``ref`` and ``state`` (the state before).
    """
    lapsed: list[Any] = []
    system = Ctx(now=ctx.now, actor=SYSTEM, audit=ctx.audit)
    for campaign in session.exec(select(Campaign).order_by(Campaign.id)).all():
        if campaign_id and campaign.id != campaign_id:
            continue
        spec = campaign.spec()
        for stage in spec.stages:
            if not stage.lapse_states:
                continue
            machine = machine_for(stage.subject, campaign.id)
            transitions = {state: machine.find_role("lapse", state) for state in stage.lapse_states}
            states = [state for state, t in transitions.items() if t is not None]
            if not states:
                continue
            per_case = stage.relative is not None and stage.relative.per_case
            due: datetime | None = None
            query: Any
            if per_case:
                # Each case's own deadline: the rows that fell due, no stage-wide date.
                query = (
                    select(Case.id, Case.ref, Case.state, CaseDeadline.due_at)
                    .join(CaseDeadline, col(CaseDeadline.case_id) == col(Case.id))
                    .where(
                        CaseDeadline.stage_id == stage.id,
                        CaseDeadline.campaign_id == campaign.id,
                        col(CaseDeadline.due_at) <= ctx.now,
                    )
                )
            else:
                due = stage_deadline(session, campaign.id, stage).due_at
                if due is None or ctx.now < due:
                    continue
                query = select(Case.id, Case.ref, Case.state)
            cases = session.exec(
                query.where(
                    Case.campaign_id == campaign.id, Case.kind == stage.subject, col(Case.state).in_(states)
                )
                .order_by(Case.id)
                .with_for_update()
            ).all()
            if not cases:
                continue
            # The role is written out: the notices know a lapse by it, whatever the file calls it.
            details = {
                state: {"action": t.action, "label": t.label, "role": "lapse"}
                for state, t in transitions.items()
                if t
            }
            target = {state: t.target or state for state, t in transitions.items() if t}

            stage_reason = "" if due is None else _lapse_reason(stage, due, per_case=False)
            # Exactly the rows read and locked (never the criteria again: a draft another
            # transaction adds meanwhile would lapse unaudited); no "fetch" of each chunk back,
            # the instances this session holds are expired instead. One UPDATE per target state.
            for to_state in sorted(set(target.values())):
                ids = [c.id for c in cases if target[c.state] == to_state]
                for begin in range(0, len(ids), 900):  # SQLite's bound-parameter limit
                    session.execute(
                        update(Case)
                        .where(Case.id.in_(ids[begin : begin + 900]))  # type: ignore[union-attr]
                        .values(
                            state=to_state, state_since=ctx.now, updated_at=ctx.now, version=Case.version + 1
                        )
                        .execution_options(synchronize_session=False)
                    )
            _expire_cases(session, {c.id for c in cases})
            system.audit.append_many(
                session,
                [
                    EventDraft(
                        at=ctx.now,
                        actor=system.actor.label,
                        action="state_change",
                        subject=f"case:{c.ref}",
                        case_id=c.id,
                        campaign_id=campaign.id,
                        from_value=c.state,
                        to_value=target[c.state],
                        reason=_lapse_reason(stage, c.due_at, per_case=True) if per_case else stage_reason,
                        details=details[c.state],  # one dict per state: dumped once (models.audit)
                    )
                    for c in cases
                ],
                objects=False,
            )
            lapsed.extend(cases)
    return lapsed


def _lapse_reason(stage: Any, due: datetime, *, per_case: bool) -> str:
    if per_case:
        return f"「{stage.name}」本案件已于 {format_deadline(due)} 截止，逾期未办，自动关闭"
    return f"「{stage.name}」已于 {format_deadline(due)} 截止，未提交的申报自动关闭"


def _expire_cases(session: Session, ids: set[int]) -> None:
    """Cases of ``ids`` this session holds are read again when next used (a bulk UPDATE does
    not touch the instances in the identity map)."""
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Case) and obj.id in ids:
            session.expire(obj)
