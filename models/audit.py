"""The audit log: append-only, hash-chained with a secret key, its head anchored outside.

Each event's hash is HMAC-SHA256(key, previous hash + the event's canonical JSON, seq
included). Someone who can edit the database but not read the key cannot recompute the chain
after changing, deleting or reordering a row. Deleting the newest rows leaves a valid-looking
shorter chain, so every commit also writes the head (seq, hash) to an anchor file outside the
database; ``verify`` compares the two. The anchor carries its own MAC and the database's identity
(models/identity.py), and its file is named by that identity, never by the URL or a credential.

A missing anchor is never recreated by an ordinary write: deleting it together with the newest
rows would otherwise pass as "no anchor yet" after the next action. Only the chain's first event
creates it, and after that only a person does, with a reason, through ``re_anchor`` (audited).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json.encoder import encode_basestring
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Column, LargeBinary, Text, event, func, insert
from sqlmodel import Field, Session, SQLModel, select

from models import audit_tree, merkle
from models.identity import create_identity, database_identity
from models.types import UTCDateTime

if TYPE_CHECKING:
    from models.checkpoint import Checkpoint, Keyring

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: threads of one process are still serialised
    fcntl = None  # type: ignore[assignment]

GENESIS = "0" * 64
# In an anchor path's file name, replaced by the database's identity.
DATABASE_PLACEHOLDER = "{database}"
_ANCHOR_THREAD_LOCK = threading.Lock()
_INSERT_CHUNK = 5000  # events per executemany of a bulk append


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
    # The Merkle log (models/audit_tree.py): this event's leaf hash and the subtrees it completed.
    tree_nodes: bytes = Field(default=b"", sa_column=Column(LargeBinary, nullable=False, default=b""))


class AuditHead(SQLModel, table=True):
    """One row: the newest seq and hash, and the Merkle tree's right edge (models/audit_tree.py).
    Locking it serialises writers of the chain."""

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = Field(default=GENESIS, max_length=64)
    tree: str = Field(default="", sa_column=Column(Text, nullable=False, default="", server_default=""))


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


def _canonical(seq: int, d: EventDraft | RecordedEvent, details_text: str) -> bytes:
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


class _Canonical:
    """``_canonical`` for many drafts in a row, byte for byte the same JSON: the fragments that
    repeat from one draft to the next (actor, action, instant, reason, details of a window's
    50,000 lapses) are encoded once, and the body is joined in its sorted key order."""

    def __init__(self) -> None:
        self._memo: dict[Any, str] = {}
        self._at: dict[datetime, str] = {}

    def _s(self, value: str | None) -> str:
        if value is None:
            return "null"
        found = self._memo.get(value)
        if found is None:
            found = self._memo[value] = encode_basestring(value)
        return found

    def __call__(self, seq: int, d: EventDraft, details_text: str) -> bytes:
        at = self._at.get(d.at)
        if at is None:
            at = self._at[d.at] = encode_basestring(d.at.astimezone(UTC).isoformat(timespec="microseconds"))
        return (
            f'{{"action":{self._s(d.action)},"actor":{self._s(d.actor)},"at":{at},'
            f'"campaign_id":{self._s(d.campaign_id)},"case_id":{"null" if d.case_id is None else int(d.case_id)},'
            f'"details":{self._s(details_text)},"from":{self._s(d.from_value)},"reason":{self._s(d.reason)},'
            f'"seq":{int(seq)},"subject":{encode_basestring(d.subject)},"to":{self._s(d.to_value)}}}'
        ).encode()


def _details_text(details: dict[str, Any]) -> str:
    return json.dumps(details, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


class AuditKeyMissing(RuntimeError):
    pass


class AnchorCorrupt(ValueError):
    """The anchor file exists but cannot be read as an anchor; the message names the file."""


@dataclass(frozen=True)
class Anchor:
    database: str
    seq: int
    hash: str
    mac: str


@dataclass(frozen=True)
class _PendingAnchor:
    path: Path
    database: str
    seq: int
    hash: str
    # May create the file: the chain's first event, or a person re-anchoring.
    may_create: bool
    # May replace whatever is there (a corrupt file, an anchor beyond the head): re-anchoring.
    replaces: bool


@dataclass
class AuditLog:
    """The key and the anchor file. Built once at the edge from settings.

    ``anchor_path`` may hold ``{database}`` in its file name (the default does): the file is then
    named by the identity of the database it anchors, so any URL that reaches that database finds
    the same anchor.
    """

    # None: a verifier without the secret (it checks the Merkle log and signed checkpoints with
    # the public key alone, not the HMAC chain and its anchor); such a log cannot append.
    key: bytes | None
    anchor_path: Path | None

    @classmethod
    def from_key_file(
        cls, key_path: Path, anchor_path: Path | None, *, create: bool = False, missing_ok: bool = False
    ) -> AuditLog:
        if not key_path.exists():
            if missing_ok:
                return cls(key=None, anchor_path=None)
            if not create:
                raise AuditKeyMissing(
                    f"审计密钥文件不存在：{key_path}（请先运行 shenbao init，或设置 SHENBAO_AUDIT_KEY_FILE）"
                )
            key_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32) + "\n")
        return cls(key=key_path.read_text().strip().encode(), anchor_path=anchor_path)

    def _secret(self) -> bytes:
        if self.key is None:
            raise AuditKeyMissing("没有审计密钥，只能校验，不能写入审计事件")
        return self.key

    def _mac(self, prev_hash: str, canonical: bytes) -> str:
        return hmac.new(self._secret(), prev_hash.encode() + b"\n" + canonical, hashlib.sha256).hexdigest()

    def _anchor_mac(self, database: str, seq: int, digest: str) -> str:
        # Without it anyone who can read the events could point the anchor at an older one.
        body = f"anchor\n{database}\n{seq}\n{digest}".encode()
        return hmac.new(self._secret(), body, hashlib.sha256).hexdigest()

    def anchor_file(self, session: Session) -> Path | None:
        """Where this database's anchor is; None when none is kept or the database has no identity."""
        if self.anchor_path is None:
            return None
        if DATABASE_PLACEHOLDER not in self.anchor_path.name:
            return self.anchor_path
        identity = database_identity(session)
        if identity is None:
            return None
        return self.anchor_path.with_name(self.anchor_path.name.replace(DATABASE_PLACEHOLDER, identity))

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

    def append_many(
        self, session: Session, drafts: Iterable[EventDraft], *, objects: bool = True
    ) -> list[AuditEvent]:
        """Chain and insert events in the caller's transaction (bulk insert for imports).

        ``objects=False`` returns nothing: a window closing over 50,000 drafts need not build
        50,000 instances it never reads (they cost as much as hashing the events).
        """
        return self._append(session, list(drafts), re_anchoring=False, objects=objects)

    def re_anchor(self, session: Session, *, at: datetime, actor: str, reason: str) -> AuditEvent:
        """A person's decision to anchor the chain anew at its current head, recorded as an event.

        For a missing or corrupt anchor, or one that no longer matches after a restore: the
        person has checked that the newest events are really there (verify said what is wrong),
        and the event keeps what the anchor said before.
        """
        if not reason.strip():
            raise ValueError("重新锚定须填写理由（--reason）")
        if not actor.strip():
            raise ValueError("重新锚定须由具体的人执行（--by 姓名）")
        path = self.anchor_file(session)
        previous: Any
        try:
            found = read_anchor(path) if path is not None else None
            previous = {"seq": found.seq, "hash": found.hash} if found else "missing"
        except AnchorCorrupt as exc:
            previous = f"corrupt: {exc}"
        draft = EventDraft(
            at=at,
            actor=actor,
            action="re_anchor",
            subject="audit:anchor",
            reason=reason,
            details={"previous": previous},
        )
        return self._append(session, [draft], re_anchoring=True)[0]

    def _append(
        self, session: Session, drafts: list[EventDraft], *, re_anchoring: bool, objects: bool = True
    ) -> list[AuditEvent]:
        if not drafts:
            return []
        head = self._lock_head(session)
        first = head.seq == 0
        if (first or re_anchoring) and database_identity(session) is None:
            # A database emptied table by table has lost its identity; a new chain, or a person
            # re-anchoring, gives it a new one. Any other write leaves it missing for verify.
            create_identity(session, drafts[0].at)
        seq, prev = head.seq, head.hash
        canonical = _Canonical() if len(drafts) > 1 else _canonical
        by_dict: dict[int, str] = {}  # drafts sharing one details dict (a window's lapses) dump it once
        texts: list[str] = []
        for d in drafts:
            text = by_dict.get(id(d.details))
            if text is None:
                text = by_dict[id(d.details)] = _details_text(d.details)
            texts.append(text)
        canonicals = [
            canonical(head.seq + k, d, t) for k, (d, t) in enumerate(zip(drafts, texts, strict=True), 1)
        ]
        nodes = self._grow_tree(session, head, canonicals)
        events: list[AuditEvent] = []
        rows: list[dict[str, Any]] = []
        for i, (d, text, body, tree_nodes) in enumerate(zip(drafts, texts, canonicals, nodes, strict=True)):
            seq += 1
            digest = self._mac(prev, body)
            rows.append(
                {
                    "seq": seq,
                    "at": d.at,
                    "actor": d.actor,
                    "action": d.action,
                    "subject": d.subject,
                    "case_id": d.case_id,
                    "campaign_id": d.campaign_id,
                    "from_value": d.from_value,
                    "to_value": d.to_value,
                    "reason": d.reason,
                    "details": text,
                    "prev_hash": prev,
                    "hash": digest,
                    "tree_nodes": tree_nodes,
                }
            )
            prev = digest
            if len(drafts) == 1:
                events = [AuditEvent(**rows[0])]
                session.add(events[0])
            elif len(rows) == _INSERT_CHUNK or i == len(drafts) - 1:
                # Core executemany on the table, a few thousand rows at a time: an import, a
                # window closing over 50,000 drafts, neither row by row nor all in memory at once.
                session.execute(insert(AuditEvent.__table__), rows)  # type: ignore[attr-defined]
                if objects:
                    events += [AuditEvent(**row) for row in rows]
                rows = []
        head.seq, head.hash = seq, prev
        session.add(head)
        session.flush()
        self._anchor_after_commit(session, seq, prev, may_create=first or re_anchoring, replaces=re_anchoring)
        return events

    def _grow_tree(self, session: Session, head: AuditHead, canonicals: list[bytes]) -> list[bytes]:
        """The Merkle log: what each event's row stores (its leaf and the subtrees it completes),
        and the head's new right edge."""
        frontier = audit_tree.frontier_of(session, head.seq, head.tree)
        nodes = [audit_tree.blob(frontier.append(merkle.leaf_hash(c))) for c in canonicals]
        head.tree = frontier.encode()
        return nodes

    def _anchor_after_commit(
        self, session: Session, seq: int, digest: str, *, may_create: bool, replaces: bool
    ) -> None:
        path = self.anchor_file(session)
        if path is None:
            return
        earlier: _PendingAnchor | None = session.info.get("audit_anchor")
        session.info["audit_anchor"] = _PendingAnchor(
            path=path,
            database=database_identity(session) or "",
            seq=seq,
            hash=digest,
            may_create=may_create or bool(earlier and earlier.may_create),
            replaces=replaces or bool(earlier and earlier.replaces),
        )
        if not session.info.get("audit_anchor_hooked"):
            session.info["audit_anchor_hooked"] = True
            event.listen(session, "after_commit", self._write_anchor)
            event.listen(session, "after_transaction_create", _remember_at_savepoint)
            event.listen(session, "after_soft_rollback", _forget_on_rollback)

    def _write_anchor(self, session: Session) -> None:
        # SQLAlchemy fires after_commit when a savepoint is released too; the events are not
        # committed then, and a later rollback of the outer transaction undoes them.
        if session.in_nested_transaction():
            return
        pending: _PendingAnchor | None = session.info.pop("audit_anchor", None)
        if pending is None:
            return
        path = pending.path
        path.parent.mkdir(parents=True, exist_ok=True)
        # Threads and processes commit out of order; the anchor only moves forward. The
        # read-compare-replace runs under a file lock, each writer with its own temporary file
        # (one name per process let two threads rename each other's file away).
        with _anchor_lock(path):
            try:
                current = read_anchor(path)
            except AnchorCorrupt:
                if not pending.replaces:
                    return  # left as found: verify reports it, a person re-anchors
                current = None
            if current is None and not pending.may_create:
                # Not recreated, and the write is not refused either: a refused write would stop
                # reminders and lapses over a file outside the database, while a missing anchor
                # loses nothing and keeps verify failing until a person re-anchors.
                return
            if current is not None and current.seq >= pending.seq and not pending.replaces:
                return
            body = {
                "database": pending.database,
                "seq": pending.seq,
                "hash": pending.hash,
                "mac": self._anchor_mac(pending.database, pending.seq, pending.hash),
            }
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".tmp")
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps(body) + "\n")
            os.replace(tmp, path)

    # -- checking ------------------------------------------------------------------------
    def verify(
        self,
        session: Session,
        *,
        batch: int = 5000,
        on_event: Callable[[RecordedEvent], None] | None = None,
        keyring: Keyring | None = None,
        kept: Sequence[tuple[str, str]] = (),
    ) -> VerifyReport:
        """Check the chain, its head and its anchor (with the secret key), and the Merkle log
        with its signed checkpoints (with public keys alone); ``on_event`` sees every event in
        seq order (the replay rides on this one pass).

        ``kept`` are checkpoints someone kept, as (where from, note text): the log must still
        contain them, or the problem says it was rolled back or rewritten."""
        report = VerifyReport(hmac_checked=self.key is not None)
        notes = self._checkpoints(session, keyring, kept, report)
        tree = audit_tree.TreeCheck(want_roots={cp.size for _, cp in notes})
        expected_seq, prev = 1, GENESIS
        last: RecordedEvent | None = None
        for ev in _stream(session, batch):
            report.checked += 1
            if ev.seq != expected_seq:
                report.problems.append(
                    Problem(expected_seq, "deleted", f"第 {expected_seq}–{ev.seq - 1} 条事件缺失（已被删除）")
                )
            canonical = _canonical(ev.seq, ev, ev.details)
            if self.key is not None:
                if ev.prev_hash != prev:
                    report.problems.append(
                        Problem(
                            ev.seq,
                            "reordered",
                            f"第 {ev.seq} 条事件的前序哈希与上一条不符（顺序被调换或前一条被删除）",
                        )
                    )
                digest = self._mac(ev.prev_hash, canonical)
                if not hmac.compare_digest(digest, ev.hash):
                    report.problems.append(
                        Problem(
                            ev.seq,
                            "changed",
                            f"第 {ev.seq} 条事件（{describe_event(ev)}）内容被改动，哈希不符",
                        )
                    )
            tree.feed(ev.seq, merkle.leaf_hash(canonical), bytes(ev.tree_nodes or b""), describe_event(ev))
            if on_event is not None:
                on_event(ev)
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
        root = tree.finish(head.seq if head else 0, head.tree if head else "")
        report.root = root.hex()
        # An event the chain already found changed is named once.
        named = {p.seq for p in report.problems if p.kind in ("changed", "reordered", "deleted")}
        head_named = any(p.kind == "head" for p in report.problems)
        report.problems += [
            Problem(seq, kind, message)
            for kind, seq, message in tree.found
            if not (kind == "merkle_leaf" and seq in named) and not (kind == "merkle_head" and head_named)
        ]
        report.problems += self._compare_checkpoints(session, notes, tree, report)
        if self.key is not None and self.anchor_path is not None:
            report.problems += self._check_anchor(session, report, last_seq)
        return report

    def _checkpoints(
        self,
        session: Session,
        keyring: Keyring | None,
        kept: Sequence[tuple[str, str]],
        report: VerifyReport,
    ) -> list[tuple[str, Checkpoint]]:
        """Every checkpoint to hold the log to, signature checked: those given, then those it
        signed itself (a rewritten past shows against its own old checkpoints too)."""
        from models.checkpoint import CheckpointInvalid, open_checkpoint

        table = audit_tree.SignedCheckpoint.__table__  # type: ignore[attr-defined]
        stored = [
            (f"库内检查点 #{row.id}（{row.size} 条）", row.note)
            for row in session.execute(select(table.c.id, table.c.size, table.c.note).order_by(table.c.id))
        ]
        sources = [*kept, *stored]
        if keyring is None:
            if sources:
                report.problems.append(
                    Problem(0, "checkpoint_key", "没有审计公钥（--key 或公钥文件），签名检查点未核对")
                )
            return []
        origin = audit_tree.origin_of(session)
        notes: list[tuple[str, Checkpoint]] = []
        for source, text in sources:
            try:
                notes.append((source, open_checkpoint(text, keyring, origin=origin)))
            except CheckpointInvalid as exc:
                report.problems.append(Problem(0, "checkpoint_signature", f"{source}：{exc}"))
        report.checkpoints = len(notes)
        return notes

    def _compare_checkpoints(
        self,
        session: Session,
        notes: list[tuple[str, Checkpoint]],
        tree: audit_tree.TreeCheck,
        report: VerifyReport,
    ) -> list[Problem]:
        problems: list[Problem] = []
        size = tree.frontier.size
        good = sorted({cp.size for _, cp in notes if tree.roots.get(cp.size) == cp.root})
        for source, cp in sorted(notes, key=lambda n: n[1].size):
            if cp.size > size:
                problems.append(
                    Problem(
                        size + 1,
                        "rollback",
                        f"{source}记录了 {cp.size} 条事件，数据库现在只有 {size} 条：第 {size + 1}–{cp.size} 条事件"
                        "被删除（截断或回滚）",
                    )
                )
                continue
            if tree.roots.get(cp.size, merkle.EMPTY_ROOT if cp.size == 0 else b"") != cp.root:
                after = max((s for s in good if s < cp.size), default=0)
                problems.append(
                    Problem(
                        after + 1,
                        "rewritten",
                        f"{source}（{cp.size} 条事件）的树根与现在的事件不符：第 {after + 1}–{cp.size} 条事件之间的历史"
                        f"被改写（或这份检查点来自另一份历史）；起点{_describe_seq(session, after + 1)}",
                    )
                )
                continue
            # The proof a witness would be given, from the stored nodes: proves those too.
            try:
                proof = merkle.consistency_proof(cp.size, size, audit_tree.Reader(session))
                merkle.verify_consistency(
                    cp.size, size, cp.root, tree.roots.get(size) or tree.frontier.root(), proof
                )
            except (LookupError, merkle.ProofError) as exc:
                problems.append(
                    Problem(cp.size, "consistency", f"{source}：无法从库中的树节点证明一致：{exc}")
                )
        if notes:
            report.latest_checkpoint = max(cp.size for _, cp in notes)
        return problems

    def _check_anchor(self, session: Session, report: VerifyReport, last_seq: int) -> list[Problem]:
        re_anchor = (
            "；核实最新的事件确实完整后，由负责人运行 shenbao audit re-anchor --reason … --by … 重新锚定"
        )
        path = self.anchor_file(session)
        if path is None:
            if last_seq == 0:
                return []
            return [
                Problem(
                    last_seq,
                    "anchor_missing",
                    "数据库标识（database_identity 表）缺失，找不到库外锚点，无法确认最新的事件未被删除"
                    + re_anchor,
                )
            ]
        report.anchor_file = str(path)
        try:
            anchor = read_anchor(path)
        except AnchorCorrupt as exc:
            return [Problem(last_seq, "anchor_corrupt", f"{exc}{re_anchor}")]
        if anchor is None:
            if last_seq == 0:
                return []
            # Deleting the anchor together with the newest rows must not pass as "no anchor yet".
            return [
                Problem(
                    last_seq,
                    "anchor_missing",
                    f"库外锚点文件缺失：{path}（无法确认最新的事件未被删除；数据库升级后首次校验也会如此）"
                    + re_anchor,
                )
            ]
        report.anchor_seq = anchor.seq
        if not hmac.compare_digest(anchor.mac, self._anchor_mac(anchor.database, anchor.seq, anchor.hash)):
            return [
                Problem(
                    anchor.seq,
                    "anchor_corrupt",
                    f"审计锚点文件的校验码不符：{path}（文件被改动，或不是用本审计密钥写的）{re_anchor}",
                )
            ]
        identity = database_identity(session)
        if identity is not None and anchor.database != identity:
            return [
                Problem(
                    anchor.seq,
                    "anchor_corrupt",
                    f"审计锚点文件属于另一个数据库：{path}（锚点的数据库标识 {anchor.database}，本库 {identity}）",
                )
            ]
        if anchor.seq > last_seq:
            return [
                Problem(
                    anchor.seq,
                    "truncated",
                    f"锚点记录到第 {anchor.seq} 条，但数据库只有 {last_seq} 条：最新的事件被删除",
                )
            ]
        row = session.get(AuditEvent, anchor.seq)
        if row is None or row.hash != anchor.hash:
            return [
                Problem(anchor.seq, "anchor", f"第 {anchor.seq} 条事件与库外锚点的哈希不符（锚点不在链上）")
            ]
        return []


