"""RFC 6962 Merkle tree arithmetic: leaf and node hashes, proofs, and checking them. Pure.

Hashing (RFC 6962 §2.1): a leaf is SHA-256(0x00 || bytes), an interior node SHA-256(0x01 || left
|| right); the tree over n leaves splits at the largest power of two below n. Nothing here reads
the database: the builders say which stored nodes they need (``NodeId``: a level and an index,
the perfect subtree over leaves [index·2^level, (index+1)·2^level)) and get them from a
``fetch`` callable, so a proof over a million leaves reads O(log n) hashes and the caller can
count them.

Only perfect, aligned subtrees are ever stored (they never change once complete); any other
range [lo, hi) that a proof needs is the right fold of the perfect subtrees that tile it
(``range_nodes``), at most log2(n) of them. That is the RFC 6962 "compact range" idea, and it
is why appending needs only the right edge of the tree (``Frontier``), never a read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

NodeId = tuple[int, int]  # (level, index)
Fetch = Callable[[Sequence[NodeId]], dict[NodeId, bytes]]

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_nodes(lo: int, hi: int) -> list[NodeId]:
    """The perfect aligned subtrees tiling [lo, hi), left to right, largest first.

    For the ranges RFC 6962 proofs ask about (lo a multiple of a power of two >= hi - lo) these are
    exactly the blocks of the binary decomposition of hi - lo, so their right fold is MTH(D[lo:hi]).
    """
    nodes: list[NodeId] = []
    while lo < hi:
        level = (lo & -lo).bit_length() - 1 if lo else (hi - lo).bit_length() - 1
        while (1 << level) > hi - lo:
            level -= 1
        nodes.append((level, lo >> level))
        lo += 1 << level
    return nodes


def fold(hashes: Sequence[bytes]) -> bytes:
    """MTH of a range from its tiling subtrees (largest first): the right fold."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


# -- proofs: which ranges, then which nodes ---------------------------------------------------


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """RFC 6962 §2.1.1 PATH(m, D[0:n]) as the ranges whose hashes it lists, leaf end first."""
    out: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo = lo + k
    out.reverse()
    return out


def _consistency_ranges(old: int, new: int) -> list[tuple[int, int]]:
    """RFC 6962 §2.1.2 PROOF(m, D[0:n]) as ranges, in the order the RFC lists them."""
    out: list[tuple[int, int]] = []

    def subproof(m: int, lo: int, hi: int, complete: bool) -> None:
        n = hi - lo
        if m == n:
            if not complete:
                out.append((lo, hi))
            return
        k = _split(n)
        if m <= k:
            subproof(m, lo, lo + k, complete)
            out.append((lo + k, hi))
        else:
            subproof(m - k, lo + k, hi, False)
            out.append((lo, lo + k))

    subproof(old, 0, new, True)
    return out


def _resolve(ranges: list[tuple[int, int]], fetch: Fetch, also: Sequence[NodeId] = ()) -> list[bytes]:
    """The hashes of ``ranges`` from one fetch; ``also`` rides along (the leaf itself, say) and is
    appended to the result."""
    tilings = [range_nodes(lo, hi) for lo, hi in ranges]
    wanted = sorted({n for t in tilings for n in t} | set(also))
    got = fetch(wanted)
    missing = [n for n in wanted if n not in got]
    if missing:
        raise LookupError(f"Merkle 树缺少节点：{missing[:5]}")
    return [fold([got[n] for n in t]) for t in tilings] + [got[n] for n in also]


def inclusion_proof(index: int, size: int, fetch: Fetch) -> list[bytes]:
    if not 0 <= index < size:
        raise ValueError(f"叶子 {index} 不在大小为 {size} 的树中")
    return _resolve(_inclusion_ranges(index, size), fetch)


def inclusion_proof_with_leaf(index: int, size: int, fetch: Fetch) -> tuple[bytes, list[bytes]]:
    """The stored leaf hash and its proof, in one fetch (a receipt needs both)."""
    if not 0 <= index < size:
        raise ValueError(f"叶子 {index} 不在大小为 {size} 的树中")
    *proof, leaf = _resolve(_inclusion_ranges(index, size), fetch, also=[(0, index)])
    return leaf, proof


def consistency_proof(old: int, new: int, fetch: Fetch) -> list[bytes]:
    if not 0 <= old <= new:
        raise ValueError(f"无法从大小 {old} 证明到大小 {new}")
    if old == 0 or old == new:
        return []
    return _resolve(_consistency_ranges(old, new), fetch)


def root_of(size: int, fetch: Fetch) -> bytes:
    return _resolve([(0, size)], fetch)[0] if size else EMPTY_ROOT


def nodes_read(ranges: Iterable[tuple[int, int]]) -> int:
    return len({n for lo, hi in ranges for n in range_nodes(lo, hi)})


# -- checking (RFC 9162 §2.1.3.2 and §2.1.4.2: the same trees, clearer algorithms) ---------


class ProofError(ValueError):
    pass


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    if not 0 <= index < size:
        raise ProofError(f"叶子序号 {index} 不在大小为 {size} 的树中")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("包含证明过长")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("包含证明过短")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise ProofError(f"第 {index + 1} 个叶子的包含证明与树根不符（大小 {size}）")


def verify_consistency(old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """Raises ProofError unless the tree of size ``new`` extends the tree of size ``old``."""
    if old > new:
        raise ProofError(f"旧检查点（{old} 条）比新检查点（{new} 条）还大：日志被截断或回滚")
    if old == new:
        if proof:
            raise ProofError("同一大小的一致性证明应为空")
        if old_root != new_root:
            raise ProofError(
                f"同为 {old} 条事件，两个检查点的树根不同：历史被改写，或向不同的人展示了不同的历史"
            )
        return
    if old == 0:
        if proof:
            raise ProofError("从空树出发的一致性证明应为空")
        return
    if not proof:
        raise ProofError("一致性证明为空")
    path = list(proof)
    if old & (old - 1) == 0:  # a power of two: the old root is itself the first node
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("一致性证明过长")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("一致性证明过短")
    if fr != old_root:
        raise ProofError(f"旧检查点（{old} 条）的树根与现在的日志不一致：过去的事件被改写，或这是另一份历史")
    if sr != new_root:
        raise ProofError(f"一致性证明与新检查点（{new} 条）的树根不符")


# -- appending ---------------------------------------------------------------------------------


@dataclass
class Frontier:
    """The right edge of a tree: the roots of its perfect subtrees, largest first (the compact
    range [0, size)). Kept beside the chain head, so appending reads nothing from the tree."""

    size: int = 0
    hashes: list[bytes] = field(default_factory=list)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf; returns the nodes that became complete: (level, index, hash), leaf first."""
        index = self.size
        made = [(0, index, leaf)]
        h, level, i = leaf, 0, index
        while i & 1:
            h = node_hash(self.hashes.pop(), h)
            level += 1
            i >>= 1
            made.append((level, i, h))
        self.hashes.append(h)
        self.size += 1
        return made

    def root(self) -> bytes:
        return fold(self.hashes)

    def encode(self) -> str:
        return ",".join(h.hex() for h in self.hashes)

    @classmethod
    def decode(cls, size: int, text: str) -> Frontier:
        hashes = [bytes.fromhex(h) for h in text.split(",") if h]
        if len(hashes) != size.bit_count():
            raise ValueError(
                f"Merkle 树右缘记录损坏：大小 {size} 应有 {size.bit_count()} 个节点，实有 {len(hashes)} 个"
            )
        return cls(size, hashes)
