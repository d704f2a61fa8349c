"""consents.merkle against a brute-force reading of RFC 9162 section 2.1: MTH,
PATH and PROOF written as the RFC's recursions, over slices of a list."""

from __future__ import annotations

import hashlib
import random
from functools import cache

import pytest

from consents import merkle
from consents.merkle import Frontier

_RANDOM = random.Random(9162)  # noqa: S311 (test data, repeatable on purpose)
DATA = [_RANDOM.randbytes(32) for _ in range(300)]
assert len(set(DATA)) == len(DATA)


# Brute force, straight from the RFC text (2.1.1, 2.1.3.1, 2.1.4.1) ---------


def _k(n: int) -> int:
    """The largest power of two smaller than n."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


@cache
def mth(start: int, end: int) -> bytes:
    """MTH(D[start:end]) of DATA."""
    n = end - start
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + DATA[start]).digest()
    k = _k(n)
    return hashlib.sha256(b"\x01" + mth(start, start + k) + mth(start + k, end)).digest()


def path(m: int, start: int, end: int) -> list[tuple[bytes, str]]:
    """PATH(m, D[start:end]), each element tagged with the side its sibling is on."""
    n = end - start
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*path(m, start, start + k), (mth(start + k, end), "right")]
    return [*path(m - k, start + k, end), (mth(start, start + k), "left")]


def subproof(m: int, start: int, end: int, b: bool) -> list[tuple[bytes, str]]:
    """SUBPROOF(m, D[start:end], b), each element tagged with its role."""
    n = end - start
    if m == n:
        return [] if b else [(mth(start, end), "old subtree")]
    k = _k(n)
    if m <= k:
        return [*subproof(m, start, start + k, b), (mth(start + k, end), "right")]
    return [*subproof(m - k, start + k, end, False), (mth(start, start + k), "left")]


def perfect(level: int, index: int) -> bytes:
    return mth(index << level, (index + 1) << level)


LEAVES = [merkle.leaf_hash(d) for d in DATA]


def flip(value: bytes, position: int = 0) -> bytes:
    changed = bytearray(value)
    changed[position] ^= 1
    return bytes(changed)


# Hashing and roots ----------------------------------------------------------


def test_hashes_are_the_rfc_ones():
    assert hashlib.sha256(b"").digest() == merkle.EMPTY_ROOT
    assert merkle.leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert (
        merkle.node_hash(b"L" * 32, b"R" * 32)
        == hashlib.sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest()
    )


def test_the_frontier_root_is_mth_for_every_size_up_to_300():
    frontier = Frontier()
    assert frontier.root() == mth(0, 0)
    for size in range(1, 301):
        frontier.append(LEAVES[size - 1])
        assert frontier.size == size
        assert frontier.root() == mth(0, size), size
        assert len(frontier.nodes) == size.bit_count()


def test_range_hash_is_mth_of_every_aligned_range():
    for start in range(0, 64, 4):
        for end in range(start, start + 5):
            assert merkle.range_hash(start, end, perfect) == mth(start, end)
    assert merkle.range_hash(0, 300, perfect) == mth(0, 300)


@pytest.mark.parametrize(("start", "end"), [(1, 3), (2, 6), (4, 12), (5, 3), (-1, 0)])
def test_range_hash_refuses_a_range_that_is_not_a_subtree(start, end):
    with pytest.raises(ValueError):
        merkle.range_hash(start, end, perfect)


# The frontier ---------------------------------------------------------------


def test_append_returns_exactly_the_perfect_subtrees_it_completes():
    frontier = Frontier()
    seen = set()
    for size in range(1, 301):
        completed = frontier.append(LEAVES[size - 1])
        for level, index, value in completed:
            assert level >= 1
            # Completed by this leaf: its last leaf is the one just added.
            assert (index + 1) << level == size
            assert value == perfect(level, index), (level, index)
            assert (level, index) not in seen
            seen.add((level, index))
        assert [level for level, _, _ in completed] == sorted(level for level, _, _ in completed)
    every_subtree = {(level, index) for level in range(1, 9) for index in range(300 >> level)}
    assert seen == every_subtree


def test_extend_agrees_with_append_with_and_without_a_callback():
    one_by_one = Frontier()
    expected = [node for leaf in LEAVES for node in one_by_one.append(leaf)]

    listed = Frontier()
    assert listed.extend(LEAVES[:100]) + listed.extend(LEAVES[100:]) == expected

    called = Frontier()
    received = []
    assert called.extend(LEAVES, lambda *node: received.append(node)) == []
    assert received == expected
    assert listed == called == one_by_one


@pytest.mark.parametrize("block_level", [1, 2, 4])
@pytest.mark.parametrize("min_level", [1, 3, 8])
def test_extend_blocks_builds_the_same_tree_and_nodes_as_extend(block_level, min_level):
    """verify's batched fold: from any starting size, in cuts of any length
    (aligned blocks and ragged ends), the same frontier as extend() and the
    same nodes from min_level up, in no particular order."""
    many = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(700)]
    rng = random.Random(9)  # noqa: S311 (cut lengths, not secrets)
    for start in (0, 1, 3, 16, 17, 100, 255, 256, 257):
        expected_frontier = Frontier()
        expected_frontier.extend(many[:start])
        wanted = [n for n in expected_frontier.extend(many[start:]) if n[0] >= min_level]
        batched = Frontier()
        batched.extend(many[:start])
        received = []
        position = start
        while position < len(many):
            cut = min(len(many), position + rng.choice([1, 2, 5, 64, 130, 300]))
            batched.extend_blocks(
                many[position:cut],
                lambda *node, into=received: into.append(node),
                min_level=min_level,
                block_level=block_level,
            )
            position = cut
        assert batched == expected_frontier, (start, block_level)
        assert sorted(received) == sorted(wanted), (start, block_level, min_level)
        assert batched.root() == expected_frontier.root()


def test_json_round_trip_continues_as_if_never_stopped():
    for size in range(0, 130):
        frontier = Frontier()
        frontier.extend(LEAVES[:size])
        stored = frontier.to_json()
        assert stored == {"size": size, "nodes": [n.hex() for n in frontier.nodes]}
        restored = Frontier.from_json(stored)
        assert restored == frontier
        assert restored.extend(LEAVES[size:160]) == frontier.extend(LEAVES[size:160])
        assert restored.root() == mth(0, 160)


def test_from_perfect_rebuilds_the_frontier_of_a_stored_tree():
    for size in range(0, 200):
        built = Frontier()
        built.extend(LEAVES[:size])
        assert Frontier.from_perfect(size, perfect) == built


@pytest.mark.parametrize(
    "data",
    [
        {"size": 3, "nodes": [b"a".hex() * 32]},  # 3 needs two nodes
        {"size": 1, "nodes": ["zz" * 32]},
        {"size": 1, "nodes": ["ab" * 31]},
        {"size": -1, "nodes": []},
        {"size": True, "nodes": ["ab" * 32]},
        {"size": "1", "nodes": ["ab" * 32]},
        {"size": 1, "nodes": "ab" * 32},
        {"size": 1, "nodes": [None]},
        [],
    ],
)
def test_from_json_refuses_what_is_not_a_frontier(data):
    with pytest.raises(ValueError):
        Frontier.from_json(data)


def test_append_refuses_what_is_not_a_hash():
    frontier = Frontier()
    with pytest.raises(ValueError):
        frontier.append(b"short")
    assert frontier.size == 0


def test_copy_is_independent():
    frontier = Frontier()
    frontier.extend(LEAVES[:5])
    clone = frontier.copy()
    clone.append(LEAVES[5])
    assert frontier.size == 5 and frontier.root() == mth(0, 5)
    assert clone.size == 6 and clone.root() == mth(0, 6)


def test_extend_keeps_what_it_consumed_when_the_leaves_run_dry_with_an_error():
    def leaves():
        yield from LEAVES[:11]
        raise OSError("the database went away")

    frontier = Frontier()
    with pytest.raises(OSError):
        frontier.extend(leaves())
    assert frontier.size == 11
    assert frontier.root() == mth(0, 11)


# Inclusion ------------------------------------------------------------------


def test_inclusion_proofs_are_rfc_path_for_every_index_up_to_130():
    for size in range(1, 131):
        for index in range(size):
            expected = path(index, 0, size)
            assert merkle.inclusion_proof(index, size, perfect) == [h for h, _ in expected]
            ranges = merkle.inclusion_ranges(index, size)
            assert [mth(s, e) for s, e in ranges] == [h for h, _ in expected]


def test_inclusion_proofs_verify_and_fail_when_anything_is_changed():
    for size in range(1, 131):
        root = mth(0, size)
        for index in range(size):
            proof = merkle.inclusion_proof(index, size, perfect)
            leaf = LEAVES[index]
            assert merkle.verify_inclusion(leaf, index, size, proof, root), (index, size)

            for position in range(len(proof)):
                tampered = [*proof]
                tampered[position] = flip(tampered[position], position % 32)
                assert not merkle.verify_inclusion(leaf, index, size, tampered, root)
            assert not merkle.verify_inclusion(flip(leaf), index, size, proof, root)
            assert not merkle.verify_inclusion(leaf, index, size, proof, flip(root, 31))
            assert not merkle.verify_inclusion(leaf, index, size, [*proof, root], root)
            if proof:
                assert not merkle.verify_inclusion(leaf, index, size, proof[:-1], root)
            for other in {index - 1, index + 1, size - 1 - index} - {index}:
                assert not merkle.verify_inclusion(leaf, other, size, proof, root)


def test_a_changed_size_fails_unless_it_hashes_the_same_way():
    """The RFC's algorithm does not bind the size on its own: the proof for
    leaf 0 of 3 also recomputes that root claimed as a tree of 4 (siblings on
    the same sides). The size must come from the signed checkpoint, which is
    what verify_offline does. Every other change of size fails."""
    coincidences = 0
    for size in range(1, 70):
        root = mth(0, size)
        for index in range(size):
            proof = merkle.inclusion_proof(index, size, perfect)
            sides = [side for _, side in path(index, 0, size)]
            for other in range(index + 1, 75):
                if other == size:
                    continue
                same_steps = [side for _, side in path(index, 0, other)] == sides
                coincidences += same_steps
                verified = merkle.verify_inclusion(LEAVES[index], index, other, proof, root)
                assert verified == same_steps, (index, size, other)
    assert coincidences  # the case above exists, so this test sees both outcomes
    proof = merkle.inclusion_proof(0, 3, perfect)
    assert merkle.verify_inclusion(LEAVES[0], 0, 4, proof, mth(0, 3))


@pytest.mark.parametrize(("index", "size"), [(0, 0), (3, 3), (-1, 5), (5, 4)])
def test_inclusion_refuses_a_leaf_outside_the_tree(index, size):
    with pytest.raises(ValueError):
        merkle.inclusion_ranges(index, size)
    assert not merkle.verify_inclusion(LEAVES[0], index, size, [], mth(0, 1))


def test_verify_inclusion_refuses_what_is_not_a_hash():
    proof = merkle.inclusion_proof(1, 4, perfect)
    assert not merkle.verify_inclusion(LEAVES[1], 1, 4, [proof[0].hex(), proof[1]], mth(0, 4))
    assert not merkle.verify_inclusion(LEAVES[1], 1, 4, [proof[0][:31], proof[1]], mth(0, 4))


def test_perfect_needed_is_exactly_what_inclusion_proof_asks_for():
    for size in range(1, 131):
        for index in range(size):
            asked = []

            def recording(level, index, asked=asked):
                asked.append((level, index))
                return perfect(level, index)

            merkle.inclusion_proof(index, size, recording)
            needed = merkle.perfect_needed(merkle.inclusion_ranges(index, size))
            assert len(needed) == len(set(needed))
            assert set(needed) == set(asked)
            lookup = {pair: perfect(*pair) for pair in needed}
            proof = merkle.inclusion_proof(
                index, size, lambda lv, ix, lookup=lookup: lookup[lv, ix]
            )
            assert proof == merkle.inclusion_proof(index, size, perfect)


# Consistency ----------------------------------------------------------------


def test_consistency_proofs_are_rfc_proof_and_verify_for_all_sizes_up_to_70():
    for n in range(1, 71):
        for m in range(1, n + 1):
            expected = [h for h, _ in subproof(m, 0, n, True)]
            proof = merkle.consistency_proof(m, n, perfect)
            assert proof == expected, (m, n)
            assert [mth(s, e) for s, e in merkle.consistency_ranges(m, n)] == expected
            assert merkle.verify_consistency(m, n, mth(0, m), mth(0, n), proof), (m, n)


def test_consistency_proofs_fail_when_anything_is_changed():
    for n in range(2, 71):
        new_root = mth(0, n)
        for m in range(1, n):
            old_root = mth(0, m)
            proof = merkle.consistency_proof(m, n, perfect)
            for position in range(len(proof)):
                tampered = [*proof]
                tampered[position] = flip(tampered[position], position % 32)
                assert not merkle.verify_consistency(m, n, old_root, new_root, tampered)
            assert not merkle.verify_consistency(m, n, flip(old_root), new_root, proof)
            assert not merkle.verify_consistency(m, n, old_root, flip(new_root), proof)
            assert not merkle.verify_consistency(m, n, old_root, new_root, proof[:-1])
            assert not merkle.verify_consistency(m, n, old_root, new_root, [*proof, new_root])
            assert not merkle.verify_consistency(m, n, old_root, new_root, [])
            # A tree does not extend one it does not start with.
            assert not merkle.verify_consistency(m, n, mth(1, m + 1), new_root, proof)


def test_changed_sizes_fail_unless_they_hash_the_same_way():
    """As for inclusion, the sizes are trusted from signed checkpoints: a proof
    verifies for other sizes only when the RFC's steps are the same ones."""
    for n in range(2, 40):
        for m in range(1, n):
            proof = merkle.consistency_proof(m, n, perfect)
            steps = _consistency_steps(m, n)
            for m2, n2 in [(m - 1, n), (m + 1, n), (m, n - 1), (m, n + 1), (m + 1, n + 1)]:
                if not 0 < m2 < n2 or (m2, n2) == (m, n):
                    continue
                verified = merkle.verify_consistency(m2, n2, mth(0, m), mth(0, n), proof)
                assert verified == (_consistency_steps(m2, n2) == steps), (m, n, m2, n2)


