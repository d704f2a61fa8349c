"""The pt-BR catalogue is complete, compiled, and used.

A string added to a template or to the code without a Portuguese translation,
a translation left fuzzy, or a django.mo that was not recompiled after the .po
changed all fail here, with what to run to fix them.
"""

from __future__ import annotations

import ast
import gettext
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.utils import translation

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = Path("locale") / "pt_BR" / "LC_MESSAGES"
PO = ROOT / CATALOGUE / "django.po"
MO = ROOT / CATALOGUE / "django.mo"
# What makemessages reads for the project's own strings: never .venv (Django's
# and allauth's strings come with their own catalogues).
SOURCES = (
    "portal",
    "consents",
    "policies",
    "rights",
    "insight",
    "integrations",
    "shop",
    "templates",
    "locale",
    "manage.py",
)

FIX = (
    "Run `make messages`, translate them in locale/pt_BR/LC_MESSAGES/django.po "
    "(and remove any `#, fuzzy` flag once checked), then run `make messages` again "
    "to compile django.mo."
)


@dataclass
class Entry:
    msgid: str = ""
    msgid_plural: str | None = None
    msgctxt: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    references: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        text = "(the header)" if self.msgid == "" and self.msgctxt is None else repr(self.msgid)
        if self.msgctxt is not None:
            text = f"{self.msgctxt!r}: {text}"
        where = " ".join(self.references)
        return f"{text}  [{where}]" if where else text


def parse_po(text: str) -> list[Entry]:
    """A .po reader for what makemessages writes: entries separated by blank lines,
    `#,` flags, `#:` references, quoted strings continued on the next lines.
    Obsolete (`#~`) and previous-msgid (`#|`) lines are ignored."""
    entries: list[Entry] = []
    entry: Entry | None = None
    target: tuple[str, int] | None = None

    def value(quoted: str) -> str:
        return ast.literal_eval(quoted)  # a PO string is a valid Python string literal

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            entry, target = None, None
            continue
        if line.startswith("#~") or line.startswith("#|"):
            continue
        if entry is None:
            entry = Entry()
            entries.append(entry)
        if line.startswith("#,"):
            entry.flags.update(flag.strip() for flag in line[2:].split(",") if flag.strip())
        elif line.startswith("#:"):
            entry.references.extend(line[2:].split())
        elif line.startswith("#"):
            continue
        elif match := re.fullmatch(
            r"(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+(\".*\")", line
        ):
            keyword, index, quoted = match.groups()
            if keyword.startswith("msgstr"):
                target = ("msgstr", int(index or 0))
                entry.msgstr[target[1]] = value(quoted)
            else:
                target = (keyword, 0)
                setattr(entry, keyword, value(quoted))
        elif line.startswith('"') and target is not None:
            keyword, index = target
            if keyword == "msgstr":
                entry.msgstr[index] += value(line)
            else:
                setattr(entry, keyword, getattr(entry, keyword) + value(line))
        else:
            raise ValueError(f"line {number} of the .po is not understood: {raw!r}")
    return entries


def untranslated(entries: list[Entry]) -> list[Entry]:
    return [
        entry
        for entry in entries
        if "fuzzy" in entry.flags or not entry.msgstr or not all(entry.msgstr.values())
    ]


def test_the_po_reader_sees_what_needs_a_translation():
    entries = parse_po(
        'msgid ""\nmsgstr ""\n"Language: pt_BR\\n"\n\n'
        '#: a.html:1\nmsgid "Done"\nmsgstr "Feito"\n\n'
        '#: a.html:2\nmsgid ""\n"Say \\"hi\\""\nmsgstr ""\n\n'
        '#: a.html:3\n#, fuzzy, python-format\n#| msgid "Hi %(n)s"\n'
        'msgid "Hello %(n)s"\nmsgstr "Oi %(n)s"\n\n'
        'msgid "one file"\nmsgid_plural "%(n)s files"\nmsgstr[0] "um arquivo"\nmsgstr[1] ""\n\n'
        '#~ msgid "Gone"\n#~ msgstr "Sumiu"\n'
    )
    assert [entry.msgid for entry in entries] == ["", "Done", 'Say "hi"', "Hello %(n)s", "one file"]
    assert entries[0].msgstr == {0: "Language: pt_BR\n"}
    assert [entry.msgid for entry in untranslated(entries)] == [
        'Say "hi"',
        "Hello %(n)s",
        "one file",
    ]


def test_every_project_string_has_a_portuguese_translation(tmp_path):
    if shutil.which("xgettext") is None or shutil.which("msgmerge") is None:
        pytest.skip("GNU gettext (xgettext, msgmerge) is not installed: apt-get install gettext")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(
                source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            shutil.copy2(source, tmp_path / name)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings", "PYTHONPATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "manage.py", "makemessages", "--locale=pt_BR", "--no-obsolete"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"makemessages failed:\n{result.stdout}\n{result.stderr}"

    entries = parse_po((tmp_path / CATALOGUE / "django.po").read_text(encoding="utf-8"))
    assert len(entries) > 1, "makemessages found no strings at all in the project"
    missing = untranslated(entries)
    if missing:
        pytest.fail(
            f"{len(missing)} string(s) of the project have no Portuguese translation "
            "(new, untranslated or fuzzy):\n"
            + "\n".join(f"  - {entry.label}" for entry in missing)
            + f"\n{FIX}",
            pytrace=False,
        )


def test_the_compiled_catalogue_is_up_to_date(tmp_path):
    if shutil.which("msgfmt") is None:
        pytest.skip("GNU gettext (msgfmt) is not installed: apt-get install gettext")
    assert MO.exists(), f"{MO.relative_to(ROOT)} is missing. {FIX}"
    fresh = tmp_path / "django.mo"
    # --check-format, as compilemessages does: placeholders must match their msgid.
    result = subprocess.run(
        ["msgfmt", "--check-format", "-o", str(fresh), str(PO)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"{PO.relative_to(ROOT)} does not compile:\n{result.stderr}"

    with fresh.open("rb") as handle:
        expected = gettext.GNUTranslations(handle)._catalog
    with MO.open("rb") as handle:
        committed = gettext.GNUTranslations(handle)._catalog
    # The header ("") counts without its dates, which makemessages bumps on every run.
    for catalog in (expected, committed):
        catalog[""] = "".join(
            line
            for line in catalog.get("", "").splitlines(keepends=True)
            if not line.startswith(("POT-Creation-Date:", "PO-Revision-Date:"))
        )
    differing = sorted(
        repr(key)
        for key in expected.keys() | committed.keys()
        if expected.get(key) != committed.get(key)
    )
    if differing:
        pytest.fail(
            f"{MO.relative_to(ROOT)} does not match django.po for {len(differing)} string(s):\n"
            + "\n".join(f"  - {key}" for key in differing)
            + "\nRun `make messages` to recompile it, and commit django.mo with django.po.",
            pytrace=False,
        )


@pytest.mark.django_db  # the home page may read the inventory or the session
def test_pages_change_language():
    def home(language: str) -> str:
        client = Client()
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
        response = client.get("/")
        assert response.status_code == 200
        return response.content.decode()

    with translation.override(translation.get_language()):  # leave the language as found
        portuguese = home("pt-br")
        english = home("en")

    assert '<html lang="pt-br">' in portuguese
    assert "Seus dados, sua escolha" in portuguese
    assert "Saiba antes de compartilhar" in portuguese
    assert "Your data, your choice" not in portuguese

    assert '<html lang="en">' in english
    assert "Your data, your choice" in english
    assert "Seus dados, sua escolha" not in english
    assert "Saiba antes de compartilhar" not in english
