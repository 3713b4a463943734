"""Training and leave-one-genome-out evaluation of the species model (no Django).

Training data: every FASTA file under `<data dir>/<class folder>/` for the class folders
human, bacterial, plant and viral (other folders, such as genomes/markers, are not class
data). Each file is one genome (or genome slice) and is cut into windows exactly as an
upload is (analysis.species.WindowCutter), so training and inference see the same features.

Steps (docs/species_model.md explains the choices):
1. At most `max_windows_per_file` windows per file, drawn with the seed, so that one long
   genome cannot stand for its whole class; the classes are then balanced by sample weights.
2. Multinomial logistic regression with an L2 penalty on z-scored canonical 4-mer
   frequencies, fitted by Newton's method in numpy (the loss is strictly convex, so the
   optimum is unique and the same on every run).
3. Leave-one-genome-out: each file is held out in turn, the normalisation and the
   regression are refitted on the other files, and all windows of the held-out file are
   predicted.
4. Temperature scaling fitted on those held-out predictions at the file level (the answer
   users see), and the Unknown threshold chosen from them by a rule fixed in advance
   (THRESHOLD_WRONG_COST).
5. The final model is fitted on all files with the same settings.

No torch: with 548 parameters an exact Newton step is cheaper than torch's import.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analysis.parser import iter_records, open_decompressed
from analysis.species import (
    CANONICAL_KMERS,
    CLASSES,
    MAX_AMBIGUOUS_FRACTION,
    WINDOW_LENGTH,
    K,
    SpeciesModel,
    WindowCutter,
    kmer_frequencies,
    softmax,
)

CLASS_FOLDERS = {"human": "Human", "bacterial": "Bacterial", "plant": "Plant", "viral": "Viral"}
SEQUENCE_SUFFIXES = (".fa", ".fasta", ".fna", ".fa.gz", ".fasta.gz", ".fna.gz")

DEFAULT_SEED = 20240611
DEFAULT_L2 = 1e-3
"""L2 penalty per unit of (weight-averaged) loss; see the model card for how it was picked."""
DEFAULT_MAX_WINDOWS_PER_FILE = 100
TEMPERATURE_GRID = np.exp(np.linspace(np.log(0.25), np.log(8.0), 121))
_PROFILE_BATCH_BYTES = 4 << 20
_INTERCEPT_PENALTY = 1e-8
_NEWTON_MAX_ITERATIONS = 50
_NEWTON_TOLERANCE = 1e-13
"""Stop when half the Newton decrement (the predicted loss decrease) is below this."""
THRESHOLD_WRONG_COST = 1.0
"""Threshold rule: the threshold maximises held-out right answers (+1 each) minus wrong
answers (-THRESHOLD_WRONG_COST each) over the files at or above it; an Unknown scores 0.
A cost of 2 (answer only where 2/3 are right) was tried first and gave thresholds from 0.53
to 0.70 across sampling seeds: held-out precision hovers around 2/3 for every confidence
from 0.5 to 0.8, so that objective is flat there. A cost of 1 gives 0.41-0.43 on every seed
(docs/species_model.md)."""


@dataclass
class TrainingFile:
    path: Path
    label: int
    """Index into CLASSES."""
    sha256: str
    bases: int
    records: int
    windows: np.ndarray
    """Canonical 4-mer counts of the assessed windows (windows x 136)."""
    windows_skipped: int

    @property
    def name(self) -> str:
        return f"{self.path.parent.parent.name}/{self.path.parent.name}/{self.path.name}"


@dataclass
class FittedWeights:
    feature_mean: np.ndarray
    feature_scale: np.ndarray
    coefficients: np.ndarray
    intercepts: np.ndarray

    def logits(self, counts: np.ndarray) -> np.ndarray:
        features = (kmer_frequencies(counts) - self.feature_mean) / self.feature_scale
        return features @ self.coefficients.T + self.intercepts


def find_training_files(data_dirs: Sequence[Path]) -> list[tuple[Path, int]]:
    """(path, class index) of every sequence file in a class folder of the data dirs."""
    found = []
    for data_dir in data_dirs:
        if not data_dir.is_dir():
            raise FileNotFoundError(f"no data directory at {data_dir}")
        for folder, class_name in CLASS_FOLDERS.items():
            for path in sorted((data_dir / folder).glob("*")):
                if path.is_file() and path.name.endswith(SEQUENCE_SUFFIXES):
                    found.append((path, CLASSES.index(class_name)))
    if not found:
        raise FileNotFoundError(f"no training files under {', '.join(map(str, data_dirs))}")
    return found


def profile_file(path: Path, label: int) -> TrainingFile:
    """Cut one file into windows as an upload would be; keep the assessed windows."""
    cutter = WindowCutter()
    blocks = []
    with path.open("rb") as raw:
        for record in iter_records(open_decompressed(raw)):
            cutter.add(record)
            if cutter.pending_bytes >= _PROFILE_BATCH_BYTES:
                blocks.extend(cutter.drain())
    blocks.extend(cutter.drain())
    counts = [block.counts[block.assessed] for block in blocks]
    windows = np.concatenate(counts) if counts else np.zeros((0, len(CANONICAL_KMERS)), np.int64)
    total = sum(len(block.assessed) for block in blocks)
    return TrainingFile(
        path=path,
        label=label,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        bases=cutter.letters,
        records=cutter.records,
        windows=windows,
        windows_skipped=total - len(windows),
    )


def sample_windows(
    files: Sequence[TrainingFile], *, seed: int, max_windows_per_file: int
) -> list[np.ndarray]:
    """Indices of the windows each file contributes to training (sorted, at most the cap)."""
    rng = np.random.default_rng(seed)
    chosen = []
    for training_file in files:
        count = len(training_file.windows)
        if count > max_windows_per_file:
            chosen.append(np.sort(rng.choice(count, max_windows_per_file, replace=False)))
        else:
            chosen.append(np.arange(count))
    return chosen


def fit_softmax_regression(
    features: np.ndarray,
    labels: np.ndarray,
    sample_weights: np.ndarray,
    *,
    l2: float,
    start: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression: min sum(w * cross-entropy) / sum(w) + l2/2 |W|^2.

    Newton's method with a backtracking line search on the exact Hessian (548 x 548 for 4
    classes and 136 features): a handful of iterations reach the unique optimum of this
    strictly convex loss to machine precision, so the result does not depend on the start
    (`start` only saves iterations), the thread count or an optimiser's tolerances. The
    intercepts get a negligible penalty only so that the softmax's shift invariance does
    not make the Hessian singular.
    """
    samples, width = features.shape
    classes = len(CLASSES)
    x = np.hstack([features, np.ones((samples, 1))])
    w = sample_weights / sample_weights.sum()
    onehot = np.eye(classes)[labels]
    penalty = np.full(width + 1, l2)
    penalty[-1] = _INTERCEPT_PENALTY
    theta = np.zeros((classes, width + 1))
    if start is not None:
        theta[:, :-1], theta[:, -1] = start

    def loss(candidate: np.ndarray) -> float:
        logits = x @ candidate.T
        top = logits.max(axis=1)
        log_partition = top + np.log(np.exp(logits - top[:, None]).sum(axis=1))
        data = float(w @ (log_partition - logits[np.arange(samples), labels]))
        return data + 0.5 * float((penalty * candidate**2).sum())

    current = loss(theta)
    for _ in range(_NEWTON_MAX_ITERATIONS):
        p = softmax(x @ theta.T)
        gradient = ((p - onehot) * w[:, None]).T @ x + penalty * theta
        hessian = np.zeros((classes * (width + 1), classes * (width + 1)))
        for a in range(classes):
            for b in range(a, classes):
                curvature = w * p[:, a] * (float(a == b) - p[:, b])
                block = (x * curvature[:, None]).T @ x
                rows = slice(a * (width + 1), (a + 1) * (width + 1))
                columns = slice(b * (width + 1), (b + 1) * (width + 1))
                hessian[rows, columns] = block
                hessian[columns, rows] = block.T
        hessian[np.diag_indices_from(hessian)] += np.tile(penalty, classes)
        step = np.linalg.solve(hessian, gradient.ravel()).reshape(theta.shape)
        decrement = float(gradient.ravel() @ step.ravel())
        if decrement / 2 < _NEWTON_TOLERANCE:
            break
        length = 1.0
        while True:
            candidate = theta - length * step
            value = loss(candidate)
            if value <= current - 0.25 * length * decrement or length < 1e-10:
                break
            length /= 2
        theta, current = candidate, value
    return theta[:, :-1].copy(), theta[:, -1].copy()


