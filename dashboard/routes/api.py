"""The JSON API: the same reads and actions as the pages, for scripts and provincial platforms.

Authentication is the personal token as a bearer header (or the page session plus its CSRF
header). A platform pushing a status change calls ``POST /api/cases/{ref}/actions`` or the
by-external-id form; it goes through ``perform`` like a click in the page, so it is checked
against the state machine, the tier, the jurisdiction and the guards, and audited either way.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from sqlmodel import Session, select

from calendars.timeutil import format_deadline, parse_deadline, parse_instant
from dashboard import scope
from dashboard.auth import Viewer
from dashboard.queries import (
    ATTEMPT_OUTCOMES,
    CHANNEL_STATUS,
    EMAIL_STATUS,
    application_kind,
    city_recommendation,
    list_cases,
    mail_log,
    overdue_states,
    stage_progress,
    stage_statuses,
)
from dashboard.routes.forms import letter_store, read_upload
from dashboard.routes.pages import get_campaign_or_404
from dashboard.schemas import (
    ActionIn,
    ActionOut,
    AllowedAction,
    AttemptOut,
    AuditOut,
    AuditProblemOut,
    BoardOut,
    BoardRow,
    CampaignOut,
    CaseDetail,
    CaseList,
    CaseSummary,
    ChannelAttemptOut,
    ChannelMessageOut,
    DeadlineIn,
    DeadlineOut,
    EmailOut,
    EventOut,
    History,
    MailLogOut,
    Me,
    PlatformSyncIn,
    PlatformSyncOut,
    ProgressOut,
    ProgressPoint,
    QuotaOut,
    RecommendationOut,
    Refusal,
    StageOut,
)
from dashboard.web import api_viewer, check_api_csrf, now, runtime
from models.actions import ActionRefused, CaseNotFound, get_case
from models.audit import AuditEvent
from models.campaign import Campaign, campaign_kinds
from models.case import Case
from models.history import case_history
from models.letters import Letter, LetterRefused, letter_on_file
from models.machines import KIND_LABELS, machine_for
from models.org import Organisation
from models.sheets import ImportRejected
from models.status import board
from models.sync import PlatformNotDeclared
from notifications.channels.base import CHANNEL_LABELS
from operations import acts

router = APIRouter(prefix="/api")

ViewerDep = Annotated[Viewer, Depends(api_viewer)]
REFUSALS: dict[int | str, dict[str, object]] = {
    401: {"description": "未登录或令牌无效"},
    403: {"model": Refusal, "description": "本单位无权执行（层级或管辖范围）"},
    404: {"model": Refusal, "description": "不存在，或不在本单位管辖范围内"},
    409: {
        "model": Refusal,
        "description": "操作被规则拒绝（状态、截止时间、名额、资格条件），拒绝已记入审计",
    },
}


def summary(case: Case) -> CaseSummary:
    return CaseSummary(
        ref=case.ref,
        campaign=case.campaign_id,
        kind=case.kind,
        title=case.title,
        state=case.state,
        state_label=machine_for(case.kind, case.campaign_id).state_label(case.state),
        state_since=case.state_since,
        org_id=case.org_id,
        city_code=case.city_code,
        county_code=case.county_code,
        track=case.track,
        external_id=case.external_id,
    )


def detail(session: Session, case: Case) -> CaseDetail:
    machine = machine_for(case.kind, case.campaign_id)
    org = session.get(Organisation, case.org_id)
    return CaseDetail(
        **summary(case).model_dump(),
        kind_label=KIND_LABELS[case.kind],
        org_name=org.name if org else case.org_id,
        zone_type=case.zone_type,
        category=case.category,
        recommender_id=case.recommender_id,
        brand_aligned=case.brand_aligned,
        quota_bucket=case.quota_bucket,
        defence_at=case.defence_at,
        letter=case.letter,
        version=case.version,
        attrs=case.attrs,
        findings=case.findings,
        allowed_actions=[
            AllowedAction(action=t.action, label=t.label, needs_reason=t.needs_reason, tiers=list(t.tiers))
            for t in machine.allowed(case.state)
            if "system" not in t.tiers
        ],
    )


def _visible_case(session: Session, viewer: Viewer, ref: str) -> Case:
    try:
        case = get_case(session, ref)
    except CaseNotFound:
        case = None
    return scope.require_case(session, viewer, case, ref)


def _case_by_external(session: Session, viewer: Viewer, external_id: str, campaign: str | None) -> Case:
    query = select(Case).where(Case.external_id == external_id.strip())
    if campaign:
        query = query.where(Case.campaign_id == campaign)
    found = [c for c in session.exec(query).all() if scope.can_see_case(viewer.org, c)]
    if len(found) > 1:
        # The same external id in a cluster and a 精品 campaign: the viewer's programs decide.
        found = [c for c in found if scope.program_of(session, c) in viewer.program_set] or found
    if not found:
        raise HTTPException(404, f"找不到外部编号为 {external_id} 的案件，或该案件不在本单位管辖范围内")
    if len(found) > 1:
        raise HTTPException(409, f"外部编号 {external_id} 对应多个批次的案件，请加参数 campaign 指定批次")
    return scope.require_case(session, viewer, found[0], external_id)


@router.get("/me", response_model=Me, summary="当前用户", responses=REFUSALS)
def me(viewer: ViewerDep) -> Me:
    return Me(
        contact_id=viewer.contact_id,
        name=viewer.name,
        email=viewer.email,
        org_id=viewer.org.id,
        org_name=viewer.org.name,
        tier=viewer.tier,
        tier_label=viewer.tier_label,
        programs=viewer.programs.split(","),
        token_expires_at=viewer.expires_at,
    )


@router.get(
    "/campaigns", response_model=list[CampaignOut], summary="批次及各环节截止时间", responses=REFUSALS
)
def campaigns(request: Request, viewer: ViewerDep) -> list[CampaignOut]:
    rt = runtime(request)
    with rt.db.read() as session:
        rows = scope.campaigns_for(session, viewer)
        return [_campaign_out(request, session, viewer, c) for c in rows]


def _campaign_out(request: Request, session: Session, viewer: Viewer, c: Campaign) -> CampaignOut:
    statuses = stage_statuses(session, c, viewer.org, now(request), runtime(request).calendar)
    spec = c.spec()
    return CampaignOut(
        id=c.id,
        program=c.program,
        name=c.name,
        notice=spec.notice,
        now=now(request),
        stages=[StageOut(**s.as_dict()) for s in statuses],
    )


@router.get("/campaigns/{campaign_id}", response_model=CampaignOut, summary="一个批次", responses=REFUSALS)
def campaign(request: Request, campaign_id: str, viewer: ViewerDep) -> CampaignOut:
    with runtime(request).db.read() as session:
        return _campaign_out(request, session, viewer, get_campaign_or_404(session, campaign_id, viewer))


@router.get(
    "/campaigns/{campaign_id}/board",
    response_model=BoardOut,
    summary="进度一览（设区市/县 × 状态）",
    responses=REFUSALS,
)
def board_api(
    request: Request,
    campaign_id: str,
    viewer: ViewerDep,
    kind: str | None = None,
    city: str | None = None,
    county: str | None = None,
    state: str | None = None,
) -> BoardOut:
    org = viewer.org
    if org.tier not in ("province", "city", "county"):
        raise HTTPException(403, f"{viewer.tier_label}用户没有进度一览，请用 /api/cases 查看本单位案件")
    if city:
        scope.require_city(org, city)
    if county:
        scope.require_county(org, county)
    level = {
        **scope.board_start(org),
        **({"city": city} if city else {}),
        **({"county": county} if county else {}),
    }
    rt = runtime(request)
    with rt.db.read() as session:
        c = get_campaign_or_404(session, campaign_id, viewer)
        kind = kind or application_kind(c)
        if kind not in campaign_kinds(c.spec()):
            raise HTTPException(404, f"本批次没有这类案件：{kind}")
        machine = machine_for(kind, c.id)
        grid = board(session, c.id, kind, city=level.get("city"), county=level.get("county"), state=state)
        late = overdue_states(stage_statuses(session, c, org, now(request), rt.calendar), kind)
    data = grid.as_dict()
    return BoardOut(
        campaign=c.id,
        kind=kind,
        group_by=grid.group_by,
        states=grid.states,
        state_labels=dict(machine.states),
        overdue_states=sorted(late),
        rows=[BoardRow(**r) for r in data["rows"]],
        total=data["total"],
    )


@router.get(
    "/campaigns/{campaign_id}/progress/{stage_id}",
    response_model=ProgressOut,
    summary="一个环节的逐日办理进度",
    responses=REFUSALS,
)
def progress(request: Request, campaign_id: str, stage_id: str, viewer: ViewerDep) -> ProgressOut:
    rt = runtime(request)
    with rt.db.read() as session:
        c = get_campaign_or_404(session, campaign_id, viewer)
        status = next(
            (
                s
                for s in stage_statuses(session, c, viewer.org, now(request), rt.calendar)
                if s.stage.id == stage_id
            ),
            None,
        )
        if status is None:
            raise HTTPException(404, f"批次 {campaign_id} 没有环节 {stage_id}")
        p = stage_progress(session, c, status.stage, status.due_at, viewer.org, now(request))
    return ProgressOut(
        stage=stage_id,
        name=status.stage.name,
        total=p.total,
        acted=p.acted,
        due_at=p.due_at,
        points=[ProgressPoint(day=d.isoformat(), acted=n) for d, n in p.acted_by_day],
    )


@router.get(
    "/campaigns/{campaign_id}/cities/{city_code}/recommendation",
    response_model=RecommendationOut,
    summary="设区市推荐情况与名额",
    responses=REFUSALS,
)
def recommendation(
    request: Request, campaign_id: str, city_code: str, viewer: ViewerDep
) -> RecommendationOut:
    scope.require_city(viewer.org, city_code)
    with runtime(request).db.read() as session:
        c = get_campaign_or_404(session, campaign_id, viewer)
        city = session.get(Organisation, city_code)
        if city is None:
            raise HTTPException(404, f"没有这个设区市：{city_code}")
        rec = city_recommendation(session, c, city)
    return RecommendationOut(
        campaign=c.id,
        city=city.id,
        city_name=city.name,
        recommendation=summary(rec.recommendation) if rec.recommendation else None,
        letter=rec.recommendation.letter if rec.recommendation else None,
        quotas=[
            QuotaOut(bucket=q.bucket, name=q.name, limit=q.limit, used=q.used, left=q.left, refs=q.refs)
            for q in rec.quotas
        ],
        candidates=[summary(x) for x in rec.candidates],
        recommended=[summary(x) for x in rec.recommended],
    )


@router.put(
    "/campaigns/{campaign_id}/stages/{stage_id}/deadline",
    response_model=DeadlineOut,
    summary="设定或调整环节截止时间（仅省级）",
    responses=REFUSALS,
)
def deadline(
    request: Request, campaign_id: str, stage_id: str, body: DeadlineIn, viewer: ViewerDep
) -> DeadlineOut:
    check_api_csrf(request, viewer)
    scope.require_province(viewer.org, "设定或调整截止时间")
    rt = runtime(request)
    with rt.db.read() as session:
        c = get_campaign_or_404(session, campaign_id, viewer)
        try:
            c.spec().stage(stage_id)
        except KeyError as exc:
            raise HTTPException(404, str(exc).strip("'\"")) from None
    try:
        when = parse_deadline(body.due) if body.due else None
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    try:
        row = acts.move_deadline(rt, viewer.actor, campaign_id, stage_id, when, body.reason, now=now(request))
    except ActionRefused as exc:
        return JSONResponse(  # type: ignore[return-value]
            {"detail": str(exc), "rule": exc.rule, "data": exc.data}, status_code=409
        )
    return DeadlineOut(
        campaign=campaign_id,
        stage=stage_id,
        due_at=row.due_at,
        due_text=format_deadline(row.due_at) if row.due_at else "另行通知",
        version=row.version,
    )


@router.post(
    "/campaigns/{campaign_id}/platform-sync",
    response_model=PlatformSyncOut,
    summary="平台推送申报清单，同步案件状态（仅省级；与 shenbao sync 读导出文件相同）",
    responses=REFUSALS
    | {
        409: {
            "model": PlatformSyncOut,
            "description": "有冲突或无法对应的行（其余已写入），或某一步被拒绝（整批未写入）：返回完整报告",
        },
        422: {"description": "缺少必填字段等，指明字段；未写入"},
    },
)
def platform_sync(
    request: Request, campaign_id: str, body: PlatformSyncIn, viewer: ViewerDep
) -> PlatformSyncOut | JSONResponse:
    check_api_csrf(request, viewer)
    # The platforms are provincial: a city or county pushing a province-wide list is not theirs.
    scope.require_province(viewer.org, "推送平台申报清单")
    rt = runtime(request)
    with rt.db.read() as session:
        get_campaign_or_404(session, campaign_id, viewer)  # the province's people push their own program's
    try:
        report = acts.sync_pushed_rows(
            rt,
            viewer.actor,
            campaign_id,
            body.rows,
            source=body.source,
            dry_run=body.dry_run,
            now=now(request),
        )
    except ImportRejected as exc:
        return JSONResponse(
            {"detail": str(exc), "problems": [asdict(p) for p in exc.problems]}, status_code=422
        )
    except PlatformNotDeclared as exc:
        return JSONResponse({"detail": str(exc), "rule": "platform"}, status_code=409)
    out = PlatformSyncOut(ok=not report.needs_attention, **report.as_dict())
    if report.needs_attention:  # what `shenbao sync` exits 3 for
        return JSONResponse(out.model_dump(mode="json"), status_code=409)
    return out


@router.get("/cases", response_model=CaseList, summary="案件列表（本单位范围内）", responses=REFUSALS)
def cases(
    request: Request,
    viewer: ViewerDep,
    campaign: str | None = None,
    kind: str | None = None,
    city: str | None = None,
    county: str | None = None,
    state: str | None = None,
    q: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> CaseList:
    if city:
        scope.require_city(viewer.org, city)
    if county:
        scope.require_county(viewer.org, county)
    with runtime(request).db.read() as session:
        if campaign:
            scope.require_campaign(session, viewer, campaign)
        rows, total = list_cases(
            session,
            viewer.org,
            campaign,
            programs=viewer.program_set,
            kind=kind,
            city=city,
            county=county,
            state=state,
            q=q,
            limit=limit,
            offset=offset,
        )
    return CaseList(total=total, offset=offset, cases=[summary(x) for x in rows])


@router.get(
    "/cases/by-external/{external_id}",
    response_model=CaseDetail,
    summary="按平台外部编号查案件",
    responses=REFUSALS,
)
def case_by_external(
    request: Request, external_id: str, viewer: ViewerDep, campaign: str | None = None
) -> CaseDetail:
    with runtime(request).db.read() as session:
        return detail(session, _case_by_external(session, viewer, external_id, campaign))


@router.get("/cases/{ref}", response_model=CaseDetail, summary="一个案件", responses=REFUSALS)
def case(request: Request, ref: str, viewer: ViewerDep) -> CaseDetail:
    with runtime(request).db.read() as session:
        return detail(session, _visible_case(session, viewer, ref))


@router.get(
    "/cases/{ref}/history", response_model=History, summary="案件时间线（审计记录）", responses=REFUSALS
)
def history(request: Request, ref: str, viewer: ViewerDep) -> History:
    with runtime(request).db.read() as session:
        c = _visible_case(session, viewer, ref)
        items = case_history(session, c)
    return History(
        ref=c.ref,
        events=[
            EventOut(
                seq=i.seq,
                at=i.at,
                actor=i.actor,
                action=i.action,
                action_label=i.action_label,
                what=i.what,
                from_state=i.from_label or None,
                to_state=i.to_label or None,
                reason=i.reason,
                details=i.details,
            )
            for i in items
        ],
    )


def _stored_letter_of(request: Request, case: Case, digest: str) -> Letter:
    """A letter named by digest counts only if it is this case's own stored letter."""
    record = letter_on_file(case)
    if record is None or record["sha256"] != digest.strip().lower():
        raise HTTPException(
            422,
            f"{case.ref} 没有 SHA-256 为 {digest[:80]} 的签章文件（先上传：POST /api/cases/{case.ref}/letter）",
        )
    stored = letter_store(request).find(record["sha256"])
    if stored is None:
        raise HTTPException(409, f"签章文件「{record['name']}」已登记，但不在本服务器上：请重新上传")
    return Letter(record["name"], stored.sha256, stored.size, stored.media_type)


