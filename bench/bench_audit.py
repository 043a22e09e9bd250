"""What the Merkle log costs: appending beside today's chain-only append, and proofs over 10⁶ events.

    .venv/bin/python bench/bench_audit.py [--quick] [--events 1000000] [--appends 1000] [--against-7cf4329]

1. Append: one audited write a transaction (as an action appends its event), in process, on two
   SQLite databases side by side in alternating rounds: today's append with the Merkle step left
   out (the HMAC chain, the head, the anchor file) against the full one; prints both and the
   ratio (target ≤ 1.10). ``--against-7cf4329`` also runs bench/audit_append_snippet.py under that
   commit (bench/baseline.py), which predates more than the Merkle log.
2. Proofs: a SQLite database with N events (Core executemany, not the ORM) and their tree; an
   inclusion proof for leaves spread over the log and a consistency proof between sizes, each
   built from the stored nodes and verified, counting the nodes read; beside them the audit
   query `shenbao history` runs for one case (``events_for_case``), same database, same run.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from baseline import baseline_tree, head_tree  # bench/ is sys.path[0]
from sqlalchemy import insert, text

from models import audit_tree, merkle
from models.audit import AuditEvent, AuditLog, EventDraft, _canonical, _details_text, events_for_case
from models.db import Database
from models.schema import upgrade

HERE = Path(__file__).resolve().parent


class ChainOnly(AuditLog):
    """Today's append without the Merkle step: the HMAC chain, the head and the anchor file."""

    def _grow_tree(self, session: Any, head: Any, canonicals: list[bytes]) -> list[bytes]:
        return [b""] * len(canonicals)


def bench_append(appends: int, rounds: int) -> dict[str, float]:
    """In process, two databases side by side, alternating: the ratio isolates the Merkle step."""
    folder = Path(tempfile.mkdtemp(prefix="bench-append-"))
    full = AuditLog.from_key_file(folder / "audit.key", folder / "anchor-{database}.json", create=True)
    logs: dict[str, AuditLog] = {
        "chain": ChainOnly(key=full.key, anchor_path=full.anchor_path),
        "merkle": full,
    }
    dbs = {name: Database(f"sqlite:///{folder / (name + '.db')}") for name in logs}
    draft = EventDraft(
        at=datetime(2026, 6, 25, 15, 50, tzinfo=UTC),
        actor="李娜@330111",
        action="state_change",
        subject="case:CL26-00001",
        case_id=1,
        campaign_id="2026-cluster-selection",
        from_value="draft",
        to_value="submitted",
        details={"action": "submit", "label": "提交"},
    )
    for name, db in dbs.items():
        upgrade(db)
        for _ in range(200):
            with db.write() as session:
                logs[name].append(session, draft)
    per: dict[str, list[float]] = {name: [] for name in logs}
    for _ in range(rounds):
        spent = dict.fromkeys(logs, 0.0)
        for k in range(appends):
            # Append by append, alternating which goes first: both see the same load.
            for name in ("chain", "merkle") if k % 2 else ("merkle", "chain"):
                started = time.perf_counter()
                with dbs[name].write() as session:
                    logs[name].append(session, draft)
                spent[name] += time.perf_counter() - started
        for name in logs:
            per[name].append(spent[name] / appends * 1e6)
    ratios = [m / c for m, c in zip(per["merkle"], per["chain"], strict=True)]
    b, h = min(per["chain"]), min(per["merkle"])
    print(
        f"append (one audited write a transaction, SQLite; {rounds} rounds × {appends}, alternating append by append):"
    )
    print(f"  chain only (today)   best {b:8.1f} µs  median {statistics.median(per['chain']):8.1f} µs")
    print(f"  chain + Merkle       best {h:8.1f} µs  median {statistics.median(per['merkle']):8.1f} µs")
    print(
        f"  ratio best/best {h / b:.3f} · median of the rounds' ratios {statistics.median(ratios):.3f} (target ≤ 1.10)"
    )
    return {
        "append_chain_us": b,
        "append_merkle_us": h,
        "append_ratio": h / b,
        "append_ratio_median": statistics.median(ratios),
    }


def bench_against_baseline(appends: int) -> dict[str, float]:
    """The same audited writes under commit 7cf4329 (bench/baseline.py), for the record: that
    commit predates more than the Merkle log (the anchor file, the database identity)."""
    base, head = baseline_tree(quiet=True), head_tree()
    snippet = HERE / "audit_append_snippet.py"
    figures: dict[str, list[float]] = {"base": [], "head": []}
    for _ in range(3):
        for name, tree in (("base", base), ("head", head)):
            figures[name].append(tree.run(snippet, str(appends), "2").data["per_append_us"])
    b, h = min(figures["base"]), min(figures["head"])
    print(f"  7cf4329 {b:8.1f} µs · HEAD {h:8.1f} µs · ratio {h / b:.3f}")
    return {"append_7cf4329_us": b, "append_head_us": h}


