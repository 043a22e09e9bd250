"""The signed audit log against every tampering we know, checked with the public key alone.

The intruder here can write the database, its files and the anchor, and knows the Merkle tables
(it rebuilds them after each change); it has not the signing key. The verifier has the public key
and the checkpoints it (or a witness) kept: each tampering must be caught and the problem must
name the event or the range of events."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import text

from models import audit_tree, merkle, receipts
from models.actions import perform
from models.audit import AuditLog, _canonical
from models.checkpoint import CheckpointInvalid, KeyProblem, Keyring, SignerKey, read_private, write_private
from models.db import Database
from models.replay import verify as full_verify
from tests.models.spine import cluster_case, events

KEY = SignerKey.generate("shenbao-audit-test")
KEYRING = Keyring([KEY.verifier])
PUBLIC_ONLY = AuditLog(key=None, anchor_path=None)


@pytest.fixture
def history(seeded: Database, make_ctx: Any) -> Database:
    ctx = make_ctx()
    with seeded.write() as session:
        refs = [cluster_case(session, ctx, county=c).ref for c in ("西湖区", "萧山区", "鄞州区")]
    for ref in refs:
        perform(seeded, make_ctx(), ref, "submit")
    return seeded


def sign(db: Database, key: SignerKey = KEY) -> audit_tree.SignedCheckpoint:
    from calendars.timeutil import parse_instant

    with db.write() as session:
        return audit_tree.sign_now(session, [key], parse_instant("2026-06-02T09:00"))


def sql(db: Database, statement: str, **params: Any) -> None:
    with db.writer.begin() as conn:
        conn.execute(text(statement), params)


def rebuild_tree(db: Database) -> None:
    """The intruder's tree: recomputed from the events as they are now, head and all."""
    from models.audit import AuditEvent

    with db.read() as session:
        seqs = [r.seq for r in session.execute(text("SELECT seq FROM audit_event ORDER BY seq")).all()]
        frontier, rows = merkle.Frontier(), []
        for seq in seqs:
            ev = session.get(AuditEvent, seq)
            assert ev is not None
            made = frontier.append(merkle.leaf_hash(_canonical(ev.seq, ev, ev.details)))
            rows.append({"s": seq, "n": audit_tree.blob(made)})
    with db.writer.begin() as conn:
        for row in rows:
            conn.execute(text("UPDATE audit_event SET tree_nodes = :n WHERE seq = :s"), row)
        conn.execute(
            text("UPDATE audit_head SET seq = :seq, tree = :tree"),
            {"seq": frontier.size, "tree": frontier.encode()},
        )


def check(db: Database, kept: list[audit_tree.SignedCheckpoint] = (), keyring: Keyring = KEYRING) -> Any:  # type: ignore[assignment]
    with db.snapshot() as session:
        return full_verify(
            session,
            PUBLIC_ONLY,
            keyring=keyring,
            kept=[(f"见证者保存的检查点（{c.size} 条）", c.note) for c in kept],
        )


def kinds(report: Any) -> set[tuple[int, str]]:
    return {(p.seq, p.kind) for p in report.problems}


def test_it_verifies_a_clean_log_with_the_public_key_alone(history: Database) -> None:
    kept = sign(history)
    report = check(history, [kept])
    assert report.ok, report.problems
    assert not report.hmac_checked and report.checkpoints == 2 and report.latest_checkpoint == kept.size


def test_an_edited_event_is_named(history: Database) -> None:
    target = events(history, action="state_change")[-1]
    sql(history, "UPDATE audit_event SET reason = '改过' WHERE seq = :seq", seq=target.seq)
    report = check(history)
    assert kinds(report) == {(target.seq, "merkle_leaf")}
    assert "state_change，案件" in report.problems[0].message


def test_an_edit_with_the_tree_rebuilt_is_caught_by_the_kept_checkpoint(history: Database) -> None:
    kept = sign(history)
    target = events(history, action="state_change")[0]
    sql(history, "UPDATE audit_event SET reason = '改过' WHERE seq = :seq", seq=target.seq)
    rebuild_tree(history)
    sql(history, "DELETE FROM audit_checkpoint")
    report = check(history, [kept])
    assert kinds(report) == {(1, "rewritten")}
    assert f"第 1–{kept.size} 条事件之间的历史被改写" in report.problems[0].message


def test_older_checkpoints_narrow_a_rewrite_down(history: Database, make_ctx: Any) -> None:
    first = sign(history)
    with history.write() as session:
        ref = cluster_case(session, make_ctx(), county="余杭区").ref
    perform(history, make_ctx(), ref, "submit")
    second = sign(history)
    target = events(history)[-1]
    sql(history, "UPDATE audit_event SET actor = '别人' WHERE seq = :seq", seq=target.seq)
    rebuild_tree(history)
    report = check(history, [first, second])
    # Both the witness's copy and the log's own copy of the second checkpoint disagree.
    assert {k for _, k in kinds(report)} == {"rewritten"}
    assert all(p.seq == first.size + 1 for p in report.problems)
    assert f"第 {first.size + 1}–{second.size} 条" in report.problems[0].message