def _act(
    request: Request,
    viewer: Viewer,
    case: Case,
    body: ActionIn,
    upload: tuple[str, bytes] | None = None,
) -> ActionOut | JSONResponse:
    rt = runtime(request)
    params: dict[str, object] = {}
    try:
        if body.at:
            params["at"] = parse_instant(body.at)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    if body.letter:
        raise HTTPException(
            422,
            "letter 不接受文件名：签章文件须上传（POST /api/cases/{ref}/letter，multipart 字段 file），"
            "或用 letter_sha256 指明本案件已上传的文件",
        )
    if body.letter_sha256:
        params["letter"] = _stored_letter_of(request, case, body.letter_sha256)
    try:
        with ExitStack() as stack:
            if upload is not None:
                # Kept only if the action goes through: a refusal leaves no file behind.
                params["letter"] = stack.enter_context(letter_store(request).attaching(*upload))
            done = acts.act(
                rt,
                viewer.actor,
                case.ref,
                body.action,
                reason=body.reason,
                overrides=body.overrides,
                params=params,
                now=now(request),
            )
    except LetterRefused as exc:
        raise HTTPException(422, str(exc)) from None
    except ActionRefused as exc:
        status = 403 if exc.rule in ("tier", "jurisdiction", "system_only") else 409
        return JSONResponse({"detail": str(exc), "rule": exc.rule, "data": exc.data}, status_code=status)
    with rt.db.read() as session:
        seq = session.exec(
            select(AuditEvent.seq).where(AuditEvent.case_id == done.id).order_by(AuditEvent.seq.desc())
        ).first()  # type: ignore[attr-defined]
        return ActionOut(ok=True, audit_seq=seq, case=detail(session, get_case(session, done.ref)))


