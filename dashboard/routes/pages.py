"""The pages people read: campaigns, the status board, a case, a city's recommendation, mail, audit."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response
from sqlmodel import Session

from dashboard import charts, scope
from dashboard.auth import Viewer, feed_id
from dashboard.feeds import concerns
from dashboard.queries import (
    ATTEMPT_OUTCOMES,
    CHANNEL_STATUS,
    EMAIL_STATUS,
    NOTIFICATION_KINDS,
    NOTIFICATION_STATUS,
    application_kind,
    city_recommendation,
    division_name,
    list_cases,
    mail_log,
    org_names,
    overdue_states,
    quota_label,
    stage_progress,
    stage_statuses,
)
from dashboard.web import absolute_url, now, page_viewer, render, runtime
from models.actions import CaseNotFound, get_case
from models.campaign import Campaign, campaign_kinds, get_campaign
from models.case import Case
from models.history import case_history
from models.machines import machine_for
from models.org import Organisation
from models.reference import load_divisions
from models.status import board
from notifications.channels.base import CHANNEL_LABELS

router = APIRouter(include_in_schema=False)

ViewerDep = Annotated[Viewer, Depends(page_viewer)]

SEVERITY = {
    "block": ("✗", "不符合（不能继续）"),
    "in_principle": ("!", "原则上要求（可说明理由后继续）"),
    "info": ("·", "提示"),
}


def get_campaign_or_404(session: Session, campaign_id: str, viewer: Viewer) -> Campaign:
    return scope.require_campaign(session, viewer, campaign_id)


@router.get("/")
def home(request: Request, viewer: ViewerDep) -> Response:
    rt = runtime(request)
    with rt.db.read() as session:
        items = []
        for c in scope.campaigns_for(session, viewer):
            statuses = stage_statuses(session, c, viewer.org, now(request), rt.calendar)
            upcoming = [s for s in statuses if s.due_at is not None and not s.closed]
            items.append(
                {
                    "campaign": c,
                    "spec": c.spec(),
                    "statuses": statuses,
                    "next": upcoming[0] if upcoming else None,
                    "overdue": [s for s in statuses if s.overdue],
                }
            )
    return render(request, "home.html", viewer=viewer, items=items)


@router.get("/campaigns/{campaign_id}")
def campaign_page(request: Request, campaign_id: str, viewer: ViewerDep) -> Response:
    rt = runtime(request)
    at = now(request)
    with rt.db.read() as session:
        c = get_campaign_or_404(session, campaign_id, viewer)
        spec = c.spec()
        statuses = stage_statuses(session, c, viewer.org, at, rt.calendar)
        # A county has no use for empty charts of the city's and the province's stages.
        progress = [
            (s, charts.progress_chart(stage_progress(session, c, s.stage, s.due_at, viewer.org, at)))
            for s in statuses
            if concerns(viewer.tier, s.stage.actor)
        ]
    timeline = charts.campaign_timeline(statuses, spec.issued, at)
    return render(
        request,
        "campaign.html",
        viewer=viewer,
        campaign=c,
        spec=spec,
        statuses=statuses,
        timeline=timeline,
        progress=progress,
        app_kind=application_kind(c),
        cities=[(d.code, d.name) for d in load_divisions().cities],
    )


@router.get("/campaigns/{campaign_id}/board")
def board_page(
    request: Request,
    campaign_id: str,
    viewer: ViewerDep,
    kind: str | None = None,
    city: str | None = None,
    county: str | None = None,
    state: str | None = None,
    applicant: str | None = None,
    q: str | None = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    rt = runtime(request)
    org = viewer.org
    city, county, state, applicant, q = (
        city or None,
        county or None,
        state or None,
        applicant or None,
        q or None,
    )
    if city:
        scope.require_city(org, city)
    if county:
        scope.require_county(org, county)
    with rt.db.read() as session:
        c = get_campaign_or_404(session, campaign_id, viewer)
        kinds = [k for k in campaign_kinds(c.spec()) if k in {s.subject for s in c.spec().stages}]
        kind = kind or application_kind(c)
        if kind not in kinds:
            raise HTTPException(404, f"本批次没有这类案件：{kind}")
        machine = machine_for(kind, c.id)
        if state and state not in machine.states:
            raise HTTPException(404, f"「{machine.label}」没有状态 {state}")
        statuses = stage_statuses(session, c, org, now(request), rt.calendar)
        late = overdue_states(statuses, kind)
        grid = None
        level = {
            **scope.board_start(org),
            **({"city": city} if city else {}),
            **({"county": county} if county else {}),
        }
        if org.tier in ("province", "city", "county"):
            grid = board(session, c.id, kind, city=level.get("city"), county=level.get("county"), state=state)
        per_page = 100
        cases, total = list_cases(
            session,
            org,
            c.id,
            programs=viewer.program_set,
            kind=kind,
            city=city,
            county=county,
            state=state,
            applicant=applicant,
            q=q,
            limit=per_page,
            offset=(page - 1) * per_page,
        )
        names = org_names(session, {x.org_id for x in cases})
    used_states = [s for s in machine.states if grid is None or grid.total().get(s)] or list(machine.states)[
        :4
    ]
    crumbs = [("全省" if org.tier == "province" else org.name, {})]
    # The viewer's own organisation is the first crumb already; do not repeat it.
    if level.get("city") and level["city"] != org.id:
        crumbs.append((division_name(level["city"]), {"city": level["city"]}))
    if level.get("county") and level["county"] != org.id:
        crumbs.append((division_name(level["county"]), {"county": level["county"]}))
    return render(
        request,
        "board.html",
        viewer=viewer,
        campaign=c,
        kind=kind,
        kinds=kinds,
        machine=machine,
        grid=grid,
        used_states=used_states,
        late=late,
        cases=cases,
        total=total,
        names=names,
        page=page,
        per_page=per_page,
        filters={
            "kind": kind,
            "city": city or "",
            "county": county or "",
            "state": state or "",
            "q": q or "",
            "applicant": applicant or "",
        },
        crumbs=crumbs,
        division_name=division_name,
    )


def _case_view(session: Session, viewer: Viewer, case: Case) -> dict[str, Any]:
    machine = machine_for(case.kind, case.campaign_id)
    names = org_names(session, {x for x in (case.org_id, case.recommender_id) if x})
    allowed = machine.allowed(case.state)
    tier = viewer.tier
    mine = [t for t in allowed if tier in t.tiers or (tier == "park" and "county" in t.tiers)]
    others = [t for t in allowed if t not in mine and "system" not in t.tiers]
    # What 基本信息 already shows (申报单位, 赛道) is not listed a second time.
    shown = {"applicant": names.get(case.org_id), "track": case.track, "subtrack": case.track}
    spec = get_campaign(session, case.campaign_id).spec()
    attrs = [
        (spec.field_label(k), spec.shown_value(k, v))
        for k, v in case.attrs.items()
        if k != "source_row" and v not in (None, "") and shown.get(k) != v
    ]
    overridable = [f for f in case.findings if f.get("severity") == "in_principle"]
    return {
        "case": case,
        "machine": machine,
        "names": names,
        "quota": quota_label(session, spec, case.quota_bucket),
        "mine": mine,
        "others": others,
        "attrs": attrs,
        "overridable": overridable,
        "severity": SEVERITY,
        "history": case_history(session, case),
    }


@router.get("/cases/{ref}")
def case_page(request: Request, ref: str, viewer: ViewerDep) -> Response:
    rt = runtime(request)
    with rt.db.read() as session:
        try:
            case = get_case(session, ref)
        except CaseNotFound:
            case = None
        case = scope.require_case(session, viewer, case, ref)
        view = _case_view(session, viewer, case)
        c = get_campaign(session, case.campaign_id)
        statuses = [
            s
            for s in stage_statuses(session, c, viewer.org, now(request), rt.calendar)
            if s.stage.subject == case.kind and case.state in s.stage.pending_states
        ]
        # Only what the engine itself can find out: a first check when nothing has run yet.
        from models.eligibility import preview_findings

        view["findings_preview"] = preview_findings(session, c.spec(), case)
        if view["findings_preview"] is not None:
            view["overridable"] = [f for f in view["findings_preview"] if f["severity"] == "in_principle"]
    return render(
        request,
        "case.html",
        viewer=viewer,
        campaign=c,
        statuses=statuses,
        division_name=division_name,
        **view,
    )


@router.get("/campaigns/{campaign_id}/cities/{city_code}")
def city_page(request: Request, campaign_id: str, city_code: str, viewer: ViewerDep) -> Response:
    scope.require_city(viewer.org, city_code)
    rt = runtime(request)
    with rt.db.read() as session:
        c = get_campaign_or_404(session, campaign_id, viewer)
        city = session.get(Organisation, city_code)
        if city is None:
            raise HTTPException(404, f"没有这个设区市：{city_code}")
        rec = city_recommendation(session, c, city)
        statuses = stage_statuses(session, c, viewer.org, now(request), rt.calendar)
    stage = next((s for s in statuses if s.stage.subject == "recommendation"), None)
    return render(
        request,
        "city.html",
        viewer=viewer,
        campaign=c,
        rec=rec,
        stage=stage,
        quota_names={q.bucket: q.name for q in rec.quotas},
        division_name=division_name,
        machine_for=machine_for,
    )


@router.get("/notifications")
def notifications_page(
    request: Request,
    viewer: ViewerDep,
    status: str | None = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    if status and status not in EMAIL_STATUS:
        raise HTTPException(404, f"没有这种发送状态：{status}")
    per_page = 100
    with runtime(request).db.read() as session:
        log = mail_log(
            session,
            viewer.org,
            programs=viewer.program_set,
            status=status or None,
            limit=per_page,
            offset=(page - 1) * per_page,
        )
    return render(
        request,
        "notifications.html",
        viewer=viewer,
        log=log,
        status=status or "",
        page=page,
        per_page=per_page,
        EMAIL_STATUS=EMAIL_STATUS,
        NOTIFICATION_STATUS=NOTIFICATION_STATUS,
        NOTIFICATION_KINDS=NOTIFICATION_KINDS,
        ATTEMPT_OUTCOMES=ATTEMPT_OUTCOMES,
        CHANNEL_STATUS=CHANNEL_STATUS,
        CHANNEL_LABELS=CHANNEL_LABELS,
    )


@router.get("/audit")
def audit_page(request: Request, viewer: ViewerDep) -> Response:
    rt = runtime(request)
    from models import audit_tree
    from models.replay import verify  # the chain and the tables replayed, as `shenbao audit verify`

    keyring_file = rt.settings.resolved_keyring_file
    keyring = rt.keyring() if keyring_file.exists() else None
    with rt.db.snapshot() as session:
        report = verify(session, rt.audit(), keyring=keyring)
        signed = audit_tree.checkpoints(session, 10)
    # The problem list names events of every organisation; only the province sees it.
    return render(
        request,
        "audit.html",
        viewer=viewer,
        report=report,
        details=viewer.tier == "province",
        checkpoints=signed,
        public_keys=[k.text for k in keyring.keys] if keyring else [],
    )


def _case_receipt(request: Request, ref: str, viewer: Viewer) -> tuple[Case, dict[str, Any]]:
    """A case's history with its proofs: every event, its inclusion proof, a signed checkpoint."""
    from models.checkpoint import KeyProblem
    from operations import checkpoints

    rt = runtime(request)
    with rt.db.read() as session:
        try:
            case = get_case(session, ref)
        except CaseNotFound:
            case = None
        case = scope.require_case(session, viewer, case, ref)
    try:
        return case, checkpoints.receipt(rt, case.ref)
    except KeyProblem as exc:
        raise HTTPException(503, f"暂不能出具审计回执：{exc}") from exc


