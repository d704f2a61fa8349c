"""Consent receipts: a signed Kantara receipt per decision, for its owner only,
verifiable by anyone against the published key set."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from django.conf import settings
from django.urls import reverse
from joserfc import jws
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet

from consents import checkpoints, ledger, merkle, receipts, services
from consents.models import ConsentEvent, Decision, LedgerCheckpoint, Method, PurposeNotice
from consents.receipts import receipt_verify
from tests.consents.ledger_support import NOTICES, drop_append_only_triggers


def decide(user, purpose, decision=Decision.GRANTED):
    return services.consent_record(
        subject_id=user.subject_id,
        purpose=purpose,
        decision=decision,
        method=Method.PANEL,
        facts=services.RequestFacts(ip_truncated="127.0.0.0"),
    )


def proof_url(event) -> str:
    return reverse("consents:ledger_proof", kwargs={"receipt_id": event.uuid})


def receipt_url(event) -> str:
    return reverse("consents:receipt", kwargs={"receipt_id": event.uuid})


def download(client, event) -> str:
    response = client.get(receipt_url(event))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/jose"
    assert f'filename="consent-receipt-{event.uuid}.jws"' in response["Content-Disposition"]
    return response.content.decode()


def published_jwks(client) -> dict:
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    return json.loads(response.content)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_the_owner_downloads_a_receipt_that_verifies_against_the_published_keys(
    client, customer, purposes
):
    event = decide(customer, purposes["ad-partners"])
    client.force_login(customer)
    token = download(client, event)
    jwks = published_jwks(client)
    assert [k["kty"] for k in jwks["keys"]] == ["EC"]
    assert not [k for k in jwks["keys"] if "d" in k]  # no private part published

    payload = receipt_verify(token, jwks)

    independent = jws.deserialize_compact(token, KeySet.import_key_set(jwks), algorithms=["ES256"])
    assert independent.headers()["alg"] == "ES256"
    assert independent.headers()["kid"] == jwks["keys"][0]["kid"]
    assert json.loads(independent.payload) == payload
    assert payload["consentReceiptID"] == str(event.uuid)


def test_the_receipt_carries_the_kantara_fields_and_the_decision(client, customer, purposes):
    purpose = purposes["ad-partners"]
    event = decide(customer, purpose)
    client.force_login(customer)
    payload = receipt_verify(download(client, event), published_jwks(client))

    assert payload["version"] == "KI-CR-v1.1.0"
    assert payload["jurisdiction"] == "BR; EU"
    assert payload["consentTimestamp"] == int(event.created_at.timestamp())
    assert payload["collectionMethod"] == "web form: control panel"
    assert payload["consentReceiptID"] == str(event.uuid)
    assert payload["language"] == "en"
    assert payload["piiPrincipalId"] == str(customer.subject_id)
    (controller,) = payload["piiControllers"]
    assert controller["piiController"] == settings.CONTROLLER_NAME
    assert controller["email"] == settings.CONTROLLER_EMAIL
    assert controller["address"] == settings.CONTROLLER_ADDRESS
    assert payload["policyUrl"] == settings.SITE_URL + "/privacy/"
    (kantara_purpose,) = payload["services"][0]["purposes"]
    assert kantara_purpose["purpose"] == "Sharing with advertising partners"
    assert kantara_purpose["purposeCategory"] == ["dpv:SellDataToThirdParties"]
    assert kantara_purpose["consentType"] == "EXPLICIT"
    assert kantara_purpose["piiCategory"] == [
        "Advertising identifier",
        "Pages and products viewed on our site",
        "Order history",
    ]
    assert kantara_purpose["termination"] == "P90D after last use, or on withdrawal"
    assert kantara_purpose["thirdPartyDisclosure"] is True
    assert "AdNetwork Exemplo S.A." in kantara_purpose["thirdPartyName"]
    assert payload["sensitive"] is False and payload["spiCat"] == []
    assert payload["decision"] == "granted" and payload["consented"] is True
    assert payload["noticeHash"] == event.notice.content_hash
    # Downloaded before the sealer ran: no place yet, and where to fetch the proof.
    assert (payload["ledgerSeq"], payload["ledgerHash"]) == (None, event.hash)
    assert payload["inclusionProof"] is None
    assert payload["proofUrl"] == settings.SITE_URL + proof_url(event)
    assert "customer@example.com" not in json.dumps(payload)


def test_a_withdrawal_receipt_for_sensitive_data_names_its_special_category(
    client, customer, purposes
):
    purpose = purposes["dietary-suggestions"]
    decide(customer, purpose)
    withdrawal = decide(customer, purpose, Decision.WITHDRAWN)
    client.force_login(customer)
    payload = receipt_verify(download(client, withdrawal), published_jwks(client))
    assert payload["consentReceiptID"] == str(withdrawal.uuid)
    assert payload["decision"] == "withdrawn" and payload["consented"] is False
    assert payload["sensitive"] is True
    assert payload["spiCat"] == ["Allergies and dietary restrictions"]
    assert payload["services"][0]["purposes"][0]["thirdPartyDisclosure"] is False


def test_a_receipt_altered_by_one_byte_fails_verification(client, customer, purposes):
    event = decide(customer, purposes["newsletter"])
    client.force_login(customer)
    token = download(client, event)
    jwks = published_jwks(client)
    header, body, signature = token.split(".")
    payload = b64url_decode(body)
    position = payload.index(b'"decision":"granted"') + len('"decision":"')
    altered = payload[:position] + b"G" + payload[position + 1 :]
    assert len(altered) == len(payload) and altered != payload
    forged = ".".join([header, b64url(altered), signature])
    assert receipt_verify(token, jwks)["decision"] == "granted"

    with pytest.raises(BadSignatureError):
        receipt_verify(forged, jwks)
    with pytest.raises(BadSignatureError):
        jws.deserialize_compact(forged, KeySet.import_key_set(jwks), algorithms=["ES256"])


def test_another_customer_gets_404_for_someone_elses_receipt(
    client, customer, other_customer, purposes
):
    event = decide(customer, purposes["newsletter"])
    client.force_login(other_customer)
    assert client.get(receipt_url(event)).status_code == 404
    client.force_login(customer)
    assert client.get(receipt_url(event)).status_code == 200


def test_an_anonymous_visitor_is_redirected_to_log_in(client, customer, purposes):
    event = decide(customer, purposes["newsletter"])
    url = receipt_url(event)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login") + "?next=")
    assert str(event.uuid) in response["Location"]


def test_posting_to_a_receipt_is_not_allowed(client, customer, purposes):
    event = decide(customer, purposes["newsletter"])
    client.force_login(customer)
    response = client.post(receipt_url(event))
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"


def test_a_receipt_for_an_earlier_decision_describes_the_notice_its_author_read(
    client, customer, purposes
):
    purpose = purposes["ad-partners"]
    event = decide(customer, purpose)
    purpose.retention_days = 30
    purpose.recipients = ""
    purpose.recipients_pt = ""
    purpose.legal_basis = "legitimate_interest"
    purpose.save()
    services.purpose_notice_refresh(purpose=purpose)
    client.force_login(customer)

    payload = receipt_verify(download(client, event), published_jwks(client))
    (kantara_purpose,) = payload["services"][0]["purposes"]
    assert payload["noticeVersion"] == 1
    assert kantara_purpose["termination"] == "P90D after last use, or on withdrawal"
    assert kantara_purpose["thirdPartyDisclosure"] is True
    assert "AdNetwork Exemplo S.A." in kantara_purpose["thirdPartyName"]
    assert kantara_purpose["consentType"] == "EXPLICIT"


# The proof that a decision is in the ledger, for anyone who holds the receipt


def proves(proof: dict, event_hash: str, root: str) -> bool:
    """RFC 9162 inclusion, checked with nothing of the portal but the tree's hashing."""
    return merkle.verify_inclusion(
        merkle.leaf_hash(bytes.fromhex(event_hash)),
        proof["leafIndex"],
        proof["treeSize"],
        [bytes.fromhex(h) for h in proof["auditPath"]],
        bytes.fromhex(root),
    )


