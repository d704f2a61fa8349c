"""Consent receipts: a signed Kantara receipt per decision, for its owner only,
verifiable by anyone against the published key set."""

from __future__ import annotations

import base64
import json

import pytest
from django.conf import settings
from django.urls import reverse
from joserfc import jws
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet

from consents import services
from consents.models import Decision, Method
from consents.receipts import receipt_verify


def decide(user, purpose, decision=Decision.GRANTED):
    return services.consent_record(
        subject_id=user.subject_id,
        purpose=purpose,
        decision=decision,
        method=Method.PANEL,
        facts=services.RequestFacts(ip_truncated="127.0.0.0"),
    )


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
    assert (payload["ledgerSeq"], payload["ledgerHash"]) == (event.seq, event.hash)
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
