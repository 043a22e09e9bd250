"""The dashboard inside the service: mounted in a thread of its own when it is installed."""

from __future__ import annotations

import importlib
import logging
import threading
import time
from typing import Any

from operations.runtime import Runtime

log = logging.getLogger("shenbao.service")


def start_web(rt: Runtime, host: str, port: int) -> tuple[Any, threading.Thread] | None:
    """The running uvicorn server and its thread, or None (not installed, or it failed to start)."""
    try:
        dashboard_app = importlib.import_module("dashboard.app")
    except ModuleNotFoundError as exc:
        if exc.name in ("dashboard", "dashboard.app"):
            log.info("未安装看板模块（dashboard.app），只运行调度")
            return None
        raise
    create_app = getattr(dashboard_app, "create_app", None)
    if create_app is None:
        log.info("看板模块没有 create_app，只运行调度")
        return None
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(create_app(rt), host=host, port=port, log_level="warning", proxy_headers=True)
    )
    # Not the main thread: uvicorn then leaves the signal handlers to us.
    thread = threading.Thread(target=server.run, name="shenbao-web", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        log.error("看板未能启动（端口 %d 是否被占用？），调度继续运行", port)
        return None
    log.info("看板：http://%s:%d/", host, port)
    return server, thread


def stop_web(server: Any, thread: threading.Thread | None) -> None:
    if server is not None:
        server.should_exit = True
    if thread is not None:
        thread.join(timeout=10)
