"""Security events: record them, count them, block repeat offenders, alert the admins."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.core.mail import mail_admins
from django.db import transaction
from django.utils import timezone

from medgenomics.metrics import IDS_THREATS
from security.models import BlockedAddress, SecurityEvent
from security.policy import BlockingThresholds

logger = logging.getLogger(__name__)


def events_record(
    *,
    findings: list,
    stage: str,
    source_ip: str | None,
    user,
    job,
    blocking: BlockingThresholds,
) -> list[SecurityEvent]:
    """Store one event per finding, then block the address or alert if thresholds are crossed.

    ``findings`` carry a threat type, a fixed pattern label, a record and a line; nothing from
    the file itself is stored.
    """
    now = timezone.now()
    events = [
        SecurityEvent(
            occurred_at=now,
            threat_type=finding.threat_type,
            pattern=finding.pattern[:100],
            stage=stage,
            record=finding.record,
            line=finding.line,
            source_ip=source_ip,
            user=user,
            job=job,
        )
        for finding in findings
    ]
    with transaction.atomic():
        SecurityEvent.objects.bulk_create(events)
    if stage == "ids":
        for event in events:
            IDS_THREATS.labels(threat_type=event.threat_type).inc()
    logger.warning(
        "security events recorded",
        extra={"job_id": str(job.job_id) if job else None, "stage": stage, "events": len(events)},
    )
    if source_ip:
        _block_if_repeated(source_ip, now=now, blocking=blocking)
    _alert_if_crossed(now=now, added=len(events), blocking=blocking)
    return events


def _block_if_repeated(address: str, *, now, blocking: BlockingThresholds) -> None:
    since = now - timedelta(minutes=blocking.window_minutes)
    offending_uploads = (
        SecurityEvent.objects.filter(source_ip=address, occurred_at__gte=since)
        .values("job_id")
        .distinct()
        .count()
    )
    if offending_uploads < blocking.threats_before_block:
        return
    expires = now + timedelta(minutes=blocking.block_minutes)
    BlockedAddress.objects.update_or_create(
        address=address,
        defaults={
            "reason": (
                f"{offending_uploads} uploads with threats within {blocking.window_minutes} minutes"
            ),
            "blocked_at": now,
            "expires_at": expires,
        },
    )
    logger.warning("address blocked", extra={"until": expires.isoformat()})


def _alert_if_crossed(*, now, added: int, blocking: BlockingThresholds) -> None:
    since = now - timedelta(minutes=blocking.alert_window_minutes)
    total = SecurityEvent.objects.filter(occurred_at__gte=since).count()
    threshold = blocking.events_before_alert
    if total >= threshold > total - added:  # this batch crossed it
        mail_admins(
            "Security events threshold crossed",
            f"{total} security events in the last {blocking.alert_window_minutes} minutes "
            f"(threshold {threshold}). See Security events in the admin.",
        )


def address_is_blocked(address: str | None) -> bool:
    if not address:
        return False
    return BlockedAddress.objects.filter(address=address, expires_at__gt=timezone.now()).exists()
