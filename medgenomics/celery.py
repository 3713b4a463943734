"""Celery application for the scale-out mode (used when REDIS_URL is set)."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medgenomics.settings")

app = Celery("medgenomics")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def _serve_worker_metrics(**kwargs) -> None:
    """Each worker exposes its own Prometheus endpoint (it shares no memory with the web)."""
    from django.conf import settings
    from prometheus_client import start_http_server

    if settings.MEDGENOMICS_WORKER_METRICS_PORT:
        start_http_server(settings.MEDGENOMICS_WORKER_METRICS_PORT, addr="127.0.0.1")
