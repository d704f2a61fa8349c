"""The differences between two versions are shown as people read them:
rendered from Markdown, compared by block and then by word, and as inert as the
policy pages themselves, however hostile the Markdown."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.urls import reverse

from policies import text
from policies.demo import V1
from tests.policies.conftest import draft, publish, seeded_draft

LIST_V1 = V1 + "\n\n## What we share\n\n- your address, with the carrier\n- nothing else"
LIST_V2 = V1 + "\n\n## What we share\n\n- your address, with the courier\n- nothing else"

HOSTILE = (
    "## Who we are\n\n"
    "<script>alert('owned')</script>\n\n"
    "[a link](javascript:steal())\n\n"
    '<a href="https://example.com/" onmouseover="steal3()">safe link</a>\n\n'
    '[titled](https://example.com/ "x\\" onfocus=\\"steal4()")\n\n'
    "Text that looks like a tag: `<img src=x onerror=steal5()>` and &lt;b onclick=steal6()&gt;"
)
DANGEROUS = ("<script", "alert(", "javascript:", "onmouseover=", "<img", "<b ")  # fmt: skip


def marked(kind: str, words: str) -> str:
    element, label = ("ins", "added") if kind == "added" else ("del", "removed")
    return (
        f'<{element}><span class="visually-hidden">[{label}: </span>{words}'
        f'<span class="visually-hidden">]</span></{element}>'
    )


def test_headings_are_shown_as_headings_not_as_markdown(
    client, privacy, django_capture_on_commit_callbacks
):
    body = V1.replace("## Your rights", "## What you can do")
    publish(draft(privacy, body=body), django_capture_on_commit_callbacks)
    html = client.get("/policies/privacy/diff/1/2/").content.decode()
    assert "<h2>Who we are</h2>" in html
    assert "##" not in html
    assert (
        f"<h2>{marked('removed', 'Your rights')} {marked('added', 'What you can do')}</h2>" in html
    )


def test_a_changed_word_in_a_list_item_is_marked_inside_the_item():
    blocks = text.diff(LIST_V1, LIST_V2)
    [changed] = [b for b in blocks if b.kind == "changed"]
    assert changed.html.startswith("<ul>")
    assert (
        f"<li>your address, with the {marked('removed', 'carrier')} "
        f"{marked('added', 'courier')}</li>"
    ) in changed.html
    assert "<li>nothing else</li>" in changed.html
    assert "- your" not in changed.html
    assert text.counts(blocks) == {"added": 0, "removed": 0, "changed": 1}


def test_whole_blocks_added_and_removed_keep_their_markup():
    new = V1.replace("## Your rights\n\n", "") + "\n\n### Contact\n\n*Write* to us."
    blocks = {b.kind: b.html for b in text.diff(V1, new) if b.kind in ("added", "removed")}
    assert blocks["removed"] == f"<h2>{marked('removed', 'Your rights')}</h2>"
    assert (
        blocks["added"] == f"<p><em>{marked('added', 'Write')}</em> {marked('added', 'to us.')}</p>"
    )


class Elements(HTMLParser):
    """Every element and attribute in a piece of HTML, and its text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict]] = []
        self.text = ""
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text += data


@pytest.mark.parametrize("old, new", [(V1, HOSTILE), (HOSTILE, V1), (HOSTILE, HOSTILE + " More.")])
def test_hostile_markdown_stays_inert_in_the_differences(old, new):
    html = "".join(block.html for block in text.diff(old, new))
    assert "<script" not in html and "alert(" not in html
    parsed = Elements(html)
    for tag, attributes in parsed.elements:
        # Only what the sanitiser allows, and the diff's own marks.
        assert tag in text.ALLOWED_TAGS | {"ins", "del", "span"}, tag
        allowed = set(text.ALLOWED_ATTRIBUTES.get(tag, set()))
        allowed |= {"a": {"rel"}, "span": {"class"}}.get(tag, set())
        assert set(attributes) <= allowed, (tag, attributes)
        assert not attributes.get("href", "https:").startswith("javascript"), attributes
    # What looked like tags in the text is still text, escaped once.
    assert "<img src=x onerror=steal5()>" in parsed.text
    assert "&lt;img src=x onerror=steal5()&gt;" in html


def test_hostile_markdown_stays_inert_on_the_differences_page(
    client, privacy, django_capture_on_commit_callbacks
):
    publish(draft(privacy, body=HOSTILE), django_capture_on_commit_callbacks)
    page = client.get("/policies/privacy/diff/1/2/").content.decode()
    html = page[page.index('<div class="diff">') : page.index("</article>")]
    assert "safe link" in html
    assert "<h2>Who we are</h2>" in html
    for dangerous in DANGEROUS:
        assert dangerous not in html, dangerous
    assert "&lt;img src=x onerror=steal5()&gt;" in html


def test_the_admin_preview_shows_the_differences_rendered(client, staff, privacy):
    client.force_login(staff)
    version = seeded_draft(privacy)
    html = client.get(reverse("admin:policies_version_publish", args=[version.pk])).content.decode()
    assert "<h2>Who we are</h2>" in html
    assert "## Who we are" not in html
    assert (
        '<p><ins><span class="visually-hidden">[added: </span>Personalised recommendations now'
    ) in html
