"""`make test` runs the suite in one process per core (pytest-xdist). Loaded
with `-p` (pyproject.toml), before Django reads its settings, this gives each
worker process what two portals on one machine would each have: cache keys of
its own in the shared Redis (tests/conftest.py clears a worker's keys between
tests, never another's) and a var/ folder of its own (signing keys made on
first use, the demo's broker and cache files). Each worker also has its own
test database (pytest-django adds the worker's name to it), and a Celery
worker a test starts inherits all three."""

from __future__ import annotations

import os
from pathlib import Path

_worker = os.environ.get("PYTEST_XDIST_WORKER")
if _worker:
    os.environ["CACHE_KEY_PREFIX"] = f"clareza-test-{_worker}"
    os.environ["VAR_DIR"] = str(Path(__file__).resolve().parents[1] / "var" / f"test-{_worker}")
