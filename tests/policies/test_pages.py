"""The public policy pages: the current text, earlier versions, the history and
the differences, in the visitor's language."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.utils import timezone

from policies.demo import V1
from tests.policies.conftest import draft, publish, redate_published, seeded_draft

NEW_PARAGRAPH = "Personalised recommendations now also use"


@pytest.fixture
def two_versions(privacy, django_capture_on_commit_callbacks):
    return publish(seeded_draft(privacy), django_capture_on_commit_callbacks).version


def test_the_index_lists_each_published_policy(client, two_versions):
    response = client.get("/policies/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'href="/policies/privacy/"' in html
    assert "Privacy policy" in html
    assert "Version 2" in html


def test_the_version_in_force_is_rendered_from_markdown(client, two_versions):
    html = client.get("/policies/privacy/").content.decode()
    assert "<h2>Who we are</h2>" in html
    assert "## Who we are" not in html
    assert "This is an earlier version." not in html


def test_the_newest_version_is_shown_once_it_is_in_force(client, two_versions):
    redate_published(two_versions, timezone.localdate())  # test set-up: the notice period is over
    html = client.get("/policies/privacy/").content.decode()
    assert NEW_PARAGRAPH in html
    assert "Version 2, in effect from" in html
    assert 'href="/policies/privacy/diff/1/2/"' in html
    assert "takes effect on" not in html


def test_script_and_event_handlers_in_a_policy_never_reach_the_page(
    client, privacy, django_capture_on_commit_callbacks
):
    body = (
        "## Hello\n\n<script>alert('owned')</script>\n\n"
        '<p onclick="steal()">Click</p>\n\n[a link](javascript:steal2())\n\n'
        '<a href="https://example.com/" onmouseover="steal3()">safe link</a>'
    )
    publish(draft(privacy, body=body), django_capture_on_commit_callbacks)
    html = client.get("/policies/privacy/").content.decode()
    assert "<h2>Hello</h2>" in html
    assert "safe link" in html
    for dangerous in ("alert('owned')", "onclick", "steal()", "javascript:", "onmouseover"):
        assert dangerous not in html


def test_an_earlier_version_is_shown_as_such(client, two_versions):
    redate_published(two_versions, timezone.localdate())  # test set-up: the notice period is over
    response = client.get("/policies/privacy/v1/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "This is an earlier version." in html
    assert "<h2>What we collect</h2>" in html
    assert NEW_PARAGRAPH not in html


def test_the_history_lists_every_version_with_its_summary_and_differences(client, two_versions):
    response = client.get("/policies/privacy/history/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'href="/policies/privacy/v1/"' in html
    assert 'href="/policies/privacy/v2/"' in html
    assert "Our first privacy policy." in html
    assert two_versions.summary in html
    assert 'href="/policies/privacy/diff/1/2/"' in html


def test_the_differences_are_marked_with_words_not_colour_alone(
    client, privacy, django_capture_on_commit_callbacks
):
    body = V1.replace("your name, email address and delivery address", "your name and address")
    body += "\n\nWe also keep your wish list."
    publish(draft(privacy, body=body), django_capture_on_commit_callbacks)
    response = client.get("/policies/privacy/diff/1/2/")
    assert response.status_code == 200
    html = response.content.decode()
    assert re.search(
        r'<del><span class="visually-hidden">\[removed: </span>[^<]*email[^<]*'
        r'<span class="visually-hidden">\]</span></del>',
        html,
    )
    assert re.search(
        r'<ins><span class="visually-hidden">\[added: </span>We also keep your wish list\.'
        r'<span class="visually-hidden">\]</span></ins>',
        html,
    )
    assert html.count('class="diff-block diff-changed"') == 1
    assert html.count('class="diff-block diff-added"') == 1
    assert 'class="diff-block diff-removed"' not in html


@pytest.mark.parametrize(
    "path",
    [
        "/policies/terms/",
        "/policies/terms/history/",
        "/policies/privacy/v3/",
        "/policies/privacy/diff/1/3/",
        "/policies/privacy/diff/2/2/",
        "/policies/nope/v1/",
    ],
)
def test_an_unknown_policy_or_version_is_not_found(client, two_versions, path):
    assert client.get(path).status_code == 404


def test_a_draft_is_not_public(client, privacy):
    assert client.get("/policies/privacy/v2/").status_code == 404
    assert client.get("/policies/privacy/diff/1/2/").status_code == 404
    assert (
        "Personalised recommendations now also"
        not in client.get("/policies/privacy/").content.decode()
    )


def test_in_portuguese_the_portuguese_text_is_shown(client, two_versions):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "pt-br"
    html = client.get("/policies/privacy/v2/").content.decode()
    assert "<h2>Quem somos</h2>" in html
    assert "Política de privacidade" in html
    assert "As recomendações personalizadas agora" in html
    assert "Who we are" not in html
    diff = client.get("/policies/privacy/diff/1/2/").content.decode()
    assert '<span class="visually-hidden">[adicionado: </span>' in diff
    assert two_versions.summary_pt in diff
