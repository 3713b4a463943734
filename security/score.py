"""The job's security score in [0, 1], from the stage verdicts (defined in docs/security.md)."""

from __future__ import annotations

# Weight of the AML evidence: a file right at the rejection line keeps half the score.
AML_MARGIN_WEIGHT = 0.5
# Too little sequence to assess: nothing bad was seen, but less was checked.
UNASSESSED_FACTOR = 0.75


def security_score(
    *,
    ids_passed: bool,
    aml_passed: bool | None,
    aml_flagged_fraction: float | None,
    aml_max_flagged_fraction: float,
) -> float:
    """1.0 means every check ran and nothing came near a threshold; 0.0 means a check failed.

    score = IDS factor × AML factor, where the IDS factor is 1 if no finding else 0, and the AML
    factor is 0 if it failed, 0.75 if there was too little sequence to assess, otherwise
    1 − 0.5 × (flagged fraction of windows ÷ the fraction that fails a file).
    """
    if not ids_passed or aml_passed is False:
        return 0.0
    if aml_passed is None:
        return UNASSESSED_FACTOR
    closeness = (
        min(1.0, (aml_flagged_fraction or 0.0) / aml_max_flagged_fraction)
        if aml_max_flagged_fraction
        else 0.0
    )
    return round(1.0 - AML_MARGIN_WEIGHT * closeness, 4)
