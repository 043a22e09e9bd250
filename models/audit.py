"""The audit log: append-only, hash-chained with a secret key, its head anchored outside.

Each event's hash is HMAC-SHA256(key, previous hash + the event's canonical JSON, seq
included). Someone who can edit the database but not read the key cannot recompute the chain
after changing, deleting or reordering a row. Deleting the newest rows leaves a valid-looking
shorter chain, so every commit also writes the head (seq, hash) to an anchor file outside the
database; ``verify`` compares the two.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Text, event, func, insert
from sqlmodel import Field, Session, SQLModel, select

from models.types import UTCDateTime

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: threads of one process are still serialised
    fcntl = None  # type: ignore[assignment]

GENESIS = "0" * 64
_ANCHOR_THREAD_LOCK = threading.Lock()


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    actor: str = Field(max_length=200)
    # state_change, deadline_change, override, import, refusal, create, campaign_load, …
    action: str = Field(max_length=40)
    subject: str = Field(max_length=120, index=True)
    case_id: int | None = Field(default=None, index=True)
    campaign_id: str | None = Field(default=None, max_length=60)
    from_value: str | None = Field(default=None, max_length=500)
    to_value: str | None = Field(default=None, max_length=500)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    details: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """One row: the newest seq and hash. Locking it serialises writers of the chain."""

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = Field(default=GENESIS, max_length=64)


@dataclass(frozen=True)
class EventDraft:
    at: datetime
    actor: str
    action: str
    subject: str
    case_id: int | None = None
    campaign_id: str | None = None
    from_value: str | None = None
    to_value: str | None = None
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def _canonical(seq: int, d: EventDraft | AuditEvent, details_text: str) -> bytes:
    body = {
        "seq": seq,
        # UTC, as the column gives it back: an aware local time would hash differently on reading.
        "at": d.at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": d.actor,
        "action": d.action,
        "subject": d.subject,
        "case_id": d.case_id,
        "campaign_id": d.campaign_id,
        "from": d.from_value,
        "to": d.to_value,
        "reason": d.reason,
        "details": details_text,
    }
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def _details_text(details: dict[str, Any]) -> str:
    return json.dumps(details, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


class AuditKeyMissing(RuntimeError):
    pass


@dataclass
class AuditLog:
    """The key and the anchor file. Built once at the edge from settings."""

    key: bytes
    anchor_path: Path | None

    @classmethod
    def from_key_file(cls, key_path: Path, anchor_path: Path | None, *, create: bool = False) -> AuditLog:
        if not key_path.exists():
            if not create:
                raise AuditKeyMissing(
                    f"审计密钥文件不存在：{key_path}（请先运行 shenbao init，或设置 SHENBAO_AUDIT_KEY_FILE）"
                )
            key_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32) + "\n")
        return cls(key=key_path.read_text().strip().encode(), anchor_path=anchor_path)

    def _mac(self, prev_hash: str, canonical: bytes) -> str:
        return hmac.new(self.key, prev_hash.encode() + b"\n" + canonical, hashlib.sha256).hexdigest()

    # -- writing -------------------------------------------------------------------------
    def _lock_head(self, session: Session) -> AuditHead:
        head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).first()
        if head is None:
            head = AuditHead(id=1, seq=0, hash=GENESIS)
            session.add(head)
            session.flush()
        return head

    def lock(self, session: Session) -> None:
        """Take the chain's lock now, until the caller's transaction ends.

        Every writer takes it to append; a writer that first counts what others write (a quota,
        a submitted recommendation) takes it before counting, or two of them both see the last
        free slot (PostgreSQL runs them concurrently; SQLite's BEGIN IMMEDIATE already queues them).
        """
        self._lock_head(session)

    def append(self, session: Session, draft: EventDraft) -> AuditEvent:
        return self.append_many(session, [draft])[0]

    def append_many(self, session: Session, drafts: Iterable[EventDraft]) -> list[AuditEvent]:
        """Chain and insert events in the caller's transaction (bulk insert for imports)."""
        head = self._lock_head(session)
        seq, prev = head.seq, head.hash
        events: list[AuditEvent] = []
        for d in drafts:
            seq += 1
            text = _details_text(d.details)
            digest = self._mac(prev, _canonical(seq, d, text))
            events.append(
                AuditEvent(
                    seq=seq,
                    at=d.at,
                    actor=d.actor,
                    action=d.action,
                    subject=d.subject,
                    case_id=d.case_id,
                    campaign_id=d.campaign_id,
                    from_value=d.from_value,
                    to_value=d.to_value,
                    reason=d.reason,
                    details=text,
                    prev_hash=prev,
                    hash=digest,
                )
            )
            prev = digest
        if not events:
            return events
        if len(events) == 1:
            session.add(events[0])
        else:
            # Core executemany: an import of thousands of cases must not go row by row.
            session.execute(insert(AuditEvent), [e.model_dump() for e in events])
        head.seq, head.hash = seq, prev
        session.add(head)
        session.flush()
        self._anchor_after_commit(session, seq, prev)
        return events

    def _anchor_after_commit(self, session: Session, seq: int, digest: str) -> None:
        if self.anchor_path is None:
            return
        session.info["audit_anchor"] = (seq, digest)
        if not session.info.get("audit_anchor_hooked"):
            session.info["audit_anchor_hooked"] = True
            event.listen(session, "after_commit", self._write_anchor)
            event.listen(session, "after_rollback", lambda s: s.info.pop("audit_anchor", None))

    def _write_anchor(self, session: Session) -> None:
        pending = session.info.pop("audit_anchor", None)
        if pending is None or self.anchor_path is None:
            return
        seq, digest = pending
        self.anchor_path.parent.mkdir(parents=True, exist_ok=True)
        # Threads and processes commit out of order; the anchor only moves forward. The
        # read-compare-replace runs under a file lock, each writer with its own temporary file
        # (one name per process let two threads rename each other's file away).
        with _anchor_lock(self.anchor_path):
            current = read_anchor(self.anchor_path)
            if current is not None and current[0] >= seq:
                return
            fd, tmp = tempfile.mkstemp(
                dir=self.anchor_path.parent, prefix=f"{self.anchor_path.name}.", suffix=".tmp"
            )
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps({"seq": seq, "hash": digest}) + "\n")
            os.replace(tmp, self.anchor_path)

    # -- checking ------------------------------------------------------------------------
    def verify(self, session: Session, *, batch: int = 5000) -> VerifyReport:
        report = VerifyReport()
        expected_seq, prev = 1, GENESIS
        last: AuditEvent | None = None
        for ev in _stream(session, batch):
            report.checked += 1
            if ev.seq != expected_seq:
                report.problems.append(
                    Problem(expected_seq, "deleted", f"第 {expected_seq}–{ev.seq - 1} 条事件缺失（已被删除）")
                )
            if ev.prev_hash != prev:
                report.problems.append(
                    Problem(
                        ev.seq,
                        "reordered",
                        f"第 {ev.seq} 条事件的前序哈希与上一条不符（顺序被调换或前一条被删除）",
                    )
                )
            digest = self._mac(ev.prev_hash, _canonical(ev.seq, ev, ev.details))
            if not hmac.compare_digest(digest, ev.hash):
                report.problems.append(
                    Problem(
                        ev.seq,
                        "changed",
                        f"第 {ev.seq} 条事件（{ev.action} {ev.subject}）内容被改动，哈希不符",
                    )
                )
            expected_seq, prev, last = ev.seq + 1, ev.hash, ev
        head = session.get(AuditHead, 1)
        last_seq = last.seq if last else 0
        last_hash = last.hash if last else GENESIS
        report.head_seq = last_seq
        if head is not None and (head.seq != last_seq or head.hash != last_hash):
            report.problems.append(
                Problem(
                    head.seq, "head", f"链头记录（第 {head.seq} 条）与最后一条事件（第 {last_seq} 条）不符"
                )
            )
        if self.anchor_path is not None:
            anchor = read_anchor(self.anchor_path)
            report.anchor_seq = anchor[0] if anchor else None
            if anchor is None and last_seq > 0:
                # Deleting the anchor together with the newest rows must not pass as "no anchor yet".
                report.problems.append(
                    Problem(
                        last_seq,
                        "anchor_missing",
                        f"库外锚点文件缺失：{self.anchor_path}（无法确认最新的事件未被删除）",
                    )
                )
            if anchor is not None:
                a_seq, a_hash = anchor
                if a_seq > last_seq:
                    report.problems.append(
                        Problem(
                            a_seq,
                            "truncated",
                            f"锚点记录到第 {a_seq} 条，但数据库只有 {last_seq} 条：最新的事件被删除",
                        )
                    )
                else:
                    row = session.get(AuditEvent, a_seq)
                    if row is None or row.hash != a_hash:
                        report.problems.append(
                            Problem(a_seq, "anchor", f"第 {a_seq} 条事件与库外锚点的哈希不符")
                        )
        return report


