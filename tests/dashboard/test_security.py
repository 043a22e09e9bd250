"""Issue 8's security defects, each through the real parts: a real uvicorn, real sockets."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from dashboard.app import create_app
from dashboard.auth import feed_id
from flows.runtime import Runtime
from tests.dashboard.conftest import WEB
from tests.dashboard.world import World


class _Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextmanager
def served(runtime: Runtime, **config: object) -> Iterator[tuple[str, _Captured]]:
    """The app under uvicorn in a thread, configured the way ``shenbao web`` runs it."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # uvicorn applies its logging config here, as it does for `shenbao web` and `shenbao serve`.
    cfg = uvicorn.Config(create_app(runtime, WEB), host="127.0.0.1", port=port, log_level="info", **config)
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
