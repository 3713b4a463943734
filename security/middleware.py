from __future__ import annotations

from jobs import errors
from medgenomics.metrics import BLOCKED_REQUESTS
from security.events import address_is_blocked


class BlockedAddressMiddleware:
    """Refuses blocked addresses inside Django too. Under uvicorn the ASGI guard has already
    refused them before the body was read; this covers every other way in (WSGI, test client)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        scope = getattr(request, "scope", {})
        if not scope.get("medgenomics.address_checked") and address_is_blocked(
            request.META.get("REMOTE_ADDR")
        ):
            BLOCKED_REQUESTS.inc()
            return errors.error_response(errors.ACCESS_DENIED)
        return self.get_response(request)
