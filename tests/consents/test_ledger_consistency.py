"""RFC 9162 consistency proofs between two signed seals (/ledger/consistency.json):
what was proved against an older checkpoint still stands in the newer one."""

from __future__ import annotations

import uuid

import pytest

from consents import checkpoints, ledger, merkle
from tests.consents.test_ledger import record


def decide(purposes, count: int) -> None:
    for _ in range(count):
        record(purposes, uuid.uuid4(), "newsletter")


def signed_root(token: str) -> tuple[int, bytes]:
    checkpoint = checkpoints.checkpoint_verify(token, source="test")
    return checkpoint.size, bytes.fromhex(checkpoint.root)


@pytest.mark.parametrize("first,more", [(1, 1), (3, 4), (5, 300), (256, 1)])
def test_a_consistency_proof_links_two_seals(client, purposes, first, more):
    decide(purposes, first)
    ledger.seal()
    decide(purposes, more)
    ledger.seal()

    response = client.get(f"/ledger/consistency.json?first={first}")

    assert response.status_code == 200
    body = response.json()
    old_size, old_root = signed_root(body["firstCheckpoint"])
    new_size, new_root = signed_root(body["secondCheckpoint"])
    assert (old_size, new_size) == (first, first + more) == (body["first"], body["second"])
    proof = [bytes.fromhex(h) for h in body["proof"]]
    assert merkle.verify_consistency(old_size, new_size, old_root, new_root, proof)
    if proof:
        proof[0] = bytes(32)
        assert not merkle.verify_consistency(old_size, new_size, old_root, new_root, proof)


def test_the_proof_is_computed_from_stored_subtrees_not_from_every_leaf(
    purposes, django_assert_max_num_queries
):
    decide(purposes, 600)
    ledger.seal()
    decide(purposes, 5)
    ledger.seal()
    with django_assert_max_num_queries(8):
        proof = ledger.consistency_proof(600)
    assert proof is not None and proof.second == 605


def test_sizes_that_are_not_seals_or_not_numbers_are_refused(client, purposes):
    decide(purposes, 3)
    ledger.seal()
    assert client.get("/ledger/consistency.json?first=abc").status_code == 400
    assert client.get("/ledger/consistency.json").status_code == 400
    assert client.get("/ledger/consistency.json?first=2").status_code == 404
    assert client.get("/ledger/consistency.json?first=3&second=1").status_code == 404
    assert client.get("/ledger/consistency.json?first=3").json()["proof"] == []


def test_a_rewritten_stored_subtree_is_named_by_verify(purposes):
    from consents.models import LedgerNode
    from tests.consents.ledger_support import drop_append_only_triggers

    decide(purposes, 300)
    ledger.seal()
    assert ledger.verify().intact
    drop_append_only_triggers("consents_node", "consents_ledgernode")
    LedgerNode.objects.filter(level=8, index=0).update(hash="0" * 64)
    verdict = ledger.verify()
    assert not verdict.intact
    assert "the stored subtree 8/0 of the tree differs from its leaves" in verdict.problem
    LedgerNode.objects.filter(level=8, index=0).delete()
    verdict = ledger.verify()
    assert not verdict.intact and "some were deleted or added" in verdict.problem
