"""Policy text: Markdown rendered to sanitised HTML, and the differences
between two versions as people read them (rendered), marked so that they read
without colour.

The differences are computed on the sanitised HTML, never on the Markdown
source: both versions are rendered and cleaned by nh3 first, then cut into
their top-level block elements (a heading, a paragraph, a list...), and a block
that changed is compared word by word. The output is rebuilt from tokens, so it
can only hold markup the sanitiser produced: tags are re-serialised from the
allow-list below (their attribute values escaped), and every piece of text is
escaped again, so no text of a policy can become markup in the diff.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from html import escape
from html.parser import HTMLParser

import markdown
import nh3
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext

ALLOWED_TAGS = {
    "p", "h2", "h3", "h4", "ul", "ol", "li", "strong", "em", "a", "blockquote", "code",
    "pre", "table", "thead", "tbody", "tr", "th", "td", "hr", "br",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "th": {"scope"}}
LINK_REL = "noopener noreferrer nofollow"
VOID_TAGS = {"hr", "br"}


def render_markdown(text: str) -> str:
    html = markdown.markdown(text, extensions=["extra", "sane_lists"], output_format="html")
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"https", "http", "mailto"},
        link_rel=LINK_REL,
    )


# Tokens of sanitised HTML --------------------------------------------------------


@dataclass(frozen=True)
class Token:
    markup: str  # ready to print: a re-serialised tag, or escaped text
    is_tag: bool
    key: str  # what is compared: the tag, or the word without its spacing

    @property
    def is_space(self) -> bool:
        return not self.is_tag and not self.key


def _tag(tag: str, attrs: list[tuple[str, str | None]]) -> str:
    allowed = ALLOWED_ATTRIBUTES.get(tag, set()) | ({"rel"} if tag == "a" else set())
    kept = "".join(
        f' {name}="{escape(value or "", quote=True)}"' for name, value in attrs if name in allowed
    )
    return f"<{tag}{kept}>"


class _Blocks(HTMLParser):
    """Sanitised HTML cut into top-level blocks of tokens."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[list[Token]] = []
        self.depth = 0

    def _add(self, token: Token) -> None:
        if (self.depth == 0 and token.is_tag) or not self.blocks:
            self.blocks.append([])
        self.blocks[-1].append(token)

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag not in ALLOWED_TAGS:
            return
        markup = _tag(tag, attrs)
        self._add(Token(markup, True, markup))
        if tag not in VOID_TAGS:
            self.depth += 1

    def handle_startendtag(self, tag: str, attrs) -> None:
        if tag in ALLOWED_TAGS:
            markup = _tag(tag, attrs)
            self._add(Token(markup, True, markup))

    def handle_endtag(self, tag: str) -> None:
        if tag not in ALLOWED_TAGS or tag in VOID_TAGS:
            return
        self.depth = max(self.depth - 1, 0)
        markup = f"</{tag}>"
        if self.blocks:
            self.blocks[-1].append(Token(markup, True, markup))
        if self.depth == 0:
            self.blocks.append([])

    def handle_data(self, data: str) -> None:
        if self.depth == 0 and not data.strip():
            return  # the line breaks between blocks
        # Words and punctuation apart: "name," and "name" share their word.
        for word in re.findall(r"\s+|\w+\s*|[^\w\s]+\s*", data):
            self._add(Token(escape(word, quote=False), False, word.strip()))


def _blocks(html: str) -> list[list[Token]]:
    parser = _Blocks()
    parser.feed(html)
    parser.close()
    return [block for block in parser.blocks if block]


# Marking what changed ------------------------------------------------------------


def _marked(kind: str, text: str) -> str:
    element, label = ("ins", gettext("added")) if kind == "added" else ("del", gettext("removed"))
    return (
        f'<{element}><span class="visually-hidden">[{escape(label)}: </span>{text}'
        f'<span class="visually-hidden">]</span></{element}>'
    )


def _render(tokens: list[Token], kind: str = "same", *, keep_tags: bool = True) -> str:
    """Tokens back to HTML; in an added or removed run each stretch of text is
    marked (never across a tag, so that the markup stays well nested)."""
    out: list[str] = []
    words: list[Token] = []

    def flush() -> None:
        text = "".join(t.markup for t in words)
        if kind != "same" and any(not t.is_space for t in words):
            core = text.strip()
            start = text.index(core)
            text = text[:start] + _marked(kind, core) + text[start + len(core) :]
        out.append(text)
        words.clear()

    for token in tokens:
        if token.is_tag:
            flush()
            if keep_tags:
                out.append(token.markup)
        else:
            words.append(token)
    flush()
    return "".join(out)


def _words(old: list[Token], new: list[Token]) -> str:
    """A changed block, word by word: the new block's structure, what was removed
    struck through in place (its text only: the old tags would not nest)."""
    out: list[str] = []
    matcher = difflib.SequenceMatcher(
        a=[t.key for t in old], b=[t.key for t in new], autojunk=False
    )
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            out.append(_render(new[j1:j2]))
            continue
        if i2 > i1:
            removed = _render(old[i1:i2], "removed", keep_tags=False)
            out.append(removed + (" " if j2 > j1 and not removed.endswith(" ") else ""))
        if j2 > j1:
            out.append(_render(new[j1:j2], "added"))
    return "".join(out)


@dataclass(frozen=True)
class Block:
    kind: str  # "same", "added", "removed", "changed"
    html: SafeString


def _block(kind: str, html: str) -> Block:
    # Safe by construction: tags come only from _tag (the sanitiser's allow-list,
    # attribute values escaped) and every text token was escaped (see the module).
    return Block(kind, mark_safe(html))  # noqa: S308


def diff(old: str, new: str) -> list[Block]:
    """Two versions' Markdown, compared as rendered: block by block, and a block
    that changed word by word."""
    a, b = _blocks(render_markdown(old)), _blocks(render_markdown(new))
    keys = lambda blocks: ["".join(t.key for t in block) for block in blocks]  # noqa: E731
    blocks: list[Block] = []
    matcher = difflib.SequenceMatcher(a=keys(a), b=keys(b), autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            blocks += [_block("same", _render(block)) for block in b[j1:j2]]
        elif op == "replace" and i2 - i1 == j2 - j1:
            blocks += [
                _block("changed", _words(x, y)) for x, y in zip(a[i1:i2], b[j1:j2], strict=True)
            ]
        else:
            blocks += [_block("removed", _render(block, "removed")) for block in a[i1:i2]]
            blocks += [_block("added", _render(block, "added")) for block in b[j1:j2]]
    return blocks


def counts(blocks: list[Block]) -> dict[str, int]:
    return {
        kind: sum(1 for b in blocks if b.kind == kind) for kind in ("added", "removed", "changed")
    }
