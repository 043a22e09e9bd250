"""Named operations on the signed audit log: keys, checkpoints, receipts, consistency proofs.

Both edges (the CLI, the dashboard) and the daily digest call these; the signing key is read
here and only here, and only to sign.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
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


def verify_log(rt: Runtime, key: str | None = None, kept: list[tuple[str, str]] | None = None) -> Any:
    """The whole audit check, as every edge runs it (`shenbao audit verify`, the demo's summary):
    the Merkle log and its signed checkpoints with the public keys (``--key``, else this home's
    keyring when there is one), the ones given and the ones this machine saw before, the hash
    chain where the secret is here, and the state replay. A sound log's checkpoints are
    remembered, so a later rollback is caught against them."""
    from models.replay import verify
    from operations import seen_checkpoints

    log = rt.audit_reader()
    keyring = rt.keyring(key) if key or rt.settings.resolved_keyring_file.exists() else None
    given = list(kept or [])
    with rt.db.snapshot() as session:
        given += seen_checkpoints.seen(rt, session)
        report = verify(session, log, keyring=keyring, kept=given)
        if report.ok and keyring is not None:
            seen_checkpoints.remember(rt, session, keyring)
    return report


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


def sign(rt: Runtime, session: Session, now: datetime | None = None) -> audit_tree.SignedCheckpoint:
    return audit_tree.sign_now(session, [rt.signer()], now or rt.now())


def covering_checkpoint(
    rt: Runtime, session: Session, size: int, now: datetime | None = None
) -> audit_tree.SignedCheckpoint:
    """The newest checkpoint that includes event ``size``; signs one (at ``now``, by default the
    runtime's clock) when none does yet."""
    found = audit_tree.latest_checkpoint(session)
    if found is not None and found.size >= size:
        return found
    return sign(rt, session, now)


def receipt_checkpoint(
    rt: Runtime, session: Session, size: int, now: datetime | None = None
) -> tuple[audit_tree.SignedCheckpoint, list[VerifierKey]]:
    """The checkpoint a mailed receipt carries, and the public keys that signed it (the mail names
    them and their fingerprints).

    Signed when the receipt is planned, not left for the next daily checkpoint: the actor wants
    the proof of a 23:50 submission now, while it can still matter, and a receipt without a
    checkpoint covering its event proves nothing. One signature serves every receipt of a pass
    (the day's first sweep's daily checkpoint may already cover them), so the cost is one Ed25519
    signature per sweep that has actions, not one per action. Without a signing key here this
    raises KeyProblem and the receipts wait for the first pass that has a covering checkpoint
    (one signed by ``shenbao audit checkpoint`` where the key is counts too)."""
    checkpoint = covering_checkpoint(rt, session, size, now)
    keyring = rt.keyring()
    signers = open_checkpoint(checkpoint.note, keyring).signers
    return checkpoint, [k for k in keyring.keys if k.label in signers]


log = logging.getLogger("shenbao.audit")
# (date on this machine's clock, message) already logged by this process: once a day, not at
# every sweep. The real clock, not the sweep's instant: a simulation crossing thirty days in a
# minute says it once, a service running for months once a day.
_warned: set[tuple[str, str]] = set()


def unsigned_warning(rt: Runtime, problem: Exception) -> str:
    return (
        f"审计签名密钥不可用，今日检查点未签署：{problem}。见证人收不到当日检查点，操作回执暂不发送"
        f"（签署后补发）。请运行 shenbao audit keygen，或把私钥放回 {rt.settings.resolved_signing_key_file}；"
        "shenbao audit status 显示现状。"
    )


def warn_unsigned(rt: Runtime, problem: Exception) -> None:
    """A missing or unreadable signing key is said, in the log ``serve`` prints, once a day."""
    from datetime import UTC

    from calendars.timeutil import local_date

    seen = (local_date(datetime.now(UTC)).isoformat(), unsigned_warning(rt, problem))
    if seen not in _warned:
        _warned.add(seen)
        log.warning("%s", seen[1])


def daily_checkpoint(rt: Runtime, session: Session, now: datetime) -> audit_tree.SignedCheckpoint | None:
    """The day's checkpoint for the witnesses' digest (Asia/Shanghai days): the first signed
    today, else one signed now if the log grew since the last; None when nothing happened since
    (the witnesses have it, or its successor, already) or when this machine has no signing key
    (said in the log, once a day, never silently).

    Once a day, not at every sweep that finds the log grown: a sweep every few minutes would
    sign hundreds of checkpoints a day that no witness is sent (their digest takes one a day),
    and a receipt that needs a newer one signs it itself (receipt_checkpoint)."""
    from calendars.timeutil import local_date

    found = audit_tree.latest_checkpoint(session)
    if found is not None:
        if local_date(found.signed_at) == local_date(now):
            return found
        if found.size >= audit_tree.tree_size(session):
            return None
    try:
        signer = rt.signer()
    except KeyProblem as exc:
        warn_unsigned(rt, exc)
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


@dataclass(frozen=True)
class AuditStatus:
    """What ``shenbao audit status`` shows: can this machine sign, and is the log signed today."""

    signing_key: VerifierKey | None
    key_problem: str | None  # the Chinese warning when the key is missing or unreadable
    keyring: list[VerifierKey]
    size: int
    latest: audit_tree.SignedCheckpoint | None
    signed_today: bool
    receipts_waiting: int


def status(rt: Runtime, session: Session, now: datetime) -> AuditStatus:
    from calendars.timeutil import local_date
    from models.checkpoint import Keyring
    from notifications.receipt_notice import waiting

    try:
        key: VerifierKey | None = rt.signer().verifier
        problem = None
    except KeyProblem as exc:
        key, problem = None, unsigned_warning(rt, exc)
    path = rt.settings.resolved_keyring_file
    keyring = Keyring.read(path).keys if path.exists() else []
    latest = audit_tree.latest_checkpoint(session)
    return AuditStatus(
        signing_key=key,
        key_problem=problem,
        keyring=keyring,
        size=audit_tree.tree_size(session),
        latest=latest,
        signed_today=latest is not None and local_date(latest.signed_at) == local_date(now),
        receipts_waiting=waiting(session),
    )