def test_a_deleted_event_is_named(history: Database) -> None:
    target = events(history, action="state_change")[0]
    sql(history, "DELETE FROM audit_event WHERE seq = :seq", seq=target.seq)
    rebuild_tree(history)
    assert (target.seq, "deleted") in kinds(check(history))


def test_reordered_events_are_named(history: Database) -> None:
    a, b = events(history, action="state_change")[:2]
    for seq, other in ((a.seq, b), (b.seq, a)):
        sql(
            history,
            "UPDATE audit_event SET subject = :s, case_id = :c WHERE seq = :seq",
            s=other.subject,
            c=other.case_id,
            seq=seq,
        )
    report = check(history)
    assert {(a.seq, "merkle_leaf"), (b.seq, "merkle_leaf")} <= kinds(report)


def test_a_truncation_with_everything_rewound_is_caught_by_the_kept_checkpoint(history: Database) -> None:
    kept = sign(history)
    keep = events(history)[-3]
    sql(history, "DELETE FROM audit_event WHERE seq > :seq", seq=keep.seq)
    sql(history, "DELETE FROM audit_checkpoint")
    sql(history, "UPDATE audit_head SET hash = :h", h=keep.hash)
    rebuild_tree(history)
    report = check(history, [kept])
    rollback = [p for p in report.problems if p.kind == "rollback"]
    assert [p.seq for p in rollback] == [keep.seq + 1]
    assert f"第 {keep.seq + 1}–{kept.size} 条事件被删除" in rollback[0].message
    # The replay sees it too: the cases those events moved are ahead of the log.
    assert {k for _, k in kinds(report)} == {"rollback", "state"}


def test_an_inserted_event_is_caught(history: Database) -> None:
    kept = sign(history)
    at = events(history, action="state_change")[0].seq
    sql(history, "UPDATE audit_event SET seq = seq + 100000 WHERE seq >= :at", at=at)
    sql(history, "UPDATE audit_event SET seq = seq - 100000 + 1 WHERE seq >= 100000")
    sql(
        history,
        "INSERT INTO audit_event (seq, at, actor, action, subject, reason, details, prev_hash, hash) "
        "SELECT :at, at, '伪造者', 'state_change', subject, '', '{}', prev_hash, hash FROM audit_event WHERE seq = :next",
        at=at,
        next=at + 1,
    )
    rebuild_tree(history)
    sql(history, "DELETE FROM audit_checkpoint")
    report = check(history, [kept])
    assert (1, "rewritten") in kinds(report)


def test_a_log_re_signed_with_a_new_key_is_refused(history: Database) -> None:
    kept = sign(history)
    sql(history, "UPDATE audit_event SET reason = '改过' WHERE seq = 5")
    rebuild_tree(history)
    sql(history, "DELETE FROM audit_checkpoint")
    forger = SignerKey.generate("shenbao-audit-test")
    sign(history, forger)
    report = check(history, [kept])
    found = kinds(report)
    assert (0, "checkpoint_signature") in found and (1, "rewritten") in found
    assert "不是由受信任的公钥签署" in next(
        p.message for p in report.problems if p.kind == "checkpoint_signature"
    )


def test_a_database_and_all_its_files_rolled_back_are_caught_by_a_witness(
    history: Database, make_ctx: Any, audit: AuditLog
) -> None:
    # The backup: the database as it was (here: everything after it is undone) and every file.
    assert audit.anchor_path is not None
    before = events(history)[-1]
    anchor = audit.anchor_path.read_text()
    with history.write() as session:
        ref = cluster_case(session, make_ctx(), county="余杭区").ref
    perform(history, make_ctx(), ref, "submit")
    witness = sign(history)  # went out in the day's digest
    sql(history, "DELETE FROM audit_event WHERE seq > :seq", seq=before.seq)
    sql(history, 'DELETE FROM "case" WHERE ref = :ref', ref=ref)
    sql(history, "DELETE FROM audit_checkpoint")
    sql(history, "UPDATE audit_head SET hash = :h", h=before.hash)
    rebuild_tree(history)
    audit.anchor_path.write_text(anchor)
    with history.snapshot() as session:
        assert full_verify(session, audit).ok  # the restored copy is consistent in itself
    report = check(history, [witness])
    assert kinds(report) == {(before.seq + 1, "rollback")}


