"""SMTP for the dispatcher: its settings, the envelope, and one reused connection that pipelines
MAIL, RCPT and DATA (RFC 2920) after aiosmtplib has done the handshake.

Split from notifications/dispatcher.py (issue 13): the run loop does not need to know how a
message crosses the wire, and a reader of the wire protocol does not need the leases.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import re
import socket
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Literal

import aiosmtplib


@dataclass(frozen=True)
class SmtpConfig:
    host: str = "127.0.0.1"
    port: int = 25
    security: Literal["none", "starttls", "tls"] = "none"
    user: str | None = None
    password: str | None = None
    # Seconds for each stage but the last: connecting, the greeting, EHLO/STARTTLS/AUTH, and the
    # MAIL/RCPT/DATA commands. 0 = no limit.
    timeout: float = 30.0
    # Seconds for the reply after the message data: RFC 5321 4.5.3.2.6 gives the server 10
    # minutes, since it may be writing the message to disk or scanning it. 0 = no limit.
    data_timeout: float = 600.0
    # A message whose final reply never came may have been delivered: it is tried again only
    # after this long, with the same Message-ID, so the far side can tell the two apart.
    unknown_retry_seconds: float = 6 * 3600.0
    # The longest wait before a run tries an unreachable server again (per server, not per
    # message: an outage is not an attempt on the mail).
    outage_backoff_cap_seconds: float = 900.0
    rate_per_second: float = 0.0  # per SMTP server and process; 0 = unlimited
    max_attempts: int = 6
    concurrency: int = 4  # SMTP connections per process, each reused for many messages
    backoff_base_seconds: float = 60.0
    lease_seconds: float = 600.0
    backoff_cap_seconds: float = 6 * 3600.0
    # Tokens that may be spent at once; 1 spaces every message evenly (servers flag bursts).
    rate_burst: int = 1
    # MAIL FROM; empty = the address in each message's From header.
    envelope_from: str = ""
    # EHLO name; empty = this machine's FQDN, looked up once per process.
    local_hostname: str = ""
    validate_certs: bool = True
    batch_size: int = 200  # rows per claim transaction
    # Send MAIL, RCPT and DATA in one write when the server offers PIPELINING (RFC 2920).
    pipelining: bool = True

    def __post_init__(self) -> None:
        problems = []
        if self.security not in ("none", "starttls", "tls"):
            problems.append(f"security must be none, starttls or tls, not {self.security!r}")
        if not 0 < self.port < 65536:
            problems.append(f"port must be 1..65535, not {self.port}")
        for name in ("max_attempts", "concurrency", "batch_size", "rate_burst"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, not {getattr(self, name)}")
        for name in (
            "rate_per_second",
            "backoff_base_seconds",
            "lease_seconds",
            "timeout",
            "data_timeout",
            "unknown_retry_seconds",
            "outage_backoff_cap_seconds",
        ):
            if getattr(self, name) < 0:
                problems.append(f"{name} must not be negative, not {getattr(self, name)}")
        if self.lease_seconds == 0:
            problems.append("lease_seconds must be positive")
        if self.envelope_from and not _ENVELOPE_ADDRESS.fullmatch(self.envelope_from):
            problems.append(f"envelope_from {self.envelope_from!r} is not a plain ASCII address")
        if problems:
            raise ValueError("SmtpConfig: " + "; ".join(problems))

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"


class DeliveryUnknown(Exception):
    """The message data went out but the server's final reply did not come back (a timeout,
    a dropped connection): it may or may not have been delivered."""


_FROM_HEADER = re.compile(rb"^from:(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)
# What may stand between < and > on a MAIL/RCPT line without SMTPUTF8: printable ASCII, no
# brackets or spaces. Anything else would let a stored address inject SMTP commands.
_ENVELOPE_ADDRESS = re.compile(r"[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+")


@functools.lru_cache(maxsize=64)
def _address_in(header: bytes) -> str:
    return parseaddr(header.decode("ascii", "replace").replace("\r\n", "").replace("\n", ""))[1]


def envelope_sender(raw: bytes) -> str:
    """The bare address of the From header (``=?utf-8?…?= <a@b>`` → ``a@b``)."""
    match = _FROM_HEADER.search(raw.split(b"\r\n\r\n", 1)[0])
    return _address_in(match.group(1).strip()) if match else ""


@functools.lru_cache(maxsize=1024)
def envelope_address(address: str) -> bytes:
    """``a@b`` → ``<a@b>`` for a MAIL or RCPT line; ValueError if it cannot go there."""
    if not _ENVELOPE_ADDRESS.fullmatch(address):
        raise ValueError(f"{address!r} is not an address an SMTP envelope can carry")
    return b"<" + address.encode("ascii") + b">"


_LONE_CR_OR_LF = re.compile(rb"\r\n|\r|\n")
_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)


def data_block(raw: bytes) -> bytes:
    """The bytes after DATA: CRLF line ends, leading dots doubled (RFC 5321 4.5.2), the end mark.

    Stored messages already have CRLF and, being base64, no leading dots; the checks that prove
    it are a few microseconds, the rewriting only happens when they fail.
    """
    crlf = raw.count(b"\r\n")
    if raw.count(b"\n") != crlf or raw.count(b"\r") != crlf:
        raw = _LONE_CR_OR_LF.sub(b"\r\n", raw)
    if raw.startswith(b".") or b"\n." in raw:
        raw = _LEADING_DOT.sub(b"..", raw)
    if not raw.endswith(b"\r\n"):
        raw += b"\r\n"
    return raw + b".\r\n"


class _Channel(asyncio.Protocol):
    """An SMTP connection that aiosmtplib opened (TLS, STARTTLS, AUTH, EHLO all done by it),
    taken over to pipeline commands (RFC 2920), which aiosmtplib cannot do.

    Replies are queued as they arrive and handed out in order to whoever asked for the next n.
    """

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.closed = False
        self._buffer = bytearray()
        self._text: list[str] = []
        self._replies: list[aiosmtplib.SMTPResponse] = []
        self._waiters: collections.deque[tuple[int, asyncio.Future[list[aiosmtplib.SMTPResponse]]]] = (
            collections.deque()
        )

    @classmethod
    def take_over(cls, smtp: aiosmtplib.SMTP) -> _Channel:
        transport = smtp.transport
        if not isinstance(transport, asyncio.Transport):
            raise aiosmtplib.SMTPServerDisconnected("not connected")
        channel = cls(transport)
        # From here on the aiosmtplib object is left alone; it never sees the socket again.
        transport.set_protocol(channel)
        return channel

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[: end + 1])
            del self._buffer[: end + 1]
            self._text.append(line[4:].strip().decode("utf-8", "replace"))
            if line[3:4] == b"-":
                continue  # a multi-line reply goes on
            try:
                code = int(line[:3])
            except ValueError:
                code = -1
            self._replies.append(aiosmtplib.SMTPResponse(code, "\n".join(self._text)))
            self._text = []
        while self._waiters and len(self._replies) >= self._waiters[0][0]:
            count, waiter = self._waiters.popleft()
            replies, self._replies = self._replies[:count], self._replies[count:]
            if not waiter.done():
                waiter.set_result(replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        while self._waiters:
            _, waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(aiosmtplib.SMTPServerDisconnected(f"connection lost: {exc or 'closed'}"))
                waiter.exception()  # read by whoever awaits it; no "never retrieved" noise

    async def command(self, data: bytes, replies: int) -> list[aiosmtplib.SMTPResponse]:
        if self.closed or self.transport.is_closing():
            raise aiosmtplib.SMTPServerDisconnected("connection closed")
        if self._replies and not self._waiters:
            # A reply nobody asked for (a server's "421 closing" before it hangs up, say) would
            # be paired with this command; drop the connection instead and start a clean one.
            unsolicited = self._replies[0]
            self.transport.close()
            raise aiosmtplib.SMTPServerDisconnected(
                f"unsolicited reply {unsolicited.code} {unsolicited.message}"
            )
        waiter: asyncio.Future[list[aiosmtplib.SMTPResponse]] = asyncio.get_running_loop().create_future()
        self._waiters.append((replies, waiter))
        self.transport.write(data)
        return await waiter


class _Connection:
    """One reused SMTP connection of a worker, taken over from aiosmtplib after the handshake.

    Each stage has its own deadline: ``timeout`` for the envelope commands and DATA, then
    ``data_timeout`` for the reply after the message, which a server may take minutes to give.
    When the server offers PIPELINING, MAIL, RCPT and DATA go out in one write (RFC 2920 3.1);
    otherwise one at a time.
    """

    def __init__(self, smtp: aiosmtplib.SMTP, config: SmtpConfig) -> None:
        self.pipelined = config.pipelining and smtp.supports_extension("pipelining")
        self.timeout = config.timeout or None
        self.data_timeout = config.data_timeout or None
        self._channel = _Channel.take_over(smtp)

    @property
    def is_connected(self) -> bool:
        return not self._channel.closed and not self._channel.transport.is_closing()

    async def _ask(self, data: bytes, replies: int = 1) -> list[aiosmtplib.SMTPResponse]:
        # A timeout mid-command leaves the connection out of step with the server; classify()
        # marks it unusable, so it is closed and a fresh one opened.
        async with asyncio.timeout(self.timeout):
            return await self._channel.command(data, replies)

    async def send(self, sender: bytes, recipient: bytes, raw: bytes) -> None:
        mail_line = b"MAIL FROM:" + sender + b"\r\n"
        rcpt_line = b"RCPT TO:" + recipient + b"\r\n"
        if self.pipelined:
            mail, rcpt, data = await self._ask(mail_line + rcpt_line + b"DATA\r\n", 3)
        else:
            [mail] = await self._ask(mail_line)
            [rcpt] = await self._ask(rcpt_line) if mail.code == 250 else [mail]
            envelope_ok = mail.code == 250 and rcpt.code in (250, 251)
            [data] = await self._ask(b"DATA\r\n") if envelope_ok else [rcpt]
        if data.code == 354:
            if mail.code == 250 and rcpt.code in (250, 251):
                await self._final_reply(data_block(raw))
                return
            # A server that says 354 after refusing the envelope gets an empty message.
            await self._ask(b".\r\n")
        # Leave the connection clean for the next message, as aiosmtplib's sendmail does.
        with contextlib.suppress(aiosmtplib.SMTPException):
            await self._ask(b"RSET\r\n")
        if mail.code != 250:
            raise aiosmtplib.SMTPSenderRefused(mail.code, mail.message, sender.decode())
        if rcpt.code not in (250, 251):
            refusal = aiosmtplib.SMTPRecipientRefused(rcpt.code, rcpt.message, recipient.decode())
            raise aiosmtplib.SMTPRecipientsRefused([refusal])
        raise aiosmtplib.SMTPDataError(data.code, data.message)

    async def _final_reply(self, block: bytes) -> None:
        try:
            async with asyncio.timeout(self.data_timeout):
                [done] = await self._channel.command(block, 1)
        except (TimeoutError, aiosmtplib.SMTPServerDisconnected) as exc:
            # The server has the whole message and may have stored it: neither sent nor failed.
            self.close()
            what = "timed out" if isinstance(exc, TimeoutError) else str(exc)
            raise DeliveryUnknown(f"no reply after the message data ({what})") from exc
        if done.code != 250:
            raise aiosmtplib.SMTPDataError(done.code, done.message)

    async def quit(self) -> None:
        with contextlib.suppress(aiosmtplib.SMTPException, TimeoutError):
            await self._ask(b"QUIT\r\n")
        self.close()

    def close(self) -> None:
        self._channel.transport.close()


@functools.cache
def _fqdn() -> str:
    return socket.getfqdn()
