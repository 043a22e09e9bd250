"""The audit events as an RFC 6962 Merkle log in the database, and the checkpoints it signed.

Storage (why this one): a complete subtree never changes, and it becomes complete with exactly
one leaf, so its hash is stored in that leaf's event row: ``audit_event.tree_nodes`` holds the
leaf hash and the hashes of the subtrees the event completed, lowest first (32 bytes each; one
on average two). Node (level L, index i) is therefore the L-th hash of event seq (i+1)·2^L. A
proof over n events needs at most about 2·log2(n) of them (models/merkle.py), read in one
primary-key query on audit_event. A table of nodes (or C2SP tiles of 256 hashes) was measured
first: its own B-tree and index cost an append a sixth more pages written per commit; in the
event row the append writes no page it did not write before. The right edge of the tree (the
compact range, ≤ log2(n) hashes) rides in ``audit_head.tree``, which the append already locks
and rewrites, so appending reads nothing from the tree.

Leaf i (0-based) is event seq i+1; its bytes are the event's canonical JSON, the same bytes the
HMAC chain covers (models/audit.py ``_canonical``).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Column, Text, select
from sqlmodel import Field, Session, SQLModel

from models import merkle
from models.identity import database_identity
from models.types import UTCDateTime

if TYPE_CHECKING:
    # models/checkpoint.py imports cryptography: only the commands that sign or check pay for it.
    from models.checkpoint import Checkpoint, Keyring, SignerKey

ORIGIN_PREFIX = "shenbao.audit/"


class SignedCheckpoint(SQLModel, table=True):
    """Every checkpoint the log signed, as published (receipts, digests, the dashboard). Not an
    audit event: a checkpoint is a statement about the events, and signing one changes nothing."""

    __tablename__ = "audit_checkpoint"

    id: int | None = Field(default=None, primary_key=True)
    size: int = Field(index=True)
    root: str = Field(max_length=64)
    note: str = Field(sa_column=Column(Text, nullable=False))
    signed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


HASH = 32


def holder(node: merkle.NodeId) -> tuple[int, int]:
    """The event seq whose row stores ``node``, and the hash's offset in its ``tree_nodes``."""
    level, index = node
    return (index + 1) << level, level * HASH


def blob(made: list[tuple[int, int, bytes]]) -> bytes:
    """What one event's row stores: the hashes its leaf completed, lowest first."""
    return b"".join(h for _, _, h in made)


def origin_of(session: Session) -> str:
    return ORIGIN_PREFIX + (database_identity(session) or "unknown")


@dataclass
class Reader:
    """Fetches stored nodes for proofs, counting how many it read (the bench reports it)."""

    session: Session
    reads: int = 0

    def __call__(self, wanted: Sequence[merkle.NodeId]) -> dict[merkle.NodeId, bytes]:
        found: dict[merkle.NodeId, bytes] = {}
        by_seq: dict[int, list[tuple[merkle.NodeId, int]]] = {}
        for node in wanted:
            seq, offset = holder(node)
            by_seq.setdefault(seq, []).append((node, offset))
        seqs = sorted(by_seq)
        conn = self.session.connection()
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        for start in range(0, len(seqs), 500):
            chunk = seqs[start : start + 500]
            # Driver SQL: building and compiling the statement cost more than the lookups.
            rows = conn.exec_driver_sql(
                f"SELECT seq, tree_nodes FROM audit_event WHERE seq IN ({', '.join([mark] * len(chunk))})",
                tuple(chunk),
            ).all()
            for seq, stored in rows:
                stored = bytes(stored or b"")
                for node, offset in by_seq[seq]:
                    if len(stored) >= offset + HASH:
                        found[node] = stored[offset : offset + HASH]
                        self.reads += 1
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
    table = SignedCheckpoint.__table__  # type: ignore[attr-defined]
    found: SignedCheckpoint | None = session.execute(
        select(SignedCheckpoint).where(table.c.size >= at_least).order_by(table.c.id.desc()).limit(1)
    ).scalar_one_or_none()
    return found


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
    """Verify's view of the tree: fed every event's leaf in seq order with what its row stores, it
    recomputes the tree, compares the stored hashes, and remembers the root at each size a
    checkpoint names."""

    want_roots: set[int] = field(default_factory=set)
    frontier: merkle.Frontier = field(default_factory=merkle.Frontier)
    roots: dict[int, bytes] = field(default_factory=dict)
    # (kind, seq, message) as models/audit.py words them into Problems.
    found: list[tuple[str, int, str]] = field(default_factory=list)
    # Nodes found wrong: the nodes above one wrong leaf are wrong too, and said once, at the leaf.
    _bad: set[merkle.NodeId] = field(default_factory=set)

    def feed(self, seq: int, leaf: bytes, stored: bytes, describe: str) -> None:
        if seq != self.frontier.size + 1:
            # A gap or a duplicate: the leaves no longer line up with seq; the chain reports it.
            return
        for level, index, h in self.frontier.append(leaf):
            if level and ((level - 1, 2 * index) in self._bad or (level - 1, 2 * index + 1) in self._bad):
                self._bad.add((level, index))
                continue
            if stored[level * HASH : (level + 1) * HASH] == h:
                continue
            self._bad.add((level, index))
            what = "缺失" if len(stored) < (level + 1) * HASH else "与事件不符"
            if level == 0:
                self.found.append(
                    ("merkle_leaf", seq, f"第 {seq} 条事件（{describe}）的 Merkle 叶子{what}：事件或树被改动")
                )
            else:
                first = (index << level) + 1
                self.found.append(
                    (
                        "merkle_node",
                        first,
                        f"Merkle 树节点（第 {level} 层第 {index} 个，覆盖第 {first}–{seq} 条事件，存于第 {seq} 条）{what}",
                    )
                )
        if self.frontier.size in self.want_roots:
            self.roots[self.frontier.size] = self.frontier.root()

    def finish(self, head_size: int, head_tree: str) -> bytes:
        root = self.frontier.root()
        if not self._bad:
            try:
                stored = merkle.Frontier.decode(head_size, head_tree)
            except ValueError:
                stored = None
            if stored is None or stored.size != self.frontier.size or stored.root() != root:
                self.found.append(
                    (
                        "merkle_head",
                        head_size,
                        f"链头记录的 Merkle 树右缘（{head_size} 条）与事件重算的结果（{self.frontier.size} 条）不符",
                    )
                )
        return root
