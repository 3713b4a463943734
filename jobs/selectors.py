"""Read queries and the JSON shapes of the API (DESIGN.md, "Response shapes")."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.db.models import QuerySet
from django.utils import timezone

from jobs import errors
from jobs.models import Job, JobStatus
from jobs.stages import STAGE_BY_NAME


def parse_job_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(raw))
    except ValueError as exc:
        raise errors.JobError(errors.INVALID_UUID) from exc


def job_for_user(user, raw_job_id: str) -> Job:
    """The user's own job; anyone else's answers exactly like a job that does not exist."""
    job_id = parse_job_id(raw_job_id)
    try:
        return Job.objects.select_related("owner").get(pk=job_id, owner=user)
    except Job.DoesNotExist as exc:
        raise errors.JobError(errors.JOB_NOT_FOUND) from exc


def jobs_of_user(user, *, status: str | None = None) -> QuerySet[Job]:
    jobs = Job.objects.filter(owner=user)
    if status:
        jobs = jobs.filter(status=status)
    return jobs.order_by("-received")


def recent_upload_count(user, *, window: timedelta) -> int:
    return Job.objects.filter(owner=user, received__gte=timezone.now() - window).count()


def _iso(moment) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def status_document(job: Job) -> dict:
    document = {
        "job_id": str(job.job_id),
        "status": job.status,
        "progress": job.progress,
        "message": job.message,
        "attempts": job.attempts,
        "stages": job.stages,
        "received": _iso(job.received),
        "updated": _iso(job.updated_at),
    }
    if job.status == JobStatus.FAILED:
        document["message"] = job.error_message
        document["detail"] = job.error_detail or None
        document["error_status"] = job.error_status_code
    return document


def result_document(job: Job) -> dict:
    """The seed's nested shape, with more beside it. Values of stages that did not run are
    null, never a stand-in."""
    analysis = job.results.get("analysis", {})
    species_ran = job.species is not None
    return {
        "job_id": str(job.job_id),
        "filename": job.filename,
        "status": job.status,
        "completed_at": _iso(job.completed),
        "results": {
            # The seed's list: markers found. The whole panel, with "not found" and "not
            # screened" (no reference sequence), is beside it.
            "genetic_markers": (
                None
                if job.markers is None
                else [marker for marker in job.markers if marker["status"] == "found"]
            ),
            "marker_panel": job.markers,
            "species_analysis": {
                "predicted_species": job.species if species_ran else None,
                "confidence": job.results.get("species", {}).get("confidence")
                if species_ran
                else None,
                "gc_content": job.gc_content,
                "sequence_characteristics": {
                    "length": job.sequence_length,
                    "k_mer_diversity": job.k_mer_count,
                    "distinct_k_mers": analysis.get("distinct_k_mers"),
                    "quality_score": job.quality_score,
                    "record_count": analysis.get("record_count"),
                    "format": job.file_format,
                },
            },
            "quality": {
                key: analysis.get(key)
                for key in (
                    "phred_offset",
                    "mean_quality",
                    "q20_fraction",
                    "q30_fraction",
                    "n50",
                )
            },
            "security": {
                "ids_passed": job.ids_passed,
                "aml_passed": job.aml_passed,
                "security_score": job.security_score,
                "policy_version": job.policy_version,
            },
            "metadata": {
                "processing_time_ms": job.processing_time_ms,
                "security_score": job.security_score,
                "encryption_method": job.encryption_method,
                "encryption_key_hash": job.encryption_key_hash,
                "archive_size": job.archive_size,
                "compression_ratio": job.compression_ratio,
                "plaintext_sha256": job.file_sha256,
                "archive_retained_until": _iso(job.archive_expires),
                "recipients": job.results.get("archive", {}).get("recipients", []),
            },
            "stages": [
                {**entry, "progress": STAGE_BY_NAME[entry["name"]].progress} for entry in job.stages
            ],
            "analysis": analysis or None,
        },
    }
