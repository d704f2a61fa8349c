"""The offline verifier customers and auditors download: its ES256 check
against joserfc's signatures, and main() on receipts, proofs and checkpoints
built here with consents.merkle and signed with joserfc, as the portal will."""

from __future__ import annotations

import ast
import inspect
import io
import json
import random
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from joserfc import jws
from joserfc.jwk import ECKey

from consents import merkle
from consents import verify_offline as vo

SITE = "https://privacy.example.com"
SCRIPT = Path(vo.__file__)
RANDOM = random.Random(7515)  # noqa: S311 (test data, repeatable on purpose)
KEY = ECKey.generate_key("P-256", parameters={"kid": "k1"})
OTHER_KEY = ECKey.generate_key("P-256", parameters={"kid": "k2"})


def sign(payload: dict | bytes, key: ECKey = KEY, **header) -> str:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return jws.serialize_compact({"alg": "ES256", "kid": key.kid, **header}, body, key)


def jwks(*keys: ECKey) -> dict:
    return {"keys": [key.as_dict(private=False) for key in keys or (KEY,)]}


def b64(data: dict | bytes) -> str:
    return vo.b64url_encode(data if isinstance(data, bytes) else json.dumps(data).encode())


class Ledger:
    """A Merkle tree of random event hashes with every perfect subtree kept,
    as the sealing task stores them."""

    def __init__(self, size: int) -> None:
        self.events = [RANDOM.randbytes(32) for _ in range(size)]
        self.nodes = {(0, i): merkle.leaf_hash(e) for i, e in enumerate(self.events)}
        self.frontier = merkle.Frontier()
        self.grow(size)

    def grow(self, size: int) -> None:
        while len(self.events) < size:
            self.events.append(RANDOM.randbytes(32))
        leaves = [merkle.leaf_hash(e) for e in self.events[self.frontier.size : size]]
        for i, leaf in enumerate(leaves, start=self.frontier.size):
            self.nodes[0, i] = leaf
        for level, index, value in self.frontier.extend(leaves):
            self.nodes[level, index] = value

    def checkpoint(self, *, key: ECKey = KEY, **changes) -> str:
        payload = {
            "format": "clareza-merkle-v1",
            "ledger": SITE,
            "size": self.frontier.size,
            "root": self.frontier.root().hex(),
            "time": "2026-11-20T10:00:00.000000Z",
            **changes,
        }
        return sign(payload, key, typ="clareza-checkpoint+jwt")

    def proof(self, index: int, **changes) -> dict:
        size = self.frontier.size
        path = merkle.inclusion_proof(index, size, lambda lv, ix: self.nodes[lv, ix])
        return {
            "format": "clareza-merkle-v1",
            "leafIndex": index,
            "treeSize": size,
            "auditPath": [h.hex() for h in path],
            "checkpoint": self.checkpoint(),
            **changes,
        }

    def receipt(self, index: int, proof: dict | None, **changes) -> dict:
        return {
            "version": "KI-CR-v1.1.0",
            "consentTimestamp": 1795000000,
            "consentReceiptID": "0b7c1f1e-5f0a-4c57-9d0e-2f3b9a6d1c11",
            "piiControllers": [{"piiController": "Loja", "piiControllerUrl": SITE}],
            "services": [{"service": "Loja", "purposes": [{"purpose": "Newsletter"}]}],
            "decision": "granted",
            "ledgerSeq": index + 1,
            "ledgerHash": self.events[index].hex(),
            "inclusionProof": proof,
            "proofUrl": f"{SITE}/receipts/0b7c1f1e/proof/",
            **changes,
        }


def signed_receipt(payload: dict, key: ECKey = KEY) -> str:
    return sign(payload, key, typ="JWT", cty="kantara-cr+json")


def write(folder: Path, name: str, content: dict | str) -> str:
    path = folder / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


@pytest.fixture
def ledger():
    return Ledger(13)


@pytest.fixture
def run(tmp_path, capsys):
    """main() on a receipt and optional proof and published list, as files;
    returns (exit status, stdout, stderr)."""

    def run(receipt: str, *, keys=None, proof=None, published=None, extra=()):
        argv = [write(tmp_path, "receipt.jws", receipt + "\n")]
        argv += ["--jwks", write(tmp_path, "jwks.json", keys or jwks())]
        if proof is not None:
            argv += ["--proof", write(tmp_path, "proof.json", proof)]
        if published is not None:
            argv += ["--checkpoints", write(tmp_path, "checkpoints.json", published)]
        status = vo.main([*argv, *extra])
        out, err = capsys.readouterr()
        return status, out, err

    return run


