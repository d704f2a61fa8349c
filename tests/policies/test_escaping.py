"""Text a person typed never reaches a page unescaped: the publish preview, the
public policy pages (the only `|safe` of the project, fed by the sanitised
Markdown renderer), and the policy-update email."""

from __future__ import annotations

import html as htmllib

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils.safestring import SafeData

from policies import emails, notices, services, text
from policies.models import PolicyVersion
from tests.conftest import PASSWORD, add_second_factor
from tests.policies.conftest import customers, draft, link, message_to, publish, seeded_draft

# What a drafter would paste to turn the real "Publish and notify" button into
# a form that makes them superuser.
HOSTILE_SUMMARY = (
    '</pre><form action="/admin/portal/user/1/change/" method="post">'
    '<input name="is_superuser" value="on"><input type="submit" value="Publish and notify">'
    "</form><pre>"
)
HOSTILE_MARKDOWN = (
    "## Who we are\n\n"
    "<script>alert('owned')</script>\n\n"
    '<form action="/admin/portal/user/1/change/"><input name="is_superuser"></form>\n\n'
    '<img src="x" onerror="steal()">\n\n'
    '<iframe src="https://evil.example/"></iframe>\n\n'
    '<p style="position:fixed">cover</p>\n\n'
    "[a link](javascript:steal2())"
)
RAW_TAGS = ("<form", "<script>alert", "<img", "<iframe", 'style="position', "javascript:")


@pytest.fixture
def drafter(db):
    """Staff who may draft policy versions and nothing else: no user rights."""
    user = get_user_model().objects.create_user(
        email="drafter@example.com", password=PASSWORD, is_staff=True
    )
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="policies",
            codename__in=["add_policyversion", "change_policyversion", "view_policy"],
        )
    )
    add_second_factor(user)
    assert not user.has_perm("portal.change_user")
    return user


def _change(version: PolicyVersion) -> str:
    return reverse("admin:policies_policyversion_change", args=[version.pk])


def test_a_drafters_summary_cannot_put_a_form_into_the_publish_preview(client, drafter, privacy):
    customers(1)
    version = seeded_draft(privacy)
    client.force_login(drafter)
    saved = client.post(
        _change(version),
        {
            "policy": privacy.pk,
            "material": "on",
            "effective_date": version.effective_date.isoformat(),
            "summary": HOSTILE_SUMMARY,
            "summary_pt": "",
            "body": version.body + "\n\n" + HOSTILE_SUMMARY,
            "body_pt": "",
            "_save": "Save",
        },
    )
    assert saved.status_code == 302, saved.content.decode()[-2000:]
    version.refresh_from_db()
    assert version.summary == HOSTILE_SUMMARY

    response = client.get(reverse("admin:policies_version_publish", args=[version.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "/admin/portal/user/1/change/" in page  # the text is shown...
    assert '<form action="/admin/portal/user/' not in page  # ...but never as markup
    assert '<input name="is_superuser"' not in page
    assert "&lt;/pre&gt;&lt;form action=&quot;/admin/portal/user/1/change/&quot;" in page
    # One form posts the publication; the only other is the admin's logout.
    assert page.count("<form") == 2


def test_the_plain_text_email_is_not_marked_safe_and_the_html_one_escapes(privacy):
    version = draft(privacy, summary=HOSTILE_SUMMARY)
    version.number = 2
    item = notices.notice_item(
        version_id=version.pk, email="a@example.com", language="en", subject_id=None, user_id=None
    )
    item.pk = 0
    sample = notices.Notice(item=item, version=version)
    message = emails.policy_update(sample)
    assert HOSTILE_SUMMARY in message.body  # plain text carries the words as typed
    assert not isinstance(message.body, SafeData)
    assert not isinstance(message.subject, SafeData)
    html = next(content for content, mimetype in message.alternatives if mimetype == "text/html")
    assert "<form" not in html
    assert htmllib.escape(HOSTILE_SUMMARY, quote=False)[:40] in html.replace("&quot;", '"')


def test_the_markdown_renderer_is_what_reaches_the_only_safe_filter():
    rendered = text.render_markdown(HOSTILE_MARKDOWN)
    assert "<h2>Who we are</h2>" in rendered
    for raw in RAW_TAGS:
        assert raw not in rendered


@pytest.mark.parametrize("language", ["en", "pt-br"])
def test_a_hostile_policy_text_is_sanitised_on_the_public_page(
    client, privacy, language, django_capture_on_commit_callbacks
):
    version = services.policy_version_draft_save(
        version=PolicyVersion(
            policy=privacy,
            body=HOSTILE_MARKDOWN,
            body_pt=HOSTILE_MARKDOWN,
            summary="x",
            effective_date=services.earliest_effective_date(material=False),
        )
    )
    number = publish(version, django_capture_on_commit_callbacks).version.number
    page = client.get(
        f"/policies/privacy/v{number}/", HTTP_ACCEPT_LANGUAGE=language
    ).content.decode()
    assert "<h2>Who we are</h2>" in page
    body = page.split('<div class="policy-body">', 1)[1].split("</article>", 1)[0]
    for raw in RAW_TAGS:
        assert raw not in body


def test_the_emailed_notice_page_escapes_the_summary_and_the_differences(
    client, privacy, django_capture_on_commit_callbacks
):
    (person,) = customers(1)
    version = draft(privacy, material=True, summary=HOSTILE_SUMMARY, body=HOSTILE_MARKDOWN)
    publish(version, django_capture_on_commit_callbacks)
    page = client.get(link(message_to(person.email), "notice")).content.decode()
    article = page.split("<article", 1)[1].split("</article>", 1)[0]
    assert article.count("<form") == 1  # "I have read it"
    # The differences show the Markdown source as text: a link's target is words, not a link.
    for raw in (*RAW_TAGS[:-1], 'href="javascript:'):
        assert raw not in article.replace('<form method="post" action="/policies/', "")
    assert "&lt;/pre&gt;&lt;form action=&quot;/admin/portal/user/1/change/&quot;" in page
