"""The GA policy optimiser: measured fitness, reproducible runs, publishing a policy."""

from __future__ import annotations

import re
from dataclasses import asdict, replace
from io import StringIO
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.core.management import call_command

from security.aml import AmlThresholds
from security.ids import IdsLimits
from security.policy import BlockingThresholds, policy_active
from security.policy_optimiser import (
    GENE_KEYS,
    GENES,
    GaSettings,
    PolicyEvaluator,
    build_policy_corpus,
    genome_from_parameters,
    parameters_from_genome,
    run_ga,
    simulate_blocking,
    simulated_uploads,
)
from tests.conftest import SHARED_DATA

SLICE = (
    "genomes/human/human_beta_globin_locus_U01317.fa",
    "genomes/bacterial/c_diphtheriae_NCTC11397_100kb.fa",
    "genomes/viral/lambda_phage.fa",
    "genomes/plant/arabidopsis_chloroplast_NC_000932.fa",
    "fastq/novaseq_800_reads_phred33.fq",
    "badinputs/07_softmasked.fa",
    "badinputs/26_injection_header.fa",
)


@pytest.fixture(scope="module")
def slice_dir(tmp_path_factory) -> Path:
    """A few real files in the layout of shared/data (symbolic links, no copies)."""
    root = tmp_path_factory.mktemp("policy_data")
    for relative in SLICE:
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(SHARED_DATA / relative)
    return root


@pytest.fixture(scope="module")
def evaluator(slice_dir) -> PolicyEvaluator:
    items = build_policy_corpus(slice_dir, seed=11, items_per_class=2, lengths=(6_500,))
    return PolicyEvaluator(items, blocking_seed=11)


def default_genome():
    return genome_from_parameters(
        ids=IdsLimits(), aml=AmlThresholds.from_metadata(), blocking=asdict(BlockingThresholds())
    )


SMALL = GaSettings(generations=6, population=10, seed=3)


def test_the_corpus_holds_real_clean_files_and_hostile_items(evaluator):
    names = [item.name for item in evaluator.items if not item.hostile]
    assert any(name.startswith("genomes/") for name in names)
    assert "fastq/novaseq_800_reads_phred33.fq" in names
    kinds = {item.kind for item in evaluator.items if item.hostile}
    assert {"injection_header", "hidden_text", "random_uniform", "di_shuffle"} <= kinds


def test_the_default_policy_is_measured_for_real(evaluator):
    fitness = evaluator.evaluate(default_genome())
    # Every injection header is failed by the IDS, no clean real file is failed.
    assert fitness.false_positive_rate == 0.0
    assert 0.8 < fitness.detection <= 1.0
    assert fitness.seconds_per_mb > 0


def test_it_is_reproducible_with_the_seed(evaluator):
    first = run_ga(evaluator, default=default_genome(), settings=SMALL)
    second = run_ga(evaluator, default=default_genome(), settings=SMALL)
    assert first.best == second.best
    assert first.history == second.history
    other = run_ga(evaluator, default=default_genome(), settings=replace(SMALL, seed=4))
    assert other.history != first.history or other.best != first.best


def test_the_best_is_never_worse_than_the_default(evaluator):
    result = run_ga(evaluator, default=default_genome(), settings=SMALL)
    assert result.best_fitness.fitness >= result.default_fitness.fitness
    assert result.history == sorted(result.history)  # elitism: the best never gets worse


def test_it_repairs_deliberately_bad_defaults(evaluator):
    bad = dict(zip(GENE_KEYS, default_genome(), strict=True))
    bad.update(
        {
            "aml.structure_score": 1.0,  # random and shuffled DNA pass
            "ids.max_non_iupac_per_record": 200,  # hidden text passes
            "blocking.threats_before_block": 1,  # one flagged upload blocks a laboratory
        }
    )
    bad_genome = tuple(bad[key] for key in GENE_KEYS)
    result = run_ga(evaluator, default=bad_genome, settings=SMALL)
    assert result.best_fitness.fitness > result.default_fitness.fitness + 0.05
    assert result.best_fitness.detection > result.default_fitness.detection
    assert result.best_fitness.false_positive_rate == 0.0


def test_blocking_rewards_stopping_attackers_and_punishes_blocking_laboratories():
    uploads = simulated_uploads(0)
    default = simulate_blocking(
        uploads, threats_before_block=3, window_minutes=10, block_minutes=60
    )
    trigger_happy = simulate_blocking(
        uploads, threats_before_block=1, window_minutes=240, block_minutes=60
    )
    assert default.clean_addresses_blocked == 0 and default.hostile_refused > 0
    assert trigger_happy.clean_addresses_blocked > 0
    assert trigger_happy.score < default.score


def test_encryption_is_not_in_the_genome():
    forbidden = re.compile(r"encrypt|cipher|crypt4gh|aes|key|zstd|vault", re.IGNORECASE)
    assert not [gene.key for gene in GENES if forbidden.search(gene.key)]
    assert {gene.section for gene in GENES} == {"ids", "aml", "blocking"}
    parameters = parameters_from_genome(default_genome(), {"ids": {}, "aml": {}, "blocking": {}})
    assert set(parameters) == {"ids", "aml", "blocking"}


@pytest.mark.django_db
def test_the_command_publishes_a_policy_the_pipeline_loads(slice_dir):
    from jobs.pipeline import stage_policy

    first = policy_active()
    out = StringIO()
    call_command(
        "optimise_policy",
        generations=4,
        population=8,
        seed=5,
        data_dir=slice_dir,
        stdout=out,
    )
    text = out.getvalue()
    assert "default" in text and "best" in text
    active = policy_active()
    assert active.version == first.version + 1
    assert active.source == "ga"
    assert active.fitness["fitness"] > active.fitness["previous"]["fitness"]

    context = SimpleNamespace(job=SimpleNamespace(policy_version=None))
    stage_policy(context)
    assert context.job.policy_version == active.version
    genes = _genes_of(context.policy)
    for section in ("ids", "aml", "blocking"):
        for name, value in active.parameters[section].items():
            if f"{section}.{name}" in GENE_KEYS:
                assert genes[f"{section}.{name}"] == value

    # With no generation to improve on it, the best is the active policy itself: nothing new.
    again = StringIO()
    call_command(
        "optimise_policy", generations=0, population=8, seed=5, data_dir=slice_dir, stdout=again
    )
    assert "not published" in again.getvalue()
    assert policy_active().version == active.version


@pytest.mark.django_db
def test_a_dry_run_publishes_nothing(slice_dir):
    first = policy_active()
    out = StringIO()
    call_command(
        "optimise_policy",
        generations=2,
        population=6,
        seed=5,
        data_dir=slice_dir,
        dry_run=True,
        stdout=out,
    )
    assert policy_active().version == first.version


def _genes_of(policy) -> dict:
    known = {field for field in AmlThresholds.__dataclass_fields__}
    aml = AmlThresholds.from_metadata(
        **{key: value for key, value in policy.aml_parameters.items() if key in known}
    )
    return dict(
        zip(
            GENE_KEYS,
            genome_from_parameters(ids=policy.ids, aml=aml, blocking=asdict(policy.blocking)),
            strict=True,
        )
    )
