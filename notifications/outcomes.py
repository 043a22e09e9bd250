"""What came of a try, and what follows: the report of a run, SMTP errors classified (temporary,
permanent, unknown), back-off per message and per unreachable server, and what counts as a
database outage. Split from notifications/dispatcher.py (issue 13).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

import aiosmtplib
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, PendingRollbackError

from notifications.smtp import DeliveryUnknown, SmtpConfig


@dataclass
class DispatchReport:
    sent: int = 0
    retry: int = 0
    dead: int = 0
    cancelled: int = 0
    # Claimed but not tried because the server was unreachable; released for a later run.
    deferred: int = 0
    # Handed to the server, final reply never came (timeout, dropped): maybe delivered.
    unknown: int = 0
    # Claimed, then taken over by another dispatcher after this run's lease ran out: not sent
    # and not counted by this run.
    lost: int = 0
    elapsed_seconds: float = 0.0
    server_unreachable: bool = False
    # Why the server could not be reached (the last connection error), for the operator.
    server_error: str = ""
    # The other channels' outcomes in the same sweep: channel -> outcome -> count
    # (notifications/channel_dispatch.py). Empty when no channel beside email is configured.
    channels: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def handled(self) -> int:
        return self.sent + self.retry + self.dead + self.cancelled + self.deferred + self.unknown

    @property
    def per_second(self) -> float:
        return self.sent / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    def __add__(self, other: DispatchReport) -> DispatchReport:
        return DispatchReport(
            sent=self.sent + other.sent,
            retry=self.retry + other.retry,
            dead=self.dead + other.dead,
            cancelled=self.cancelled + other.cancelled,
            deferred=self.deferred + other.deferred,
            unknown=self.unknown + other.unknown,
            lost=self.lost + other.lost,
            elapsed_seconds=max(self.elapsed_seconds, other.elapsed_seconds),
            server_unreachable=self.server_unreachable or other.server_unreachable,
            server_error=self.server_error or other.server_error,
            channels=_merged(self.channels, other.channels),
        )


def _merged(a: dict[str, dict[str, int]], b: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    out = {ch: dict(c) for ch, c in a.items()}
    for ch, c in b.items():
        for k, v in c.items():
            out.setdefault(ch, {})[k] = out.get(ch, {}).get(k, 0) + v
    return out


def backoff(config: SmtpConfig, attempts: int) -> timedelta:
    """Delay before the next try after ``attempts`` failed ones (1 → base, 2 → 2·base, …)."""
    exponent = max(attempts - 1, 0)
    # Cap the exponent too: 2**attempts overflows a float long before anyone notices.
    seconds = config.backoff_base_seconds * 2 ** min(exponent, 40)
    return timedelta(seconds=min(seconds, config.backoff_cap_seconds))


class _ServerOutages:
    """How many runs in a row found each SMTP server unreachable (per process): the delay before
    the next try grows per server, while the messages' own attempt counts stay as they were."""

    def __init__(self) -> None:
        self._runs: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def delay(self, config: SmtpConfig) -> timedelta:
        with self._lock:
            runs = self._runs.get((config.host, config.port), 0)
        seconds = config.backoff_base_seconds * 2 ** min(runs, 20)
        return timedelta(seconds=min(seconds, config.outage_backoff_cap_seconds))

    def down(self, config: SmtpConfig) -> None:
        with self._lock:
            key = (config.host, config.port)
            self._runs[key] = self._runs.get(key, 0) + 1

    def up(self, config: SmtpConfig) -> None:
        with self._lock:
            self._runs.pop((config.host, config.port), None)


server_outages = _ServerOutages()


UNKNOWN_DETAIL = "结果未知"


def classify(
    exc: BaseException,
) -> tuple[Literal["temporary", "permanent", "unknown"], int | None, str, bool]:
    """(outcome, SMTP code, detail, connection still usable) for a failed mail transaction."""
    if isinstance(exc, DeliveryUnknown):
        return "unknown", None, f"{UNKNOWN_DETAIL}: {exc}", False
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refusal = exc.recipients[0]
        kind: Literal["temporary", "permanent"] = "permanent" if refusal.code >= 500 else "temporary"
        return kind, refusal.code, f"{refusal.code} {refusal.message}", True
    if isinstance(exc, aiosmtplib.SMTPDataError):
        # The server read the message and refused it: 5xx is about this message (size,
        # content), so retrying it cannot help.
        kind = "permanent" if exc.code >= 500 else "temporary"
        return kind, exc.code, f"{exc.code} {exc.message}", exc.code != 421
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        # Refusing our sender is about our account or the server's mood, not this message:
        # dead-lettering every mail because of it would be wrong, so it counts as temporary.
        return "temporary", exc.code, f"{exc.code} {exc.message} (MAIL FROM)", exc.code != 421
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return "temporary", exc.code, f"{exc.code} {exc.message}", exc.code != 421
    if isinstance(exc, (ValueError, aiosmtplib.SMTPNotSupported)):
        # An address that cannot be put in an SMTP envelope (e.g. non-ASCII without SMTPUTF8).
        return "permanent", None, f"invalid address: {exc}", True
    return "temporary", None, f"{type(exc).__name__}: {exc}", False


def _is_outage(exc: BaseException) -> bool:
    """A database that cannot be reached or dropped the connection, as opposed to a bad query."""
    if isinstance(exc, (OperationalError, InterfaceError, PendingRollbackError)):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def _outage_in(exc: BaseException) -> BaseException | None:
    """The driver's error behind an outage: a rollback on a dead connection raises its own
    error (PendingRollbackError) with the one that matters as its context."""
    if not _is_outage(exc):
        return None
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DBAPIError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return exc
