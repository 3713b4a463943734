"""The pipeline's own Prometheus metrics (beside django-prometheus's)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

IDS_THREATS = Counter(
    "ids_threats_detected_total", "Threats found by the IDS stage, by type", ["threat_type"]
)
AML_DETECTIONS = Counter("aml_detections_total", "Uploads failed by the AML stage")
BLOCKED_REQUESTS = Counter("blocked_requests_total", "Requests refused from blocked addresses")
JOBS_FINISHED = Counter("jobs_finished_total", "Jobs that reached a final status", ["status"])
BYTES_PROCESSED = Counter("job_bytes_processed_total", "Uploaded bytes of completed jobs")
STAGE_SECONDS = Histogram(
    "job_stage_duration_seconds",
    "Time spent in each pipeline stage",
    ["stage"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
ACTIVE_JOBS = Gauge(
    "jobs_active", "Jobs being processed by this process", multiprocess_mode="livesum"
)
