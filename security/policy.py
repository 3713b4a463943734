"""The active security policy: versioned thresholds the pipeline's first stage loads."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from django.db import IntegrityError, transaction

from security.ids import IdsLimits
from security.models import SecurityPolicy


@dataclass(frozen=True)
class BlockingThresholds:
    # Uploads with threats from one address within the window before it is blocked.
    threats_before_block: int = 3
    window_minutes: int = 10
    block_minutes: int = 60
    # Security events (all addresses) within the alert window that trigger mail to the admins.
    events_before_alert: int = 10
    alert_window_minutes: int = 60


def default_parameters() -> dict:
    return {"ids": asdict(IdsLimits()), "blocking": asdict(BlockingThresholds())}


@dataclass(frozen=True)
class LoadedPolicy:
    version: int
    ids: IdsLimits
    blocking: BlockingThresholds
    aml_parameters: dict


def _build(dataclass_type, values: dict | None):
    """Known keys override the defaults; unknown ones (from an older policy) are ignored."""
    names = {field.name for field in fields(dataclass_type)}
    overrides = {key: value for key, value in (values or {}).items() if key in names}
    return dataclass_type(**overrides)


def policy_active() -> SecurityPolicy:
    """The active policy, creating version 1 from the defaults on first use."""
    policy = SecurityPolicy.objects.filter(active=True).first()
    if policy is not None:
        return policy
    try:
        with transaction.atomic():
            return SecurityPolicy.objects.create(
                version=1, active=True, source="default", parameters=default_parameters()
            )
    except IntegrityError:  # another worker created it first
        return SecurityPolicy.objects.get(active=True)


def policy_load(policy: SecurityPolicy) -> LoadedPolicy:
    parameters = policy.parameters or {}
    return LoadedPolicy(
        version=policy.version,
        ids=_build(IdsLimits, parameters.get("ids")),
        blocking=_build(BlockingThresholds, parameters.get("blocking")),
        aml_parameters=dict(parameters.get("aml") or {}),
    )


def policy_publish(
    *, parameters: dict, source: str, fitness: dict | None, notes: str = ""
) -> SecurityPolicy:
    """Store a new version and make it the active one."""
    with transaction.atomic():
        latest = SecurityPolicy.objects.select_for_update().order_by("-version").first()
        SecurityPolicy.objects.filter(active=True).update(active=False)
        return SecurityPolicy.objects.create(
            version=(latest.version + 1) if latest else 1,
            active=True,
            source=source,
            parameters=parameters,
            fitness=fitness,
            notes=notes,
        )
