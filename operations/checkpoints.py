"""Named operations on the signed audit log: keys, checkpoints, receipts, consistency proofs.

Both edges (the CLI, the dashboard) and the daily digest call these; the signing key is read
here and only here, and only to sign.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from models import audit_tree, receipts
from models.actions import get_case
from models.audit import EventDraft, events_for_case
from models.checkpoint import (
    CheckpointInvalid,
    KeyProblem,
    SignerKey,
    VerifierKey,
    append_to_keyring,
    open_checkpoint,
    read_private,
    write_private,
)
from models.context import Actor
from operations.runtime import Runtime


def default_key_name(now: datetime) -> str:
    return f"shenbao-audit-{now:%Y%m%d}"


def keygen(rt: Runtime, name: str | None = None) -> VerifierKey:
    """A first signing key: the private half 0600 outside the database, the public half in the keyring."""
    path = rt.settings.resolved_signing_key_file
    key = SignerKey.generate(name or default_key_name(rt.now()))
    write_private(path, key)
    append_to_keyring(rt.settings.resolved_keyring_file, key.verifier, f"生成于 {rt.now().isoformat()}")
    return key.verifier


def rotate_key(
    rt: Runtime, actor: Actor, reason: str, name: str | None = None
) -> tuple[VerifierKey, VerifierKey, audit_tree.SignedCheckpoint]:
    """A new signing key. The old public key stays in the keyring (old checkpoints still verify);
    the rotation is an audit event, and the checkpoint that includes it is signed by both keys,
    so whoever trusts the old key can accept the new one."""
    if not reason.strip():
        raise KeyProblem("更换密钥须填写理由（--reason）")
    path = rt.settings.resolved_signing_key_file
    old = read_private(path)
    new = SignerKey.generate(name or default_key_name(rt.now()))
    if new.verifier.label == old.verifier.label:
        raise KeyProblem(f"新密钥与旧密钥同名同标识：{new.verifier.label}，请用 --name 另取名称")
    audit = rt.audit()
    with rt.db.write() as session:
        audit.append(
            session,
            EventDraft(
                at=rt.now(),
                actor=actor.label,
                action="key_rotate",
                subject="audit:signing-key",
                from_value=old.verifier.label,
                to_value=new.verifier.label,
                reason=reason,
                details={"old": old.verifier.text, "new": new.verifier.text},
            ),
        )
        cross = audit_tree.sign_now(session, [old, new], rt.now())
    append_to_keyring(
        rt.settings.resolved_keyring_file,
        new.verifier,
        f"{rt.now().isoformat()} 起替换 {old.verifier.label}：{reason}",
    )
    write_private(path, new, replace=True)
    return old.verifier, new.verifier, cross


def sign(rt: Runtime, session: Session) -> audit_tree.SignedCheckpoint:
    return audit_tree.sign_now(session, [rt.signer()], rt.now())


def covering_checkpoint(rt: Runtime, session: Session, size: int) -> audit_tree.SignedCheckpoint:
    """The newest checkpoint that includes event ``size``; signs one when none does yet."""
    found = audit_tree.latest_checkpoint(session)
    if found is not None and found.size >= size:
        return found
    return sign(rt, session)


def daily_checkpoint(rt: Runtime, session: Session, now: datetime) -> audit_tree.SignedCheckpoint | None:
    """Today's checkpoint for the witnesses' digest: the first signed today, else a new one; None
    when this machine has no signing key (the digest then says so rather than failing)."""
    found = audit_tree.latest_checkpoint(session)
    from calendars.timeutil import local_date

    if (
        found is not None
        and local_date(found.signed_at) == local_date(now)
        and found.size == audit_tree.tree_size(session)
    ):
        return found
    try:
        signer = rt.signer()
    except KeyProblem:
        return None
    return audit_tree.sign_now(session, [signer], now)


def receipt(rt: Runtime, what: str) -> dict[str, Any]:
    """A receipt for one event (its seq) or for every event of a case (its ref)."""
    with rt.db.write() as session:
        if what.isdigit():
            seqs = [int(what)]
        else:
            case = get_case(session, what)
            seqs = [e.seq for e in events_for_case(session, case.id)]  # type: ignore[arg-type]
        if not seqs:
            raise LookupError(f"{what} 没有审计事件")
        checkpoint = covering_checkpoint(rt, session, max(seqs))
        return receipts.build(session, seqs, checkpoint)


def prove(rt: Runtime, old_note: str, keyring_option: str | None = None) -> dict[str, Any]:
    """A consistency proof from a checkpoint someone kept to the newest (signing one if needed)."""
    keyring = rt.keyring(keyring_option)
    with rt.db.write() as session:
        old = open_checkpoint(old_note, keyring, origin=audit_tree.origin_of(session))
        size = audit_tree.tree_size(session)
        if old.size > size:
            raise CheckpointInvalid(
                f"保存的检查点有 {old.size} 条事件，日志现在只有 {size} 条：日志被截断或回滚"
            )
        newest = covering_checkpoint(rt, session, size)
        return audit_tree.consistency_bundle(session, old.size, newest)