@router.post(
    "/cases/{ref}/actions",
    response_model=ActionOut,
    summary="办理案件（平台推送状态变化亦用此接口）",
    responses=REFUSALS,
)
def act(request: Request, ref: str, body: ActionIn, viewer: ViewerDep) -> ActionOut | JSONResponse:
    check_api_csrf(request, viewer)
    with runtime(request).db.read() as session:
        c = _visible_case(session, viewer, ref)
    return _act(request, viewer, c, body)


@router.post(
    "/cases/{ref}/letter",
    response_model=ActionOut,
    summary="上传签章推荐函/推荐意见汇总表（multipart：file，PDF/OFD/图片；action 默认 attach，可为 submit）",
    responses=REFUSALS | {422: {"description": "文件不是 PDF、OFD 或图片，或为空、过大"}},
)
def upload_letter(
    request: Request,
    ref: str,
    viewer: ViewerDep,
    file: UploadFile,
    action: Annotated[str, Form()] = "attach",
    reason: Annotated[str, Form()] = "",
) -> ActionOut | JSONResponse:
    check_api_csrf(request, viewer)
    with runtime(request).db.read() as session:
        c = _visible_case(session, viewer, ref)
    return _act(request, viewer, c, ActionIn(action=action, reason=reason), upload=read_upload(file))


