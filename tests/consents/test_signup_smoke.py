from __future__ import annotations

import pytest
from django.urls import reverse

from consents.demo import seed_inventory
from consents.models import ConsentEvent, Decision


@pytest.mark.django_db
def test_smoke(client, django_capture_on_commit_callbacks):
    seed_inventory()
    page = client.get(reverse("account_signup"))
    html = page.content.decode()
    import re

    hashes = dict(re.findall(r'name="(notice_[\w-]+)" value="(\w+)"', html))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("account_signup"),
            {
                "email": "new@example.com",
                "password1": "a-long-Test-passphrase-42",
                "password2": "a-long-Test-passphrase-42",
                "purposes": ["recommendations"],
                **hashes,
            },
        )
    assert response.status_code == 302, response.content.decode()[:3000]
    events = list(ConsentEvent.objects.order_by("seq"))
    assert [e.decision for e in events].count(Decision.GRANTED) == 1
    assert len(events) == 6