@pytest.fixture
def export(settings, tmp_path):
    settings.LEDGER_CHECKPOINT_FILE = tmp_path / "ledger-checkpoints.jsonl"
    return settings.LEDGER_CHECKPOINT_FILE


def test_a_sealed_receipt_proves_its_decision_against_the_checkpoints_signed_root(
    client, customer, other_customer, purposes, export
):
    before = decide(other_customer, purposes["newsletter"])
    event = decide(customer, purposes["ad-partners"])
    decide(other_customer, purposes["recommendations"])
    made = services.ledger_checkpoint_make()
    assert made.size == 3
    client.force_login(customer)
    payload = receipt_verify(download(client, event), published_jwks(client))
    assert payload["ledgerSeq"] == 2 and payload["ledgerHash"] == event.hash
    proof = payload["inclusionProof"]
    assert proof["format"] == "clareza-merkle-v1"
    assert (proof["leafIndex"], proof["treeSize"]) == (1, 3)
    # The root comes from the checkpoint's signature, not from the portal's word.
    signed = checkpoints.checkpoint_verify(proof["checkpoint"], source="the receipt")
    assert (signed.size, signed.root) == (3, made.root)
    assert proves(proof, payload["ledgerHash"], signed.root)
    # The proof holds for this decision only, at this place only.
    assert not proves(proof, before.hash, signed.root)
    assert not proves({**proof, "leafIndex": 0}, payload["ledgerHash"], signed.root)
    assert payload["coveredBy"]["token"] == made.token


