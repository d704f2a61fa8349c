"""Data-subject requests, and what the rights app keeps about them."""

from __future__ import annotations
