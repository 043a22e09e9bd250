"""Receipts: an event, its inclusion proof and a signed checkpoint, checkable offline.

A county that submitted at 06-25 23:50 keeps its receipt; anyone with the log's public key can
check, on another machine and without the database, that the event is in the log the key
signed. Given a newer checkpoint with a consistency proof (``shenbao audit prove``), the same
check shows the event is still there: the past was not rewritten since.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from models import audit_tree, merkle
from models.audit import AuditEvent, _canonical
from models.checkpoint import Checkpoint, CheckpointInvalid, Keyring, open_checkpoint

FORMAT = "shenbao-audit-receipt/1"


def to_text(receipt: dict[str, Any]) -> str:
    """The receipt file's bytes, one way for every edge (``shenbao audit receipt``, the mail that
    carries it): whoever compares two copies of one receipt finds them equal."""
    return json.dumps(receipt, ensure_ascii=False, indent=2) + "\n"


def build(session: Session, seqs: Sequence[int], checkpoint: audit_tree.SignedCheckpoint) -> dict[str, Any]:
    reader = audit_tree.Reader(session)
    entries = []
    for seq in seqs:
        row = session.get(AuditEvent, seq)
        if row is None:
            raise LookupError(f"没有第 {seq} 条审计事件")
        canonical = _canonical(seq, row, row.details)
        stored, proof = merkle.inclusion_proof_with_leaf(seq - 1, checkpoint.size, reader)
        if stored != merkle.leaf_hash(canonical):
            raise LookupError(f"第 {seq} 条事件与 Merkle 树中的叶子不符：请先运行 shenbao audit verify")
        entries.append(
            {
                "seq": seq,
                "event": canonical.decode(),
                "leaf_hash": audit_tree.b64(merkle.leaf_hash(canonical)),
                "inclusion_proof": [audit_tree.b64(p) for p in proof],
            }
        )
    return {
        "format": FORMAT,
        "origin": audit_tree.origin_of(session),
        "tree_size": checkpoint.size,
        "checkpoint": checkpoint.note,
        "entries": entries,
        "nodes_read": reader.reads,
    }


@dataclass(frozen=True)
class Checked:
    checkpoint: Checkpoint
    events: list[dict[str, Any]]
    newer: Checkpoint | None = None


def check(receipt: dict[str, Any], keyring: Keyring, newer: dict[str, Any] | None = None) -> Checked:
    """Raises CheckpointInvalid or merkle.ProofError naming the entry that fails."""
    if receipt.get("format") != FORMAT:
        raise CheckpointInvalid(f"不是审计回执（format 应为 {FORMAT}）")
    checkpoint = open_checkpoint(str(receipt["checkpoint"]), keyring)
    events = []
    for entry in receipt.get("entries", []):
        seq = int(entry["seq"])
        event = json.loads(entry["event"])
        if event.get("seq") != seq:
            raise merkle.ProofError(f"回执第 {seq} 条：事件内容里的序号是 {event.get('seq')}")
        leaf = merkle.leaf_hash(str(entry["event"]).encode())
        proof = [audit_tree.unb64(p) for p in entry.get("inclusion_proof", [])]
        try:
            merkle.verify_inclusion(seq - 1, checkpoint.size, leaf, proof, checkpoint.root)
        except merkle.ProofError as exc:
            raise merkle.ProofError(
                f"第 {seq} 条事件（{event.get('action')}，{event.get('subject')}）不在检查点的日志中：{exc}"
            ) from exc
        events.append(event)
    later = audit_tree.check_consistency_bundle(checkpoint, newer, keyring) if newer is not None else None
    return Checked(checkpoint, events, later)
