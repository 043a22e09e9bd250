"""Files: the official .xlsx forms, status reports, uploaded letters, and calendar feeds."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, Response
from sqlmodel import Session, col, select

from calendars.campaign import CASE_COLUMNS, CampaignSpec, case_column_of
from calendars.timeutil import format_local, local_date
from dashboard import exports, scope
from dashboard.auth import Viewer, token_id_from_feed, viewer_for_token_id
from dashboard.feeds import contact_calendar
from dashboard.queries import (
    application_kind,
    division_name,
    list_cases,
    org_names,
    overdue_states,
    stage_statuses,
)
from dashboard.routes.forms import letter_store
from dashboard.routes.pages import get_campaign_or_404
from dashboard.web import absolute_url, api_viewer, now, runtime
from models.actions import CaseNotFound, get_case, the_citys
from models.campaign import Campaign
from models.case import PROGRAM_LABELS, Case
from models.letters import letter_on_file
from models.machines import machine_for
from models.org import Contact, Organisation
from models.status import board

router = APIRouter(tags=["导出与日历"])

ViewerDep = Annotated[Viewer, Depends(api_viewer)]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _download(data: bytes, filename: str, media_type: str) -> Response:
    ascii_name = filename.encode("ascii", "ignore").decode() or "download"
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"
    return Response(data, media_type=media_type, headers={"Content-Disposition": disposition})


def _city(session: Session, viewer: Viewer, city_code: str) -> Organisation:
    scope.require_city(viewer.org, city_code)
    city = session.get(Organisation, city_code)
    if city is None:
        raise HTTPException(404, f"没有这个设区市：{city_code}")
    return city


def _city_contact(session: Session, viewer: Viewer, city: Organisation, program: str) -> tuple[str, str]:
    """填报人 is the city's own contact for the program, whoever downloads the form (the province
    or a colleague on another program must not appear as the city's filler)."""
    if viewer.org.id == city.id and viewer.works_on(program):
        return viewer.name, viewer.mobile
    for ct in session.exec(
        select(Contact).where(Contact.org_id == city.id, Contact.active).order_by(Contact.id)
    ).all():
        if ct.works_on(program):
            return ct.name, ct.mobile
    return "", ""


def _shown(spec: CampaignSpec, case: Case, key: str, *, label: bool) -> Any:
    """A form field of a case as the summary shows it: its indexed column where the form puts it
    there (category, track), else its stored field; the choice's label when asked for."""
    field = spec.form.field(key) if spec.form is not None else None
    column = case_column_of(field) if field is not None else (key if key in CASE_COLUMNS else None)
    value = getattr(case, column) if column is not None else None
    if value in (None, ""):
        value = case.attrs.get(key)
    if value is None:
        return ""
    if label and isinstance(value, str):
        if column is not None:
            return spec.column_label(column, value)
        return spec.form.choice_label(key, value) if spec.form is not None else value
    return value


@router.get(
    "/exports/{campaign_id}/cities/{city_code}/recommendation-summary.xlsx",
    response_class=Response,
    summary="推荐汇总表（设区市，如附2-3 浙江制造精品推荐汇总表；批次文件 exports.recommendation_summary）",
)
# The address the 2026 精品 form has had since the first release (bookmarks, the access walk).
@router.get(
    "/exports/{campaign_id}/cities/{city_code}/jingpin-summary.xlsx",
    response_class=Response,
    summary="推荐汇总表（旧地址，同 recommendation-summary.xlsx）",
)
def recommendation_summary(request: Request, campaign_id: str, city_code: str, viewer: ViewerDep) -> Response:
    with runtime(request).db.read() as session:
        city = _city(session, viewer, city_code)
        c = get_campaign_or_404(session, campaign_id, viewer)
        spec = c.spec()
        form = spec.exports.recommendation_summary
        if form is None:
            raise HTTPException(
                404, f"批次「{c.name}」的批次文件没有推荐汇总表（exports.recommendation_summary）"
            )
        kind = spec.application_kind
        cases = session.exec(
            select(Case)
            .where(
                Case.campaign_id == c.id,
                Case.kind == kind,
                Case.city_code == city.id,
                col(Case.state).in_(sorted(machine_for(kind, c.id).on_list)),
                the_citys(spec, city.id),
            )
            .order_by(Case.ref)
        ).all()
        filler, phone = _city_contact(session, viewer, city, c.program)
    keys = [col_.field for col_ in form.columns if col_.field is not None]
    labelled = {col_.field for col_ in form.columns if col_.label}
    lines = [{key: _shown(spec, x, key, label=key in labelled) for key in keys} for x in cases]
    sheet = exports.recommendation_summary_form(
        form, year=spec.issued.year, city=city.name, filler=filler, phone=phone, lines=lines
    )
    return _download(exports.official_form_xlsx(sheet), f"{sheet.annex}_{sheet.title}_{city.name}.xlsx", XLSX)


