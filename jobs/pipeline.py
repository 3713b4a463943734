"""Runs one job through its stages, in order, recording progress, messages and durations.

Each stage is a function of the pipeline context. A ``JobError`` ends the job with the matrix
message (or schedules a retry when it is transient); whatever happens, the staged plaintext and
its key are destroyed when the job ends.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from datetime import datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from analysis.markers import MarkerConsumer
from analysis.panel import marker_panel
from analysis.parser import (
    FileTooLargeError,
    NotSequenceFileError,
    SequenceFileError,
    iter_records,
    open_decompressed,
    sniff_format,
)
from analysis.report import SequenceReport, analyse
from analysis.species import SpeciesConsumer
from jobs import errors, services
from jobs.models import Job, JobStatus
from jobs.stages import ANALYSIS_PROGRESS_END, STAGE_BY_NAME, STAGES
from medgenomics.metrics import ACTIVE_JOBS, AML_DETECTIONS, STAGE_SECONDS
from security import ids, keyring, staging, vault
from security.aml import AmlConsumer, AmlThresholds, AmlVerdict
from security.events import address_is_blocked, events_record
from security.policy import LoadedPolicy, policy_active, policy_load
from security.score import security_score

logger = logging.getLogger(__name__)

READ_SIZE = 1024 * 1024
# Record pseudonyms kept in the results (all records are pseudonymised; the list is capped).
RECORD_PSEUDONYMS_KEPT = 1000
# Findings named in the job's error detail (all of them are security events).
FINDINGS_IN_DETAIL = 5
PROGRESS_INTERVAL_SECONDS = 0.5


class Outcome(Enum):
    COMPLETED = "completed"
    FAILED = "failed"
    RETRY = "retry"
    SKIPPED = "skipped"


@dataclass
class RunResult:
    outcome: Outcome
    retry_after: timedelta | None = None


@dataclass
class PipelineContext:
    job: Job
    data_key: bytes
    started: datetime
    plaintext_sha256: str | None = None
    plaintext_length: int | None = None
    report: SequenceReport | None = None
    policy: LoadedPolicy | None = None
    ids_report: ids.IdsReport | None = None
    privacy: dict | None = None
    aml_verdict: AmlVerdict | None = None
    species: dict | None = None
    markers: list[dict] | None = None
    archive: vault.ArchiveInfo | None = None
    recipients: list[keyring.Recipient] = field(default_factory=list)

    def open_upload(self) -> BinaryIO:
        return staging.StagingReader(Path(self.job.staging_path), self.data_key)


# --- stages ------------------------------------------------------------------------------


class _HashingReader:
    """Passes reads through, hashing and counting every byte that goes by."""

    def __init__(self, source: BinaryIO) -> None:
        self.source = source
        self.digest = hashlib.sha256()
        self.length = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.source.read(size)
        self.digest.update(chunk)
        self.length += len(chunk)
        return chunk

    def readinto(self, buffer) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def stage_validation(context: PipelineContext) -> None:
    """Read the staged upload once: its SHA-256 and length, the decompressed size against the
    limit, gzip integrity, and that the content is FASTA/FASTQ."""
    with context.open_upload() as upload:
        raw = _HashingReader(upload)
        decompressed = open_decompressed(raw, max_bytes=settings.MEDGENOMICS_MAX_UPLOAD_BYTES)
        context.job.file_format = sniff_format(decompressed.read(4096))
        while decompressed.read(READ_SIZE):
            pass
        while raw.read(READ_SIZE):  # bytes after the end of the gzip stream are hashed too
            pass
    context.plaintext_sha256 = raw.digest.hexdigest()
    context.plaintext_length = raw.length


def stage_policy(context: PipelineContext) -> None:
    policy = policy_active()
    context.policy = policy_load(policy)
    context.job.policy_version = policy.version


def stage_access(context: PipelineContext) -> None:
    """Authentication, rate limit and blocklist were enforced before the upload was read; they
    are checked again here because time passes between upload and processing: an account
    disabled, or an address blocked, in between must not get its file processed."""
    job = context.job
    if not job.owner.is_active:
        raise errors.JobError(
            errors.ACCESS_DENIED, "the account that uploaded this file is disabled"
        )
    if address_is_blocked(job.source_ip):
        raise errors.JobError(errors.ACCESS_DENIED, "the address this file came from is blocked")


def stage_ids(context: PipelineContext) -> None:
    job = context.job
    with context.open_upload() as upload:
        report = ids.scan(open_decompressed(upload), limits=context.policy.ids)
    context.ids_report = report
    job.ids_passed = report.passed
    if report.passed:
        return
    # Kept on the failed job (fixed signature labels, record and line numbers only) so the
    # owner sees every finding, not only those named in the error detail.
    job.results = {"ids": report.to_dict()}
    events_record(
        findings=report.findings,
        stage="ids",
        source_ip=job.source_ip,
        user=job.owner,
        job=job,
        blocking=context.policy.blocking,
    )
    named = "; ".join(
        f"{finding.threat_type} ({finding.pattern}) in record {finding.record}, line {finding.line}"
        if finding.record
        else f"{finding.threat_type} ({finding.pattern}) at line {finding.line}"
        for finding in report.findings[:FINDINGS_IN_DETAIL]
    )
    more = len(report.findings) - FINDINGS_IN_DETAIL
    raise errors.JobError(errors.IDS_THREAT, named + (f"; and {more} more" if more > 0 else ""))


def stage_privacy(context: PipelineContext) -> None:
    """Replace every record identifier by a keyed pseudonym (HMAC with the server secret).

    Nothing downstream stores a header: results name records by number and pseudonym only, and
    the file name was pseudonymised at upload (the real one is kept encrypted for its owner).
    """
    pseudonyms = []
    count = 0
    with context.open_upload() as upload:
        for record in iter_records(open_decompressed(upload)):
            count += 1
            pseudonym = keyring.pseudonymise(record.identifier, purpose="record")
            if len(pseudonyms) < RECORD_PSEUDONYMS_KEPT:
                pseudonyms.append({"record": record.number, "pseudonym": pseudonym})
    context.privacy = {
        "filename": context.job.filename,
        "records_pseudonymised": count,
        "record_pseudonyms": pseudonyms,
        "method": "HMAC-SHA256 with the deployment's pseudonym secret, first 80 bits",
    }


def stage_analysis(context: PipelineContext) -> None:
    job = context.job
    start = STAGE_BY_NAME["analysis"].progress
    span = ANALYSIS_PROGRESS_END - start
    total = max(1, job.upload_size)
    last_report = time.monotonic()

    def on_progress(bytes_read: int) -> None:
        nonlocal last_report
        now = time.monotonic()
        if now - last_report >= PROGRESS_INTERVAL_SECONDS:
            last_report = now
            services.job_report_progress(
                job, progress=start + span * min(bytes_read, total) // total
            )

    # The panel is read before the upload is opened: one query, then a pure scan.
    markers = MarkerConsumer(marker_panel())
    species = SpeciesConsumer()
    with context.open_upload() as upload:
        context.report = analyse(upload, k=3, consumers=[species, markers], on_progress=on_progress)
    context.species = species.result()
    context.markers = markers.result()


def stage_aml(context: PipelineContext) -> None:
    """Autoencoder + 3-mer structure test on whole windows. Too little sequence to assess is
    not a pass and not a failure: aml_passed stays None and the security score says so."""
    job = context.job
    known = {field.name for field in dataclass_fields(AmlThresholds)}
    overrides = {k: v for k, v in context.policy.aml_parameters.items() if k in known}
    thresholds = AmlThresholds.from_metadata(**overrides)
    consumer = AmlConsumer()
    with context.open_upload() as upload:
        for record in iter_records(open_decompressed(upload)):
            consumer.add(record)
    verdict = consumer.verdict(thresholds)
    context.aml_verdict = verdict
    job.aml_passed = verdict.passed
    if verdict.passed is not False:
        return
    AML_DETECTIONS.inc()
    events_record(
        findings=[
            ids.Finding(threat_type="adversarial_input", pattern="aml verdict", record=None, line=0)
        ],
        stage="aml",
        source_ip=job.source_ip,
        user=job.owner,
        job=job,
        blocking=context.policy.blocking,
    )
    raise errors.JobError(errors.AML_TRIGGERED, verdict.reason)


def stage_vault(context: PipelineContext) -> None:
    job = context.job
    context.recipients = list(keyring.custodian_recipients()) + _owner_recipients(job)
    settings.ARCHIVE_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    destination = settings.ARCHIVE_DIR / f"{job.job_id}.c4gh"
    try:
        with context.open_upload() as upload:
            info = vault.create_archive(
                upload,
                destination,
                recipient_public_keys=[recipient.public_key for recipient in context.recipients],
                zstd_level=settings.MEDGENOMICS_ZSTD_LEVEL,
            )
    except vault.VaultStorageError as exc:
        raise errors.JobError(errors.STORAGE_FULL) from exc
    except (vault.VaultEncryptionError, vault.ArchiveVerificationError) as exc:
        raise errors.JobError(errors.ENCRYPTION_FAILED) from exc
    job.encrypted_path = str(destination)
    if info.plaintext_sha256 != context.plaintext_sha256:
        raise errors.JobError(errors.ENCRYPTION_FAILED, "archive does not match the upload")
    context.archive = info


def stage_deletion(context: PipelineContext) -> None:
    """Runs inside ``services.job_complete``, which destroys the staged upload and its key and
    signs the certificate in the same step that stores the results."""


STAGE_FUNCTIONS: dict[str, Callable[[PipelineContext], None]] = {
    "validation": stage_validation,
    "policy": stage_policy,
    "access": stage_access,
    "ids": stage_ids,
    "privacy": stage_privacy,
    "aml": stage_aml,
    "analysis": stage_analysis,
    "vault": stage_vault,
    "deletion": stage_deletion,
}


def _owner_recipients(job: Job) -> list[keyring.Recipient]:
    from security.keys import crypt4gh_public_key_from_text

    profile = getattr(job.owner, "profile", None)
    if profile is None or not profile.crypt4gh_public_key.strip():
        return []
    return [keyring.Recipient("owner", crypt4gh_public_key_from_text(profile.crypt4gh_public_key))]


# --- running -------------------------------------------------------------------------------


def run_job(job_id) -> RunResult:
    """Run (or re-run) a job once. Retries are the caller's: the thread pool or Celery."""
    try:
        job = Job.objects.select_related("owner").get(pk=job_id)
    except Job.DoesNotExist:
        return RunResult(Outcome.SKIPPED)
    if job.status not in (JobStatus.VALIDATING, JobStatus.RETRYING, JobStatus.PROCESSING):
        return RunResult(Outcome.SKIPPED)
    try:
        job = services.job_begin_attempt(job_id=job.pk)
    except services.JobSuperseded:
        return RunResult(Outcome.SKIPPED)
    context = PipelineContext(job=job, data_key=b"", started=timezone.now())
    with ACTIVE_JOBS.track_inprogress():
        return _run_attempt(context)


