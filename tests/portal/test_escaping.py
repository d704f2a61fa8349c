"""Every way the project can put unescaped text into a page is listed here, with
the test that shows no person's text reaches it raw; and text rendered for a
plain-text channel (an email's subject and body) is never marked safe."""

from __future__ import annotations

import html as htmllib
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.template import Context, Template
from django.utils.safestring import SafeData

from portal.mail import render_email

ROOT = Path(settings.BASE_DIR)
SCANNED = ["templates", "portal", "consents", "policies", "rights", "insight", "integrations"]
UNESCAPING = re.compile(
    r"\|\s*safe\b|\|\s*safeseq\b|\bmark_safe\b|autoescape\s+off|\bformat_html\b|\bSafeString\b"
)
HOSTILE = '</pre><form action="/admin/portal/user/1/change/"><input name="is_superuser">'

# Each place, and the test that proves what reaches it cannot come from a person raw.
KNOWN = {
    ("templates/policies/version.html", "|safe"): (
        "tests/policies/test_escaping.py::test_a_hostile_policy_text_is_sanitised_on_the_public_page"
    ),
    ("templates/policies/notice.html", "|safe"): (
        "tests/policies/test_escaping.py::test_the_markdown_renderer_is_what_reaches_the_only_safe_filter"
    ),
    # The differences are rebuilt from the sanitiser's tags, every text token escaped.
    ("policies/text.py", "mark_safe"): (
        "tests/policies/test_diff.py::test_hostile_markdown_stays_inert_in_the_differences"
    ),
    ("policies/text.py", "SafeString"): (
        "tests/policies/test_diff.py::test_hostile_markdown_stays_inert_on_the_differences_page"
    ),
}


def _places() -> set[tuple[str, str]]:
    found = set()
    for folder in SCANNED:
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in {".py", ".html", ".txt"} or "migrations" in path.parts:
                continue
            for match in UNESCAPING.finditer(path.read_text(encoding="utf-8")):
                found.add((str(path.relative_to(ROOT)), re.sub(r"\s+", " ", match.group(0))))
    return found


def test_every_place_that_skips_escaping_is_known_and_tested():
    found = _places()
    assert found == set(KNOWN), (
        "A place that skips HTML escaping was added or removed. Add it to KNOWN with a test "
        "showing that a person's text cannot reach it unescaped (or remove it from KNOWN): "
        f"new {sorted(found - set(KNOWN))}, gone {sorted(set(KNOWN) - found)}"
    )
    for test in KNOWN.values():
        path, name = test.split("::")
        assert f"def {name}(" in (ROOT / path).read_text(encoding="utf-8"), test


def _email_prefixes() -> list[str]:
    return sorted(
        f"emails/{path.name.removesuffix('_message.txt')}"
        for path in (ROOT / "templates" / "emails").glob("*_message.txt")
    )


@pytest.mark.django_db
@pytest.mark.parametrize("prefix", _email_prefixes())
def test_text_rendered_for_email_is_escaped_when_shown_in_a_page(prefix):
    context = {
        key: HOSTILE
        for key in ("summary", "policy_title", "confirm_url", "notice_url", "acknowledge_url")
    }
    context.update(days=7, link_days=7, effective_date=HOSTILE)
    subject, text, html = render_email(prefix, context, language="en")
    for plain in (subject, text):
        assert not isinstance(plain, SafeData)
    page = Template("<pre>{{ text }}</pre><p>{{ subject }}</p>").render(
        Context({"text": text, "subject": subject})
    )
    assert "<form" not in page
    # The page shows exactly the characters of the email, escaped once.
    assert htmllib.unescape(page) == f"<pre>{text}</pre><p>{subject}</p>"
    assert "<form" not in html  # the HTML alternative escapes as it renders
