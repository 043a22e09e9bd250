"""Signing in with a personal token (pasted, or from the link the CLI prints) and out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from dashboard.auth import end_sessions, new_csrf_token, viewer_for_token
from dashboard.web import check_csrf, now, render, runtime, url

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    # Only paths on this site: an open redirect would make our sign-in link a phishing tool.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _sign_in(request: Request, token: str, target: str | None) -> Response:
    viewer = viewer_for_token(runtime(request).db, token, now(request), via="session")
    if viewer is None:
        return render(
            request,
            "login.html",
            viewer=None,
            status_code=401,
            next=_safe_next(target),
            error="令牌无效、已过期或已吊销。请联系省级管理员重新签发（shenbao token issue）。",
        )
    # A fresh session at sign-in, so a session id planted before it is worth nothing.
    request.session.clear()
    request.session["tid"] = viewer.token_id
    request.session["sep"] = viewer.session_epoch
    request.session["csrf"] = new_csrf_token()
    request.session["flash"] = [["ok", f"欢迎，{viewer.org.name} {viewer.name}"]]
    return RedirectResponse(url(request, _safe_next(target)), status_code=303)


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", viewer=None, next=_safe_next(next), error=None)


@router.post("/login")
def login_submit(
    request: Request,
    token: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    check_csrf(request, csrf_token)
    return _sign_in(request, token, next)


@router.get("/login/{token}")
def login_link(request: Request, token: str) -> Response:
    """The personal link: opening it signs in (the token is the secret; it is never stored)."""
    return _sign_in(request, token, "/")


@router.post("/logout")
def logout(request: Request, csrf_token: Annotated[str, Form()] = "") -> Response:
    check_csrf(request, csrf_token)
    token_id, epoch = request.session.get("tid"), request.session.get("sep")
    if isinstance(token_id, int) and isinstance(epoch, int):
        with runtime(request).db.write() as session:
            end_sessions(session, token_id, epoch)
    request.session.clear()
    request.session["flash"] = [["ok", "已退出登录"]]
    return RedirectResponse(url(request, "/login"), status_code=303)