def test_the_proof_url_waits_for_the_sealer_then_answers_with_a_proof(
    client, customer, purposes, settings
):
    event = decide(customer, purposes["newsletter"])
    url = proof_url(event)
    response = client.get(url)  # anyone holding the receipt: no login
    assert response.status_code == 404
    assert response["Retry-After"] == str(settings.LEDGER_SEAL_SECONDS)
    assert "not sealed yet" in response.json()["error"]

    ledger.seal()
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    proof = response.json()
    seal_root = checkpoints.checkpoint_verify(proof["checkpoint"], source="the proof").root
    assert proves(proof, event.hash, seal_root)
    assert not LedgerCheckpoint.objects.exists()  # a seal is enough to prove


def test_the_proof_url_answers_for_an_earlier_seal_by_its_size(client, customer, purposes):
    first = decide(customer, purposes["newsletter"])
    ledger.seal()
    decide(customer, purposes["recommendations"])
    decide(customer, purposes["tailored-offers"])
    ledger.seal()
    newest = client.get(proof_url(first)).json()
    assert newest["treeSize"] == 3
    earlier = client.get(proof_url(first), {"size": "1"}).json()
    assert (earlier["treeSize"], earlier["auditPath"]) == (1, [])
    for proof in (newest, earlier):
        root = checkpoints.checkpoint_verify(proof["checkpoint"], source="the proof").root
        assert proves(proof, first.hash, root)
    missing = client.get(proof_url(first), {"size": "2"})
    assert missing.status_code == 404 and "no seal of 2 events" in missing.json()["error"]


def test_the_proof_url_refuses_a_size_that_is_not_a_number(client, customer, purposes):
    event = decide(customer, purposes["newsletter"])
    ledger.seal()
    for size in ("abc", "-1", "1.5", "²"):  # "²".isdigit() is True, int("²") raises
        response = client.get(proof_url(event), {"size": size})
        assert response.status_code == 400, size
        assert response.json() == {"error": "size must be a whole number of events."}


def test_the_proof_url_answers_a_size_beyond_any_ledger_without_an_error(
    client, customer, purposes
):
    event = decide(customer, purposes["newsletter"])
    ledger.seal()
    response = client.get(proof_url(event), {"size": "9" * 30})  # beyond a 64-bit integer
    assert response.status_code in (400, 404)
    assert "error" in response.json()


def test_the_proof_url_of_an_unknown_receipt_is_404(client, db):
    response = client.get(
        reverse(
            "consents:ledger_proof", kwargs={"receipt_id": "00000000-0000-0000-0000-000000000000"}
        )
    )
    assert response.status_code == 404
    assert response.json() == {"error": "No decision has this receipt id."}


def test_inclusion_proofs_hold_across_stored_blocks_and_the_ragged_edge(purposes):
    """Beyond 2**NODE_LEVEL leaves a proof reads stored nodes and one block of
    leaves: every place checked against the signed root, the last block
    incomplete."""
    notice = purposes["newsletter"].notices.get()
    size = 2 * (1 << ledger.NODE_LEVEL) + 45
    events = [
        ledger.append(
            subject_id=uuid.UUID(int=i + 1),
            purpose=purposes["newsletter"],
            notice=notice,
            decision=Decision.GRANTED,
            method=Method.PANEL,
            created_at=notice.created_at,
        )
        for i in range(size)
    ]
    seal = ledger.seal(batch=100).seal
    assert seal.size == size
    for index in (0, 1, 255, 256, 300, 511, 512, size - 2, size - 1):
        proof = ledger.inclusion_proof(events[index]).as_dict()
        assert (proof["leafIndex"], proof["treeSize"]) == (index, size)
        assert proves(proof, events[index].hash, seal.root), index
        assert not proves(proof, events[index - 1].hash, seal.root), index


def test_no_receipt_is_signed_over_a_notice_rewritten_in_the_database(client, customer, purposes):
    """Issue 9, item 3: someone with database access rewrites the text a
    person was shown. A receipt downloaded afterwards must not carry the
    portal's signature over the forged text."""
    event = decide(customer, purposes["ad-partners"])
    ledger.seal()
    notice = event.notice
    forged = {**notice.content, "en": {**notice.content["en"], "name": "Product news"}}
    drop_append_only_triggers(*NOTICES)
    PurposeNotice.objects.filter(pk=notice.pk).update(content=forged)
    client.force_login(customer)
    response = client.get(receipt_url(event))
    if response.status_code == 200:
        payload = receipt_verify(response.content.decode(), published_jwks(client))
        assert payload["services"][0]["purposes"][0]["purpose"] != "Product news"
    else:
        assert response.status_code >= 400  # refused, whatever the way


