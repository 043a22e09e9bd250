"""Issue 8's security defects, each through the real parts: a real uvicorn, real sockets."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from dashboard.app import create_app
from dashboard.auth import feed_id
from dashboard.settings import WebSettings
from operations.runtime import Runtime
from tests.dashboard.conftest import WEB
from tests.dashboard.world import World

# Access log and body limits live in the web layer alone: SQLite only (tests/README.md, rule 4).
pytestmark = pytest.mark.backends("sqlite")


class _Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextmanager
def served(runtime: Runtime, web: WebSettings = WEB) -> Iterator[tuple[str, _Captured]]:
    """The app under uvicorn in a thread, configured the way ``shenbao web`` runs it."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # uvicorn applies its logging config here, as it does for `shenbao web` and `shenbao serve`.
    cfg = uvicorn.Config(create_app(runtime, web), host="127.0.0.1", port=port, log_level="info")
    captured = _Captured()
    access = logging.getLogger("uvicorn.access")
    access.addHandler(captured)
    server = uvicorn.Server(cfg)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", captured
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        access.removeHandler(captured)


def test_the_access_log_never_shows_a_sign_in_token_or_a_feed_id(runtime: Runtime, world: World) -> None:
    token = world.token("hangzhou")
    feed = feed_id(WEB.secret, world.people["hangzhou"].token_id)  # type: ignore[arg-type]
    with served(runtime) as (base, log):
        with httpx.Client(base_url=base) as http:
            assert http.get(f"/login/{token}").status_code == 303  # signed in, sent to the home page
            assert http.get(f"/calendar/{feed}.ics").status_code == 200
            http.get(f"/login?next=/me&token={token}")
            http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    text = "\n".join(log.lines)
    assert "/login/sb_… HTTP/1.1" in text and "/calendar/….ics" in text  # the requests are logged
    assert token not in text and token.removeprefix("sb_") not in text
    assert feed not in text and feed.split(".")[-1] not in text


SMALL = WebSettings(secret=WEB.secret, max_upload_mb=1)
BOUNDARY = "shenbao-test-boundary"


def _multipart(size: int) -> Iterator[bytes]:
    """A letter upload of ``size`` bytes, streamed in chunks: no Content-Length is sent."""
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="scan.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n%PDF-1.4\n"
    ).encode()
    chunk = b"0" * 65536
    for _ in range(size // len(chunk)):
        yield chunk
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def _stored(runtime: Runtime) -> list[str]:
    root = runtime.settings.home / "letters"
    return [p.name for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_a_body_declared_too_large_is_refused_before_it_is_read(runtime: Runtime, world: World) -> None:
    rec = world.refs["rec_hangzhou_cl"]
    with served(runtime, SMALL) as (base, _log):
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as conn:
            conn.sendall(
                f"POST /api/cases/{rec}/letter HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {world.token('hangzhou')}\r\n"
                f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                f"Content-Length: {400 * 1024 * 1024}\r\n\r\n".encode()
            )
            # Only the headers went out; the answer comes without the 400 MB ever being sent.
            received = b""
            while chunk := conn.recv(65536):  # the server closes the connection after answering
                received += chunk
    answer = received.decode("utf-8", "replace")
    assert answer.startswith("HTTP/1.1 413"), answer
    assert "请求内容过大：上限 1 MB" in answer
    assert _stored(runtime) == []


def test_a_streamed_body_is_cut_off_at_the_limit(runtime: Runtime, world: World) -> None:
    rec = world.refs["rec_hangzhou_cl"]
    headers = {
        "Authorization": f"Bearer {world.token('hangzhou')}",
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
    }
    with served(runtime, SMALL) as (base, _log), httpx.Client(base_url=base, timeout=30) as http:
        answer = http.post(f"/api/cases/{rec}/letter", headers=headers, content=_multipart(3 * 1024 * 1024))
        small = http.post(f"/api/cases/{rec}/letter", headers=headers, content=_multipart(65536))
    assert answer.status_code == 413 and "请求内容过大：上限 1 MB" in answer.json()["detail"]
    assert small.status_code == 200, small.text  # under the limit, the same upload goes through
    assert len([n for n in _stored(runtime) if not n.endswith(".json")]) == 1