def _run_attempt(context: PipelineContext) -> RunResult:
    job = context.job
    try:
        context.data_key = _unwrap(job)
        for stage in STAGES:
            run_stage(context, stage.name)
        services.job_complete(
            job=job,
            fields=result_fields(context),
            results=result_document(context),
            plaintext_sha256=context.plaintext_sha256,
            plaintext_length=context.plaintext_length,
            archive_fingerprints=[recipient.fingerprint for recipient in context.recipients],
            processing_started=context.started,
        )
        return RunResult(Outcome.COMPLETED)
    except services.JobSuperseded:
        logger.warning("attempt superseded; stopping", extra={"job_id": str(job.job_id)})
        return RunResult(Outcome.SKIPPED)
    except errors.JobError as error:
        return _end_in_error(context, error)
    except DatabaseError:
        logger.exception("database failure", extra={"job_id": str(job.job_id)})
        connection.close()  # the next query opens a fresh connection
        return _end_in_error(context, errors.JobError(errors.DATABASE_FAILED))
    except Exception:
        logger.exception("unexpected pipeline failure", extra={"job_id": str(job.job_id)})
        return _end_in_error(context, errors.JobError(errors.ANALYSIS_FAILED))


def run_stage(context: PipelineContext, stage_name: str) -> None:
    info = STAGE_BY_NAME[stage_name]
    implementation = STAGE_FUNCTIONS.get(stage_name)
    if implementation is None:
        return
    job = context.job
    services.job_enter_stage(
        job, stage_name=stage_name, progress=info.progress, message=info.message
    )
    started = time.perf_counter()
    try:
        implementation(context)
    except Exception as exc:
        services.job_leave_stage(
            job, stage_name=stage_name, status="failed", duration_ms=_ms(started)
        )
        failure = _matrix_error(exc)
        if failure is None:
            raise
        raise failure from exc
    services.job_leave_stage(job, stage_name=stage_name, status="done", duration_ms=_ms(started))
    STAGE_SECONDS.labels(stage=stage_name).observe(time.perf_counter() - started)


