"""The readable receipt at /me/receipts/<uuid>/: the signed claims in plain
words, for their owner only, beside the .jws download and how to verify it."""

from __future__ import annotations

from urllib.parse import quote

from django.urls import reverse

from consents import services
from consents.models import Decision, Method
from tests.consents.test_panel import parse


def decide(user, purpose, decision=Decision.GRANTED):
    return services.consent_record(
        subject_id=user.subject_id, purpose=purpose, decision=decision, method=Method.PANEL
    )


def page_url(event) -> str:
    return reverse("consents:receipt_page", kwargs={"receipt_id": event.uuid})


def test_the_owner_reads_the_receipt_in_plain_words_with_the_download_beside_it(
    client, customer, purposes
):
    event = decide(customer, purposes["ad-partners"])
    client.force_login(customer)
    response = client.get(page_url(event))
    assert response.status_code == 200
    page = parse(response)
    heading = page.find("h2", {"id": "receipt-decision"}).text
    assert heading == "You allowed “Sharing with advertising partners”"
    claims = page.find("dl", cls="receipt-claims").text
    assert "Control panel" in claims
    assert str(event.uuid) in claims
    assert event.hash in claims
    for recipient in event.notice.text("en")["recipients"]:
        assert recipient in claims
    links = {a.attrs["href"] for a in page.find_all("a")}
    assert f"/me/receipts/{event.uuid}.jws" in links
    assert "/.well-known/jwks.json" in links


def test_a_withdrawal_reads_as_not_allowed(client, customer, purposes):
    decide(customer, purposes["newsletter"])
    event = decide(customer, purposes["newsletter"], Decision.WITHDRAWN)
    client.force_login(customer)
    page = parse(client.get(page_url(event)))
    assert page.find("h2", {"id": "receipt-decision"}).text == "You did not allow “Newsletter”"


def test_the_history_links_each_event_to_its_readable_receipt(client, customer, purposes):
    event = decide(customer, purposes["newsletter"])
    client.force_login(customer)
    page = parse(client.get("/me/history/"))
    assert page_url(event) in {a.attrs["href"] for a in page.find_all("a")}


def test_another_customer_gets_404_for_someone_elses_readable_receipt(
    client, customer, other_customer, purposes
):
    event = decide(customer, purposes["newsletter"])
    client.force_login(other_customer)
    response = client.get(page_url(event))
    assert response.status_code == 404
    assert "receipt-decision" not in response.content.decode()


def test_an_anonymous_visitor_is_sent_to_log_in_for_a_readable_receipt(client, customer, purposes):
    event = decide(customer, purposes["newsletter"])
    url = page_url(event)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('account_login')}?next={quote(url)}"


def test_posting_to_a_readable_receipt_is_not_allowed(client, customer, purposes):
    event = decide(customer, purposes["newsletter"])
    client.force_login(customer)
    response = client.post(page_url(event))
    assert response.status_code == 405
    assert "POST" not in response["Allow"]
    assert client.head(page_url(event)).status_code == 200
