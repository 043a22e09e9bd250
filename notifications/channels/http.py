"""One HTTP request for a transport, and what its failure means for delivery.

httpx (async, per-request result, timeouts per phase) rather than a notification library: the
outbox needs each platform's own answer code for each message, and an error raised before the
request left (connection refused: nothing sent, try again) told apart from one raised after
(timeout reading the answer: the platform may have it, retry only with the same key).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import httpx

from notifications.channels.base import Delivered
from notifications.channels.secrets import Secret, scrub


class _QueryHidden(logging.Filter):
    """httpx logs every request's URL at INFO; a robot's URL carries its access token and 浙政钉's
    token call its app secret. Whoever turns logging up gets the path without the query."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(
                a.copy_with(query=None) if isinstance(a, httpx.URL) else a for a in record.args
            )
        return True


logging.getLogger("httpx").addFilter(_QueryHidden())

# Raised before the request reached the platform: nothing was delivered.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


class LoopClient:
    """An ``httpx.AsyncClient`` for the running event loop.

    A client's connection pool belongs to the loop that opened it; the dispatcher may run each
    batch in a fresh ``asyncio.run``, so a client is made per loop rather than once.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop or self._client.is_closed:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout), trust_env=False)
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and not client.is_closed:
            try:
                await client.aclose()
            except RuntimeError:  # its loop is gone: nothing left to close
                pass


def retry_after_of(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


async def send(
    client: LoopClient,
    method: str,
    url: str,
    *,
    secrets: Iterable[Secret | str | None] = (),
    **options: Any,
) -> httpx.Response | Delivered:
    """The platform's response, or the ``Delivered`` that a failure to get one means.

    HTTP 5xx is temporary and 429 rate-limited here; any other status is the caller's to read
    (platforms put their own code in a 200 or 4xx body).
    """
    try:
        response = await client.get().request(method, url, **options)
    except _NOT_SENT as exc:
        return Delivered(
            "temporary", code=type(exc).__name__, detail=f"连接失败，未发出：{_said(exc, secrets)}"
        )
    except httpx.TimeoutException as exc:
        return Delivered(
            "unknown",
            code=type(exc).__name__,
            detail=f"已发出但等待答复超时，平台可能已收到：{_said(exc, secrets)}",
        )
    except httpx.TransportError as exc:
        return Delivered(
            "unknown",
            code=type(exc).__name__,
            detail=f"已发出但连接中断，平台可能已收到：{_said(exc, secrets)}",
        )
    if response.status_code >= 500:
        return Delivered(
            "temporary",
            code=f"HTTP {response.status_code}",
            detail=f"平台暂时不可用（HTTP {response.status_code}）",
            retry_after=retry_after_of(response),
        )
    if response.status_code == 429:
        return Delivered(
            "rate_limited",
            code="HTTP 429",
            detail="平台要求放慢发送（HTTP 429）",
            retry_after=retry_after_of(response),
        )
    return response


def json_body(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _said(exc: BaseException, secrets: Iterable[Secret | str | None]) -> str:
    text = str(exc) or type(exc).__name__
    return scrub(text, secrets)[:300]