def published_list(*tokens: str) -> dict:
    lines = []
    for token in tokens:
        payload = json.loads(vo.b64url_decode(token.split(".")[1]))
        lines.append({"size": payload["size"], "root": payload["root"], "token": token})
    return {"checkpoints": lines}


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


# The ES256 verifier ---------------------------------------------------------


def test_es256_accepts_what_joserfc_signs():
    for number in range(20):
        key = ECKey.generate_key("P-256", parameters={"kid": f"k{number}"})
        token = sign(RANDOM.randbytes(number * 7), key)
        header, payload, signature = token.split(".")
        public = vo.ec_public_key(key.as_dict(private=False))
        message = f"{header}.{payload}".encode()
        assert vo.es256_verify(public, message, vo.b64url_decode(signature))
        assert not vo.es256_verify(public, message + b"x", vo.b64url_decode(signature))


def test_jws_verify_returns_the_header_and_payload():
    token = sign({"hello": "world"}, typ="JWT")
    header, payload = vo.jws_verify(token, jwks(OTHER_KEY, KEY), "receipt", {"typ": "JWT"})
    assert header == {"alg": "ES256", "kid": "k1", "typ": "JWT"}
    assert payload == {"hello": "world"}


def test_jws_verify_refuses_a_changed_payload():
    header, _, signature = sign({"decision": "granted"}).split(".")
    changed = f"{header}.{b64({'decision': 'withdrawn'})}.{signature}"
    with pytest.raises(vo.Failure, match="signature is not valid for key 'k1'"):
        vo.jws_verify(changed, jwks(), "receipt", {})


@pytest.mark.parametrize("position", [0, 20, 31, 32, 50, 63])
def test_jws_verify_refuses_a_changed_signature(position):
    header, payload, signature = sign({"decision": "granted"}).split(".")
    raw = bytearray(vo.b64url_decode(signature))
    raw[position] ^= 0x40
    with pytest.raises(vo.Failure, match="signature is not valid"):
        vo.jws_verify(f"{header}.{payload}.{b64(bytes(raw))}", jwks(), "receipt", {})


def test_jws_verify_refuses_r_or_s_out_of_range():
    header, payload, _ = sign({"a": 1}).split(".")
    n = vo.N.to_bytes(32, "big")
    one = (1).to_bytes(32, "big")
    for raw in (bytes(32) + one, one + bytes(32), n + one, one + n, one * 2 + b"\0"):
        with pytest.raises(vo.Failure, match="signature is not valid"):
            vo.jws_verify(f"{header}.{payload}.{b64(raw)}", jwks(), "receipt", {})


def test_jws_verify_refuses_a_key_that_is_not_published():
    with pytest.raises(vo.Failure, match="key 'k2' is not among"):
        vo.jws_verify(sign({"a": 1}, OTHER_KEY), jwks(KEY), "receipt", {})


def test_jws_verify_refuses_another_key_under_the_same_kid():
    impostor = ECKey.generate_key("P-256", parameters={"kid": "k1"})
    with pytest.raises(vo.Failure, match="signature is not valid for key 'k1'"):
        vo.jws_verify(sign({"a": 1}, impostor), jwks(KEY), "receipt", {})


@pytest.mark.parametrize("alg", ["none", "HS256", "ES384", "RS256", None])
def test_jws_verify_refuses_other_algorithms(alg):
    _, payload, signature = sign({"a": 1}).split(".")
    for tail in (signature, ""):
        token = f"{b64({'alg': alg, 'kid': 'k1'})}.{payload}.{tail}"
        with pytest.raises(vo.Failure, match="only ES256 is accepted"):
            vo.jws_verify(token, jwks(), "receipt", {})


