"""Training and leave-one-genome-out evaluation of the species model (no Django).

Training data: every FASTA file under `<data dir>/<class folder>/` for the class folders
human, bacterial, plant and viral (other folders, such as genomes/markers, are not class
data). Each file is one genome (or genome slice) and is cut into windows exactly as an
upload is (analysis.species.WindowCutter), so training and inference see the same features.

Steps (docs/species_model.md explains the choices):
1. At most `max_windows_per_file` windows per file, drawn with the seed, so that one long
   genome cannot stand for its whole class; the classes are then balanced by sample weights.
2. Multinomial logistic regression with an L2 penalty on z-scored canonical 4-mer
   frequencies, fitted with L-BFGS in float64 (torch; the loss is convex, so the optimum
   does not depend on the start).
3. Leave-one-genome-out: each file is held out in turn, the normalisation and the
   regression are refitted on the other files, and all windows of the held-out file are
   predicted.
4. Temperature scaling fitted on those held-out predictions, at the file level (the
   answer users see), and the Unknown threshold chosen from them by a rule fixed in advance.
5. The final model is fitted on all files.

torch is imported inside the fitting function only: inference (analysis.species) never
needs it.
"""

from __future__ import annotations

import hashlib
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
    K,
    MAX_AMBIGUOUS_FRACTION,
    WINDOW_LENGTH,
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
DEFAULT_MAX_WINDOWS_PER_FILE = 150
TEMPERATURE_GRID = np.exp(np.linspace(np.log(0.25), np.log(8.0), 121))
_INTERCEPT_PENALTY = 1e-8
_NEWTON_MAX_ITERATIONS = 50
_NEWTON_TOLERANCE = 1e-13
"""Stop when half the Newton decrement (the predicted loss decrease) is below this."""
THRESHOLD_WRONG_COST = 2.0
"""Threshold rule: answer only where a held-out right answer (+1) outweighs a wrong one
(-THRESHOLD_WRONG_COST), i.e. where held-out files above it were right at least 2/3 of the
time. An Unknown costs nothing."""


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
        blocks = list(cutter.drain())
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
    features: np.ndarray, labels: np.ndarray, sample_weights: np.ndarray, *, l2: float
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression: min sum(w * cross-entropy) / sum(w) + l2/2 |W|^2.

    Newton's method with a backtracking line search on the exact Hessian (548 x 548 for 4
    classes and 136 features): a handful of iterations reach the unique optimum of this
    strictly convex loss to machine precision, so the result does not depend on the start,
    the thread count or an optimiser's tolerances. The intercepts get a negligible penalty
    only so that the softmax's shift invariance does not make the Hessian singular.
    """
    samples, width = features.shape
    classes = len(CLASSES)
    x = np.hstack([features, np.ones((samples, 1))])
    w = sample_weights / sample_weights.sum()
    onehot = np.eye(classes)[labels]
    penalty = np.full(width + 1, l2)
    penalty[-1] = _INTERCEPT_PENALTY
    theta = np.zeros((classes, width + 1))

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
    files: Sequence[TrainingFile], chosen: Sequence[np.ndarray], *, l2: float
) -> FittedWeights:
    """Normalisation and regression fitted on the chosen windows of `files`, classes
    balanced (each class carries the same total weight)."""
    counts = np.concatenate([f.windows[i] for f, i in zip(files, chosen, strict=True)])
    labels = np.concatenate(
        [np.full(len(i), f.label) for f, i in zip(files, chosen, strict=True)]
    )
    frequencies = kmer_frequencies(counts)
    mean = frequencies.mean(axis=0)
    scale = frequencies.std(axis=0)
    scale[scale == 0] = 1.0
    per_class = np.bincount(labels, minlength=len(CLASSES)).astype(np.float64)
    present = per_class > 0
    weights = np.zeros(len(CLASSES))
    weights[present] = 1.0 / per_class[present]
    coefficients, intercepts = fit_softmax_regression(
        (frequencies - mean) / scale, labels, weights[labels], l2=l2
    )
    return FittedWeights(mean, scale, coefficients, intercepts)


def leave_one_genome_out(
    files: Sequence[TrainingFile],
    chosen: Sequence[np.ndarray],
    *,
    l2: float,
    progress: Callable[[str], None] | None = None,
) -> list[np.ndarray]:
    """Held-out logits (before temperature) of every window of each file, from a model
    fitted on all the other files."""
    held_out = []
    for index, training_file in enumerate(files):
        others = [i for i in range(len(files)) if i != index]
        fitted = fit_weights([files[i] for i in others], [chosen[i] for i in others], l2=l2)
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


def evaluate(
    files: Sequence[TrainingFile],
    held_out: Sequence[np.ndarray],
    *,
    temperature: float,
    threshold: float,
) -> dict[str, Any]:
    """Leave-one-genome-out figures: per-file answers, accuracy per class, confusion."""
    labels = np.array([f.label for f in files])
    rows = []
    for training_file, logits in zip(files, held_out, strict=True):
        probabilities = file_probabilities(logits, temperature)
        best = int(np.argmax(probabilities))
        window_right = float((np.argmax(logits, axis=1) == training_file.label).mean())
        rows.append(
            {
                "file": training_file.name,
                "true": CLASSES[training_file.label],
                "predicted": CLASSES[best],
                "confidence": round(float(probabilities[best]), 4),
                "answer": CLASSES[best] if probabilities[best] >= threshold else "Unknown",
                "windows": len(logits),
                "window_accuracy": round(window_right, 4),
                "probabilities": {
                    name: round(float(p), 4) for name, p in zip(CLASSES, probabilities, strict=True)
                },
            }
        )
    predicted = np.array([CLASSES.index(row["predicted"]) for row in rows])
    correct = predicted == labels
    answered = np.array([row["answer"] != "Unknown" for row in rows])
    confusion = np.zeros((len(CLASSES), len(CLASSES)), dtype=int)
    np.add.at(confusion, (labels, predicted), 1)
    all_windows_right = sum(
        int((np.argmax(z, axis=1) == f.label).sum()) for f, z in zip(files, held_out, strict=True)
    )
    per_class = {}
    for index, name in enumerate(CLASSES):
        mine = labels == index
        per_class[name] = {
            "files": int(mine.sum()),
            "right": int(correct[mine].sum()),
            "accuracy": round(float(correct[mine].mean()), 4) if mine.any() else None,
            "answered": int(answered[mine].sum()),
            "right_when_answered": int((correct & answered)[mine].sum()),
        }
    return {
        "files": len(files),
        "file_accuracy": round(float(correct.mean()), 4),
        "balanced_file_accuracy": round(
            float(np.mean([v["accuracy"] for v in per_class.values() if v["accuracy"] is not None])),
            4,
        ),
        "window_accuracy": round(all_windows_right / sum(len(z) for z in held_out), 4),
        "answered": int(answered.sum()),
        "right_when_answered": int((correct & answered).sum()),
        "per_class": per_class,
        "confusion_matrix": {
            "rows_true_columns_predicted": list(CLASSES),
            "counts": confusion.tolist(),
        },
        "per_file": rows,
    }


def train(
    data_dirs: Sequence[Path],
    weights_path: Path,
    *,
    seed: int = DEFAULT_SEED,
    l2: float = DEFAULT_L2,
    max_windows_per_file: int = DEFAULT_MAX_WINDOWS_PER_FILE,
    evaluate_held_out: bool = True,
    limit_files: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train on every class folder of `data_dirs`, evaluate leave-one-genome-out, write the
    weights to `weights_path` and their metadata beside it (same name, .json).

    `limit_files` keeps the first files of each class (a quick run for tests). Without the
    held-out evaluation, the temperature is 1 and the threshold 0.5 (stated in the JSON).
    Returns the metadata.
    """
    started = time.perf_counter()
    say = progress or (lambda message: None)
    found = find_training_files(data_dirs)
    if limit_files is not None:
        kept: dict[int, int] = {}
        found = [
            (path, label)
            for path, label in found
            if kept.setdefault(label, 0) < limit_files and not kept.update({label: kept[label] + 1})
        ]
    files = [profile_file(path, label) for path, label in found]
    files = [f for f in files if len(f.windows)]
    say(f"{len(files)} training files, {sum(len(f.windows) for f in files)} windows")
    chosen = sample_windows(files, seed=seed, max_windows_per_file=max_windows_per_file)
    labels = np.array([f.label for f in files])

    evaluation = None
    temperature, threshold = 1.0, 0.5
    calibration = "none (no held-out evaluation was run)"
    if evaluate_held_out:
        held_out = leave_one_genome_out(files, chosen, l2=l2, progress=say)
        temperature = fit_temperature(held_out, labels)
        confidences = np.array([file_probabilities(z, temperature).max() for z in held_out])
        correct = np.array(
            [np.argmax(file_probabilities(z, temperature)) for z in held_out]
        ) == labels
        threshold = choose_threshold(confidences, correct)
        calibration = "leave-one-genome-out file-level predictions"
        evaluation = evaluate(files, held_out, temperature=temperature, threshold=threshold)
        evaluation["uncalibrated_temperature_1"] = {
            key: value
            for key, value in evaluate(files, held_out, temperature=1.0, threshold=threshold).items()
            if key in {"file_accuracy", "answered", "right_when_answered"}
        }
        say(
            f"leave-one-genome-out: {evaluation['file_accuracy']:.1%} of files right; "
            f"temperature {temperature:.3f}, threshold {threshold:.3f}"
        )

    fitted = fit_weights(files, chosen, l2=l2)
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
    per_class_windows = np.bincount(
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
            "frequencies": "canonical 4-mer counts of a window divided by their sum",
            "mean": [round(float(v), 8) for v in fitted.feature_mean],
            "scale": [round(float(v), 8) for v in fitted.feature_scale],
        },
        "temperature": temperature,
        "threshold": threshold,
        "calibrated_on": calibration,
        "threshold_rule": f"maximise held-out right - {THRESHOLD_WRONG_COST:g} x wrong answers",
        "seed": seed,
        "l2": l2,
        "max_windows_per_file": max_windows_per_file,
        "training_windows_per_class": dict(
            zip(CLASSES, (int(n) for n in per_class_windows), strict=True)
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
