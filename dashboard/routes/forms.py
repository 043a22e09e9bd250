"""Actions from the pages: the same domain calls as the CLI, answered with a message and a redirect.

Every form posts a CSRF token from the signed session. The case must be within the viewer's
scope before anything is attempted (404 otherwise); ``perform`` then applies the state machine,
the tier and jurisdiction rules, the guards, and writes the audit record, or refuses and
records the refusal. Refusals come back as a message on the page, in plain Chinese.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from calendars.timeutil import format_deadline, parse_deadline, parse_instant
from dashboard import scope
from dashboard.auth import Viewer
from dashboard.web import check_csrf, flash, now, page_viewer, refusal_text, runtime, url
from models.actions import ActionRefused, CaseNotFound, get_case
from models.letters import MAX_LETTER_BYTES, LetterRefused, LetterStore
from models.machines import machine_for
from operations import acts

router = APIRouter(include_in_schema=False)

ViewerDep = Annotated[Viewer, Depends(page_viewer)]


async def form_data(request: Request) -> FormData:
    # Parsed once by FastAPI for the declared fields; this hands over the whole (cached) form.
    return await request.form()


def _back(request: Request, target: str | None, default: str) -> str:
    if target and target.startswith("/") and not target.startswith("//"):
        return url(request, target)
    return url(request, default)


def letter_store(request: Request) -> LetterStore:
    return LetterStore.under(runtime(request).settings.home)


def read_upload(upload: UploadFile) -> tuple[str, bytes]:
    """The name and bytes of an uploaded letter; one byte over the limit is enough to refuse it."""
    return upload.filename or "", upload.file.read(MAX_LETTER_BYTES + 1)


@router.post("/cases/{ref}/act")
def act_on_case(
    request: Request,
    ref: str,
    viewer: ViewerDep,
    action: Annotated[str, Form()],
    form: Annotated[FormData, Depends(form_data)],
    csrf_token: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    at: Annotated[str, Form()] = "",
    back: Annotated[str, Form()] = "",
    letter: UploadFile | None = None,
) -> Response:
    check_csrf(request, csrf_token)
    rt = runtime(request)
    with rt.db.read() as session:
        try:
            case = get_case(session, ref)
        except CaseNotFound:
            case = None
        case = scope.require_case(session, viewer, case, ref)
    target = _back(request, back, f"/cases/{case.ref}")
    label = next(
        (t.label for t in machine_for(case.kind, case.campaign_id).transitions if t.action == action), action
    )
    params: dict[str, Any] = {}
    overrides: dict[str, str] = {}
    try:
        if at.strip():
            # <input type=datetime-local> sends 2026-08-10T09:00: Shanghai wall-clock time.
            params["at"] = parse_instant(at)
    except ValueError as exc:
        flash(request, "error", f"「{label}」未执行：{exc}")
        return RedirectResponse(target, status_code=303)
    # Overrides arrive as override_<rule>=理由 from the findings the page listed.
    for key, value in form.multi_items():
        if key.startswith("override_") and isinstance(value, str) and value.strip():
            overrides[key.removeprefix("override_")] = value.strip()
    try:
        with ExitStack() as stack:
            if letter is not None and letter.filename:
                # Kept only if the action goes through: a refusal leaves no file behind.
                params["letter"] = stack.enter_context(letter_store(request).attaching(*read_upload(letter)))
            done = acts.act(
                rt,
                viewer.actor,
                case.ref,
                action,
                reason=reason.strip(),
                overrides=overrides,
                params=params,
                now=now(request),
            )
    except LetterRefused as exc:
        flash(request, "error", f"「{label}」未执行：{exc}")
    except ActionRefused as exc:
        flash(request, "error", f"「{label}」未执行：{refusal_text(exc)}")
    else:
        flash(
            request,
            "ok",
            f"已{label}：{done.ref} {done.title}，当前状态「{machine_for(done.kind, done.campaign_id).state_label(done.state)}」",
        )
    return RedirectResponse(target, status_code=303)


@router.post("/campaigns/{campaign_id}/stages/{stage_id}/deadline")
def move_deadline(
    request: Request,
    campaign_id: str,
    stage_id: str,
    viewer: ViewerDep,
    csrf_token: Annotated[str, Form()] = "",
    due: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf_token)
    scope.require_province(viewer.org, "设定或调整截止时间")
    rt = runtime(request)
    target = url(request, f"/campaigns/{campaign_id}")
    with rt.db.read() as session:
        try:
            stage = scope.require_campaign(session, viewer, campaign_id).spec().stage(stage_id)
        except KeyError as exc:
            raise HTTPException(404, str(exc).strip("'\"")) from None
    try:
        # datetime-local sends "2026-08-10T17:30"; a bare date means the end of that day.
        when = parse_deadline(due.replace("T", " ")) if due.strip() else None
        row = acts.move_deadline(
            rt, viewer.actor, campaign_id, stage_id, when, reason.strip(), now=now(request)
        )
    except ActionRefused as exc:
        flash(request, "error", f"「{stage.name}」截止时间未调整：{refusal_text(exc)}")
    except ValueError as exc:
        flash(request, "error", f"「{stage.name}」截止时间未调整：{exc}")
    else:
        text = format_deadline(row.due_at) if row.due_at else "另行通知"
        flash(request, "ok", f"「{stage.name}」截止时间已调整为 {text}（第 {row.version} 版），已记入审计")
    return RedirectResponse(target, status_code=303)
