"""Reading a page as a browser without JavaScript shows it: the text outside
any element marked `hidden` (or inside <script>, <style>, <template>)."""

from __future__ import annotations

from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}  # fmt: skip
UNSHOWN = {"script", "style", "template", "head", "title"}


class _Shown(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        # The open elements: their tag, and whether they (or an ancestor) are unshown.
        self.stack: list[tuple[str, bool]] = []
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in VOID:
            return
        unshown = tag in UNSHOWN or any(name == "hidden" for name, _value in attrs)
        self.stack.append((tag, unshown or self._unshown()))

    def handle_endtag(self, tag):
        # An element closed implicitly (a <p> before a block) closes with its parent.
        if any(name == tag for name, _unshown in self.stack):
            while self.stack.pop()[0] != tag:
                pass

    def handle_data(self, data):
        if not self._unshown():
            self.parts.append(data)

    def _unshown(self) -> bool:
        return bool(self.stack) and self.stack[-1][1]


def shown_text(html: str) -> str:
    """The page's text as shown without JavaScript, whitespace collapsed."""
    parser = _Shown()
    parser.feed(html)
    parser.close()
    return " ".join("".join(parser.parts).split())