def fit_weights(
    files: Sequence[TrainingFile],
    chosen: Sequence[np.ndarray],
    *,
    l2: float,
    start: FittedWeights | None = None,
) -> FittedWeights:
    """Normalisation and regression fitted on the chosen windows of `files`, classes
    balanced (each class carries the same total weight). `start` (a nearby fit, such as the
    one on all files) only saves Newton iterations."""
    counts = np.concatenate([f.windows[i] for f, i in zip(files, chosen, strict=True)])
    labels = np.concatenate([np.full(len(i), f.label) for f, i in zip(files, chosen, strict=True)])
    frequencies = kmer_frequencies(counts)
    mean = frequencies.mean(axis=0)
    scale = frequencies.std(axis=0)
    scale[scale == 0] = 1.0
    per_class = np.bincount(labels, minlength=len(CLASSES)).astype(np.float64)
    present = per_class > 0
    weights = np.zeros(len(CLASSES))
    weights[present] = 1.0 / per_class[present]
    initial = None
    if start is not None:
        # The same logits under this fit's normalisation.
        initial = (
            start.coefficients * (scale / start.feature_scale),
            start.intercepts
            + ((mean - start.feature_mean) / start.feature_scale) @ start.coefficients.T,
        )
    coefficients, intercepts = fit_softmax_regression(
        (frequencies - mean) / scale, labels, weights[labels], l2=l2, start=initial
    )
    return FittedWeights(mean, scale, coefficients, intercepts)


