"""Restore a job's original upload from its encrypted archive (custodian or owner key)."""

from __future__ import annotations

import getpass
import logging
import os
import secrets
import uuid
from pathlib import Path

from crypt4gh import sodium
from django.core.management.base import BaseCommand, CommandError

from jobs import errors
from jobs.models import Job, JobStatus
from security import keys, vault
from security.models import DeletionCertificate

logger = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"


class Command(BaseCommand):
    help = (
        "Decrypt JOB's archive with a recipient's Crypt4GH secret key and write the original "
        "bytes, checked against the length and SHA-256 recorded for the job and its "
        "certificate. Writes nothing unless the whole file checks out. Staff/custodian only: "
        "the output is the plaintext upload."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("job", help="the job id (UUID)")
        parser.add_argument(
            "--sk",
            type=Path,
            required=True,
            help="Crypt4GH secret key of a recipient (custodian, or the owner's); a "
            "passphrase-protected key reads C4GH_PASSPHRASE or asks",
        )
        parser.add_argument(
            "--output",
            type=Path,
            required=True,
            # Required: restored plaintext must land where the custodian chose, never by
            # default in whatever directory the command happened to run from.
            help="file to write the restored original bytes to",
        )
        parser.add_argument("--force", action="store_true", help="replace --output if it exists")

    def handle(self, *args, job: str, sk: Path, output: Path, force: bool, **options):
        record = self._job(job)
        archive_path = self._archive_path(record)
        expected_sha256, expected_length, recipients = self._expected(record)
        secret_key = self._secret_key(sk)

        target = Path(output)
        if target.exists() and not force:
            raise CommandError(f"{target} exists; choose another --output or pass --force")
        # Plaintext goes to a private temporary file beside the target and is renamed into
        # place only after its length and SHA-256 are checked: a damaged or truncated archive
        # leaves no partial output behind.
        temporary = target.with_name(f".{target.name}.{secrets.token_hex(8)}.partial")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            with archive_path.open("rb") as archive, os.fdopen(fd, "wb") as out:
                length, sha256 = vault.decrypt_archive(
                    archive,
                    out,
                    secret_key=secret_key,
                    expected_length=expected_length,
                    expected_sha256=expected_sha256,
                )
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except vault.ArchiveKeyError as exc:
            if keys.fingerprint(sodium.derive_pk(secret_key)) in recipients:
                raise CommandError(
                    f"the archive of job {record.job_id} is damaged: {sk} is one of its listed "
                    "recipients, yet no header packet opens with it. Nothing was written."
                ) from exc
            raise CommandError(
                f"the key {sk} is not a recipient of this archive (it opens no header packet)"
            ) from exc
        except vault.ArchiveIntegrityError as exc:
            raise CommandError(
                f"the archive of job {record.job_id} is damaged, truncated or altered: {exc}. "
                "Nothing was written."
            ) from exc
        except vault.VaultStorageError as exc:
            raise CommandError(f"not enough space to write {target}. Nothing was written.") from exc
        except OSError as exc:
            raise CommandError(f"cannot write {target}: {exc.strerror or exc}") from exc
        finally:
            temporary.unlink(missing_ok=True)

        # An audit trail of plaintext leaving the vault: the job id only, never the content.
        logger.warning("archive decrypted to a file", extra={"job_id": str(record.job_id)})
        self.stdout.write(
            f"Restored {length} bytes to {target} (SHA-256 {sha256}, as recorded for the job "
            "and its certificate)."
        )

    @staticmethod
    def _job(raw: str) -> Job:
        try:
            job_id = uuid.UUID(raw)
        except ValueError as exc:
            raise CommandError(errors.INVALID_UUID.message) from exc
        try:
            return Job.objects.get(pk=job_id)
        except Job.DoesNotExist as exc:
            raise CommandError(f"{errors.JOB_NOT_FOUND.message}: {job_id}") from exc

    @staticmethod
    def _archive_path(job: Job) -> Path:
        if job.status == JobStatus.DELETED:
            destroyed = (job.results.get("archive") or {}).get("destroyed_at", "")
            raise CommandError(
                f"the archive of job {job.job_id} was destroyed at the end of its retention "
                f"period {destroyed}".rstrip()
            )
        if job.status != JobStatus.COMPLETED or not job.encrypted_path:
            raise CommandError(
                f"job {job.job_id} has no archive (status {job.status}; only completed jobs "
                "keep one)"
            )
        path = Path(job.encrypted_path)
        if not path.is_file():
            raise CommandError(f"the archive of job {job.job_id} is missing: {path}")
        return path

    @staticmethod
    def _expected(job: Job) -> tuple[str, int, list[str]]:
        """SHA-256 and length the restored bytes must have, from the job and its certificate
        (which must agree), and the archive's recipient key fingerprints."""
        if not job.file_sha256:
            raise CommandError(f"job {job.job_id} records no plaintext SHA-256 to check against")
        try:
            payload = job.certificate.payload
        except DeletionCertificate.DoesNotExist as exc:
            raise CommandError(f"job {job.job_id} has no deletion certificate") from exc
        if payload.get("plaintext_sha256") != job.file_sha256:
            raise CommandError(
                f"job {job.job_id}: the certificate's plaintext SHA-256 differs from the job's"
            )
        length = payload.get("plaintext_length")
        if not isinstance(length, int):
            raise CommandError(f"the certificate of job {job.job_id} records no plaintext length")
        recipients = (payload.get("archive") or {}).get("recipient_fingerprints") or []
        return job.file_sha256, length, recipients

    @staticmethod
    def _secret_key(path: Path) -> bytes:
        try:
            return keys.load_crypt4gh_secret_key(path)
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}") from exc
        except ValueError as exc:
            if "passphrase" not in str(exc):
                raise CommandError(f"{path} is not a Crypt4GH secret key: {exc}") from exc
        return _passphrase_protected_key(path)


def _passphrase_protected_key(path: Path) -> bytes:
    from crypt4gh.keys import get_private_key

    def passphrase() -> str:
        return os.environ.get("C4GH_PASSPHRASE") or getpass.getpass(f"Passphrase for {path}: ")

    try:
        return get_private_key(str(path), passphrase)
    except SystemExit as exc:  # crypt4gh exits on a wrong passphrase
        raise CommandError(f"the passphrase does not open {path}") from exc
    except ValueError as exc:
        raise CommandError(f"{path} is not a Crypt4GH secret key: {exc}") from exc


def _starts_with(path: Path, prefix: bytes) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(prefix)) == prefix
