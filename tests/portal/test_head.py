"""HEAD answers like GET on every page of the project's own apps, so uptime
probes that use HEAD see the page's real status, never a 405."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from consents import services as consent_services
from consents.demo import seed_inventory
from consents.models import Decision, Method, Purpose
from policies.demo import seed_policies

PROJECT_APPS = ("portal.", "consents.", "policies.", "rights.", "insight.")
BAD_TOKEN = "not-a-signed-token"

# Arguments for each URL with parameters: real objects where the page has one,
# a forged token where the page checks a signature (HEAD must refuse it as GET does).
KWARGS = {
    "consents:newsletter_confirm": {"token": BAD_TOKEN},
    "consents:receipt": {"receipt_id": "RECEIPT"},
    "consents:ledger_proof": {"receipt_id": "RECEIPT"},
    "consents:receipt_page": {"receipt_id": "RECEIPT"},
    "consents:newsletter_receipts": {"token": BAD_TOKEN},
    "consents:reconsent_link": {"token": BAD_TOKEN},
    "consents:newsletter_receipt": {
        "token": BAD_TOKEN,
        "receipt_id": "00000000-0000-4000-8000-000000000000",
    },
    "me_consent_switch": {"key": "newsletter"},
    "me_data_edit": {"key": "first_name"},
    "me_data_save": {"key": "first_name"},
    "me_request_cancel": {"uuid": "00000000-0000-4000-8000-000000000000"},
    "me_export_status": {"uuid": "00000000-0000-4000-8000-000000000000"},
    "me_export_download": {"uuid": "00000000-0000-4000-8000-000000000000", "token": BAD_TOKEN},
    "policies:notice": {"token": BAD_TOKEN},
    "policies:acknowledge_link": {"token": BAD_TOKEN},
    "policies:unsubscribe": {"token": BAD_TOKEN},
    "policies:acknowledge": {"version_id": 1},
    "policies:current": {"slug": "privacy"},
    "policies:history": {"slug": "privacy"},
    "policies:version": {"slug": "privacy", "number": 1},
    "policies:diff": {"slug": "privacy", "old": 1, "new": 1},
    "rights:newsletter_erase": {"token": BAD_TOKEN},
    "rights:erasure_cancel": {"token": BAD_TOKEN},
}


def _project_url_names(patterns, namespace: str = "") -> list[str]:
    names = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace == "admin":
                continue  # Django's admin views, which answer HEAD themselves
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            names += _project_url_names(pattern.url_patterns, inner)
        elif (
            isinstance(pattern, URLPattern)
            and pattern.name
            and pattern.lookup_str.startswith(PROJECT_APPS)
        ):
            names.append(namespace + pattern.name)
    return names


URL_NAMES = sorted(set(_project_url_names(get_resolver().url_patterns)))


def test_the_list_covers_every_project_url_with_parameters():
    needing_arguments = set()
    for name in URL_NAMES:
        try:
            reverse(name)
        except Exception:
            needing_arguments.add(name)
    assert needing_arguments == set(KWARGS)
    assert len(URL_NAMES) > 20


@pytest.mark.django_db
@pytest.mark.parametrize("as_customer", [False, True], ids=["anonymous", "customer"])
@pytest.mark.parametrize("name", URL_NAMES)
def test_head_answers_as_get_does_and_never_405_on_a_page(
    client, customer, settings, name, as_customer
):
    seed_inventory()
    seed_policies()
    event = consent_services.consent_record(
        subject_id=customer.subject_id,
        purpose=Purpose.objects.get(key="newsletter"),
        decision=Decision.GRANTED,
        method=Method.PANEL,
    )
    if as_customer:
        client.force_login(customer)
    kwargs = {
        key: (event.uuid if value == "RECEIPT" else value)
        for key, value in KWARGS.get(name, {}).items()
    }
    url = reverse(name, kwargs=kwargs)

    get = client.get(url)
    head = client.head(url)

    if get.status_code == 405:  # a POST-only action stays POST-only
        assert head.status_code == 405
        assert "HEAD" not in get["Allow"]
        return
    assert head.status_code == get.status_code, (url, get.status_code, head.status_code)
    assert head.content == b""
    if get.status_code in (301, 302):
        assert head["Location"] == get["Location"]
