"""The audit chain: every change recorded, tampering found and located, truncation caught by the anchor.

Tampering is done the way an intruder with database access would do it: plain SQL on the table,
on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import itertools
import json
import threading
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from calendars.campaign import builtin_campaign_files
from models.actions import ActionRefused, perform
from models.audit import AuditEvent, AuditLog, EventDraft, read_anchor
from models.context import Ctx
from models.db import Database
from models.identity import database_identity
from models.registry import load_campaign, seed_divisions
from tests.models.spine import cluster_case, events, n_events

SHANGHAI = ZoneInfo("Asia/Shanghai")
COLUMNS = (
    "at",
    "actor",
    "action",
    "subject",
    "case_id",
    "campaign_id",
    "from_value",
    "to_value",
    "reason",
    "details",
    "prev_hash",
    "hash",
)


@pytest.fixture
def history(seeded: Database, make_ctx: Any) -> Database:
    """Seeded, plus a few cases that went through submissions, a return and a refusal."""
    ctx = make_ctx()
    with seeded.write() as session:
        refs = [cluster_case(session, ctx, county=c).ref for c in ("西湖区", "萧山区", "鄞州区")]
    for ref in refs:
        perform(seeded, make_ctx(), ref, "submit")
    perform(seeded, make_ctx(), refs[0], "return", reason="材料不全")
    with pytest.raises(ActionRefused):
        perform(seeded, make_ctx(), refs[1], "select")
    return seeded


def verify(db: Database, audit: AuditLog) -> Any:
    with db.read() as session:
        return audit.verify(session)


def sql(db: Database, statement: str, **params: Any) -> None:
    with db.writer.begin() as conn:
        conn.execute(text(statement), params)


def rewind_tree(db: Database, seq: int) -> None:
    """What an intruder who knows the Merkle log does too: rebuild the tree's right edge for the
    events left, so that only the anchor (or a kept checkpoint) is left to catch the truncation."""
    from models.audit_tree import frontier_of

    with db.read() as session:
        tree = frontier_of(session, seq, "").encode()
    sql(db, "UPDATE audit_head SET tree = :tree", tree=tree)


def kinds(report: Any) -> set[tuple[int, str]]:
    return {(p.seq, p.kind) for p in report.problems}


def test_it_verifies_an_untouched_chain(history: Database, audit: AuditLog) -> None:
    report = verify(history, audit)
    assert report.ok, report.problems
    assert report.checked == n_events(history) == report.head_seq == report.anchor_seq


def test_it_records_every_kind_of_change(history: Database) -> None:
    recorded = {e.action for e in events(history)}
    assert {"campaign_load", "create", "state_change", "refusal"} <= recorded


def test_it_chains_each_event_to_the_previous_one(history: Database) -> None:
    chain = events(history)
    assert [e.seq for e in chain] == list(range(1, len(chain) + 1))
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(chain))


def test_it_reports_a_changed_reason_at_its_seq(history: Database, audit: AuditLog) -> None:
    target = events(history, action="state_change")[-1].seq
    sql(history, "UPDATE audit_event SET reason = '材料齐全' WHERE seq = :seq", seq=target)
    report = verify(history, audit)
    assert kinds(report) == {(target, "changed")}
    assert f"第 {target} 条" in report.problems[0].message


def test_it_reports_a_changed_time(history: Database, audit: AuditLog) -> None:
    target = events(history, action="refusal")[-1].seq
    at = "2026-05-01 00:00:00" if history.is_sqlite else "2026-05-01 00:00:00+00"
    sql(history, "UPDATE audit_event SET at = :at WHERE seq = :seq", at=at, seq=target)
    assert kinds(verify(history, audit)) == {(target, "changed")}


def test_it_reports_a_deleted_event_in_the_middle(history: Database, audit: AuditLog) -> None:
    target = n_events(history) // 2
    sql(history, "DELETE FROM audit_event WHERE seq = :seq", seq=target)
    report = verify(history, audit)
    assert (target, "deleted") in kinds(report)
    assert "缺失" in next(p.message for p in report.problems if p.kind == "deleted")


def test_it_reports_two_swapped_events(history: Database, audit: AuditLog) -> None:
    a, b = events(history)[-3:-1]
    for row, other in ((a, b), (b, a)):
        sets = ", ".join(f"{c} = :{c}" for c in COLUMNS)
        sql(
            history,
            f"UPDATE audit_event SET {sets} WHERE seq = :seq",
            seq=row.seq,
            **{c: getattr(other, c) for c in COLUMNS},
        )
    report = verify(history, audit)
    assert not report.ok
    assert {seq for seq, _ in kinds(report)} >= {a.seq, b.seq}
    assert (a.seq, "reordered") in kinds(report)


def test_it_reports_removed_newest_events_through_the_anchor(history: Database, audit: AuditLog) -> None:
    chain = events(history)
    keep = chain[-3]
    sql(history, "DELETE FROM audit_event WHERE seq > :seq", seq=keep.seq)
    sql(history, "UPDATE audit_head SET seq = :seq, hash = :hash", seq=keep.seq, hash=keep.hash)
    rewind_tree(history, keep.seq)
    report = verify(history, audit)
    assert kinds(report) == {(chain[-1].seq, "truncated")}
    assert f"只有 {keep.seq} 条" in report.problems[0].message


def test_it_reports_removed_newest_events_through_the_head_row_too(
    history: Database, audit: AuditLog
) -> None:
    last = n_events(history)
    sql(history, "DELETE FROM audit_event WHERE seq = :seq", seq=last)
    assert {kind for _, kind in kinds(verify(history, audit))} == {"head", "truncated"}


def test_it_reports_an_event_appended_by_hand(history: Database, audit: AuditLog) -> None:
    last = events(history)[-1]
    row = {c: getattr(last, c) for c in COLUMNS} | {"reason": "伪造", "prev_hash": last.hash}
    names = ", ".join(("seq", *COLUMNS))
    values = ", ".join(f":{c}" for c in ("seq", *COLUMNS))
    sql(history, f"INSERT INTO audit_event ({names}) VALUES ({values})", seq=last.seq + 1, **row)
    assert (last.seq + 1, "changed") in kinds(verify(history, audit))


def test_it_fails_every_event_under_a_wrong_key(history: Database, audit: AuditLog) -> None:
    report = verify(history, AuditLog(key=b"not-the-key", anchor_path=audit.anchor_path))
    changed = [p for p in report.problems if p.kind == "changed"]
    assert len(changed) == report.checked == n_events(history)


def test_it_moves_the_anchor_only_on_commit(history: Database, audit: AuditLog, make_ctx: Any) -> None:
    assert audit.anchor_path is not None
    before = read_anchor(audit.anchor_path)
    with pytest.raises(RuntimeError), history.write() as session:
        audit.append(session, EventDraft(at=make_ctx().now, actor="t", action="test", subject="x"))
        raise RuntimeError("rolled back")
    assert read_anchor(audit.anchor_path) == before
    assert verify(history, audit).ok


def test_it_verifies_events_written_with_a_local_time_zone(
    seeded: Database, audit: AuditLog, make_ctx: Any
) -> None:
    with seeded.write() as session:
        ref = cluster_case(session, make_ctx()).ref
    perform(seeded, make_ctx(datetime(2026, 6, 2, 9, 30, tzinfo=SHANGHAI)), ref, "submit")
    report = verify(seeded, audit)
    assert report.ok, report.problems


def test_it_keeps_one_chain_when_writers_run_concurrently(
    seeded: Database, audit: AuditLog, make_ctx: Any
) -> None:
    ctx = make_ctx()
    with seeded.write() as session:
        refs = [cluster_case(session, ctx, county=c).ref for c in ("西湖区", "萧山区", "鄞州区", "海曙区")]
    errors: list[BaseException] = []

    def work(ref: str) -> None:
        try:
            perform(seeded, make_ctx(), ref, "submit")
            perform(seeded, make_ctx(), ref, "return", reason="补充")
            perform(seeded, make_ctx(), ref, "resubmit")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(r,)) for r in refs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    report = verify(seeded, audit)
    assert report.ok, report.problems
    assert len(events(seeded, action="state_change")) == 12


def test_it_stores_events_that_read_back_identically(history: Database) -> None:
    with history.read() as session:
        first = session.get(AuditEvent, 1)
    assert first is not None and first.at.tzinfo is not None


# -- the anchor: never silently recreated, keyed by the database, tamper-evident -----------------------


def test_it_leaves_a_deleted_anchor_missing_after_an_ordinary_write(
    history: Database, audit: AuditLog, make_ctx: Any
) -> None:
    assert audit.anchor_path is not None
    audit.anchor_path.unlink()
    with history.write() as session:
        cluster_case(session, make_ctx(), county="海曙区")
    assert not audit.anchor_path.exists()
    report = verify(history, audit)
    assert {kind for _, kind in kinds(report)} == {"anchor_missing"}
    assert "re-anchor" in report.problems[0].message


def test_it_reports_a_forged_anchor_pointing_at_an_older_event(history: Database, audit: AuditLog) -> None:
    # An intruder drops the newest events and writes the anchor the truncated chain would have.
    assert audit.anchor_path is not None
    keep = events(history)[-4]
    sql(history, "DELETE FROM audit_event WHERE seq > :seq", seq=keep.seq)
    sql(history, "UPDATE audit_head SET seq = :seq, hash = :hash", seq=keep.seq, hash=keep.hash)
    rewind_tree(history, keep.seq)
    forged = json.loads(audit.anchor_path.read_text()) | {"seq": keep.seq, "hash": keep.hash}
    audit.anchor_path.write_text(json.dumps(forged))
    report = verify(history, audit)
    assert kinds(report) == {(keep.seq, "anchor_corrupt")}
    assert "校验码不符" in report.problems[0].message


@pytest.mark.parametrize("content", ["{not json", '{"seq": 3}', "[]"])
def test_it_reports_a_corrupt_anchor_and_leaves_it_for_a_person(
    history: Database, audit: AuditLog, make_ctx: Any, content: str
) -> None:
    assert audit.anchor_path is not None
    audit.anchor_path.write_text(content)
    perform(history, make_ctx(), "CL26-00002", "return", reason="再补充")
    assert audit.anchor_path.read_text() == content
    report = verify(history, audit)
    assert {kind for _, kind in kinds(report)} == {"anchor_corrupt"}
    assert str(audit.anchor_path) in report.problems[0].message


def test_it_re_anchors_at_the_head_when_a_person_gives_a_reason(
    history: Database, audit: AuditLog, make_ctx: Any
) -> None:
    assert audit.anchor_path is not None
    audit.anchor_path.write_text("{not json")
    with pytest.raises(ValueError, match="理由"), history.write() as session:
        audit.re_anchor(session, at=make_ctx().now, actor="王敏", reason=" ")
    assert not verify(history, audit).ok
    with history.write() as session:
        done = audit.re_anchor(
            session, at=make_ctx().now, actor="王敏", reason="锚点文件损坏，已核对最新事件"
        )
    report = verify(history, audit)
    assert report.ok, report.problems
    assert report.anchor_seq == done.seq == report.head_seq
    recorded = events(history, action="re_anchor")
    assert [(e.actor, e.reason) for e in recorded] == [("王敏", "锚点文件损坏，已核对最新事件")]
    assert json.loads(recorded[0].details)["previous"].startswith("corrupt")


def test_it_names_the_anchor_after_the_database_not_the_url(
    db: Database, tmp_path: Path, make_ctx: Any
) -> None:
    audit = AuditLog.from_key_file(
        tmp_path / "k" / "audit.key", tmp_path / "audit-anchor-{database}.json", create=True
    )
    ctx = Ctx(now=make_ctx().now, actor=make_ctx().actor, audit=audit)
    with db.write() as session:
        seed_divisions(session)
        cluster_campaign = next(p for p in builtin_campaign_files() if "cluster" in p.name)
        load_campaign(
            session, ctx, cluster_campaign.read_text(encoding="utf-8"), origin=cluster_campaign.name
        )
    with db.read() as session:
        identity = database_identity(session)
    (anchor,) = tmp_path.glob("audit-anchor-*.json")
    assert identity is not None and anchor.name == f"audit-anchor-{identity}.json"
    assert json.loads(anchor.read_text())["database"] == identity
    other = Database(_respelled(db.url))  # the same database, reached another way
    try:
        with other.read() as session:
            assert audit.verify(session).ok
    finally:
        other.dispose()


def _respelled(url: str) -> str:
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        return f"sqlite:///{path.parent}/../{path.parent.name}/{path.name}"
    # Trust authentication ignores the password: the same database after a password change.
    return url.replace("postgres@127.0.0.1", "postgres:rotated@localhost")


def test_a_bulk_append_hashes_exactly_what_verify_recomputes() -> None:
    """The bulk path joins the canonical JSON itself (fragments encoded once): byte for byte
    what ``_canonical`` gives, for quotes, backslashes, control characters, Chinese and None."""
    from datetime import UTC

    from models.audit import _Canonical, _canonical, _details_text

    shared = {"action": "lapse", "label": "逾期关闭"}
    drafts = [
        EventDraft(
            at=datetime(2026, 6, 25, 16, 0, tzinfo=UTC),
            actor="system",
            action="state_change",
            subject='case:CL26-"00001"\\',
            case_id=7,
            campaign_id="2026-cluster-selection",
            from_value="draft",
            to_value="lapsed",
            reason="「线上申报」已于 2026-06-25（周四）24:00 截止\n\t",
            details=shared,
        ),
        EventDraft(
            at=datetime(2026, 6, 26, 9, 0, 0, 123, tzinfo=ZoneInfo("Asia/Shanghai")),
            actor="李娜@330106",
            action="create",
            subject="case:\x01",
            details={"kind": "x", "n": 3, "nested": {"a": None}},
        ),
    ]
    fast = _Canonical()
    for seq, d in enumerate(drafts * 2, start=41):
        text = _details_text(d.details)
        assert fast(seq, d, text) == _canonical(seq, d, text)
