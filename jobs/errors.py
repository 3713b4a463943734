"""The error matrix of DESIGN.md: one status code and one message per case, in one place."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.http import JsonResponse


@dataclass(frozen=True)
class ErrorKind:
    code: str
    status: int
    message: str
    # Permanent errors (bad input, threats) never retry; transient ones (database, storage) do.
    permanent: bool = True


FILE_TOO_LARGE = ErrorKind("file_too_large", 400, "File exceeds 50MB limit")
NOT_SEQUENCE_FILE = ErrorKind("not_sequence_file", 400, "Only FASTA/FASTQ allowed")
IDS_THREAT = ErrorKind("ids_threat", 400, "IDS detected threats")
AML_TRIGGERED = ErrorKind("aml_triggered", 400, "AML defense triggered")
NO_FILE = ErrorKind("no_file", 400, "No file provided")
INVALID_UUID = ErrorKind("invalid_uuid", 400, "Invalid UUID format")
JOB_NOT_FOUND = ErrorKind("job_not_found", 404, "Job ID not found")
PROOF_UNAVAILABLE = ErrorKind("proof_unavailable", 404, "Deletion proof unavailable")
ENCRYPTION_FAILED = ErrorKind("encryption_failed", 500, "Encryption error occurred")
DATABASE_FAILED = ErrorKind("database_failed", 500, "Database operation failed", permanent=False)
ANALYSIS_FAILED = ErrorKind("analysis_failed", 500, "Analysis failed")
STORAGE_FULL = ErrorKind("storage_full", 507, "Insufficient storage", permanent=False)
MALFORMED = ErrorKind("malformed", 400, "Malformed sequence file")
AUTH_REQUIRED = ErrorKind("auth_required", 401, "Authentication required")
ACCESS_DENIED = ErrorKind("access_denied", 403, "Access denied")
TOO_MANY_UPLOADS = ErrorKind("too_many_uploads", 429, "Too many uploads")

ALL_KINDS = {
    kind.code: kind
    for kind in (
        FILE_TOO_LARGE,
        NOT_SEQUENCE_FILE,
        IDS_THREAT,
        AML_TRIGGERED,
        NO_FILE,
        INVALID_UUID,
        JOB_NOT_FOUND,
        PROOF_UNAVAILABLE,
        ENCRYPTION_FAILED,
        DATABASE_FAILED,
        ANALYSIS_FAILED,
        STORAGE_FULL,
        MALFORMED,
        AUTH_REQUIRED,
        ACCESS_DENIED,
        TOO_MANY_UPLOADS,
    )
}


class JobError(Exception):
    """A failure the user is told about in the matrix's words, with an optional detail."""

    def __init__(self, kind: ErrorKind, detail: str | None = None) -> None:
        super().__init__(kind.message if detail is None else f"{kind.message}: {detail}")
        self.kind = kind
        self.detail = detail


def error_body(kind: ErrorKind, *, detail: str | None = None, job_id: str | None = None) -> dict:
    body: dict = {
        "error": kind.message,
        "message": kind.message,
        "code": kind.code,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    if detail:
        body["detail"] = detail
    if job_id:
        body["job_id"] = job_id
    return body


def error_response(
    kind: ErrorKind,
    *,
    detail: str | None = None,
    job_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> JsonResponse:
    return JsonResponse(
        error_body(kind, detail=detail, job_id=job_id), status=kind.status, headers=headers
    )
