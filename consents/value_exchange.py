"""What each purpose gives back, shown beside the choices (the control panel's
"What you get now") and on the home page.

Consents knows no benefit itself: the apps that give them (the demo shop,
shop.apps) register a provider, which reads the person's consent through the
API's services and answers the parts to show, each a template and its
context. No page can show a benefit whose consent is gone, because every
provider decides from the current state at every request.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Part:
    """One thing shown: a template (or "template.html#partial"), rendered with
    the usual context plus `benefit`, this part's own context."""

    template: str
    context: Mapping[str, object] = field(default_factory=dict)


@dataclass
class Benefits:
    panel: list[Part] = field(default_factory=list)  # inside "What you get now"
    home: list[Part] = field(default_factory=list)  # cards of their own on the home page

    def extend(self, other: Benefits) -> None:
        self.panel.extend(other.panel)
        self.home.extend(other.home)


Provider = Callable[[uuid.UUID], Benefits]

_providers: dict[str, Provider] = {}


def register(key: str, provider: Provider) -> None:
    """Add (or replace) a provider of benefits. From the app's AppConfig.ready()."""
    _providers[key] = provider


def benefits_for(*, subject_id: uuid.UUID) -> Benefits:
    """What the person gets now, from every registered provider in turn."""
    benefits = Benefits()
    for provider in _providers.values():
        benefits.extend(provider(subject_id))
    return benefits