def _matrix_error(exc: Exception) -> errors.JobError | None:
    """The matrix error for a failure the cores raise; None for a JobError (already one) or
    anything unexpected, which the caller re-raises as it is."""
    if isinstance(exc, FileTooLargeError):
        return errors.JobError(errors.FILE_TOO_LARGE)
    if isinstance(exc, NotSequenceFileError):
        return errors.JobError(errors.NOT_SEQUENCE_FILE, exc.detail)
    if isinstance(exc, SequenceFileError):
        return errors.JobError(errors.MALFORMED, exc.detail)
    if isinstance(exc, staging.StagingIntegrityError):
        return errors.JobError(
            errors.ENCRYPTION_FAILED, "the staged upload failed its integrity check"
        )
    if isinstance(exc, OSError):
        return errors.JobError(errors.STORAGE_FULL, "the storage area could not be read or written")
    return None


def _unwrap(job: Job) -> bytes:
    if not job.wrapped_key or not job.staging_path or not Path(job.staging_path).exists():
        raise errors.JobError(errors.ENCRYPTION_FAILED, "the staged upload is no longer available")
    return staging.unwrap_key(
        keyring.staging_kek(), bytes(job.wrapped_key), context=str(job.job_id).encode()
    )


def _end_in_error(context: PipelineContext, error: errors.JobError) -> RunResult:
    job = context.job
    try:
        if not error.kind.permanent and job.attempts < services.MAX_ATTEMPTS:
            delay = _with_reconnect(lambda: services.job_schedule_retry(job=job, error=error))
            return RunResult(Outcome.RETRY, retry_after=delay)
        _with_reconnect(
            lambda: services.job_fail(
                job=job,
                error=error,
                plaintext_sha256=context.plaintext_sha256,
                plaintext_length=context.plaintext_length,
            )
        )
    except services.JobSuperseded:
        return RunResult(Outcome.SKIPPED)
    except DatabaseError:
        # The database stayed away: the job keeps its staged upload and its stale heartbeat
        # brings it back through the recovery sweep.
        logger.exception("could not record the outcome", extra={"job_id": str(job.job_id)})
        return RunResult(Outcome.SKIPPED)
    return RunResult(Outcome.FAILED)


