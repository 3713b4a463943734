"""Train the species model and write analysis/weights/species.npz (+ species.json)."""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from analysis import species_training
from analysis.species import DEFAULT_WEIGHTS_PATH


class Command(BaseCommand):
    help = (
        "Train the species model on the class folders (human, bacterial, plant, viral) of "
        "../shared/data/genomes and ../shared/data/genomes_extra, evaluate it leave-one-"
        "genome-out, calibrate it, and write the weights and their metadata JSON."
    )

    def add_arguments(self, parser) -> None:
        shared = Path(settings.BASE_DIR).parent / "shared" / "data"
        parser.add_argument(
            "--data-dir",
            type=Path,
            action="append",
            dest="data_dirs",
            help="a folder with human/, bacterial/, plant/, viral/ subfolders (repeatable; "
            f"default {shared / 'genomes'} and {shared / 'genomes_extra'})",
        )
        parser.add_argument("--output", type=Path, default=DEFAULT_WEIGHTS_PATH)
        parser.add_argument("--seed", type=int, default=species_training.DEFAULT_SEED)
        parser.add_argument("--l2", type=float, default=species_training.DEFAULT_L2)
        parser.add_argument(
            "--max-windows-per-file",
            type=int,
            default=species_training.DEFAULT_MAX_WINDOWS_PER_FILE,
        )
        parser.add_argument(
            "--files-per-class",
            type=int,
            help="train on the first N files of each class only (a quick trial run)",
        )
        parser.add_argument(
            "--no-evaluation",
            action="store_true",
            help="skip leave-one-genome-out (then nothing calibrates the confidence)",
        )

    def handle(self, *args, data_dirs: list[Path] | None, output: Path, **options) -> None:
        if not data_dirs:
            shared = Path(settings.BASE_DIR).parent / "shared" / "data"
            data_dirs = [shared / "genomes", shared / "genomes_extra"]
        try:
            metadata = species_training.train(
                data_dirs,
                output,
                seed=options["seed"],
                l2=options["l2"],
                max_windows_per_file=options["max_windows_per_file"],
                evaluate_held_out=not options["no_evaluation"],
                files_per_class=options["files_per_class"],
                progress=self.stdout.write if options["verbosity"] > 1 else None,
            )
        except FileNotFoundError as error:
            raise CommandError(str(error)) from error
        evaluation = metadata["evaluation"]
        summary = {
            "weights": str(output),
            "training_files": len(metadata["training_files"]),
            "training_windows_per_class": metadata["training_windows_per_class"],
            "temperature": metadata["temperature"],
            "threshold": metadata["threshold"],
            "training_seconds": metadata["training_seconds"],
        }
        if evaluation:
            summary["leave_one_genome_out"] = {
                "file_accuracy": evaluation["file_accuracy"],
                "per_class": {
                    name: f"{entry['right']}/{entry['count']}"
                    for name, entry in evaluation["per_class"].items()
                },
                "answered": f"{evaluation['answered']}/{evaluation['count']}",
                "right_when_answered": evaluation["right_when_answered"],
            }
        self.stdout.write(json.dumps(summary, indent=1))