def leave_one_genome_out(
    files: Sequence[TrainingFile],
    chosen: Sequence[np.ndarray],
    *,
    l2: float,
    start: FittedWeights | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[np.ndarray]:
    """Held-out logits (before temperature) of every window of each file, from a model
    fitted on all the other files (each fit starts from `start`, the fit on all files)."""
    held_out = []
    for index, training_file in enumerate(files):
        others = [i for i in range(len(files)) if i != index]
        fitted = fit_weights(
            [files[i] for i in others], [chosen[i] for i in others], l2=l2, start=start
        )
        held_out.append(fitted.logits(training_file.windows))
        if progress is not None:
            progress(f"  held out {index + 1}/{len(files)}: {training_file.name}")
    return held_out


def file_probabilities(window_logits: np.ndarray, temperature: float) -> np.ndarray:
    """A file's probabilities: the mean of its windows' calibrated probabilities."""
    return softmax(window_logits / temperature).mean(axis=0)


def fit_temperature(held_out: Sequence[np.ndarray], labels: np.ndarray) -> float:
    """Temperature minimising the held-out files' negative log-likelihood (classes
    balanced: each class's files carry the same total weight), by grid search."""
    weights = 1.0 / np.bincount(labels, minlength=len(CLASSES))[labels]
    losses = []
    for temperature in TEMPERATURE_GRID:
        probabilities = np.array([file_probabilities(z, temperature) for z in held_out])
        chosen = np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, 1.0)
        losses.append(float(-(weights * np.log(chosen)).sum() / weights.sum()))
    return float(TEMPERATURE_GRID[int(np.argmin(losses))])


def choose_threshold(confidences: np.ndarray, correct: np.ndarray) -> float:
    """The confidence threshold maximising, over held-out files, right answers minus
    THRESHOLD_WRONG_COST x wrong answers (below it: Unknown). Candidates are midpoints
    between held-out confidences; ties go to the lowest threshold."""
    order = np.sort(np.unique(confidences))
    candidates = np.concatenate(([0.0], (order[:-1] + order[1:]) / 2, [order[-1] + 1e-9]))
    scores = [
        float(
            correct[confidences >= t].sum()
            - THRESHOLD_WRONG_COST * (~correct[confidences >= t]).sum()
        )
        for t in candidates
    ]
    return round(float(candidates[int(np.argmax(scores))]), 4)


RELIABILITY_BINS = (0.0, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
PIECE_WINDOWS = 10
"""Held-out files are also scored in pieces of this many windows (10 kb): small uploads."""


def _negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    chosen = np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, 1.0)
    return round(float(-np.log(chosen).mean()), 4)


