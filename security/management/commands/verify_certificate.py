"""Check a deletion certificate (JSON) offline or against this server's signing key."""

from __future__ import annotations

import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from security import signing
from security.views import explain, parse_certificate


class Command(BaseCommand):
    help = (
        "Verify a deletion certificate: its Ed25519 signature and its deletion hash. Prints "
        "'valid' or every reason it is not, and exits non-zero when it is not valid."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help="certificate JSON file ('-' reads standard input)")
        parser.add_argument(
            "--public-key",
            type=Path,
            help="verification key (PEM, as served at /api/proof/public-key); "
            "default: this server's signing key",
        )

    def handle(self, *args, file: str, public_key: Path | None, **options) -> None:
        key = self._public_key(public_key)
        try:
            text = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from exc
        document, problem = parse_certificate(text)
        if document is None:
            raise CommandError(f"invalid: {problem}")
        verdict = explain(document, key)
        if not verdict.valid:
            raise CommandError(verdict.summary)
        self.stdout.write(
            f"{verdict.summary} (job {document.get('job_id')}, "
            f"key {signing.public_key_fingerprint(key)})"
        )

    @staticmethod
    def _public_key(path: Path | None):
        if path is not None:
            try:
                return signing.public_key_from_pem(path.read_bytes())
            except OSError as exc:
                raise CommandError(f"cannot read {path}: {exc.strerror}") from exc
            except ValueError as exc:
                raise CommandError(f"{path} is not an Ed25519 public key (PEM): {exc}") from exc
        # Never generate a key here: a fresh key would only ever say "different key".
        key_file = Path(settings.MEDGENOMICS_SIGNING_KEY_FILE)
        if not key_file.exists():
            raise CommandError(
                f"this server has no signing key at {key_file}; pass --public-key "
                "(the PEM served at /api/proof/public-key)"
            )
        from security.keyring import signing_key

        return signing_key().public_key()
