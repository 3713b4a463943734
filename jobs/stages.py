"""The pipeline's stages in order, with the progress and message each shows (DESIGN.md,
"Stages and progress"). A stage whose implementation has not landed yet is listed as
``not run``: its result keys stay null, never a made-up value."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StageInfo:
    name: str
    label: str
    progress: int
    message: str
    implemented: bool = True


STAGES: tuple[StageInfo, ...] = (
    StageInfo("validation", "Validation", 5, "Checking file"),
    StageInfo("policy", "Security policy", 10, "Loading security policy"),
    StageInfo("access", "Access control", 15, "Checking access"),
    StageInfo("ids", "Intrusion detection", 25, "Scanning for threats"),
    StageInfo("privacy", "Privacy", 35, "Protecting identifiers"),
    StageInfo("aml", "Adversarial input check", 45, "Checking for adversarial input"),
    StageInfo("analysis", "Analysis", 60, "Analysing sequences"),
    StageInfo("vault", "Vault", 85, "Encrypting"),
    StageInfo("deletion", "Deletion", 95, "Destroying plaintext"),
)
ANALYSIS_PROGRESS_END = 75
STAGE_BY_NAME = {stage.name: stage for stage in STAGES}


def initial_stage_list() -> list[dict]:
    return [
        {
            "name": stage.name,
            "label": stage.label,
            "status": "pending" if stage.implemented else "not run",
            "duration_ms": None,
        }
        for stage in STAGES
    ]