def evaluate(
    files: Sequence[TrainingFile],
    held_out: Sequence[np.ndarray],
    *,
    temperature: float,
    threshold: float,
) -> dict[str, Any]:
    """Leave-one-genome-out figures: per-file answers, accuracy per class, confusion matrix,
    calibration, and the same for 10-window pieces of the held-out files."""
    labels = np.array([f.label for f in files])
    probabilities = np.array([file_probabilities(z, temperature) for z in held_out])
    predicted = probabilities.argmax(axis=1)
    confidences = probabilities.max(axis=1)
    correct = predicted == labels
    answered = confidences >= threshold
    rows = [
        {
            "file": training_file.name,
            "true": CLASSES[training_file.label],
            "predicted": CLASSES[best],
            "confidence": round(float(confidence), 4),
            "answer": CLASSES[best] if confidence >= threshold else "Unknown",
            "windows": len(logits),
            "window_accuracy": round(
                float((logits.argmax(axis=1) == training_file.label).mean()), 4
            ),
            "probabilities": {
                name: round(float(p), 4) for name, p in zip(CLASSES, row, strict=True)
            },
        }
        for training_file, logits, row, best, confidence in zip(
            files, held_out, probabilities, predicted, confidences, strict=True
        )
    ]
    confusion = np.zeros((len(CLASSES), len(CLASSES)), dtype=int)
    np.add.at(confusion, (labels, predicted), 1)

    def summary(mask: np.ndarray) -> dict[str, Any]:
        return {
            "count": int(mask.sum()),
            "right": int(correct[mask].sum()),
            "accuracy": round(float(correct[mask].mean()), 4) if mask.any() else None,
            "answered": int(answered[mask].sum()),
            "right_when_answered": int((correct & answered)[mask].sum()),
        }

    per_class = {name: summary(labels == index) for index, name in enumerate(CLASSES)}
    reliability = []
    for low, high in itertools.pairwise(RELIABILITY_BINS):
        inside = (confidences >= low) & ((confidences < high) | (high == 1.0))
        if inside.any():
            reliability.append(
                {
                    "confidence_from": low,
                    "confidence_to": high,
                    "files": int(inside.sum()),
                    "mean_confidence": round(float(confidences[inside].mean()), 4),
                    "accuracy": round(float(correct[inside].mean()), 4),
                }
            )
    uncalibrated = np.array([file_probabilities(z, 1.0) for z in held_out])
    windows_right = sum(
        int((z.argmax(axis=1) == f.label).sum()) for f, z in zip(files, held_out, strict=True)
    )
    return {
        "files": len(files),
        "file_accuracy": round(float(correct.mean()), 4),
        "balanced_file_accuracy": round(
            float(np.mean([entry["accuracy"] for entry in per_class.values()])), 4
        ),
        "window_accuracy": round(windows_right / sum(len(z) for z in held_out), 4),
        **{key: value for key, value in summary(np.ones(len(files), bool)).items()},
        "per_class": per_class,
        "confusion_matrix": {
            "rows_true_columns_predicted": list(CLASSES),
            "counts": confusion.tolist(),
        },
        "calibration": {
            "temperature": temperature,
            "file_nll_temperature_1": _negative_log_likelihood(uncalibrated, labels),
            "file_nll_calibrated": _negative_log_likelihood(probabilities, labels),
            "mean_confidence": round(float(confidences.mean()), 4),
            "reliability": reliability,
        },
        "pieces": _evaluate_pieces(files, held_out, temperature=temperature, threshold=threshold),
        "per_file": rows,
    }


def _evaluate_pieces(
    files: Sequence[TrainingFile],
    held_out: Sequence[np.ndarray],
    *,
    temperature: float,
    threshold: float,
) -> dict[str, Any]:
    """Accuracy on consecutive pieces of PIECE_WINDOWS windows of each held-out file (what
    a small upload would get); long files give more pieces."""
    per_class: dict[str, dict[str, int]] = {
        name: {"pieces": 0, "right": 0, "answered": 0, "right_when_answered": 0} for name in CLASSES
    }
    for training_file, logits in zip(files, held_out, strict=True):
        entry = per_class[CLASSES[training_file.label]]
        for start in range(0, len(logits) - PIECE_WINDOWS + 1, PIECE_WINDOWS):
            probabilities = file_probabilities(logits[start : start + PIECE_WINDOWS], temperature)
            right = int(probabilities.argmax() == training_file.label)
            sure = int(probabilities.max() >= threshold)
            entry["pieces"] += 1
            entry["right"] += right
            entry["answered"] += sure
            entry["right_when_answered"] += right * sure
    totals = {key: sum(entry[key] for entry in per_class.values()) for key in per_class["Human"]}
    return {"window_count": PIECE_WINDOWS, "all": totals, "per_class": per_class}