def _consistency_steps(m: int, n: int) -> tuple:
    """What the verifier does with each element: whether the old root is taken
    as the start (m a power of two) and each sibling's side."""
    return (m & (m - 1) == 0, [role for _, role in subproof(m, 0, n, True)])


def test_equal_and_empty_sizes():
    root = mth(0, 5)
    assert merkle.consistency_ranges(5, 5) == []
    assert merkle.verify_consistency(5, 5, root, root, [])
    assert not merkle.verify_consistency(5, 5, root, mth(0, 6), [])
    assert not merkle.verify_consistency(5, 5, root, root, [root])
    assert merkle.consistency_ranges(0, 5) == []
    assert merkle.verify_consistency(0, 5, merkle.EMPTY_ROOT, root, [])
    assert not merkle.verify_consistency(0, 5, root, root, [])
    assert not merkle.verify_consistency(6, 5, root, root, [root])
    with pytest.raises(ValueError):
        merkle.consistency_ranges(6, 5)


def test_perfect_needed_is_exactly_what_consistency_proof_asks_for():
    for n in range(1, 71):
        for m in range(1, n + 1):
            asked = []

            def recording(level, index, asked=asked):
                asked.append((level, index))
                return perfect(level, index)

            merkle.consistency_proof(m, n, recording)
            needed = merkle.perfect_needed(merkle.consistency_ranges(m, n))
            assert len(needed) == len(set(needed))
            assert set(needed) == set(asked)