def test_jws_verify_refuses_critical_extensions_and_a_missing_kid():
    _, payload, signature = sign({"a": 1}).split(".")
    crit = b64({"alg": "ES256", "kid": "k1", "crit": ["b64"], "b64": False})
    with pytest.raises(vo.Failure, match="extensions"):
        vo.jws_verify(f"{crit}.{payload}.{signature}", jwks(), "receipt", {})
    with pytest.raises(vo.Failure, match="does not name its key"):
        vo.jws_verify(f"{b64({'alg': 'ES256'})}.{payload}.{signature}", jwks(), "receipt", {})


def test_jws_verify_wants_the_header_it_is_told():
    """A receipt cannot pass for a checkpoint, nor the other way round."""
    receipt = signed_receipt({"a": 1})
    with pytest.raises(vo.Failure, match="typ 'JWT', not 'clareza-checkpoint"):
        vo.jws_verify(receipt, jwks(), "checkpoint", {"typ": "clareza-checkpoint+jwt"})


@pytest.mark.parametrize(
    "token", ["", "a.b", "a.b.c.d", "eyJ!.e30.AA", "e30.e30.AA", "bm9wZQ.e30.AA", 42]
)
def test_jws_verify_refuses_what_is_not_a_compact_jws(token):
    with pytest.raises(vo.Failure):
        vo.jws_verify(token, jwks(), "receipt", {})


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"},
        {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
        {"kty": "EC", "crv": "P-256", "x": b64(bytes(31)), "y": b64(bytes(32))},
        # (0, 0) is not on the curve.
        {"kty": "EC", "crv": "P-256", "x": b64(bytes(32)), "y": b64(bytes(32))},
        {"kty": "EC", "crv": "P-256", "x": "not base64!", "y": b64(bytes(32))},
        "k1",
    ],
)
def test_ec_public_key_refuses_what_is_not_a_p256_point(jwk):
    with pytest.raises(ValueError):
        vo.ec_public_key(jwk)


def test_a_published_key_off_the_curve_fails_the_check():
    public = KEY.as_dict(private=False)
    y = int.from_bytes(vo.b64url_decode(public["y"]), "big")
    public["y"] = b64(((y + 1) % vo.P).to_bytes(32, "big"))
    with pytest.raises(vo.Failure, match="not on the P-256 curve"):
        vo.jws_verify(sign({"a": 1}), {"keys": [public]}, "receipt", {})


@pytest.mark.parametrize("text", ["a=", "a+b", "a/b", "abcde", " ab"])
def test_base64url_is_strict(text):
    with pytest.raises(ValueError):
        vo.b64url_decode(text)


# main(): the receipt, its proof and the checkpoints --------------------------


def test_a_valid_receipt_passes(ledger, run):
    receipt = signed_receipt(ledger.receipt(4, ledger.proof(4)))
    status, out, _ = run(receipt)
    assert status == 0, out
    assert "OK    The receipt's signature is valid (key k1)." in out
    assert "decision 'granted' for 'Newsletter', at 2026-11-18 11:06:40 UTC." in out
    assert "OK    The checkpoint's signature is valid (key k1): the ledger held 13 events" in out
    assert "OK    The proof recomputes the checkpoint's root" in out
    assert f"OK    The checkpoint is for the ledger of {SITE}" in out
    assert f"--checkpoints {SITE}/.well-known/clareza-ledger-checkpoints.json" in out
    assert last_line(out) == "PASS  Every check passed."


def test_every_leaf_of_several_sizes_passes(run):
    for size in (1, 2, 5, 8):
        ledger = Ledger(size)
        for index in range(size):
            status, out, _ = run(signed_receipt(ledger.receipt(index, ledger.proof(index))))
            assert status == 0, (size, index, out)


def test_a_changed_proof_element_fails(ledger, run):
    proof = ledger.proof(4)
    for position in range(len(proof["auditPath"])):
        path = [*proof["auditPath"]]
        path[position] = ("0" if path[position][0] != "0" else "1") + path[position][1:]
        # Even signed into the receipt, a wrong path does not reach the signed root.
        receipt = signed_receipt(ledger.receipt(4, {**proof, "auditPath": path}))
        status, out, _ = run(receipt)
        assert status == 1
        assert "FAIL  the inclusion proof does not recompute the checkpoint's root" in out
        assert "PASS" not in out

        status, out, _ = run(
            signed_receipt(ledger.receipt(4, None)), proof={**proof, "auditPath": path}
        )
        assert status == 1
        assert "does not recompute the checkpoint's root" in last_line(out)


