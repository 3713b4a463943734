"""Personal API tokens: create (shown once), revoke, and authenticate ``Authorization: Bearer``.

A token is 256 random bits behind a fixed prefix (``mgk_``), so secret scanners and people can
tell it apart from other credentials. Only its SHA-256 is stored: the token has full entropy, so
a plain hash is enough (a slow password hash would only make every API call slower), and the
lookup is a single indexed equality on the hash.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from jobs.models import ApiToken

TOKEN_PREFIX = "mgk_"  # noqa: S105 - a public marker, not a secret
# Writing last_used on every call would turn each read into a write; a minute is precise enough
# for "when was this token last used".
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class CreatedToken:
    token: ApiToken
    secret: str  # the only time the plaintext token exists outside its holder


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@transaction.atomic
def api_token_create(*, user, name: str) -> CreatedToken:
    """Make a token for ``user``; the returned secret is shown once and never stored."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name.strip(), token_hash=token_hash(secret))
    return CreatedToken(token=token, secret=secret)


@transaction.atomic
def api_token_revoke(*, user, token_id: int) -> bool:
    """Revoke one of ``user``'s tokens; False when it is not theirs or was already revoked."""
    updated = ApiToken.objects.filter(pk=token_id, user=user, revoked__isnull=True).update(
        revoked=timezone.now()
    )
    return bool(updated)


def api_token_user(secret: str):
    """The active user a bearer token belongs to, or None (unknown, revoked, inactive user)."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    try:
        token = ApiToken.objects.select_related("user").get(
            token_hash=token_hash(secret), revoked__isnull=True
        )
    except ApiToken.DoesNotExist:
        return None
    if not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used is None or now - token.last_used >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used=now)
    return token.user


def tokens_of_user(user):
    """Active tokens first (newest first), then revoked ones."""
    return ApiToken.objects.filter(user=user).order_by(
        F("revoked").asc(nulls_first=True), "-created"
    )
