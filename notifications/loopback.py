"""A real SMTP server on 127.0.0.1 that keeps what it receives: for the demo, tests and fault drills.

It is aiosmtpd, not a mock: the dispatcher talks real SMTP to it, so what the tests count is what
a mail server would have accepted. Faults a government server shows are switchable: a recipient
refused for good (550, unknown user), a server that defers the first N transactions (451,
greylisting or throttling), and one that stores a message but answers late or not at all
(``reply_delay``, ``drop_after_data``: the sender cannot know it was delivered).

    with LoopbackSMTP(save_dir="out/mail") as smtp:
        dispatch(db, now, SmtpConfig(port=smtp.port), worker="demo")
        print(len(smtp.messages), smtp.decoded(0)["Subject"])
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import ssl
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

# Message-ID from the header block only: parsing the whole message for every delivery would
# cost the server more than receiving it.
_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(<[^>\r\n]*>)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class ReceivedMessage:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    received_at: datetime  # the server's own (real) clock: it stands for the outside world
    message_id: str | None


def message_id_of(raw: bytes) -> str | None:
    head = raw.split(b"\r\n\r\n", 1)[0]
    match = _MESSAGE_ID.search(head)
    return match.group(1).decode("ascii", "replace") if match else None


class _Handler:
    """aiosmtpd hooks; runs in the server thread, so shared state is behind ``lock``."""

    def __init__(self, owner: LoopbackSMTP) -> None:
        self.owner = owner

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.owner.pipelining:
            # aiosmtpd reads commands from a stream and answers them in order, which is all
            # RFC 2920 asks of a server; it just does not say so. Most real servers do.
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        if self.owner.credentials and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        owner = self.owner
        with owner.lock:
            if address.lower() in owner.reject:
                owner.rejected += 1
                return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
            if owner.temp_failures_left > 0:
                owner.temp_failures_left -= 1
                owner.deferred += 1
                return "451 4.7.1 Try again later: too many messages"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(envelope.content, bytes) and not raw:
            raw = envelope.content
        owner = self.owner
        owner._store(envelope.mail_from or "", tuple(envelope.rcpt_tos), raw)
        with owner.lock:
            drop, delay = owner.drop_after_data, owner.reply_delay
        if drop:
            # Stored, then gone before the reply: a crash or a cut line at the worst moment.
            transport = server.transport
            if isinstance(transport, asyncio.Transport):
                transport.abort()
            return "421 4.3.0 connection dropped"
        if delay > 0:
            await asyncio.sleep(delay)
        return "250 2.0.0 OK: queued"


class _PortZeroController(Controller):
    """aiosmtpd's Controller pokes ``self.port`` to wake the server; with port 0 that would be
    the wrong port, so learn the one the OS picked before it does."""

    def _trigger_server(self) -> None:
        if self.server is not None and self.port == 0:
            self.port = self.server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]  # an asyncio.Server
        super()._trigger_server()


class LoopbackSMTP:
    """An aiosmtpd server in a background thread that collects every message it accepts.

    ``reject``: addresses refused at RCPT with a permanent 550. ``temp_fail_first``: the first N
    RCPT commands get a temporary 451. ``save_dir``: also write each message as an .eml file.
    ``max_message_bytes``: larger messages are refused after DATA (552). ``pipelining``: offer
    PIPELINING in the EHLO reply (False behaves like a server that does not).
    ``tls_context``: offer STARTTLS with it, or with ``implicit_tls`` speak TLS from the first byte
    (port 465 style). ``credentials``: require AUTH (PLAIN/LOGIN) with one of these
    user → password pairs before MAIL, as an authenticated submission server does.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        save_dir: str | Path | None = None,
        reject: Iterable[str] = (),
        temp_fail_first: int = 0,
        keep_raw: bool = True,
        pipelining: bool = True,
        max_message_bytes: int = 32 * 1024 * 1024,
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        credentials: dict[str, str] | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.port = port
        self.save_dir = Path(save_dir) if save_dir is not None else None
        self.lock = threading.Lock()
        self.reject = {a.lower() for a in reject}
        self.temp_failures_left = temp_fail_first
        # keep_raw=False keeps only envelope and Message-ID: long benches need no bodies.
        self.keep_raw = keep_raw
        self.pipelining = pipelining
        self.max_message_bytes = max_message_bytes
        self.tls_context = tls_context
        self.implicit_tls = implicit_tls
        self.credentials = dict(credentials or {})
        self.rejected = 0
        self.deferred = 0
        self.reply_delay = 0.0
        self.drop_after_data = False
        self._messages: list[ReceivedMessage] = []
        self._controller: _PortZeroController | None = None

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> LoopbackSMTP:
        if self._controller is not None:
            raise RuntimeError("LoopbackSMTP already started")
        if self.save_dir is not None:
            self.save_dir.mkdir(parents=True, exist_ok=True)
        options: dict[str, Any] = {}
        if self.tls_context is not None:
            options["ssl_context" if self.implicit_tls else "tls_context"] = self.tls_context
        if self.credentials:
            # Passwords only over TLS, which with implicit TLS is every connection. "AUTH before
            # MAIL" is checked in handle_MAIL: aiosmtpd's own auth_required warns about every
            # connection once auth_require_tls is off, even when the connection is TLS.
            options.update(authenticator=self._authenticate, auth_require_tls=not self.implicit_tls)
        controller = _PortZeroController(
            _Handler(self),
            hostname=self.host,
            port=self._requested_port,
            # A fixed name: the default asks DNS for the machine's FQDN, which can take seconds.
            server_hostname="loopback.shenbao.invalid",
            ready_timeout=10.0,
            data_size_limit=self.max_message_bytes,
            **options,
        )
        controller.start()
        self._controller = controller
        self.port = controller.port
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            user = auth_data.login.decode("utf-8", "replace")
            password = auth_data.password.decode("utf-8", "replace")
            if user in self.credentials and self.credentials[user] == password:
                return AuthResult(success=True, auth_data=auth_data)
        # handled=False, or aiosmtpd assumes we answered the client ourselves and says nothing.
        return AuthResult(success=False, handled=False)

    @property
    def running(self) -> bool:
        return self._controller is not None

    def __enter__(self) -> LoopbackSMTP:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- faults, switchable while running -----------------------------------------------------
    def set_reject(self, addresses: Iterable[str]) -> None:
        with self.lock:
            self.reject = {a.lower() for a in addresses}

    def fail_next(self, count: int) -> None:
        with self.lock:
            self.temp_failures_left = count

    def answer_late(self, seconds: float) -> None:
        """Store each message, then wait ``seconds`` before the 250 (a slow disk, a scanner)."""
        with self.lock:
            self.reply_delay = seconds

    def drop_after_storing(self, drop: bool = True) -> None:
        """Store each message, then cut the connection instead of answering."""
        with self.lock:
            self.drop_after_data = drop

    # -- what arrived ---------------------------------------------------------------------------
    def _store(self, mail_from: str, rcpt_tos: tuple[str, ...], raw: bytes) -> None:
        message_id = message_id_of(raw)
        kept = raw if self.keep_raw else b""
        item = ReceivedMessage(mail_from, rcpt_tos, kept, datetime.now(UTC), message_id)
        with self.lock:
            self._messages.append(item)
            number = len(self._messages)
        if self.save_dir is not None:
            tag = hashlib.sha1((message_id or str(number)).encode()).hexdigest()[:12]
            (self.save_dir / f"{number:06d}-{tag}.eml").write_bytes(raw)

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self.lock:
            return list(self._messages)

    def __len__(self) -> int:
        with self.lock:
            return len(self._messages)

    def message_ids(self) -> list[str | None]:
        return [m.message_id for m in self.messages]

    def clear(self) -> None:
        with self.lock:
            self._messages.clear()

    def take(self) -> list[ReceivedMessage]:
        """Everything received so far, removed at once (nothing can slip in between)."""
        with self.lock:
            taken, self._messages = self._messages, []
        return taken

    def decoded(self, i: int) -> EmailMessage:
        """Message ``i`` parsed as a mail client would (headers decoded from RFC 2047)."""
        parsed: Any = BytesParser(policy=policy.default).parsebytes(self.messages[i].raw)
        return parsed