def _stream(session: Session, batch: int) -> Iterator[AuditEvent]:
    after = 0
    while True:
        rows = session.exec(
            select(AuditEvent).where(AuditEvent.seq > after).order_by(AuditEvent.seq).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        after = rows[-1].seq


@contextmanager
def _anchor_lock(path: Path) -> Iterator[None]:
    """An exclusive lock beside the anchor file, across threads and processes (POSIX flock)."""
    with _ANCHOR_THREAD_LOCK, open(path.with_name(path.name + ".lock"), "a") as fh:
        if fcntl is not None:
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def read_anchor(path: Path) -> tuple[int, str] | None:
    try:
        data = json.loads(path.read_text())
        return int(data["seq"]), str(data["hash"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError) as exc:
        raise ValueError(f"审计锚点文件损坏：{path}") from exc


@dataclass(frozen=True)
class Problem:
    seq: int
    kind: str
    message: str


@dataclass
class VerifyReport:
    checked: int = 0
    head_seq: int = 0
    anchor_seq: int | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def events_for_case(session: Session, case_id: int) -> list[AuditEvent]:
    return list(
        session.exec(select(AuditEvent).where(AuditEvent.case_id == case_id).order_by(AuditEvent.seq))
    )


def count_events(session: Session) -> int:
    return session.exec(select(func.count()).select_from(AuditEvent)).one()
