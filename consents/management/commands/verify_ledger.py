from __future__ import annotations

import json
import tempfile
import urllib.request
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from consents import ledger

FETCH_TIMEOUT = 30  # seconds


class Command(BaseCommand):
    help = (
        "Prove that no consent event was changed, deleted, inserted or reordered: "
        "recompute every event's hash, the notices' and policies' texts and the Merkle tree, "
        "and check the tree against its last signed seal and against every signed "
        "checkpoint: those in the database and those given with --checkpoints (a file or "
        "the published URL) or carried by consent receipts (--receipt). "
        "Exits 0 when intact, 1 naming what was changed otherwise."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--chunk-size", type=int, default=5000, help="events read per query")
        parser.add_argument(
            "--checkpoints",
            action="append",
            default=[],
            metavar="PATH_OR_URL",
            help="checkpoints kept outside the database: the JSON-lines export "
            "(LEDGER_CHECKPOINT_FILE), a saved or live "
            "/.well-known/clareza-ledger-checkpoints.json; repeatable",
        )
        parser.add_argument(
            "--receipt",
            action="append",
            default=[],
            metavar="PATH",
            help="a consent receipt (.jws): the checkpoints it carries are checked too; repeatable",
        )

    def handle(self, *args, chunk_size: int, checkpoints: list[str], receipt: list[str], **opts):
        if chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1.")
        with tempfile.TemporaryDirectory() as folder:
            paths = [self._local(source, Path(folder)) for source in checkpoints]
            if receipt:
                paths.append(self._receipts_checkpoints(receipt, Path(folder)))
            verdict = ledger.verify(chunk_size=chunk_size, checkpoint_files=tuple(paths))
        for reason in verdict.untrusted:
            self.stderr.write(f"Untrusted checkpoint: {reason}")
        if not verdict.intact:
            raise CommandError(
                f"Ledger NOT intact: {verdict.problem}. "
                f"The first {verdict.count} event(s) verified before it."
            )
        if verdict.untrusted:
            raise CommandError(
                f"Ledger intact against {verdict.checkpoints} signed checkpoint(s), but "
                f"{len(verdict.untrusted)} checkpoint(s) carry no valid signature of this "
                "ledger and were not trusted: someone wrote them."
            )
        against = []
        if verdict.seals:
            against.append("its last signed seal")
        if verdict.checkpoints:
            against.append(f"{verdict.checkpoints} signed checkpoint(s)")
        waiting = (
            f" {verdict.unsealed} more event(s), checked, wait for the sealer."
            if verdict.unsealed
            else ""
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Ledger intact: {verdict.count} sealed event(s) verified"
                + (f" against {' and '.join(against)}." if against else ".")
                + waiting
            )
        )

    def _local(self, source: str, folder: Path) -> Path:
        """A checkpoint file, or the published list fetched into `folder`."""
        if source.startswith(("https://", "http://")):
            try:
                with urllib.request.urlopen(source, timeout=FETCH_TIMEOUT) as response:  # noqa: S310
                    body = response.read()
            except OSError as exc:
                raise CommandError(f"--checkpoints {source}: could not fetch it ({exc}).") from None
            path = folder / f"fetched-{len(list(folder.iterdir()))}.json"
            path.write_bytes(body)
            return path
        path = Path(source)
        if not path.is_file():
            raise CommandError(f"--checkpoints {path}: no such file.")
        return path

    def _receipts_checkpoints(self, receipts: list[str], folder: Path) -> Path:
        """The checkpoints the receipts carry (their proof's and the covering
        one), as a JSON-lines file. Receipts are read, not trusted: each
        checkpoint's own signature decides."""
        from consents.keys import public_jwks
        from consents.receipts import receipt_verify

        lines = []
        for name in receipts:
            path = Path(name)
            if not path.is_file():
                raise CommandError(f"--receipt {path}: no such file.")
            try:
                claims = receipt_verify(path.read_text().strip(), public_jwks())
            except Exception as exc:  # joserfc raises several kinds for a bad token
                raise CommandError(
                    f"--receipt {path}: not a receipt signed by this portal "
                    f"({exc.__class__.__name__})."
                ) from None
            proof = claims.get("inclusionProof") or {}
            for token in (proof.get("checkpoint"), (claims.get("coveredBy") or {}).get("token")):
                if isinstance(token, str):
                    lines.append(json.dumps({"token": token}))
        out = folder / "receipts.jsonl"
        out.write_text("\n".join(lines) + "\n")
        return out
