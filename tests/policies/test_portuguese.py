"""Policy titles are translated like every other text a customer reads: on the
pages, in the messages, and in the email, whose HTML says it is Portuguese."""

from __future__ import annotations

from django.utils import translation

from policies.models import PolicyVersion
from tests.conftest import make_user
from tests.policies.conftest import message_to, publish, seeded_draft

TITLE_PT = "Política de privacidade, versão 2"


def test_a_version_is_named_in_the_active_language(privacy):
    version = seeded_draft(privacy)
    assert str(version) == "Privacy policy (draft)"
    with translation.override("pt-br"):
        assert str(version) == "Política de privacidade (rascunho)"
    PolicyVersion.objects.filter(pk=version.pk).update(number=2)
    version.refresh_from_db()
    assert version.display_title == "Privacy policy, version 2"
    with translation.override("pt-br"):
        assert version.display_title == TITLE_PT
        assert str(version.policy) == "Política de privacidade"


def test_a_portuguese_customer_reads_the_portuguese_title_on_pages_and_in_messages(
    client, privacy, django_capture_on_commit_callbacks
):
    customer = make_user("ana@example.com", language="pt-br")
    v2 = publish(seeded_draft(privacy), django_capture_on_commit_callbacks).version
    client.force_login(customer)
    mine = client.get("/me/policies/").content.decode()
    assert TITLE_PT in mine
    assert "Privacy policy" not in mine
    response = client.post(f"/policies/versions/{v2.pk}/acknowledge/", {"next": "/me/"})
    html = client.get(response["Location"]).content.decode()
    assert f"Você confirmou a leitura de {TITLE_PT}." in html
    assert "Privacy policy" not in html


def test_the_policy_email_to_a_portuguese_customer_is_portuguese_html(
    privacy, django_capture_on_commit_callbacks
):
    customer = make_user("ana@example.com", language="pt-br")
    publish(seeded_draft(privacy), django_capture_on_commit_callbacks)
    message = message_to(customer.email)
    assert "Política de privacidade" in message.subject
    html = dict((mimetype, content) for content, mimetype in message.alternatives)["text/html"]
    assert '<html lang="pt-br">' in html
    assert "Política de privacidade" in html
    assert "Privacy policy" not in html + message.body
