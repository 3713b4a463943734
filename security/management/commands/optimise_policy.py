"""Tune the security policy's thresholds with the genetic algorithm and publish the best."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from security.aml import AmlThresholds
from security.ids import IdsLimits
from security.policy import BlockingThresholds, policy_active, policy_load, policy_publish
from security.policy_optimiser import (
    BLOCKING_WEIGHT,
    FALSE_POSITIVE_WEIGHT,
    TIME_WEIGHT,
    Fitness,
    GaSettings,
    PolicyEvaluator,
    build_policy_corpus,
    describe_genome,
    genome_from_parameters,
    parameters_from_genome,
    run_ga,
)

DEFAULT_SEED = 20251104
FORMULA = (
    f"detection - {FALSE_POSITIVE_WEIGHT:g} * false_positive_rate - {TIME_WEIGHT:g} * "
    f"seconds_per_mb + {BLOCKING_WEIGHT:g} * (attacks_refused - 4 * clean_addresses_blocked)"
)


def default_data_dir() -> Path:
    return Path(settings.BASE_DIR).parent / "shared" / "data"


@dataclass(frozen=True)
class OptimisationOutcome:
    default_fitness: Fitness
    active_version: int
    active_fitness: Fitness
    best_fitness: Fitness
    best_genes: dict[str, float | int]
    published_version: int | None
    message: str


def policy_optimise(
    *,
    data_dir: Path,
    generations: int,
    population: int,
    seed: int,
    dry_run: bool,
    progress: Callable[[str], None] | None = None,
) -> OptimisationOutcome:
    """Run the GA on the corpus built from `data_dir` and publish its best policy as the new
    active version when it beats the active policy on the same corpus (never with
    `dry_run`). Only the genes change; every other parameter is carried over from the active
    policy."""
    say = progress or (lambda message: None)
    active = policy_active()
    loaded = policy_load(active)
    known = {field.name for field in fields(AmlThresholds)}
    active_aml = AmlThresholds.from_metadata(
        **{key: value for key, value in loaded.aml_parameters.items() if key in known}
    )
    base = {
        "ids": asdict(loaded.ids),
        "aml": asdict(active_aml),
        "blocking": asdict(loaded.blocking),
    }
    items = build_policy_corpus(data_dir, seed)
    if not any(item.hostile for item in items) or all(item.hostile for item in items):
        raise ValueError(f"no usable corpus under {data_dir}: need clean and hostile items")
    say(
        f"corpus: {len(items)} items ({sum(not item.hostile for item in items)} clean, "
        f"{sum(item.hostile for item in items)} hostile), "
        f"{sum(len(item.content) for item in items) / 1e6:.1f} MB"
    )
    evaluator = PolicyEvaluator(
        items,
        base_ids=loaded.ids,
        base_aml=active_aml,
        block_minutes=loaded.blocking.block_minutes,
        blocking_seed=seed,
    )
    default_genome = genome_from_parameters(
        ids=IdsLimits(), aml=AmlThresholds.from_metadata(), blocking=asdict(BlockingThresholds())
    )
    active_genome = genome_from_parameters(
        ids=loaded.ids, aml=active_aml, blocking=asdict(loaded.blocking)
    )
    result = run_ga(
        evaluator,
        default=default_genome,
        also=[active_genome],
        settings=GaSettings(generations=generations, population=population, seed=seed),
        progress=lambda generation, fitness: say(
            f"generation {generation}: best fitness {fitness.fitness:.4f}"
        ),
    )
    active_fitness = evaluator.evaluate(active_genome)
    best = result.best_fitness
    published: int | None = None
    if best.fitness <= active_fitness.fitness:
        message = (
            f"not published: the best policy ({best.fitness:.4f}) does not beat the active "
            f"policy v{active.version} ({active_fitness.fitness:.4f}) on this corpus"
        )
    elif dry_run:
        message = f"dry run: the best policy beats v{active.version}; nothing published"
    else:
        policy = policy_publish(
            parameters=parameters_from_genome(result.best, base),
            source="ga",
            fitness={
                **best.to_dict(),
                "formula": FORMULA,
                "default": result.default_fitness.to_dict(),
                "previous": {"version": active.version, **active_fitness.to_dict()},
                "corpus": {
                    "data_dir": str(data_dir),
                    "seed": seed,
                    "items": len(items),
                    "megabytes": round(evaluator.megabytes, 3),
                },
                "ga": {
                    "generations": generations,
                    "population": population,
                    "seed": seed,
                    "evaluations": result.evaluations,
                    "seconds": round(result.seconds, 2),
                },
            },
            notes=f"GA ({generations} generations x {population}) beat v{active.version}",
        )
        published = policy.version
        message = f"published policy v{policy.version} (previous active: v{active.version})"
    return OptimisationOutcome(
        default_fitness=result.default_fitness,
        active_version=active.version,
        active_fitness=active_fitness,
        best_fitness=best,
        best_genes=describe_genome(result.best),
        published_version=published,
        message=message,
    )


def _line(label: str, fitness: Fitness) -> str:
    return (
        f"{label:<16} fitness {fitness.fitness:.4f}  detection {fitness.detection:.1%} "
        f"({fitness.detected}/{fitness.hostile_items})  FPR {fitness.false_positive_rate:.1%} "
        f"({fitness.false_positives}/{fitness.clean_items})  time "
        f"{fitness.seconds_per_mb * 1000:.0f} ms/MB  blocking {fitness.blocking:.3f}"
    )


class Command(BaseCommand):
    help = (
        "Tune the policy's IDS, AML and blocking thresholds with a seeded genetic algorithm on "
        "a labelled corpus built from <data-dir>, print default and best fitness, and publish "
        "the best as the active policy if it beats the active one (docs/policy_optimiser.md)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--generations", type=int, default=20)
        parser.add_argument("--population", type=int, default=20)
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
        parser.add_argument(
            "--data-dir",
            type=Path,
            default=default_data_dir(),
            help="folder holding genomes/, genomes_extra/, fastq/, badinputs/",
        )
        parser.add_argument("--dry-run", action="store_true", help="do not publish")

    def handle(
        self,
        *args,
        generations: int,
        population: int,
        seed: int,
        data_dir: Path,
        dry_run: bool,
        **options,
    ) -> None:
        verbose = options.get("verbosity", 1) > 1
        try:
            outcome = policy_optimise(
                data_dir=data_dir,
                generations=generations,
                population=population,
                seed=seed,
                dry_run=dry_run,
                progress=self.stdout.write if verbose else None,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"fitness = {FORMULA}")
        self.stdout.write(_line("default", outcome.default_fitness))
        self.stdout.write(_line(f"active v{outcome.active_version}", outcome.active_fitness))
        self.stdout.write(_line("best", outcome.best_fitness))
        for key, value in outcome.best_genes.items():
            self.stdout.write(f"  {key} = {value}")
        self.stdout.write(outcome.message)