@router.post(
    "/cases/by-external/{external_id}/actions",
    response_model=ActionOut,
    summary="按平台外部编号办理案件",
    responses=REFUSALS,
)
def act_by_external(
    request: Request, external_id: str, body: ActionIn, viewer: ViewerDep, campaign: str | None = None
) -> ActionOut | JSONResponse:
    check_api_csrf(request, viewer)
    with runtime(request).db.read() as session:
        c = _case_by_external(session, viewer, external_id, campaign)
    return _act(request, viewer, c, body)


@router.get(
    "/notifications", response_model=MailLogOut, summary="通知发送记录（本单位范围内）", responses=REFUSALS
)
def notifications(
    request: Request,
    viewer: ViewerDep,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> MailLogOut:
    with runtime(request).db.read() as session:
        log = mail_log(
            session, viewer.org, programs=viewer.program_set, status=status, limit=limit, offset=offset
        )
    return MailLogOut(
        total=log.total,
        email_counts=log.email_counts,
        notification_counts=log.notification_counts,
        emails=[
            EmailOut(
                id=e.id,
                to_name=e.to_name,
                to_addr=e.to_addr,
                org_name=o.name,
                subject=e.subject,
                kinds=e.kinds,  # type: ignore[arg-type]
                status=e.status,
                status_label=EMAIL_STATUS.get(e.status, e.status),
                attempts=e.attempts,
                created_at=e.created_at,
                next_attempt_at=e.next_attempt_at,
                sent_at=e.sent_at,
                last_error=e.last_error,
                attempt_log=[
                    AttemptOut(
                        at=a.at,
                        outcome=a.outcome,
                        outcome_label=ATTEMPT_OUTCOMES.get(a.outcome, a.outcome),
                        smtp_code=a.smtp_code,
                        detail=a.detail,
                    )
                    for a in log.attempts.get(e.id, [])
                ],  # type: ignore[arg-type]
            )
            for e, _c, o in log.emails
        ],
        channel_counts=log.channel_counts,
        channel_messages=[
            ChannelMessageOut(
                id=int(m.id or 0),
                channel=m.channel,
                channel_label=CHANNEL_LABELS.get(m.channel, m.channel),
                to_name=m.to_name,
                address=m.address,
                title=m.title,
                items=m.items,
                status=m.status,
                status_label=CHANNEL_STATUS.get(m.status, m.status),
                attempts=m.attempts,
                created_at=m.created_at,
                next_attempt_at=m.next_attempt_at,
                sent_at=m.sent_at,
                last_error=m.last_error,
                folded_into=m.folded_into,
                fallback_of=m.fallback_of,
                attempt_log=[
                    ChannelAttemptOut(
                        at=a.at,
                        outcome=a.outcome,
                        outcome_label=ATTEMPT_OUTCOMES.get(a.outcome, a.outcome),
                        code=a.code,
                        detail=a.detail,
                    )
                    for a in log.channel_attempts.get(int(m.id or 0), [])
                ],
            )
            for m in log.channel_messages
        ],
    )


@router.get("/audit/verify", response_model=AuditOut, summary="校验审计哈希链", responses=REFUSALS)
def audit_verify(request: Request, viewer: ViewerDep) -> AuditOut:
    rt = runtime(request)
    from models.replay import verify  # the chain and the tables replayed, as `shenbao audit verify`

    with rt.db.snapshot() as session:
        report = verify(session, rt.audit())
    shown = report.problems if viewer.tier == "province" else []
    return AuditOut(
        ok=report.ok,
        checked=report.checked,
        head_seq=report.head_seq,
        anchor_seq=report.anchor_seq,
        problems=[AuditProblemOut(seq=p.seq, kind=p.kind, message=p.message) for p in shown],
        problem_count=len(report.problems),
    )
