"""The ledger's Merkle tree, as Certificate Transparency builds it (RFC 9162,
section 2.1): hashing, the compact frontier a sealing task extends leaf by
leaf, and audit and consistency proofs computed from stored perfect subtrees.

Pure and stdlib only, so that it can be read beside the RFC and so that the
offline verifier (consents/verify_offline.py) can carry a copy of the few
functions it needs; tests/consents/test_merkle.py checks both copies agree.

Vocabulary used below:
- A leaf's hash is level 0; the perfect subtree at (level L, index i) covers
  leaves [i * 2**L, (i + 1) * 2**L) and is what a database stores.
- MTH(D[start:end]) of any range that RFC 9162's recursions visit is a fold,
  from the right, of the perfect subtrees of that range's binary decomposition
  (largest first); so every proof element can be fetched as stored nodes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

__all__ = [
    "EMPTY_ROOT",
    "Frontier",
    "consistency_proof",
    "consistency_ranges",
    "inclusion_proof",
    "inclusion_ranges",
    "leaf_hash",
    "node_hash",
    "perfect_needed",
    "range_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

# (level, index) -> hash of that perfect subtree; level 0 gives leaf hashes.
Perfect = Callable[[int, int], bytes]
Node = tuple[int, int, bytes]


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1), where RFC 9162 splits."""
    return 1 << ((n - 1).bit_length() - 1)


def _fold(hashes: list[bytes]) -> bytes:
    """MTH of a range from its perfect subtrees, largest first."""
    if not hashes:
        return EMPTY_ROOT
    root = hashes[-1]
    for left in reversed(hashes[:-1]):
        root = node_hash(left, root)
    return root