@router.get(
    "/exports/{campaign_id}/cities/{city_code}/roster.xlsx",
    response_class=Response,
    summary="工作人员信息汇总表（设区市，如附件3；批次文件 exports.roster）",
)
def roster(request: Request, campaign_id: str, city_code: str, viewer: ViewerDep) -> Response:
    with runtime(request).db.read() as session:
        city = _city(session, viewer, city_code)
        c = get_campaign_or_404(session, campaign_id, viewer)
        spec = c.spec()
        form = spec.exports.roster
        if form is None:
            raise HTTPException(404, f"批次「{c.name}」的批次文件没有工作人员信息汇总表（exports.roster）")
        rows = session.exec(
            select(Contact, Organisation)
            .join(Organisation, Organisation.id == Contact.org_id)
            .where(
                Contact.active,
                Organisation.tier.in_(("city", "county")),  # type: ignore[attr-defined]
                (Organisation.id == city.id) | (Organisation.city_code == city.id),
            )
            .order_by(Organisation.id, Contact.department, Contact.name)
        ).all()
    label = PROGRAM_LABELS[c.program]
    contacts = [
        {
            "org": o.name,
            "department": ct.department,
            "name": ct.name,
            "title": ct.title,
            "mobile": ct.mobile,
            "email": ct.email,
            "program": label,
        }
        for ct, o in rows
        if ct.works_on(c.program)
    ]
    sheet = exports.roster_form(form, city=city.name, contacts=contacts)
    data = exports.official_form_xlsx(sheet)
    return _download(data, f"{sheet.annex}_{sheet.title}_{city.name}_{label}.xlsx", XLSX)


def _status_report(
    request: Request, session: Session, viewer: Viewer, c: Campaign, city: str | None
) -> bytes:
    at = now(request)
    org = viewer.org
    kind = application_kind(c)
    machine = machine_for(kind, c.id)
    statuses = stage_statuses(session, c, org, at, runtime(request).calendar)
    stage_rows = [
        (
            s.stage.name,
            s.as_dict()["actor_label"],
            s.due_text,
            s.working_days_left if s.working_days_left is not None else "",
            s.pending,
            "已逾期" if s.overdue else ("已截止" if s.closed else ""),
        )
        for s in statuses
    ]
    grid = board(session, c.id, kind, city=city)
    states = [st for st in machine.states if grid.total().get(st)] or list(machine.states)[:4]
    grid_rows = [
        (name if code != "-" else "市本级", *[counts.get(st, 0) for st in states], sum(counts.values()))
        for code, name, counts in grid.rows
    ]
    total = grid.total()
    grid_rows.append(("合计", *[total.get(st, 0) for st in states], sum(total.values())))
    cases, _n = list_cases(
        session, org, c.id, programs=viewer.program_set, kind=kind, city=city, limit=100_000
    )
    names = org_names(session, {x.org_id for x in cases})
    late = overdue_states(statuses, kind)
    case_rows = [
        (
            x.ref,
            x.title,
            names.get(x.org_id, x.org_id),
            division_name(x.county_code),
            x.track or "",
            machine.state_label(x.state),
            format_local(x.state_since),
            "是" if x.state in late else "",
        )
        for x in cases
    ]
    scope_label = division_name(city) if city else "全省"
    return exports.status_report_xlsx(
        title=c.name,
        generated=at,
        scope=scope_label,
        sheets=[
            exports.StatusSheet(
                "环节与截止时间",
                ("环节", "办理", "截止时间", "剩余工作日", "待办", "状态"),
                stage_rows,
                (40, 14, 26, 12, 10, 10),
                frozenset(i for i, s in enumerate(statuses) if s.overdue),
            ),
            exports.StatusSheet(
                "进度一览",
                (
                    "设区市" if city is None else "县（市、区）",
                    *[machine.state_label(st) for st in states],
                    "合计",
                ),
                grid_rows,
                (16, *[12] * len(states), 10),
            ),
            exports.StatusSheet(
                "案件清单",
                ("编号", "名称", "申报单位", "县（市、区）", "赛道", "状态", "状态起始", "逾期"),
                case_rows,
                (16, 40, 24, 14, 18, 18, 22, 8),
                frozenset(i for i, x in enumerate(cases) if x.state in late),
            ),
        ],
    )


