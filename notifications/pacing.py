"""Pacing within one process: a token bucket per SMTP server shared by every worker of the
process. (Buckets shared by every process live in the database: notifications/governor.py.)
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from notifications.smtp import SmtpConfig


class TokenBucket:
    """A token bucket whose clock is a parameter, so tests compute waits instead of sleeping.

    ``reserve()`` takes a token at once and says how long to wait before using it; the balance
    may go negative, which queues callers in arrival order without a lock held across a sleep.
    Thread-safe, so one bucket can pace every worker of a process.
    """

    def __init__(self, rate: float, burst: int = 1, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = float(max(burst, 1))
        self.clock = clock
        self._tokens = self.capacity
        self._last = clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        with self._lock:
            now = self.clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    async def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)


_buckets: dict[tuple[str, int], TokenBucket] = {}
_buckets_lock = threading.Lock()


def rate_limiter_for(config: SmtpConfig) -> TokenBucket | None:
    """The process-wide bucket of one SMTP server (host:port), shared by all its workers."""
    if config.rate_per_second <= 0:
        return None
    key = (config.host, config.port)
    with _buckets_lock:
        bucket = _buckets.get(key)
        if bucket is None or bucket.rate != config.rate_per_second or bucket.capacity != config.rate_burst:
            bucket = _buckets[key] = TokenBucket(config.rate_per_second, config.rate_burst)
        return bucket
