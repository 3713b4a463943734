"""Train the AML defence, set its thresholds from held-out errors, evaluate it, export it."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from security import aml_training
from security.aml import DEFAULT_WEIGHTS_PATH


class Command(BaseCommand):
    help = (
        "Train the AML autoencoder on <data-dir>/genomes and <data-dir>/genomes_extra with a "
        "fixed seed, set the thresholds from leave-one-file-out errors, evaluate false "
        "positives and detection per attack class, and write security/weights/aml.npz and "
        "aml.json (numbers for docs/aml_model.md)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--data-dir",
            type=Path,
            default=Path(settings.BASE_DIR).parent / "shared" / "data",
            help="folder holding genomes/, genomes_extra/ and fastq/ (default: ../shared/data)",
        )
        parser.add_argument("--output", type=Path, default=DEFAULT_WEIGHTS_PATH)
        parser.add_argument("--seed", type=int, default=aml_training.DEFAULT_SEED)
        parser.add_argument(
            "--skip-evaluation",
            action="store_true",
            help="train and set thresholds only (no corpus, no false-positive figures)",
        )

    def handle(
        self, *args, data_dir: Path, output: Path, seed: int, skip_evaluation: bool, **options
    ) -> None:
        data_dirs = [data_dir / "genomes", data_dir / "genomes_extra"]
        for folder in data_dirs:
            if not folder.is_dir():
                raise CommandError(f"no training data at {folder} (use --data-dir)")
        markers = sorted((data_dir / "genomes" / "markers").glob("*.fa"))
        try:
            metadata = aml_training.train(
                data_dirs,
                output,
                seed=seed,
                evaluate_model=not skip_evaluation,
                reads_dir=data_dir / "fastq",
                extra_real=markers,
                progress=lambda message: self.stdout.write(message),
            )
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from exc
        thresholds = metadata["thresholds"]
        self.stdout.write(
            f"wrote {output} and {output.with_suffix('.json').name}: reconstruction error > "
            f"{thresholds['reconstruction_error']}, structure score < "
            f"{thresholds['structure_score']}, min windows {thresholds['min_windows']}, "
            f"max flagged fraction {thresholds['max_flagged_fraction']}"
        )
        evaluation = metadata.get("evaluation")
        if evaluation:
            self._report(evaluation)
        self.stdout.write(f"done in {metadata['training_seconds']} s")

    def _report(self, evaluation: dict) -> None:
        real = evaluation["real_files"]
        self.stdout.write(
            f"real files: {real['held_out_failed']}/{real['held_out_files']} held-out genomes "
            f"failed; {real['unseen_failed']}/{real['unseen_files']} unseen files (markers, "
            f"reads) failed; {real['too_little_sequence']} too short to assess"
        )
        self.stdout.write("detection (held-out models), by item length in windows:")
        for attack_class, rows in evaluation["corpus"]["held_out_models"].items():
            rates = ", ".join(
                f"{length}: {row['detection_rate']:.0%} of {row['items']}"
                for length, row in rows.items()
            )
            self.stdout.write(f"  {attack_class:<26} {rates}")
        adversarial = evaluation["adversarial"]
        for name in ("adversarial_mutation", "adversarial_confident"):
            attack = adversarial[name]
            median = attack["median_mutated_fraction"]
            self.stdout.write(
                f"{name}: {attack['flipped']}/{attack['attacks']} reached the goal against "
                f"{adversarial['classifier']}"
                + (f", median {median:.2%} of bases mutated" if median is not None else "")
            )
        throughput = evaluation["throughput"]
        self.stdout.write(
            f"throughput: {throughput['fasta_mb_per_s']} MB/s (FASTA), "
            f"{throughput['reads_mb_per_s']} MB/s (150 bp reads)"
        )