def test_a_receipt_signed_as_its_decision_is_recorded_asks_the_database_nothing(
    customer, purposes, django_assert_num_queries
):
    """The event is not sealed yet (the sealer takes committed events, seconds
    apart): the receipt says so and points to where its proof will be."""
    event = decide(customer, purposes["newsletter"])
    with django_assert_num_queries(0):
        token = receipts.receipt_jws(event)
    payload = receipt_verify(token, receipts.public_jwks())
    assert payload["ledgerSeq"] is None and payload["inclusionProof"] is None
    assert payload["ledgerHash"] == event.hash
    assert payload["proofUrl"].endswith(proof_url(event))


def test_a_receipt_made_after_the_sealer_ran_here_carries_its_place(customer, purposes):
    event = decide(customer, purposes["newsletter"])
    ledger.seal()  # in this process: the event may be in the tree now
    assert not ledger.recorded_just_now(event)
    payload = receipt_verify(receipts.receipt_jws(event), receipts.public_jwks())
    assert payload["ledgerSeq"] == 1 and payload["inclusionProof"]["treeSize"] == 1


def test_a_receipt_made_a_moment_later_looks_its_place_up(
    customer, purposes, monkeypatch, django_assert_max_num_queries
):
    event = decide(customer, purposes["newsletter"])
    monkeypatch.setattr(ledger, "JUST_RECORDED_SECONDS", 0.0)  # the moment has passed
    assert not ledger.recorded_just_now(event)
    with django_assert_max_num_queries(3) as captured:
        receipts.receipt_jws(event)
    assert any("consents_ledgerleaf" in query["sql"] for query in captured.captured_queries)
    # Read again from the database, an event is never taken for just recorded.
    monkeypatch.setattr(ledger, "JUST_RECORDED_SECONDS", 60.0)
    assert ledger.recorded_just_now(event)
    again = ConsentEvent.objects.select_related("notice").get(pk=event.pk)
    assert not ledger.recorded_just_now(again)


def _whole(event, language: str = "en") -> str:
    """The payload encoded in one piece from its parts, as receipts were
    before each notice had its template."""
    site, paths = settings.SITE_URL, receipts._receipt_paths()
    values = dict(
        zip(
            receipts._PER_EVENT,
            (
                int(event.created_at.timestamp()),
                receipts.COLLECTION_METHODS[event.method],
                str(event.uuid),
                str(event.subject_id),
                event.decision,
                event.decision == Decision.GRANTED,
                event.policy_version_id,
            ),
            strict=True,
        )
    )
    shape = receipts._shape(
        event.notice,
        language=language,
        key=receipts.signing_key(),
        site=site,
        paths=paths,
        event=values,
    )
    shape |= receipts._ledger_position(event, site, paths)
    return json.dumps(shape, separators=(",", ":"))


@pytest.mark.parametrize("language", ["en", "pt-br"])
def test_a_receipt_from_its_notices_template_is_the_payload_to_the_byte(
    customer, purposes, language
):
    granted = decide(customer, purposes["newsletter"])
    withdrawn = decide(customer, purposes["newsletter"], Decision.WITHDRAWN)
    sensitive = decide(customer, purposes["dietary-suggestions"])
    ledger.seal()  # the first two are in the tree: their position carries a proof
    for event in (granted, withdrawn, sensitive):
        assert receipts.receipt_json(event, language=language) == _whole(event, language)
    assert json.loads(receipts.receipt_json(granted))["inclusionProof"]["treeSize"] == 3


def test_a_notice_text_that_looks_like_a_templates_gap_stays_text(customer, purposes):
    """Staff write the notices: quotes, non-ASCII and the gaps' own prefix
    are encoded as text, never taken for a place to fill."""
    purpose = purposes["newsletter"]
    services.purpose_update(
        purpose=purpose,
        acting_user=None,
        values={"name": 'News "from the shop" (promoção) clareza-receipt-0000-consentTimestamp'},
    )
    event = decide(customer, purpose)
    payload = json.loads(receipts.receipt_json(event))
    assert payload["services"][0]["purposes"][0]["purpose"] == (
        'News "from the shop" (promoção) clareza-receipt-0000-consentTimestamp'
    )
    assert payload["consentTimestamp"] == int(event.created_at.timestamp())
    assert receipts.receipt_json(event) == _whole(event)


def test_a_changed_controller_is_in_the_next_receipt(customer, purposes, settings):
    event = decide(customer, purposes["newsletter"])
    assert json.loads(receipts.receipt_json(event))["piiControllers"][0]["piiController"] == (
        settings.CONTROLLER_NAME
    )
    settings.CONTROLLER_NAME = "Mercado Exemplo S.A."
    payload = json.loads(receipts.receipt_json(event))
    assert payload["piiControllers"][0]["piiController"] == "Mercado Exemplo S.A."
    assert payload["services"][0]["service"] == "Mercado Exemplo S.A."