def train(
    data_dirs: Sequence[Path],
    weights_path: Path,
    *,
    seed: int = DEFAULT_SEED,
    l2: float = DEFAULT_L2,
    max_windows_per_file: int = DEFAULT_MAX_WINDOWS_PER_FILE,
    evaluate_held_out: bool = True,
    files_per_class: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train on every class folder of `data_dirs`, evaluate leave-one-genome-out, write the
    weights to `weights_path` and their metadata beside it (same name, .json).

    `files_per_class` keeps only the first files of each class (a quick run for tests).
    Without the held-out evaluation there is nothing to calibrate on: the temperature is 1
    and the threshold 0.5, and the JSON says so. Returns the metadata.
    """
    started = time.perf_counter()
    found = find_training_files(data_dirs)
    if files_per_class is not None:
        by_class = {
            label: [path for path, of in found if of == label] for label in range(len(CLASSES))
        }
        found = [
            (path, label) for label, paths in by_class.items() for path in paths[:files_per_class]
        ]
    files = [profile_file(path, label) for path, label in found]
    files = [f for f in files if len(f.windows)]
    if progress:
        progress(f"{len(files)} training files, {sum(len(f.windows) for f in files)} windows")
    chosen = sample_windows(files, seed=seed, max_windows_per_file=max_windows_per_file)
    labels = np.array([f.label for f in files])

    fitted = fit_weights(files, chosen, l2=l2)
    evaluation = None
    temperature, threshold = 1.0, 0.5
    calibration = "not calibrated (no held-out evaluation was run)"
    if evaluate_held_out:
        held_out = leave_one_genome_out(files, chosen, l2=l2, start=fitted, progress=progress)
        temperature = fit_temperature(held_out, labels)
        file_probs = np.array([file_probabilities(z, temperature) for z in held_out])
        threshold = choose_threshold(file_probs.max(axis=1), file_probs.argmax(axis=1) == labels)
        calibration = "leave-one-genome-out file-level predictions"
        evaluation = evaluate(files, held_out, temperature=temperature, threshold=threshold)
        if progress:
            progress(
                f"leave-one-genome-out: {evaluation['right']}/{evaluation['count']} files right; "
                f"temperature {temperature:.3f}, threshold {threshold:.3f}"
            )

    model = SpeciesModel(
        classes=CLASSES,
        feature_mean=fitted.feature_mean,
        feature_scale=fitted.feature_scale,
        coefficients=fitted.coefficients,
        intercepts=fitted.intercepts,
        temperature=temperature,
        threshold=threshold,
    )
    model.save(weights_path)
    windows_used = np.bincount(
        np.concatenate([np.full(len(i), f.label) for f, i in zip(files, chosen, strict=True)]),
        minlength=len(CLASSES),
    )
    metadata = {
        "model": "multinomial logistic regression, L2, on z-scored canonical 4-mer frequencies",
        "classes": list(CLASSES),
        "k": K,
        "canonical_kmers": list(CANONICAL_KMERS),
        "window_length": WINDOW_LENGTH,
        "max_ambiguous_fraction": MAX_AMBIGUOUS_FRACTION,
        "feature_normalisation": {
            "features": "canonical 4-mer counts of a window divided by their sum",
            "mean": [round(float(v), 10) for v in fitted.feature_mean],
            "scale": [round(float(v), 10) for v in fitted.feature_scale],
        },
        "temperature": temperature,
        "threshold": threshold,
        "calibrated_on": calibration,
        "threshold_rule": (
            f"maximise held-out right - {THRESHOLD_WRONG_COST:g} x wrong file answers"
        ),
        "seed": seed,
        "l2": l2,
        "max_windows_per_file": max_windows_per_file,
        "training_windows_per_class": dict(
            zip(CLASSES, (int(n) for n in windows_used), strict=True)
        ),
        "training_files": [
            {
                "path": f.name,
                "class": CLASSES[f.label],
                "sha256": f.sha256,
                "bases": f.bases,
                "records": f.records,
                "windows_assessed": len(f.windows),
                "windows_skipped": f.windows_skipped,
                "windows_used": len(i),
            }
            for f, i in zip(files, chosen, strict=True)
        ],
        "weights_file": weights_path.name,
        "weights_sha256": hashlib.sha256(weights_path.read_bytes()).hexdigest(),
        "training_seconds": round(time.perf_counter() - started, 1),
        "evaluation": evaluation,
    }
    weights_path.with_suffix(".json").write_text(json.dumps(metadata, indent=1) + "\n")
    return metadata
