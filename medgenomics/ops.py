"""Operations endpoints: /metrics (Prometheus) and /healthz, for monitoring only.

Neither is public: they answer to the configured monitoring addresses or to a bearer token
(MEDGENOMICS_OPS_ALLOWED_IPS, MEDGENOMICS_OPS_TOKEN), and 404 to anyone else.
"""

from __future__ import annotations

import hmac
import shutil
import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django_prometheus.exports import ExportToDjangoView


def _allowed(request: HttpRequest) -> bool:
    token = settings.MEDGENOMICS_OPS_TOKEN
    if token and hmac.compare_digest(request.headers.get("Authorization", ""), f"Bearer {token}"):
        return True
    return request.META.get("REMOTE_ADDR") in settings.MEDGENOMICS_OPS_ALLOWED_IPS


def metrics(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        raise Http404
    return ExportToDjangoView(request)


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def _check_channel_layer() -> str:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    probe = {"type": "health.probe", "id": uuid.uuid4().hex}
    async_to_sync(layer.send)(channel, probe)
    received = async_to_sync(layer.receive)(channel)
    return "ok" if received.get("id") == probe["id"] else "message lost"


def _check_broker() -> str:
    if not settings.REDIS_URL:
        return "not configured (embedded mode)"
    import redis

    redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2).ping()
    return "ok"


def _check_disk() -> str:
    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(settings.DATA_DIR).free
    if free < settings.MEDGENOMICS_MIN_FREE_BYTES:
        raise RuntimeError(f"only {free // 2**20} MiB free in the data directory")
    return f"ok ({free // 2**20} MiB free)"


def healthz(request: HttpRequest) -> JsonResponse:
    if not _allowed(request):
        raise Http404
    checks = {}
    healthy = True
    for name, check in (
        ("database", _check_database),
        ("channel_layer", _check_channel_layer),
        ("broker", _check_broker),
        ("disk", _check_disk),
    ):
        try:
            checks[name] = check()
        except Exception as exc:  # a health check reports, it never raises
            checks[name] = f"failed: {type(exc).__name__}: {exc}"[:200]
            healthy = False
    return JsonResponse(
        {"status": "ok" if healthy else "failing", "checks": checks}, status=200 if healthy else 503
    )
