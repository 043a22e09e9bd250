"""What every route needs: the runtime, the clock, the viewer, rendering, flashes, CSRF."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from calendars.timeutil import format_date, format_deadline, format_local
from dashboard.auth import Viewer, csrf_matches, new_csrf_token, viewer_for_session, viewer_for_token
from models.actions import ActionRefused
from models.case import PROGRAM_LABELS
from models.machines import KIND_LABELS
from models.org import TIER_LABELS
from operations.runtime import Runtime

TEMPLATES = Path(__file__).parent / "templates"


class LoginRequired(Exception):
    """A page asked for by someone not signed in: answered with a redirect to /login."""


def build_templates() -> Environment:
    # One environment, autoescaped, strict: a missing variable is a bug, not an empty cell.
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["local"] = lambda dt: format_local(dt) if dt else ""
    env.filters["deadline"] = lambda dt: format_deadline(dt) if dt else "另行通知"
    env.filters["day"] = format_date
    env.globals.update(
        KIND_LABELS=KIND_LABELS,
        TIER_LABELS=TIER_LABELS,
        PROGRAM_LABELS=PROGRAM_LABELS,
    )
    return env


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def now(request: Request) -> datetime:
    """The clock, read once per request (real time, or SHENBAO_NOW / --now for simulations)."""
    if not hasattr(request.state, "now"):
        request.state.now = runtime(request).now()
    return request.state.now  # type: ignore[no-any-return]


def page_viewer(request: Request) -> Viewer:
    token_id, epoch = request.session.get("tid"), request.session.get("sep")
    if not isinstance(token_id, int) or not isinstance(epoch, int):
        raise LoginRequired()
    viewer = viewer_for_session(runtime(request).db, token_id, epoch, now(request))
    if viewer is None:
        # Revoked, expired or signed out since the session began: the cookie alone is not enough.
        request.session.clear()
        raise LoginRequired()
    return viewer


_BEARER = re.compile(r"^\s*Bearer\s+(\S+)\s*$", re.IGNORECASE)


def api_viewer(request: Request) -> Viewer:
    header = request.headers.get("authorization")
    if header:
        match = _BEARER.match(header)
        viewer = viewer_for_token(runtime(request).db, match.group(1), now(request)) if match else None
        if viewer is None:
            raise HTTPException(401, "令牌无效、已过期或已吊销", headers={"WWW-Authenticate": "Bearer"})
        return viewer
    try:
        return page_viewer(request)
    except LoginRequired:
        raise HTTPException(
            401,
            "请先登录：请求头 Authorization: Bearer <个人令牌>，或看板会话",
            headers={"WWW-Authenticate": "Bearer"},
        ) from None


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = new_csrf_token()
        request.session["csrf"] = token
    return str(token)


def check_csrf(request: Request, given: str | None) -> None:
    if not csrf_matches(request.session.get("csrf"), given):
        raise HTTPException(403, "表单已失效（安全校验未通过），请刷新页面后重试")


def check_api_csrf(request: Request, viewer: Viewer) -> None:
    """A cookie-authenticated API write must prove it came from our page, like a form does."""
    if viewer.via == "session":
        check_csrf(request, request.headers.get("x-csrf-token"))


def flash(request: Request, kind: str, text: str) -> None:
    messages = list(request.session.get("flash", []))
    messages.append([kind, text])
    request.session["flash"] = messages[-5:]


def url(request: Request, path: str) -> str:
    # Another edge (shenbao serve) may mount this app under a prefix.
    return request.scope.get("root_path", "").rstrip("/") + path


def absolute_url(request: Request, path: str) -> str:
    """A link for outside the browser (calendar apps, e-mails): SHENBAO_DASHBOARD_URL if set."""
    configured = runtime(request).settings.dashboard_url
    if configured:
        return configured.rstrip("/") + path
    return f"{request.url.scheme}://{request.url.netloc}{url(request, path)}"


def render(
    request: Request, template: str, *, viewer: Viewer | None, status_code: int = 200, **context: Any
) -> HTMLResponse:
    env: Environment = request.app.state.templates
    flashes = request.session.pop("flash", []) if "session" in request.scope else []
    html = env.get_template(template).render(
        request=request,
        viewer=viewer,
        now=now(request),
        csrf=csrf_token(request),
        flashes=flashes,
        u=lambda path: url(request, path),
        **context,
    )
    return HTMLResponse(html, status_code=status_code)


# How to put a refusal right on these pages; the CLI words its own hints for the same rules.
WEB_HINTS = {
    "reason_required": "请在“理由”栏填写后重新提交。",
    "override_required": "如确需继续，请在下方对应条目填写理由后重新提交。",
    "letter_missing": "请先在推荐页上传签章文件。",
    "defence_time": "请填写答辩时间。",
}


def refusal_text(exc: ActionRefused) -> str:
    """A refusal as a page shows it: what is wrong, then what to do here."""
    hint = WEB_HINTS.get(exc.rule)
    return f"{exc}\n{hint}" if hint else str(exc)
