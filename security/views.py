from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from security import signing
from security.keyring import signing_key


@require_GET
def public_key(request: HttpRequest) -> HttpResponse:
    """The certificate signing key (PEM), public so anyone can verify a certificate."""
    response = HttpResponse(
        signing.public_key_pem(signing_key().public_key()), content_type="application/x-pem-file"
    )
    response["X-Key-Fingerprint"] = signing.public_key_fingerprint(signing_key().public_key())
    return response