def test_another_events_proof_fails(ledger, run):
    status, out, _ = run(signed_receipt(ledger.receipt(4, None)), proof=ledger.proof(5))
    assert status == 1
    assert last_line(out) == "FAIL  the proof is for ledger event #6, but the receipt is #5."


def test_a_receipt_for_an_event_not_in_the_ledger_fails(ledger, run):
    payload = ledger.receipt(4, ledger.proof(4), ledgerSeq=None, ledgerHash="ab" * 32)
    status, out, _ = run(signed_receipt(payload))
    assert status == 1
    assert "does not recompute the checkpoint's root" in last_line(out)


def test_a_checkpoint_signed_by_a_key_not_published_fails(ledger, run):
    proof = ledger.proof(4, checkpoint=ledger.checkpoint(key=OTHER_KEY))
    status, out, _ = run(signed_receipt(ledger.receipt(4, proof)), keys=jwks(KEY))
    assert status == 1
    assert "OK    The receipt's signature is valid (key k1)." in out
    assert last_line(out) == "FAIL  key 'k2' is not among the controller's published keys."


def test_an_altered_receipt_fails(ledger, run):
    header, _, signature = signed_receipt(ledger.receipt(4, ledger.proof(4))).split(".")
    altered = ledger.receipt(4, ledger.proof(4), decision="withdrawn")
    status, out, _ = run(f"{header}.{b64(altered)}.{signature}")
    assert status == 1
    assert out.strip() == (
        "FAIL  the receipt's signature is not valid for key 'k1': "
        "it was altered, or not signed by the controller."
    )


def test_a_receipt_signed_by_another_key_under_the_published_kid_fails(ledger, run):
    impostor = ECKey.generate_key("P-256", parameters={"kid": "k1"})
    status, out, _ = run(signed_receipt(ledger.receipt(4, ledger.proof(4)), impostor))
    assert status == 1
    assert "the receipt's signature is not valid for key 'k1'" in last_line(out)


def test_an_unsealed_receipt_says_where_to_fetch_its_proof(ledger, run):
    status, out, _ = run(signed_receipt(ledger.receipt(4, None)))
    assert status == 1
    assert last_line(out).startswith("FAIL  the receipt carries no inclusion proof yet")
    assert f"fetch its proof from {SITE}/receipts/0b7c1f1e/proof/ and run again with --proof" in (
        last_line(out)
    )


def test_an_unsealed_receipt_passes_with_the_proof_fetched_later(ledger, run):
    receipt = signed_receipt(ledger.receipt(4, None))
    status, out, _ = run(receipt, proof=ledger.proof(4))
    assert status == 0, out
    assert "Using the proof from " in out
    # The ledger grows; a fresh proof proves the same event against a newer checkpoint.
    ledger.grow(40)
    status, out, _ = run(
        receipt, proof=ledger.proof(4), published=published_list(ledger.checkpoint())
    )
    assert status == 0, out
    assert "the ledger held 40 events" in out


