from __future__ import annotations

from html.parser import HTMLParser

import pytest

from consents.demo import seed_inventory


@pytest.fixture
def purposes(db):
    """The demo shop's inventory, by purpose key."""
    return {p.key: p for p in seed_inventory()}


class _Inputs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[dict] = []

    def handle_starttag(self, tag, attrs):
        if tag == "input":
            self.inputs.append(dict(attrs))


def inputs(html: str) -> list[dict]:
    """Every <input> of a page, as a dict of its attributes."""
    parser = _Inputs()
    parser.feed(html)
    return parser.inputs