@router.get("/cases/{ref}/receipt.json")
def case_receipt_json(request: Request, ref: str, viewer: ViewerDep) -> Response:
    import json

    case, data = _case_receipt(request, ref, viewer)
    return Response(
        json.dumps(data, ensure_ascii=False, indent=2),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="receipt-{case.ref}.json"'},
    )


@router.get("/cases/{ref}/receipt")
def case_receipt_page(request: Request, ref: str, viewer: ViewerDep) -> Response:
    """The printable history of a case with its proofs (the same receipt as the .json)."""
    import json

    from calendars.timeutil import parse_instant

    case, data = _case_receipt(request, ref, viewer)
    entries = [e | {"fields": json.loads(e["event"])} for e in data["entries"]]
    for e in entries:
        e["at"] = parse_instant(e["fields"]["at"])
    return render(request, "receipt.html", viewer=viewer, case=case, receipt=data, entries=entries)


@router.get("/me")
def me_page(request: Request, viewer: ViewerDep) -> Response:
    path = f"/calendar/{feed_id(request.app.state.web_secret, viewer.token_id)}.ics"
    return render(request, "me.html", viewer=viewer, feed_url=absolute_url(request, path))


@router.get("/api/docs")
def api_docs(request: Request) -> Response:
    """The API reference rendered here from the OpenAPI schema (Swagger UI would need a CDN)."""
    schema = request.app.openapi()
    endpoints = []
    for path, methods in schema["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, op in methods.items():
            ok = (
                op.get("responses", {})
                .get("200", {})
                .get("content", {})
                .get("application/json", {})
                .get("schema", {})
            )
            model = (ok.get("$ref") or ok.get("items", {}).get("$ref") or "").rsplit("/", 1)[-1]
            endpoints.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": op.get("summary", ""),
                    "params": [p["name"] for p in op.get("parameters", [])],
                    "body": "requestBody" in op,
                    "model": model,
                    "errors": sorted(k for k in op.get("responses", {}) if k not in ("200", "422")),
                }
            )
    return render(
        request,
        "api_docs.html",
        viewer=None,
        endpoints=endpoints,
        description=schema["info"]["description"],
        models=schema.get("components", {}).get("schemas", {}),
    )
