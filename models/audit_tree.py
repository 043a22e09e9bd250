"""The audit events as an RFC 6962 Merkle log in the database, and the checkpoints it signed.

Storage (why this one): every *complete* subtree is one row of ``audit_merkle_node`` (level,
index, hash), written once when its last leaf arrives and never changed: about two rows per
event. A proof over n events needs at most about 2·log2(n) of them (models/merkle.py), read in
one query. C2SP tiles would pack 256 hashes a row, which suits a static file server; here the
readers are SQL queries, and one row per node keeps appending to one small INSERT. The right
edge of the tree (the compact range, ≤ log2(n) hashes) rides in ``audit_head.tree``, which the
append already locks and rewrites, so appending reads nothing from the tree.

Leaf i (0-based) is event seq i+1; its bytes are the event's canonical JSON, the same bytes the
HMAC chain covers (models/audit.py ``_canonical``).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Column, Integer, LargeBinary, SmallInteger, Text, func, insert, select
from sqlmodel import Field, Session, SQLModel

from models import merkle
from models.identity import database_identity
from models.types import UTCDateTime

if TYPE_CHECKING:
    # models/checkpoint.py imports cryptography: only the commands that sign or check pay for it.
    from models.checkpoint import Checkpoint, Keyring, SignerKey

ORIGIN_PREFIX = "shenbao.audit/"


class MerkleNode(SQLModel, table=True):
    __tablename__ = "audit_merkle_node"

    level: int = Field(sa_column=Column(SmallInteger, primary_key=True, autoincrement=False))
    idx: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))


class SignedCheckpoint(SQLModel, table=True):
    """Every checkpoint the log signed, as published (receipts, digests, the dashboard). Not an
    audit event: a checkpoint is a statement about the events, and signing one changes nothing."""

    __tablename__ = "audit_checkpoint"

    id: int | None = Field(default=None, primary_key=True)
    size: int = Field(index=True)
    root: str = Field(max_length=64)
    note: str = Field(sa_column=Column(Text, nullable=False))
    signed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


NODES = MerkleNode.__table__  # type: ignore[attr-defined]


def origin_of(session: Session) -> str:
    return ORIGIN_PREFIX + (database_identity(session) or "unknown")


def store(session: Session, made: list[tuple[int, int, bytes]]) -> None:
    if made:
        session.execute(insert(NODES), [{"level": lv, "idx": i, "hash": h} for lv, i, h in made])


@dataclass
class Reader:
    """Fetches stored nodes for proofs, counting how many it read (the bench reports it)."""

    session: Session
    reads: int = 0

    def __call__(self, wanted: Sequence[merkle.NodeId]) -> dict[merkle.NodeId, bytes]:
        found: dict[merkle.NodeId, bytes] = {}
        conn = self.session.connection()
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        for start in range(0, len(wanted), 200):
            chunk = wanted[start : start + 200]
            # One primary-key lookup per node (SQLite's MULTI-INDEX OR, PostgreSQL's BitmapOr),
            # sent as the driver's own SQL: building and compiling a 22-term expression each
            # time cost more than the lookups themselves.
            where = " OR ".join([f"(level = {mark} AND idx = {mark})"] * len(chunk))
            params = tuple(x for node in chunk for x in node)
            rows = conn.exec_driver_sql(
                f"SELECT level, idx, hash FROM audit_merkle_node WHERE {where}", params
            ).all()
            self.reads += len(rows)
            found.update({(r[0], r[1]): bytes(r[2]) for r in rows})
        return found


def tree_size(session: Session) -> int:
    from models.audit import AuditHead

    head = session.get(AuditHead, 1)
    return head.seq if head else 0


def frontier_of(session: Session, size: int, text: str) -> merkle.Frontier:
    """The right edge as the head keeps it, or rebuilt from the stored nodes if that is damaged."""
    try:
        return merkle.Frontier.decode(size, text)
    except ValueError:
        nodes = merkle.range_nodes(0, size)
        got = Reader(session)(nodes)
        if len(got) != len(nodes):
            raise
        return merkle.Frontier(size, [got[n] for n in nodes])


def sign_now(session: Session, signers: list[SignerKey], now: datetime) -> SignedCheckpoint:
    """Sign the log as it stands in this transaction and keep the note (caller commits)."""
    from models.checkpoint import sign_checkpoint

    size = tree_size(session)
    root = merkle.root_of(size, Reader(session))
    note = sign_checkpoint(origin_of(session), size, root, signers)
    row = SignedCheckpoint(size=size, root=root.hex(), note=note, signed_at=now)
    session.add(row)
    session.flush()
    return row


def latest_checkpoint(session: Session, *, at_least: int = 0) -> SignedCheckpoint | None:
    return session.exec(  # type: ignore[call-overload,no-any-return]
        select(SignedCheckpoint)
        .where(SignedCheckpoint.size >= at_least)  # type: ignore[arg-type]
        .order_by(SignedCheckpoint.id.desc())  # type: ignore[union-attr]
        .limit(1)
    ).scalar_one_or_none()


def checkpoints(session: Session, limit: int = 30) -> list[SignedCheckpoint]:
    return list(
        session.execute(
            select(SignedCheckpoint).order_by(SignedCheckpoint.id.desc()).limit(limit)  # type: ignore[union-attr]
        ).scalars()
    )


def b64(h: bytes) -> str:
    return base64.b64encode(h).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def consistency_bundle(session: Session, old_size: int, new: SignedCheckpoint) -> dict[str, object]:
    """What a witness keeping a checkpoint of ``old_size`` events needs to accept ``new``."""
    reader = Reader(session)
    proof = merkle.consistency_proof(old_size, new.size, reader)
    return {
        "format": "shenbao-audit-consistency/1",
        "old_size": old_size,
        "checkpoint": new.note,
        "consistency_proof": [b64(p) for p in proof],
        "nodes_read": reader.reads,
    }


def check_consistency_bundle(old: Checkpoint, bundle: dict[str, object], keyring: Keyring) -> Checkpoint:
    """Offline: the newer checkpoint in ``bundle`` extends the ``old`` one a witness kept."""
    from models.checkpoint import open_checkpoint

    new = open_checkpoint(str(bundle["checkpoint"]), keyring, origin=old.origin)
    proof = [unb64(p) for p in bundle.get("consistency_proof", [])]  # type: ignore[attr-defined]
    merkle.verify_consistency(old.size, new.size, old.root, new.root, proof)
    return new


@dataclass
class TreeCheck:
    """Verify's view of the tree: fed every event's leaf in seq order, it recomputes the tree,
    compares it with the stored nodes in batches, and remembers the root at each size a
    checkpoint names."""

    session: Session
    want_roots: set[int] = field(default_factory=set)
    frontier: merkle.Frontier = field(default_factory=merkle.Frontier)
    roots: dict[int, bytes] = field(default_factory=dict)
    # (kind, seq, message) as models/audit.py words them into Problems.
    found: list[tuple[str, int, str]] = field(default_factory=list)
    _pending: dict[merkle.NodeId, bytes] = field(default_factory=dict)
    _events: dict[int, str] = field(default_factory=dict)
    # Nodes found wrong: the nodes above one wrong leaf are wrong too, and said once, at the leaf.
    _bad: set[merkle.NodeId] = field(default_factory=set)

    def feed(self, seq: int, leaf: bytes, describe: str) -> None:
        if seq != self.frontier.size + 1:
            # A gap or a duplicate: the leaves no longer line up with seq; the chain reports it.
            return
        for level, index, h in self.frontier.append(leaf):
            self._pending[(level, index)] = h
        self._events[seq] = describe
        if self.frontier.size in self.want_roots:
            self.roots[self.frontier.size] = self.frontier.root()
        if len(self._pending) >= 8192:
            self._flush()

    def _flush(self) -> None:
        by_level: dict[int, list[int]] = {}
        for level, index in self._pending:
            by_level.setdefault(level, []).append(index)
        for level, indexes in sorted(by_level.items()):
            rows = self.session.execute(
                select(NODES.c.idx, NODES.c.hash).where(
                    NODES.c.level == level, NODES.c.idx >= min(indexes), NODES.c.idx <= max(indexes)
                )
            ).all()
            stored = {r.idx: bytes(r.hash) for r in rows}
            for index in sorted(indexes):
                if level and ((level - 1, 2 * index) in self._bad or (level - 1, 2 * index + 1) in self._bad):
                    self._bad.add((level, index))
                    continue
                if stored.get(index) == self._pending[(level, index)]:
                    continue
                self._bad.add((level, index))
                first, last = (index << level) + 1, (index + 1) << level
                what = "缺失" if index not in stored else "与事件不符"
                if level == 0:
                    self.found.append(
                        (
                            "merkle_leaf",
                            first,
                            f"第 {first} 条事件（{self._events.get(first, '')}）的 Merkle 叶子{what}：事件或树被改动",
                        )
                    )
                else:
                    self.found.append(
                        (
                            "merkle_node",
                            first,
                            f"Merkle 树节点（第 {level} 层第 {index} 个，覆盖第 {first}–{last} 条事件）{what}",
                        )
                    )
        self._pending.clear()
        self._events.clear()

    def finish(self, head_size: int, head_tree: str) -> bytes:
        self._flush()
        extra = self.session.execute(
            select(func.count())
            .select_from(NODES)
            .where(NODES.c.level == 0, NODES.c.idx >= self.frontier.size)
        ).scalar_one()
        if extra:
            self._bad.add((0, self.frontier.size))
            self.found.append(
                (
                    "truncated",
                    self.frontier.size + 1,
                    f"Merkle 树中还有第 {self.frontier.size + 1} 条起的 {extra} 个叶子，事件表中却已没有：最新的事件被删除",
                )
            )
        root = self.frontier.root()
        if head_size == self.frontier.size and not self._bad:
            try:
                stored = merkle.Frontier.decode(head_size, head_tree).root()
            except ValueError:
                stored = b""
            if stored != root:
                self.found.append(("merkle_head", head_size, "链头记录的 Merkle 树右缘与事件重算的结果不符"))
        return root
