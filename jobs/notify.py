"""Tell a job's websocket group that the job row changed.

The message is only a nudge to re-render from the database (the row is the source of truth), so
a lost or late message loses nothing. In the embedded mode the send is scheduled on the server's
own event loop: ``async_to_sync`` from a worker thread would use a different loop, where the
in-memory channel layer can lose deliveries (DESIGN.md, Concurrency). A Celery worker process
has no server loop and sends through Redis with ``async_to_sync``.
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

logger = logging.getLogger(__name__)

_server_loop: asyncio.AbstractEventLoop | None = None


def remember_server_loop() -> None:
    """Called from async code running on the server's loop (the websocket consumer)."""
    global _server_loop
    _server_loop = asyncio.get_running_loop()


def group_name(job_id) -> str:
    return f"job-{job_id}"


def notify_job_changed(job) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "job.changed", "job_id": str(job.job_id), "status": job.status}
    try:
        if settings.REDIS_URL:
            async_to_sync(layer.group_send)(group_name(job.job_id), message)
        elif _server_loop is not None and not _server_loop.is_closed():
            asyncio.run_coroutine_threadsafe(
                layer.group_send(group_name(job.job_id), message), _server_loop
            )
    except Exception:  # a notification must never fail the job
        logger.warning("could not notify job group", extra={"job_id": str(job.job_id)})
