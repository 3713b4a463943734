"""Celery tasks of the security app."""

from __future__ import annotations

from celery import shared_task


@shared_task
def optimise_policy_task(
    generations: int = 20, population: int = 20, seed: int | None = None
) -> dict:
    """Re-tune the security policy (GA) and publish it if it beats the active one."""
    from security.management.commands.optimise_policy import (
        DEFAULT_SEED,
        default_data_dir,
        policy_optimise,
    )

    outcome = policy_optimise(
        data_dir=default_data_dir(),
        generations=generations,
        population=population,
        seed=DEFAULT_SEED if seed is None else seed,
        dry_run=False,
    )
    return {
        "published_version": outcome.published_version,
        "active_version": outcome.active_version,
        "best_fitness": outcome.best_fitness.to_dict(),
        "active_fitness": outcome.active_fitness.to_dict(),
        "message": outcome.message,
    }