@router.get("/exports/{campaign_id}/status.xlsx", response_class=Response, summary="全省进度报告（省级）")
def status_report(request: Request, campaign_id: str, viewer: ViewerDep) -> Response:
    scope.require_province(viewer.org, "导出全省进度报告")
    with runtime(request).db.read() as session:
        c = get_campaign_or_404(session, campaign_id, viewer)
        data = _status_report(request, session, viewer, c, None)
    day = local_date(now(request)).isoformat()
    return _download(data, f"进度报告_{c.name}_全省_{day}.xlsx", XLSX)


@router.get(
    "/exports/{campaign_id}/cities/{city_code}/status.xlsx", response_class=Response, summary="设区市进度报告"
)
def city_status_report(request: Request, campaign_id: str, city_code: str, viewer: ViewerDep) -> Response:
    with runtime(request).db.read() as session:
        city = _city(session, viewer, city_code)
        c = get_campaign_or_404(session, campaign_id, viewer)
        data = _status_report(request, session, viewer, c, city.id)
    day = local_date(now(request)).isoformat()
    return _download(data, f"进度报告_{c.name}_{city.name}_{day}.xlsx", XLSX)


@router.get("/cases/{ref}/letter", response_class=FileResponse, summary="下载案件的签章推荐函/汇总表")
def letter(request: Request, ref: str, viewer: ViewerDep) -> Response:
    with runtime(request).db.read() as session:
        try:
            case = get_case(session, ref)
        except CaseNotFound:
            case = None
        case = scope.require_case(session, viewer, case, ref)
    record = letter_on_file(case)
    if record is None:
        raise HTTPException(404, f"{case.ref} 尚未上传签章文件")
    store = letter_store(request)
    stored = store.find(record["sha256"])
    if stored is None:
        raise HTTPException(
            404, f"签章文件「{record['name']}」已登记（SHA-256 {record['sha256'][:12]}…），但不在本服务器上"
        )
    return FileResponse(store.path(stored.sha256), filename=record["name"], media_type=stored.media_type)


@router.get("/calendar/{feed}.ics", response_class=Response, summary="个人截止时间日历订阅（iCalendar）")
def calendar_feed(request: Request, feed: str) -> Response:
    """No cookie and no header: calendar apps only fetch a URL, so the URL itself is the secret."""
    rt = runtime(request)
    token_id = token_id_from_feed(request.app.state.web_secret, feed)
    viewer = viewer_for_token_id(rt.db, token_id, now(request), via="feed") if token_id is not None else None
    if viewer is None:
        raise HTTPException(404, "日历订阅地址无效或已失效（令牌已吊销或过期）")
    with rt.db.read() as session:
        text = contact_calendar(
            session,
            viewer.org,
            set(viewer.programs.split(",")),
            name=f"申报截止时间（{viewer.org.name}）",
            base_url=absolute_url(request, ""),
            now=now(request),
        )
    return Response(
        text.encode("utf-8"),
        media_type="text/calendar; charset=utf-8",
        headers={"Content-Disposition": 'inline; filename="shenbao.ics"'},
    )
