"""The dashboard application: server-rendered pages, the JSON API, exports and calendar feeds.

``create_app(runtime)`` builds everything from the runtime the CLI (or ``shenbao serve``)
already has; nothing is created at import time.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from dashboard import access_log
from dashboard.body_limit import BodyLimit
from dashboard.settings import WebSettings, load_secret
from dashboard.web import LoginRequired, build_templates, render, url
from operations.runtime import Runtime

STATIC = Path(__file__).parent / "static"

# No script runs in these pages; inline SVG charts are markup, not images from elsewhere.
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'none'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def _wants_json(request: Request) -> bool:
    path = (
        request.url.path[len(request.scope.get("root_path", "")) :]
        if request.scope.get("root_path")
        else request.url.path
    )
    return path.startswith("/api/") or path.startswith("/calendar/")


def create_app(runtime: Runtime, web: WebSettings | None = None) -> FastAPI:
    from dashboard.routes import api, files, forms, login, pages

    web = web or WebSettings()
    secret = load_secret(web.secret, runtime.settings.home)
    access_log.install()
    app = FastAPI(
        title="申报 shenbao 看板与接口",
        description="浙江省“415X”集群遴选与浙江制造精品申报工作的协同看板。所有接口需个人令牌："
        "`Authorization: Bearer <令牌>`（shenbao token issue 签发）。时间均为带时区的 ISO 8601。",
        version="1",
        # Swagger UI and ReDoc load scripts from a CDN; the schema itself is served and readable.
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.runtime = runtime
    app.state.web_secret = secret
    app.state.templates = build_templates()
    # Added first, so it runs next to the routes, inside the security headers and the session.
    app.add_middleware(BodyLimit, limit_mb=web.max_upload_mb)
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret,
        session_cookie="shenbao_session",
        max_age=web.session_hours * 3600,
        same_site="lax",
        https_only=web.secure_cookies,
    )

    @app.middleware("http")
    async def security_headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        response: Response = await call_next(request)
        for key, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        if request.url.path.startswith(
            ("/api/", "/exports/", "/calendar/")
        ) or "text/html" in response.headers.get("content-type", ""):
            # Pages and files carry one organisation's data: no shared caches.
            response.headers.setdefault("Cache-Control", "private, no-store")
        return response

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, _exc: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(url(request, f"/login?next={quote(target)}"), status_code=303)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        if request.url.path.startswith("/exports/"):
            return PlainTextResponse(str(exc.detail), status_code=exc.status_code)
        return render(
            request,
            "error.html",
            viewer=None,
            status_code=exc.status_code,
            status=exc.status_code,
            message=str(exc.detail),
        )

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        problems = "；".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        if _wants_json(request):
            return JSONResponse(
                {"detail": f"请求参数有误：{problems}", "errors": exc.errors()}, status_code=422
            )
        return render(
            request,
            "error.html",
            viewer=None,
            status_code=422,
            status=422,
            message=f"请求参数有误：{problems}",
        )

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (login, pages, forms, files, api):
        app.include_router(module.router)
    return app