def _check_hash(value: object, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ValueError(f"{what} must be {HASH_SIZE} bytes")
    return value


class Frontier:
    """The compact range of leaves [0, size): the roots of the perfect subtrees
    in size's binary decomposition, largest first. It is all a sealing task
    needs to keep between runs to go on appending and to give the root."""

    __slots__ = ("_nodes", "_size")

    def __init__(self, size: int = 0, nodes: Iterable[bytes] = ()) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError("a frontier's size is a whole number, 0 or more")
        nodes = [_check_hash(node, "a frontier node") for node in nodes]
        if len(nodes) != size.bit_count():
            raise ValueError(
                f"a frontier of size {size} has {size.bit_count()} nodes, not {len(nodes)}"
            )
        self._size = size
        self._nodes = nodes

    @classmethod
    def from_perfect(cls, size: int, perfect: Perfect) -> Frontier:
        """The frontier of a stored tree, from its perfect subtrees (one lookup
        per set bit of size): how a sealing task resumes from the database."""
        return cls(size, [perfect(level, index) for level, index in _decompose(0, size)])

    @property
    def size(self) -> int:
        return self._size

    @property
    def nodes(self) -> tuple[bytes, ...]:
        return tuple(self._nodes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frontier):
            return NotImplemented
        return self._size == other._size and self._nodes == other._nodes

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return f"Frontier(size={self._size}, root={self.root().hex()})"

    def copy(self) -> Frontier:
        clone = Frontier.__new__(Frontier)
        clone._size = self._size
        clone._nodes = list(self._nodes)
        return clone

    def append(self, leaf_hash: bytes) -> list[Node]:
        """Add one leaf (its hash, level 0) and return every perfect subtree it
        completes as (level, index, hash), lowest level first."""
        return self.extend((_check_hash(leaf_hash, "a leaf hash"),))

    def extend(
        self,
        leaf_hashes: Iterable[bytes],
        on_node: Callable[[int, int, bytes], object] | None = None,
    ) -> list[Node]:
        """Add many leaves (their hashes, in order). Each completed perfect
        subtree (level >= 1) goes to on_node(level, index, hash) when given,
        else into the list returned (then empty when on_node is given).

        This is the sealing task's hot loop: locals only, one SHA-256 per
        completed node and nothing else allocated but the nodes themselves.
        Leaf hashes are trusted to be 32 bytes here (append checks one)."""
        completed: list[Node] = []
        emit = completed.append if on_node is None else None
        nodes = self._nodes
        push = nodes.append
        pop = nodes.pop
        sha256 = hashlib.sha256
        size = self._size
        try:
            for carry in leaf_hashes:
                size += 1
                if size & 1:
                    # The old size was even: the leaf completes nothing.
                    push(carry)
                    continue
                # The new size's trailing zero bits are the merges this leaf makes.
                level = 0
                rest = size
                while not rest & 1:
                    carry = sha256(b"\x01" + pop() + carry).digest()
                    level += 1
                    rest >>= 1
                    if emit is not None:
                        emit((level, rest - 1, carry))
                    else:
                        on_node(level, rest - 1, carry)
                push(carry)
        finally:
            # Whatever was consumed stays consistent, even if the iterable or
            # the callback raised half way.
            self._size = size
        return completed

    def extend_blocks(
        self,
        leaf_hashes: list[bytes],
        on_node: Callable[[int, int, bytes], object],
        *,
        min_level: int = 1,
        block_level: int = 8,
    ) -> None:
        """extend() for a long list of leaves (verify's fold): the same tree
        and the same nodes, but only those of `min_level` and up go to on_node.

        Whole aligned blocks of 2**block_level leaves are hashed level by level
        in list comprehensions (one SHA-256 per node, no per-leaf branching),
        then their root joins the frontier as one perfect subtree; the leaves
        before the first aligned block and after the last go through extend()."""
        width = 1 << block_level
        total = len(leaf_hashes)
        start = min(-self._size % width, total)

        def low(level: int, index: int, digest: bytes) -> None:
            if level >= min_level:
                on_node(level, index, digest)

        if start:
            self.extend(leaf_hashes[:start], low)
        sha256 = hashlib.sha256
        nodes = self._nodes
        push = nodes.append
        pop = nodes.pop
        emit_low = min_level <= block_level
        while total - start >= width:
            level_hashes = leaf_hashes[start : start + width]
            first = self._size >> 1  # index of the first node of level 1 in this block
            for level in range(1, block_level + 1):
                level_hashes = [
                    sha256(b"\x01" + left + right).digest()
                    for left, right in zip(level_hashes[0::2], level_hashes[1::2], strict=True)
                ]
                if emit_low and level >= min_level:
                    for offset, digest in enumerate(level_hashes):
                        on_node(level, first + offset, digest)
                first >>= 1
            # The block's root joins the frontier as a perfect subtree of block_level.
            carry = level_hashes[0]
            size = self._size + width
            level = block_level
            rest = size >> block_level
            while not rest & 1:
                carry = sha256(b"\x01" + pop() + carry).digest()
                level += 1
                rest >>= 1
                if level >= min_level:
                    on_node(level, rest - 1, carry)
            push(carry)
            self._size = size
            start += width
        if start < total:
            self.extend(leaf_hashes[start:], low)

    def root(self) -> bytes:
        """MTH of the first size leaves."""
        return _fold(self._nodes)

    def to_json(self) -> dict:
        return {"size": self._size, "nodes": [node.hex() for node in self._nodes]}

    @classmethod
    def from_json(cls, data: dict) -> Frontier:
        if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
            raise ValueError('a frontier is {"size": n, "nodes": [hex, ...]}')
        try:
            nodes = [bytes.fromhex(node) for node in data["nodes"]]
        except (TypeError, ValueError):
            raise ValueError("a frontier's nodes are hexadecimal hashes") from None
        return cls(data.get("size"), nodes)


def _decompose(start: int, end: int) -> list[tuple[int, int]]:
    """The perfect subtrees (level, index) that make up [start, end), largest
    first. start must be aligned to the largest of them, which holds for every
    range that RFC 9162's PATH and PROOF recursions visit."""
    if not 0 <= start <= end:
        raise ValueError(f"[{start}, {end}) is not a range of leaves")
    subtrees = []
    position = start
    remaining = end - start
    while remaining:
        level = remaining.bit_length() - 1
        if position & ((1 << level) - 1):
            raise ValueError(f"[{start}, {end}) is not aligned as a subtree of the tree")
        subtrees.append((level, position >> level))
        position += 1 << level
        remaining -= 1 << level
    return subtrees


def range_hash(start: int, end: int, perfect: Perfect) -> bytes:
    """MTH(D[start:end]) from stored perfect subtrees; start aligned as in RFC
    proofs (else ValueError). An empty range is EMPTY_ROOT."""
    return _fold([perfect(level, index) for level, index in _decompose(start, end)])


def perfect_needed(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Every (level, index) the ranges decompose into, once each, in order: what
    to fetch in one query before calling inclusion_proof or consistency_proof
    with a dict lookup."""
    return list(dict.fromkeys(pair for start, end in ranges for pair in _decompose(start, end)))


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTH form PATH(index, D[0:size]) (RFC 9162
    2.1.3.1), leaf to root."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    siblings = []
    start, end = 0, size
    while end - start > 1:
        middle = start + _split(end - start)
        if index < middle:
            siblings.append((middle, end))
            end = middle
        else:
            siblings.append((start, middle))
            start = middle
    siblings.reverse()
    return siblings


def inclusion_proof(index: int, size: int, perfect: Perfect) -> list[bytes]:
    return [range_hash(start, end, perfect) for start, end in inclusion_ranges(index, size)]


def consistency_ranges(m: int, n: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTH form PROOF(m, D[0:n]) (RFC 9162 2.1.4.1), in
    proof order. Empty when m == n, and when m == 0 (the empty tree is a
    prefix of every tree; RFC 9162 leaves that case undefined)."""
    if not 0 <= m <= n:
        raise ValueError(f"a tree of {m} leaves cannot be a prefix of one of {n}")
    if m == 0 or m == n:
        return []
    siblings = []
    start, end = 0, n
    whole_old_tree = True  # SUBPROOF's b: still on the path of D[0:m] itself
    while end - start != m:
        middle = start + _split(end - start)
        if m <= middle - start:
            siblings.append((middle, end))
            end = middle
        else:
            siblings.append((start, middle))
            m -= middle - start
            start = middle
            whole_old_tree = False
    siblings.reverse()
    return siblings if whole_old_tree else [(start, end), *siblings]


def consistency_proof(m: int, n: int, perfect: Perfect) -> list[bytes]:
    return [range_hash(start, end, perfect) for start, end in consistency_ranges(m, n)]


def _all_hashes(values: list) -> bool:
    return all(isinstance(v, bytes) and len(v) == HASH_SIZE for v in values)


def verify_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    """RFC 9162 2.1.3.2, step by step. leaf is the leaf's hash (leaf_hash of
    its data), as the RFC's algorithm takes it."""
    if not 0 <= index < size:
        return False
    if not _all_hashes([leaf, root, *proof]):
        return False
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    m: int, n: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> bool:
    """RFC 9162 2.1.4.2 for 0 < m < n. For m == n the proof must be empty and
    the roots equal; for m == 0, empty, with old_root the empty tree's."""
    if not 0 <= m <= n or not _all_hashes([old_root, new_root, *proof]):
        return False
    if m == 0:
        return not proof and old_root == EMPTY_ROOT
    if m == n:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if m & (m - 1) == 0:
        path.insert(0, old_root)
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0
