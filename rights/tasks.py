"""Beat tasks of the rights app."""

from __future__ import annotations

# Requests -----------------------------------------------------------------------


# Retention ----------------------------------------------------------------------
