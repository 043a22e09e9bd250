"""A size limit on every request body, applied before anything parses it.

Without it a form post is read to the end whatever its size: a 400 MB body is parsed (and
spooled to disk) before any route can say no. The declared Content-Length is checked first; a
body sent without one (chunked) is counted as it arrives and cut off at the limit.
"""

from __future__ import annotations

import json

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def too_large_message(limit_mb: int) -> str:
    return f"请求内容过大：上限 {limit_mb} MB（上传的签章文件请压缩或分辨率调低后重试；管理员可调 SHENBAO_WEB_MAX_UPLOAD_MB）"


class BodyLimit:
    def __init__(self, app: ASGIApp, *, limit_mb: int) -> None:
        self.app = app
        self.limit_mb = limit_mb
        self.limit = limit_mb * 1024 * 1024

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(scope, send)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # Raised inside the route's parsing, so the app answers it like any refusal.
                    raise HTTPException(413, too_large_message(self.limit_mb))
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except HTTPException as exc:
            if exc.status_code != 413 or started:
                raise
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        text = too_large_message(self.limit_mb)
        if scope["path"].startswith("/api/"):
            body, kind = json.dumps({"detail": text}, ensure_ascii=False).encode(), b"application/json"
        else:
            body, kind = text.encode(), b"text/plain; charset=utf-8"
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                # The rest of the body is never read: the client must not reuse the connection.
                "headers": [
                    (b"content-type", kind),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
