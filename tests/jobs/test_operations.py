"""Metrics, health, production settings and logs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import GENOMES, REPO_ROOT, upload, wait_for_final

pytestmark = pytest.mark.django_db(transaction=True)


def test_metrics_answer_the_monitoring_address_with_pipeline_figures(
    owner_client, inline_jobs, client
):
    wait_for_final(
        owner_client,
        upload(owner_client, GENOMES / "viral" / "phiX174_NC_001422.fa").json()["job_id"],
    )
    body = client.get("/metrics").content.decode()
    assert 'jobs_finished_total{status="completed"}' in body
    assert "job_stage_duration_seconds_bucket" in body and 'stage="vault"' in body
    assert "job_bytes_processed_total" in body
    assert "ids_threats_detected_total" in body or "# HELP ids_threats_detected_total" in body
    assert "django_http_requests_total" in body


def test_metrics_and_health_are_hidden_from_other_addresses(client, settings):
    settings.MEDGENOMICS_OPS_ALLOWED_IPS = ["10.9.9.9"]
    assert client.get("/metrics").status_code == 404
    assert client.get("/healthz").status_code == 404
    settings.MEDGENOMICS_OPS_TOKEN = "monitoring-token-for-tests"
    headers = {"Authorization": "Bearer monitoring-token-for-tests"}
    assert client.get("/metrics", headers=headers).status_code == 200


def test_health_checks_database_channel_layer_broker_and_disk(client, settings):
    response = client.get("/healthz")
    assert response.status_code == 200, response.content
    checks = response.json()["checks"]
    assert checks["database"] == "ok" and checks["channel_layer"] == "ok"
    assert checks["disk"].startswith("ok")
    settings.MEDGENOMICS_MIN_FREE_BYTES = 2**62
    failing = client.get("/healthz")
    assert failing.status_code == 503 and failing.json()["checks"]["disk"].startswith("failed")


def test_check_deploy_is_clean_with_the_documented_production_settings(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "DEBUG")
    } | {
        "DJANGO_SETTINGS_MODULE": "medgenomics.settings",
        "MEDGENOMICS_DATA_DIR": str(tmp_path),
        "SECRET_KEY": "x" * 30 + "production-secret-with-enough-entropy-9f8e7d6c5b4a",
        "ALLOWED_HOSTS": "genomics.example.org",
        "SECURE_COOKIES": "1",
        "SECURE_SSL_REDIRECT": "1",
        "SECURE_HSTS_SECONDS": "31536000",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
        "SECURE_HSTS_PRELOAD": "1",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_pages_carry_a_content_security_policy(owner_client):
    policy = owner_client.get("/jobs/upload/")["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