def _with_reconnect(action, *, tries: int = 6, pause: float = 0.5):
    """Run a database write, reconnecting through a short outage (about 3 s)."""
    for attempt in range(tries):
        try:
            return action()
        except DatabaseError:
            if attempt == tries - 1:
                raise
            connection.close()
            time.sleep(pause)
    raise AssertionError("unreachable")


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


# --- results -------------------------------------------------------------------------------


def result_fields(context: PipelineContext) -> dict:
    report = context.report
    archive = context.archive
    primary = context.recipients[0] if context.recipients else None
    return {
        "gc_content": report.gc_content,
        "sequence_length": report.sequence_length,
        "k_mer_count": report.k_mer_count,
        "quality_score": report.quality_score,
        "species": context.species["predicted_species"],
        "markers": context.markers,
        "security_score": security_score(
            ids_passed=context.ids_report.passed,
            aml_passed=context.aml_verdict.passed,
            aml_flagged_fraction=context.aml_verdict.flagged_fraction,
            aml_max_flagged_fraction=context.aml_verdict.thresholds.max_flagged_fraction,
        ),
        "ids_passed": context.ids_report.passed,
        "aml_passed": context.aml_verdict.passed,
        "policy_version": context.policy.version,
        "encryption_method": archive.method,
        "encryption_key_hash": primary.fingerprint if primary else "",
        "archive_size": archive.archive_size,
        "compression_ratio": archive.compression_ratio,
    }


def result_document(context: PipelineContext) -> dict:
    """Everything the job page and /api/result show beyond the schema's columns."""
    return {
        "analysis": context.report.to_dict(),
        "ids": context.ids_report.to_dict(),
        "aml": context.aml_verdict.to_dict(),
        "species": context.species,
        "privacy": context.privacy,
        "archive": {
            "method": context.archive.method,
            "plaintext_length": context.archive.plaintext_length,
            "archive_size": context.archive.archive_size,
            "compression_ratio": context.archive.compression_ratio,
            "recipients": [
                {"label": recipient.label, "fingerprint": recipient.fingerprint}
                for recipient in context.recipients
            ],
        },
    }
