"""Files that a worker builds through the outbox and staff or people download
later: a person's copy (rights/exports.py) and the auditor's evidence export
(insight/evidence.py) share these parts.

- A build writes `<uuid>.zip.part` and renames it into place (`finish`), so a
  reader never sees half a file; a failed attempt leaves nothing on disk.
- `Progress` writes how far a build is on its row (progress 0-100 and a step,
  while the row is `building`) at most every PROGRESS_EVERY seconds, and keeps
  the outbox lease of its row: LeaseLost when another worker took it over.
- `run_batch` is the outbox handler's loop for one kind of such file.
- Files are deleted once the transaction that lets go of them commits.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core import signing
from django.db import models, transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

# How often a build writes its progress (and renews its lease) at most.
PROGRESS_EVERY = 0.5  # seconds
BUILDING = "building"


class LeaseLost(Exception):
    """Another worker took this build over (our lease ran out): stop, leave it."""


def remove(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def remove_on_commit(paths: Iterable[Path]) -> None:
    """Delete these files once the transaction that let go of them commits (a
    rollback keeps a file its row still names)."""
    paths = list(paths)
    transaction.on_commit(lambda: remove(*paths))


def strays_remove(root: Path, keep: set[str], *, older_than: float) -> int:
    """Files directly under `root` whose name (before its first dot) is not in
    `keep` and older than `older_than` seconds: what a worker killed mid-build,
    or a crash between a commit and its deletion, left behind."""
    if not root.is_dir():
        return 0
    cutoff = time.time() - older_than
    removed = 0
    for path in root.iterdir():
        name = path.name.split(".", 1)[0]
        if path.is_file() and name not in keep and path.stat().st_mtime < cutoff:
            remove(path)
            removed += 1
    return removed


# Sweeps of stray files, one per kind, run by the daily retention task
# (rights.tasks.retention_enforce); each app registers its own in ready().
stray_sweeps: list[Callable[[], int]] = []


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def finish(part: Path, final: Path, write: Callable[[Path], None]) -> tuple[int, str]:
    """write(part), then make it private and rename it to `final`; returns its
    size and SHA-256. On any failure the part is removed and the error raised."""
    try:
        write(part)
        os.chmod(part, 0o600)
        size, digest = part.stat().st_size, sha256_of(part)
        os.replace(part, final)
    except BaseException:
        remove(part)
        raise
    return size, digest


class Progress:
    """Writes how far a build is on its row, at most every PROGRESS_EVERY
    seconds, and keeps the outbox lease of its row (raising LeaseLost when
    another worker has it, or when the row stopped being built). `ceiling` is
    the percentage the counted rows reach; the rest is for what follows them."""

    def __init__(self, row: models.Model, total: int, keep_alive, *, ceiling: int = 90) -> None:
        self.export = row
        self.total = max(total, 1)
        self.done = 0
        self.keep_alive = keep_alive
        self.ceiling = ceiling
        self._last = 0.0

    def step(self, step: str, rows: int = 1, *, force: bool = False) -> None:
        self.done += rows
        now = time.monotonic()
        if not force and now - self._last < PROGRESS_EVERY:
            return
        self._last = now
        if self.keep_alive is not None:
            self.keep_alive()
        percent = min(self.ceiling, int(self.ceiling * self.done / self.total))
        updated = (
            type(self.export)
            .objects.filter(pk=self.export.pk, status=BUILDING)
            .update(progress=percent, step=step[:40])
        )
        if not updated:
            raise LeaseLost(str(self.export.uuid))


def run_batch(
    batch,
    *,
    payload_key: str,
    build: Callable[..., object],
    attempt_failed: Callable[..., None],
    what: str,
) -> None:
    """The outbox handler of a kind of built file (one row per claim): build
    each row's file, keeping the lease; a failure goes back to the outbox
    (with backoff) and, after its last attempt, marks the row failed."""
    for item in batch:
        uuid = str(item.payload.get(payload_key, ""))

        def keep_alive(item=item, uuid=uuid) -> None:
            batch.keep_alive()
            if not batch.holds(item):
                raise LeaseLost(uuid)

        try:
            build(uuid, attempt=item.attempts, keep_alive=keep_alive)
        except LeaseLost:
            logger.warning("%s %s was taken over by another worker", what, uuid)
            continue
        except Exception as exc:
            logger.exception("%s %s could not be built (attempt %s)", what, uuid, item.attempts)
            error = f"{type(exc).__name__}: {exc}"
            attempt_failed(uuid, error=error, final=item.attempts >= settings.OUTBOX_MAX_ATTEMPTS)
            batch.failed(item, error)
            continue
        batch.sent(item)


# Download links -------------------------------------------------------------------


def download_token(row: models.Model, *, salt: str) -> str:
    """A signed link's token: names this file (the row's uuid) and its content
    (the start of its SHA-256), so that a rebuilt file needs a new link."""
    return signing.dumps({"e": str(row.uuid), "h": row.sha256[:16]}, salt=salt)


def downloadable(
    row: models.Model, token: str, *, salt: str, days: int, ready: str, path: Path, now=None
) -> bool:
    """The link is genuine, for this file as it is now, not older than `days`,
    and the file is ready, before its end, and there."""
    try:
        data = signing.loads(token, salt=salt, max_age=timedelta(days=days))
    except signing.BadSignature:
        return False
    now = now or timezone.now()
    return (
        data.get("e") == str(row.uuid)
        and data.get("h") == row.sha256[:16]
        and row.status == ready
        and row.expires_at is not None
        and now < row.expires_at
        and path.is_file()
    )
