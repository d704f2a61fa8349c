"""W3C Data Privacy Vocabulary (DPV) terms: the codes the portal publishes are
checked against the term list of one DPV release, shipped with the app."""

from __future__ import annotations

import difflib
from functools import cache
from pathlib import Path

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible
from django.utils.translation import gettext_lazy as _

DPV_RELEASE = "2.3"
TERMS_FILE = Path(__file__).parent / "data" / f"dpv-{DPV_RELEASE}-terms.txt"


@cache
def dpv_terms() -> frozenset[str]:
    """Every concept name of the release (`dpv:` core and `pd:` personal data)."""
    lines = TERMS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


@deconstructible
class DPVTermValidator:
    """Refuses a code that is not a term of the shipped DPV release, or that
    has the wrong prefix for the field (pd: for data, dpv: for purposes)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self, value: str) -> None:
        if not value:
            return
        if not value.startswith(f"{self.prefix}:"):
            raise ValidationError(
                _("A code here starts with “%(prefix)s:”, for example %(example)s."),
                code="dpv_prefix",
                params={"prefix": self.prefix, "example": self._example()},
            )
        if value in dpv_terms():
            return
        same_prefix = [t for t in dpv_terms() if t.startswith(f"{self.prefix}:")]
        close = difflib.get_close_matches(value, same_prefix, n=3, cutoff=0.6)
        if close:
            raise ValidationError(
                _("“%(code)s” is not a term of W3C DPV %(release)s. Did you mean %(close)s?"),
                code="dpv_unknown",
                params={"code": value, "release": DPV_RELEASE, "close": ", ".join(close)},
            )
        raise ValidationError(
            _("“%(code)s” is not a term of W3C DPV %(release)s (see https://w3id.org/dpv)."),
            code="dpv_unknown",
            params={"code": value, "release": DPV_RELEASE},
        )

    def _example(self) -> str:
        return "pd:EmailAddress" if self.prefix == "pd" else "dpv:Personalisation"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DPVTermValidator) and other.prefix == self.prefix
