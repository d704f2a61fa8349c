"""Policy text: Markdown rendered to sanitised HTML, and the differences
between two versions, marked so that they read without colour."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

import markdown
import nh3

ALLOWED_TAGS = {
    "p", "h2", "h3", "h4", "ul", "ol", "li", "strong", "em", "a", "blockquote", "code",
    "pre", "table", "thead", "tbody", "tr", "th", "td", "hr", "br",
}  # fmt: skip


def render_markdown(text: str) -> str:
    html = markdown.markdown(text, extensions=["extra", "sane_lists"], output_format="html")
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes={"a": {"href", "title"}, "th": {"scope"}},
        url_schemes={"https", "http", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


def _blocks(text: str) -> list[str]:
    """Paragraph-sized pieces of the Markdown source."""
    return [b.strip() for b in re.split(r"\n\s*\n", text.replace("\r\n", "\n")) if b.strip()]


@dataclass(frozen=True)
class Piece:
    kind: str  # "same", "added", "removed"
    text: str


@dataclass(frozen=True)
class Block:
    kind: str  # "same", "added", "removed", "changed"
    pieces: list[Piece]


def _words(old: str, new: str) -> list[Piece]:
    a, b = re.findall(r"\S+\s*", old), re.findall(r"\S+\s*", new)
    pieces = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            pieces.append(Piece("same", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            pieces.append(Piece("removed", "".join(a[i1:i2])))
        if j2 > j1:
            pieces.append(Piece("added", "".join(b[j1:j2])))
    return pieces


def diff(old: str, new: str) -> list[Block]:
    """Block by block; a block that changed is shown word by word."""
    a, b = _blocks(old), _blocks(new)
    blocks: list[Block] = []
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            blocks += [Block("same", [Piece("same", t)]) for t in a[i1:i2]]
        elif op == "replace" and i2 - i1 == j2 - j1:
            blocks += [
                Block("changed", _words(x, y)) for x, y in zip(a[i1:i2], b[j1:j2], strict=True)
            ]
        else:
            blocks += [Block("removed", [Piece("removed", t)]) for t in a[i1:i2]]
            blocks += [Block("added", [Piece("added", t)]) for t in b[j1:j2]]
    return blocks


def counts(blocks: list[Block]) -> dict[str, int]:
    return {
        kind: sum(1 for b in blocks if b.kind == kind) for kind in ("added", "removed", "changed")
    }