def test_two_histories_shown_to_two_parties_are_caught(history: Database, make_ctx: Any) -> None:
    base = events(history)[-1]
    with history.write() as session:
        ref = cluster_case(session, make_ctx(), county="余杭区").ref
    shown_to_a = sign(history)
    with history.read() as session:
        receipt_a = receipts.build(session, [shown_to_a.size], shown_to_a)
    # The other history: the same length, another event at the end.
    sql(history, "DELETE FROM audit_event WHERE seq > :seq", seq=base.seq)
    sql(history, 'DELETE FROM "case" WHERE ref = :ref', ref=ref)
    sql(history, "UPDATE audit_head SET hash = :h", h=base.hash)
    rebuild_tree(history)
    with history.write() as session:
        cluster_case(session, make_ctx(), county="临安区")
    shown_to_b = sign(history)
    assert shown_to_a.size == shown_to_b.size and shown_to_a.root != shown_to_b.root
    # A and B compare their checkpoints offline:
    with pytest.raises(merkle.ProofError, match="不同的历史"):
        merkle.verify_consistency(
            shown_to_a.size,
            shown_to_b.size,
            bytes.fromhex(shown_to_a.root),
            bytes.fromhex(shown_to_b.root),
            [],
        )
    # A's receipt against the log B is shown, and A's checkpoint against the log:
    with history.read() as session:
        bundle = audit_tree.consistency_bundle(session, shown_to_a.size, shown_to_b)
    with pytest.raises(merkle.ProofError):
        receipts.check(receipt_a, KEYRING, bundle)
    report = check(history, [shown_to_a])
    assert kinds(report) == {(1, "rewritten")}
    assert "另一份历史" in report.problems[0].message


def test_a_receipt_checks_offline_and_a_changed_one_does_not(history: Database) -> None:
    target = events(history, action="state_change")[0]
    cp = sign(history)
    with history.read() as session:
        receipt = receipts.build(session, [target.seq], cp)
        assert receipt["nodes_read"] <= 2 * cp.size.bit_length()
    data = json.loads(json.dumps(receipt))  # as a file
    checked = receipts.check(data, KEYRING)
    assert checked.events[0]["seq"] == target.seq and checked.checkpoint.size == cp.size
    forged = json.loads(json.dumps(receipt))
    forged["entries"][0]["event"] = forged["entries"][0]["event"].replace(target.actor, "别人")
    with pytest.raises(merkle.ProofError, match=f"第 {target.seq} 条事件"):
        receipts.check(forged, KEYRING)
    with pytest.raises(CheckpointInvalid, match="不是由受信任的公钥签署"):
        receipts.check(data, Keyring([SignerKey.generate("other").verifier]))
    later = sign(history)
    with history.read() as session:
        bundle = audit_tree.consistency_bundle(session, cp.size, later)
    assert receipts.check(data, KEYRING, json.loads(json.dumps(bundle))).newer is not None


def test_a_rotated_key_keeps_old_checkpoints_verifiable(history: Database) -> None:
    old_cp = sign(history)
    new_key = SignerKey.generate("shenbao-audit-next")
    with history.write() as session:
        from calendars.timeutil import parse_instant

        cross = audit_tree.sign_now(session, [KEY, new_key], parse_instant("2026-06-03T09:00"))
    both = Keyring([KEY.verifier, new_key.verifier])
    assert check(history, [old_cp, cross], keyring=both).ok
    # Whoever holds only the old key accepts the cross-signed checkpoint, hence the new key.
    from models.checkpoint import open_checkpoint

    assert open_checkpoint(cross.note, KEYRING).signers == (KEY.verifier.label,)


def test_the_private_key_file_must_be_private_and_present(tmp_path: Any) -> None:
    path = tmp_path / "keys" / "audit-signing.key"
    with pytest.raises(KeyProblem, match=r"不存在.*keygen"):
        read_private(path)
    write_private(path, KEY)
    assert read_private(path).verifier == KEY.verifier
    with pytest.raises(KeyProblem, match="已存在"):
        write_private(path, KEY)
    path.chmod(0o644)
    with pytest.raises(KeyProblem, match="权限过宽"):
        read_private(path)
    path.chmod(0o600)
    path.write_text(path.read_text().replace("PRIVATE", "PUBLIC"))
    with pytest.raises(KeyProblem, match="格式不对"):
        read_private(path)


def test_a_savepoint_released_then_rolled_back_leaves_no_anchor(
    seeded: Database, make_ctx: Any, audit: AuditLog
) -> None:
    from models.audit import EventDraft, read_anchor

    assert audit.anchor_path is not None
    before = read_anchor(audit.anchor_path)
    ctx = make_ctx()
    with pytest.raises(RuntimeError), seeded.write() as session:
        with session.begin_nested():
            audit.append(session, EventDraft(at=ctx.now, actor="测试", action="test", subject="x"))
        raise RuntimeError("the outer transaction fails after the savepoint was released")
    assert read_anchor(audit.anchor_path) == before


def test_the_migration_hashes_the_events_already_there(history: Database) -> None:
    from alembic import command

    from models.schema import alembic_config, upgrade

    before = check(history)
    cfg = alembic_config(history)
    with history.writer.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0009")
    upgrade(history)
    after = check(history)
    assert after.ok and after.root == before.root and after.checked == before.checked
