"""SIGTERM / SIGINT for ``shenbao serve``: the first stops gracefully, a second exits at once."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("shenbao.service")


@contextlib.contextmanager
def stop_on_signals(stopping: threading.Event) -> Iterator[None]:
    """While inside, SIGTERM/SIGINT set ``stopping``; the handlers before are restored after."""
    received: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        received.append(signum)
        name = signal.Signals(signum).name
        if len(received) > 1:
            log.warning("再次收到 %s，立即退出（进行中的发送由租约机制在下次运行时收回）", name)
            os._exit(128 + signum)
        log.info("收到 %s，正在停止：等待进行中的任务完成…", name)
        stopping.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