def build(db: Database, n: int, case_events: int) -> None:
    """N events, the first ``case_events`` of which are case 1's spread over the log, and their tree."""
    at0 = datetime(2026, 6, 1, tzinfo=UTC)
    table = AuditEvent.__table__  # type: ignore[attr-defined]
    frontier = merkle.Frontier()
    case_seqs = set(range(1, n + 1, max(1, n // case_events)))
    details = _details_text({"action": "submit"})
    started = time.perf_counter()
    with db.writer.begin() as conn:
        rows = []
        for seq in range(1, n + 1):
            values = dict(
                seq=seq,
                at=at0 + timedelta(seconds=seq),
                actor="李娜@330111",
                action="state_change",
                subject=f"case:CL26-{seq % 90000:05d}",
                case_id=1 if seq in case_seqs else 2 + seq % 90000,
                campaign_id="2026-cluster-selection",
                from_value="draft",
                to_value="submitted",
                reason="",
                details=details,
                prev_hash="0" * 64,
                hash="0" * 64,
            )
            row = SimpleNamespace(**values)  # plain rows: building a million models cost most of the build
            leaf = merkle.leaf_hash(_canonical(seq, row, row.details))
            values["tree_nodes"] = audit_tree.blob(frontier.append(leaf))
            rows.append(values)
            if len(rows) == 20000:
                conn.execute(insert(table), rows)
                rows = []
                print(f"\r  building: {seq:,}/{n:,} events", end="", file=sys.stderr, flush=True)
        if rows:
            conn.execute(insert(table), rows)
        conn.execute(
            text("INSERT INTO audit_head (id, seq, hash, tree) VALUES (1, :n, :h, :t)"),
            {"n": n, "h": "0" * 64, "t": frontier.encode()},
        )
    print(
        f"\r  built {n:,} events and {2 * n - n.bit_count():,} tree hashes in {time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )


def timed(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_proofs(n: int) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="bench-proofs-"))
    db = Database(f"sqlite:///{folder / 'p.db'}")
    upgrade(db)
    build(db, n, case_events=12)
    rng = random.Random(6962)
    with db.read() as session:
        root = merkle.root_of(n, audit_tree.Reader(session))
        reads: list[int] = []

        def inclusion() -> None:
            index = rng.randrange(n)
            reader = audit_tree.Reader(session)
            leaf, proof = merkle.inclusion_proof_with_leaf(index, n, reader)
            merkle.verify_inclusion(index, n, leaf, proof, root)
            reads.append(reader.reads)

        old_sizes = [rng.randrange(1, n) for _ in range(40)]
        old_roots = {m: merkle.root_of(m, audit_tree.Reader(session)) for m in old_sizes}
        c_reads: list[int] = []
        it = iter(old_sizes * 2)

        def consistency() -> None:
            m = next(it)
            reader = audit_tree.Reader(session)
            proof = merkle.consistency_proof(m, n, reader)
            merkle.verify_consistency(m, n, old_roots[m], root, proof)
            c_reads.append(reader.reads)

        t_history = timed(lambda: events_for_case(session, 1), 20)
        t_inclusion = timed(inclusion, 40)
        t_consistency = timed(consistency, 40)
    print(f"proofs over {n:,} events (SQLite, median of 20–40):")
    print(f"  history's audit query (one case) {t_history * 1e3:7.2f} ms")
    print(
        f"  inclusion proof + verify         {t_inclusion * 1e3:7.2f} ms   nodes read max {max(reads)} (2·log2 n = {2 * n.bit_length()})"
    )
    print(f"  consistency proof + verify       {t_consistency * 1e3:7.2f} ms   nodes read max {max(c_reads)}")
    return {
        "events": n,
        "history_ms": t_history * 1e3,
        "inclusion_ms": t_inclusion * 1e3,
        "inclusion_reads": max(reads),
        "consistency_ms": t_consistency * 1e3,
        "consistency_reads": max(c_reads),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 events, fewer appends")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--appends", type=int, default=1000)
    parser.add_argument(
        "--against-7cf4329", dest="baseline", action="store_true", help="also run the appends under 7cf4329"
    )
    args = parser.parse_args()
    events, appends = (100_000, 300) if args.quick else (args.events, args.appends)
    result = bench_append(appends, rounds=8)
    if args.baseline:
        result |= bench_against_baseline(appends)
    result |= bench_proofs(events)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
