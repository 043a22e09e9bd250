"""RFC 6962 arithmetic against the reference vectors of transparency-dev/merkle (testonly/constants.go,
proof/verify_test.go): the same eight leaf inputs, roots, inclusion and consistency proofs."""

from __future__ import annotations

import pytest

from models import merkle
from models.merkle import Frontier, ProofError

LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    bytes.fromhex(h)
    for h in (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]


def _h(*values: str) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


# (leaf number, 1-based as in the reference; tree size; proof)
INCLUSION = [
    (1, 1, []),
    (
        1,
        8,
        _h(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        6,
        8,
        _h(
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (3, 3, _h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")),
    (
        2,
        5,
        _h(
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
]
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        _h(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        6,
        8,
        _h(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (
        2,
        5,
        _h(
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
    (
        6,
        7,
        _h(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
]


def _store(count: int) -> tuple[dict[merkle.NodeId, bytes], Frontier]:
    nodes: dict[merkle.NodeId, bytes] = {}
    frontier = Frontier()
    for data in LEAVES[:count]:
        for level, index, h in frontier.append(merkle.leaf_hash(data)):
            nodes[(level, index)] = h
    return nodes, frontier


def _fetch(nodes: dict[merkle.NodeId, bytes]) -> merkle.Fetch:
    return lambda wanted: {n: nodes[n] for n in wanted if n in nodes}


def test_it_computes_the_reference_roots_from_the_frontier_and_from_stored_nodes() -> None:
    for size, root in enumerate(ROOTS):
        nodes, frontier = _store(size)
        assert frontier.root() == root
        assert merkle.root_of(size, _fetch(nodes)) == root
        assert Frontier.decode(size, frontier.encode()).root() == root


@pytest.mark.parametrize(("leaf", "size", "proof"), INCLUSION)
def test_it_builds_and_checks_the_reference_inclusion_proofs(
    leaf: int, size: int, proof: list[bytes]
) -> None:
    nodes, _ = _store(8)
    assert merkle.inclusion_proof(leaf - 1, size, _fetch(nodes)) == proof
    merkle.verify_inclusion(leaf - 1, size, merkle.leaf_hash(LEAVES[leaf - 1]), proof, ROOTS[size])
    for wrong in (leaf - 2, leaf) if leaf > 1 else (leaf,):
        if 0 <= wrong < size:
            with pytest.raises(ProofError):
                merkle.verify_inclusion(wrong, size, merkle.leaf_hash(LEAVES[leaf - 1]), proof, ROOTS[size])
    with pytest.raises(ProofError):
        merkle.verify_inclusion(leaf - 1, size, merkle.leaf_hash(b"WrongLeaf"), proof, ROOTS[size])
    with pytest.raises(ProofError):
        merkle.verify_inclusion(
            leaf - 1, size, merkle.leaf_hash(LEAVES[leaf - 1]), [*proof, ROOTS[size]], ROOTS[size]
        )
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
        with pytest.raises(ProofError):
            merkle.verify_inclusion(leaf - 1, size, merkle.leaf_hash(LEAVES[leaf - 1]), flipped, ROOTS[size])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_it_builds_and_checks_the_reference_consistency_proofs(
    old: int, new: int, proof: list[bytes]
) -> None:
    nodes, _ = _store(8)
    assert merkle.consistency_proof(old, new, _fetch(nodes)) == proof
    merkle.verify_consistency(old, new, ROOTS[old], ROOTS[new], proof)
    if not proof:
        return
    for bad in ([], proof[:-1], [*proof, ROOTS[old]], [proof[0], *proof]):
        with pytest.raises(ProofError):
            merkle.verify_consistency(old, new, ROOTS[old], ROOTS[new], bad)
    with pytest.raises(ProofError):
        merkle.verify_consistency(old, new, ROOTS[new], ROOTS[old], proof)
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 16]) + flipped[i][1:]
        with pytest.raises(ProofError):
            merkle.verify_consistency(old, new, ROOTS[old], ROOTS[new], flipped)


def test_every_proof_up_to_40_leaves_checks_and_reads_few_nodes() -> None:
    frontier, nodes, roots = Frontier(), {}, [merkle.EMPTY_ROOT]
    for i in range(40):
        for level, index, h in frontier.append(merkle.leaf_hash(i.to_bytes(4, "big"))):
            nodes[(level, index)] = h
        roots.append(frontier.root())
    fetch = _fetch(nodes)
    for size in range(1, 41):
        assert merkle.root_of(size, fetch) == roots[size]
        for index in range(size):
            proof = merkle.inclusion_proof(index, size, fetch)
            merkle.verify_inclusion(index, size, nodes[(0, index)], proof, roots[size])
        for old in range(1, size + 1):
            merkle.verify_consistency(
                old, size, roots[old], roots[size], merkle.consistency_proof(old, size, fetch)
            )
            assert merkle.nodes_read(merkle._consistency_ranges(old, size)) <= 2 * size.bit_length()


def test_a_rollback_or_a_different_history_is_named() -> None:
    with pytest.raises(ProofError, match="截断或回滚"):
        merkle.verify_consistency(5, 4, ROOTS[5], ROOTS[4], [])
    with pytest.raises(ProofError, match="不同的历史"):
        merkle.verify_consistency(4, 4, ROOTS[4], ROOTS[3], [])