def test_a_proof_from_a_url_and_the_receipt_from_stdin(ledger, tmp_path, capsys, monkeypatch):
    write(tmp_path, "jwks.json", jwks())
    write(tmp_path, "proof.json", ledger.proof(4))
    write(tmp_path, "checkpoints.json", published_list(ledger.checkpoint()))
    handler = partial(QuietHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    stdin = io.TextIOWrapper(io.BytesIO(signed_receipt(ledger.receipt(4, None)).encode()))
    monkeypatch.setattr(sys, "stdin", stdin)
    try:
        status = vo.main(
            [
                "-",
                "--jwks", f"{base}/jwks.json",
                "--proof", f"{base}/proof.json",
                "--checkpoints", f"{base}/checkpoints.json",
            ]
        )  # fmt: skip
        out, _ = capsys.readouterr()
        assert status == 0, out
        assert f"Using the proof from {base}/proof.json" in out

        status = vo.main(["-", "--jwks", f"{base}/missing.json"])
        _, err = capsys.readouterr()
        assert status == 2
        assert (
            err.strip() == f"error: could not fetch the key set from {base}/missing.json: HTTP 404"
        )
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_a_checkpoint_for_another_ledger_fails(ledger, run):
    proof = ledger.proof(4, checkpoint=ledger.checkpoint(ledger="https://other.example"))
    status, out, _ = run(signed_receipt(ledger.receipt(4, proof)))
    assert status == 1
    assert last_line(out) == (
        "FAIL  the checkpoint is for the ledger of 'https://other.example', "
        f"but the receipt names the controller '{SITE}'."
    )


def test_a_proof_for_another_size_than_the_checkpoint_fails(ledger, run):
    """The RFC's algorithm can accept a proof for the wrong size (see
    test_merkle): the size must be the one the checkpoint signs."""
    proof = ledger.proof(0)
    small = Ledger(3)
    small_proof = small.proof(0)
    bigger = {**small_proof, "treeSize": 4, "checkpoint": small.checkpoint(size=4)}
    assert merkle.verify_inclusion(
        merkle.leaf_hash(small.events[0]), 0, 4,
        [bytes.fromhex(h) for h in small_proof["auditPath"]], small.frontier.root(),
    )  # fmt: skip
    status, out, _ = run(signed_receipt(small.receipt(0, None)), proof=bigger)
    assert status == 0  # signed by the controller itself: a lie only the key holder can tell

    status, out, _ = run(signed_receipt(ledger.receipt(0, {**proof, "treeSize": 14})))
    assert status == 1
    assert last_line(out) == (
        "FAIL  the proof is for a ledger of 14 events, but the checkpoint signs one of 13."
    )


def test_a_chain_checkpoint_does_not_prove_a_merkle_proof(ledger, run):
    proof = ledger.proof(4, checkpoint=ledger.checkpoint(format="clareza-chain-v1"))
    status, out, _ = run(signed_receipt(ledger.receipt(4, proof)))
    assert status == 1
    assert "the checkpoint's format is 'clareza-chain-v1'" in last_line(out)


def test_the_published_checkpoint_passes_beside_older_chain_ones(ledger, run):
    older = Ledger(2).checkpoint(format="clareza-chain-v1", size=13, root="cd" * 32)
    listed = published_list(ledger.checkpoint(), older)
    status, out, _ = run(signed_receipt(ledger.receipt(4, ledger.proof(4))), published=listed)
    assert status == 0, out
    assert "OK    The checkpoint is among the 1 published Merkle checkpoints" in out


def test_a_published_checkpoint_with_another_root_for_the_same_size_is_a_fork(ledger, run):
    forked = Ledger(13)  # the same size, another history
    listed = published_list(forked.checkpoint(), ledger.checkpoint())
    status, out, _ = run(signed_receipt(ledger.receipt(4, ledger.proof(4))), published=listed)
    assert status == 1
    assert last_line(out).startswith("FAIL  LEDGER FORKED: the controller also signed (key k1)")
    assert forked.frontier.root().hex() in last_line(out)


def test_a_published_checkpoint_with_a_bad_signature_fails(ledger, run):
    header, _, signature = Ledger(13).checkpoint().split(".")
    payload = json.loads(vo.b64url_decode(ledger.checkpoint().split(".")[1]))
    forged = f"{header}.{b64(payload)}.{signature}"
    listed = published_list(forged)
    status, out, _ = run(signed_receipt(ledger.receipt(4, ledger.proof(4))), published=listed)
    assert status == 1
    assert "signature does not verify" in last_line(out)
    assert "the list was tampered with" in last_line(out)


def test_a_checkpoint_missing_from_the_published_list_fails(ledger, run):
    older = ledger.checkpoint()
    ledger.grow(20)
    status, out, _ = run(
        signed_receipt(ledger.receipt(4, ledger.proof(4))), published=published_list(older)
    )
    assert status == 1
    assert "this checkpoint (20 events, root " in last_line(out)
    assert "is not among the 1 published Merkle checkpoints" in last_line(out)


# A consistency proof: the receipt's checkpoint is the start of a later one ----


def consistency(ledger, old_size: int, **changes) -> dict:
    proof = merkle.consistency_proof(
        old_size, ledger.frontier.size, lambda lv, ix: ledger.nodes[lv, ix]
    )
    return {
        "format": "clareza-merkle-v1",
        "first": old_size,
        "second": ledger.frontier.size,
        "proof": [h.hex() for h in proof],
        "secondCheckpoint": ledger.checkpoint(),
        **changes,
    }


def test_a_receipt_whose_checkpoint_left_the_list_passes_with_a_consistency_proof(
    ledger, run, tmp_path
):
    receipt = signed_receipt(ledger.receipt(4, ledger.proof(4)))  # proved against 13
    ledger.grow(30)
    listed = published_list(ledger.checkpoint())  # only the newer one is published
    document = write(tmp_path, "consistency.json", consistency(ledger, 13))
    status, out, _ = run(receipt, published=listed, extra=["--consistency", document])
    assert status == 0, out
    assert "no longer in the published list" in out
    assert "OK    The ledger signed later (key k1: 30 events" in out
    assert "begins with the receipt's checkpoint" in out
    assert last_line(out) == "PASS  Every check passed."


def test_follow_fetches_the_consistency_proof_from_the_receipts_url(ledger, tmp_path, capsys):
    """--follow asks the receipt's consistencyUrl for a proof from the receipt's
    checkpoint (?first=13) to the newest one, and checks it as --consistency does."""
    asked = []

    class Recording(QuietHandler):
        def do_GET(self):
            asked.append(self.path)
            super().do_GET()

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Recording, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    receipt = signed_receipt(
        ledger.receipt(4, ledger.proof(4), consistencyUrl=f"{base}/consistency")
    )
    ledger.grow(30)
    write(tmp_path, "consistency", consistency(ledger, 13))
    listed = write(tmp_path, "checkpoints.json", published_list(ledger.checkpoint()))
    argv = [write(tmp_path, "receipt.jws", receipt), "--jwks", write(tmp_path, "jwks.json", jwks())]
    try:
        status = vo.main([*argv, "--checkpoints", listed, "--follow"])
        out, _ = capsys.readouterr()
        assert status == 0, out
        assert asked == ["/consistency?first=13"]
        assert "OK    The ledger signed later (key k1: 30 events" in out
        assert last_line(out) == "PASS  Every check passed."

        # Without --follow, the receipt's checkpoint is missing from the list: how to go on.
        status = vo.main([*argv, "--checkpoints", listed])
        out, _ = capsys.readouterr()
        assert status == 1
        assert f"run again with --follow (which fetches {base}/consistency?first=13)" in out
    finally:
        server.shutdown()
        server.server_close()

    plain = write(tmp_path, "plain.jws", signed_receipt(ledger.receipt(4, ledger.proof(4))))
    status = vo.main([plain, "--jwks", write(tmp_path, "jwks.json", jwks()), "--follow"])
    _, err = capsys.readouterr()
    assert status == 2 and "--follow needs the receipt's consistencyUrl" in err


def test_a_consistency_proof_to_a_rewritten_ledger_fails(ledger, run, tmp_path):
    receipt = signed_receipt(ledger.receipt(4, ledger.proof(4)))
    rewritten = Ledger(30)  # another history of 30 events, signed by the same key
    document = consistency(rewritten, 13)
    status, out, _ = run(
        receipt, extra=["--consistency", write(tmp_path, "consistency.json", document)]
    )
    assert status == 1
    assert "does not begin with the one signed at 13 events" in last_line(out)


def test_a_consistency_proof_from_another_size_is_refused(ledger, run, tmp_path):
    receipt = signed_receipt(ledger.receipt(4, ledger.proof(4)))
    ledger.grow(30)
    document = consistency(ledger, 16)
    status, out, _ = run(
        receipt, extra=["--consistency", write(tmp_path, "consistency.json", document)]
    )
    assert status == 1
    assert "ask for ?first=13" in last_line(out)


# Unreadable input and bad usage: status 2, no traceback ----------------------


def test_unreadable_inputs_exit_2(ledger, run, tmp_path, capsys):
    receipt = signed_receipt(ledger.receipt(4, ledger.proof(4)))
    status, _, err = run(receipt, keys="not json")
    assert status == 2
    assert err.strip().startswith("error: the key set at ") and err.strip().endswith("not JSON")

    status, _, err = run(receipt, keys={"keys": "k1"})
    assert status == 2
    assert "is not a JWKS document" in err

    status, _, err = run(receipt, published=["a list"])
    assert status == 2
    assert 'are not {"checkpoints": [...]}' in err

    status = vo.main([str(tmp_path / "nowhere.jws"), "--jwks", str(tmp_path / "jwks.json")])
    _, err = capsys.readouterr()
    assert status == 2
    assert err.strip() == (
        f"error: could not read the receipt from {tmp_path / 'nowhere.jws'}: "
        "No such file or directory"
    )
    assert "Traceback" not in err

    (tmp_path / "binary.jws").write_bytes(b"\xff\xfe")
    status = vo.main([str(tmp_path / "binary.jws"), "--jwks", str(tmp_path / "jwks.json")])
    assert status == 2
    assert "is not text (UTF-8)" in capsys.readouterr().err


def test_an_unreachable_url_exits_2(ledger, run):
    # Port 9 (discard) on loopback: refused at once.
    receipt = signed_receipt(ledger.receipt(4, None))
    status, _, err = run(receipt, extra=["--proof", "http://127.0.0.1:9/proof"])
    assert status == 2
    assert err.startswith("error: could not fetch the proof from http://127.0.0.1:9/proof: ")


@pytest.mark.parametrize("argv", [[], ["receipt.jws"], ["r", "--jwks"], ["r", "--jwks", "j", "x"]])
def test_bad_usage_exits_2(argv, capsys):
    assert vo.main(argv) == 2
    assert "usage: verify_offline.py" in capsys.readouterr().err


def test_help_exits_0(capsys):
    assert vo.main(["--help"]) == 0
    assert "--checkpoints FILE_OR_URL" in capsys.readouterr().out


# Standalone ------------------------------------------------------------------


def test_it_runs_as_a_bare_script_in_isolated_mode(ledger, tmp_path):
    """-I: no project on sys.path, no site-packages, no PYTHON* variables."""
    receipt = write(tmp_path, "receipt.jws", signed_receipt(ledger.receipt(4, ledger.proof(4))))
    keys = write(tmp_path, "jwks.json", jwks())
    listed = write(tmp_path, "list.json", published_list(ledger.checkpoint()))
    done = subprocess.run(
        [sys.executable, "-I", str(SCRIPT), receipt, "--jwks", keys, "--checkpoints", listed],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert last_line(done.stdout) == "PASS  Every check passed."
    assert done.stderr == ""


def test_it_runs_from_a_checkout_where_its_folder_shadows_the_standard_library(tmp_path):
    """consents/selectors.py would hide the standard library's selectors when
    the script's folder comes first on sys.path (python3 consents/verify_offline.py)."""
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "none.jws"), "--jwks", "x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr


def test_it_imports_only_the_standard_library_and_parses_as_python_3_9():
    tree = ast.parse(SCRIPT.read_text(), feature_version=(3, 9))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}
    assert SCRIPT.read_text().startswith("#!/usr/bin/env python3\n")