def _remember_at_savepoint(session: Session, transaction: Any) -> None:
    if transaction.nested:
        session.info.setdefault("audit_anchor_savepoints", {})[id(transaction)] = session.info.get(
            "audit_anchor"
        )


def _forget_on_rollback(session: Session, transaction: Any) -> None:
    """A rolled-back savepoint takes back the head it appended; a rolled-back transaction all of it."""
    saved = session.info.get("audit_anchor_savepoints", {})
    if transaction.nested:
        remembered = saved.pop(id(transaction), None)
        if remembered is None:
            session.info.pop("audit_anchor", None)
        else:
            session.info["audit_anchor"] = remembered
    elif transaction.parent is None:
        session.info.pop("audit_anchor", None)
        saved.clear()


class RecordedEvent(Protocol):
    """An event as ``verify`` reads it: a plain row with the columns of :class:`AuditEvent`."""

    seq: int
    at: datetime
    actor: str
    action: str
    subject: str
    case_id: int | None
    campaign_id: str | None
    from_value: str | None
    to_value: str | None
    reason: str
    details: str
    prev_hash: str
    hash: str
    tree_nodes: bytes


def _stream(session: Session, batch: int) -> Iterator[RecordedEvent]:
    # Plain rows, not ORM objects: building 300,000 instances cost about as much as hashing them.
    table = AuditEvent.__table__  # type: ignore[attr-defined]
    after = 0
    while True:
        rows = session.execute(
            select(table).where(table.c.seq > after).order_by(table.c.seq).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows  # type: ignore[misc]
        after = rows[-1].seq


@contextmanager
def _anchor_lock(path: Path) -> Iterator[None]:
    """An exclusive lock beside the anchor file, across threads and processes (POSIX flock)."""
    with _ANCHOR_THREAD_LOCK, open(path.with_name(path.name + ".lock"), "a") as fh:
        if fcntl is not None:
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def read_anchor(path: Path) -> Anchor | None:
    try:
        data = json.loads(path.read_text())
        return Anchor(
            database=str(data["database"]), seq=int(data["seq"]), hash=str(data["hash"]), mac=str(data["mac"])
        )
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise AnchorCorrupt(f"审计锚点文件损坏：{path}（{type(exc).__name__}: {exc}）") from exc


@dataclass(frozen=True)
class Problem:
    seq: int
    kind: str
    message: str
    # What the problem is about when it is not one event: "case:CL26-00002", "stage:…/…".
    subject: str = ""


def describe_event(ev: RecordedEvent) -> str:
    """What a person reads to find the event: its action and what it is about."""
    case = (
        f"，案件 {ev.subject.removeprefix('case:')}" if ev.subject.startswith("case:") else f"，{ev.subject}"
    )
    return f"{ev.action}{case}"


def _describe_seq(session: Session, seq: int) -> str:
    row = session.get(AuditEvent, seq)
    return f"第 {seq} 条事件（{describe_event(row)}）" if row is not None else f"第 {seq} 条事件（已不存在）"


@dataclass
class VerifyReport:
    checked: int = 0
    # Without the secret key the HMAC chain and its anchor are not checked (the Merkle log is).
    hmac_checked: bool = True
    root: str = ""
    checkpoints: int = 0
    latest_checkpoint: int | None = None
    head_seq: int = 0
    anchor_seq: int | None = None
    anchor_file: str | None = None
    # What the replay compared (models/replay.py); stages loaded before loads recorded their
    # deadlines, and never moved since, cannot be checked.
    cases: int = 0
    stages: int = 0
    stages_unchecked: int = 0
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
