"""ASGI entry point: HTTP through the upload guard, websockets through Channels.

Served by uvicorn (see README, "Why uvicorn"): uvicorn hands the body to the app as it arrives,
so the guard below can refuse an oversize upload before reading it and Django's body spool can
be made to keep plaintext off the disk.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medgenomics.settings")

import django  # noqa: E402

django.setup(set_prefix=False)

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.db import database_sync_to_async  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.exceptions import RequestAborted  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402

from jobs import errors  # noqa: E402
from jobs.notify import remember_server_loop  # noqa: E402
from jobs.routing import websocket_urlpatterns  # noqa: E402
from jobs.runner import start_embedded_workers  # noqa: E402
from medgenomics.metrics import BLOCKED_REQUESTS  # noqa: E402
from security.events import address_is_blocked  # noqa: E402
from security.spool import EncryptedSpool  # noqa: E402


class PlaintextFreeASGIHandler(ASGIHandler):
    """Django's ASGI handler with a body spool that never writes plaintext to disk."""

    async def read_body(self, receive):
        spool = EncryptedSpool(directory=settings.FILE_UPLOAD_TEMP_DIR)
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                spool.close()
                raise RequestAborted()
            if "body" in message:
                spool.write(message["body"])
            if not message.get("more_body", False):
                break
        spool.seek(0)
        return spool


class UploadGuard:
    """Refuses a blocked address (403) and an over-limit body before Django reads anything.

    A declared ``Content-Length`` above the limit (plus room for the multipart envelope) is
    answered at once, unread. A body that grows past it while streaming (chunked transfer, or a
    lying header) stops being passed on: the rest is drained up to twice the limit, the 400 is
    sent, and the app sees a disconnect.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        client = scope.get("client") or (None, None)
        if await database_sync_to_async(address_is_blocked)(client[0]):
            BLOCKED_REQUESTS.inc()
            return await _send_error(send, errors.ACCESS_DENIED, close=True)
        scope["medgenomics.address_checked"] = True
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        max_body = settings.MEDGENOMICS_MAX_UPLOAD_BYTES + settings.MEDGENOMICS_MULTIPART_ALLOWANCE
        declared = _content_length(scope)
        if declared is not None and declared > max_body:
            return await _send_error(send, errors.FILE_TOO_LARGE, close=True)

        received = 0
        refused = False

        async def guarded_receive():
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] != "http.request":
                return message
            received += len(message.get("body", b""))
            if received <= max_body:
                return message
            refused = True
            drained = received
            more = message.get("more_body", False)
            while more and drained < 2 * settings.MEDGENOMICS_MAX_UPLOAD_BYTES:
                message = await receive()
                if message["type"] != "http.request":
                    break
                drained += len(message.get("body", b""))
                more = message.get("more_body", False)
            await _send_error(send, errors.FILE_TOO_LARGE, close=True)
            return {"type": "http.disconnect"}

        return await self.app(scope, guarded_receive, send)


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_error(send, kind: errors.ErrorKind, *, close: bool) -> None:
    body = json.dumps(errors.error_body(kind)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": kind.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Lifespan:
    """Start-up work of the embedded mode: jobs left unfinished by a previous server process
    (stopped or killed) are retried or failed, a periodic sweep catches stale ones later, and
    the server's event loop is remembered for websocket notifications (jobs/notify.py)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "lifespan":
            return await self.app(scope, receive, send)
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                remember_server_loop()
                await database_sync_to_async(start_embedded_workers)()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


application = Lifespan(
    ProtocolTypeRouter(
        {
            "http": UploadGuard(PlaintextFreeASGIHandler()),
            "websocket": AllowedHostsOriginValidator(
                AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
            ),
        }
    )
)