def test_its_merkle_lines_are_those_of_consents_merkle():
    for name in ("leaf_hash", "node_hash", "_all_hashes", "verify_inclusion", "verify_consistency"):
        assert inspect.getsource(getattr(vo, name)) == inspect.getsource(getattr(merkle, name))
    assert vo.HASH_SIZE == merkle.HASH_SIZE
    assert vo.EMPTY_ROOT == merkle.EMPTY_ROOT


def test_its_merkle_verification_agrees_with_consents_merkle_on_random_trees():
    for _ in range(60):
        ledger = Ledger(RANDOM.randint(1, 200))
        size = ledger.frontier.size
        root = ledger.frontier.root()
        index = RANDOM.randrange(size)
        leaf = merkle.leaf_hash(ledger.events[index])
        assert vo.leaf_hash(ledger.events[index]) == leaf
        proof = merkle.inclusion_proof(index, size, lambda lv, ix, n=ledger.nodes: n[lv, ix])
        variants = [
            (leaf, index, size, proof, root),
            (leaf, RANDOM.randrange(size), size, proof, root),
            (leaf, index, RANDOM.randint(1, 210), proof, root),
            (leaf, index, size, proof[1:], root),
            (leaf, index, size, [RANDOM.randbytes(32), *proof[1:]], root),
            (leaf, index, size, proof, RANDOM.randbytes(32)),
            (RANDOM.randbytes(32), index, size, proof, root),
        ]
        results = [vo.verify_inclusion(*v) == merkle.verify_inclusion(*v) for v in variants]
        assert all(results)
        assert vo.verify_inclusion(*variants[0])
