"""Species class of an upload (Human / Bacterial / Plant / Viral, or Unknown), numpy only.

The model (trained by analysis/species_training.py, documented in docs/species_model.md) is
a multinomial logistic regression over z-scored canonical 4-mer frequencies of windows of
WINDOW_LENGTH bases. Every window gets class probabilities (logits divided by a temperature
fitted on leave-one-genome-out predictions); a record's and the file's probabilities are the
means over their windows. Windows all have the same length, so the file mean weighs each
record by its length. Below the threshold picked from the held-out predictions the answer is
"Unknown".

Windows: a record is cut into whole windows from its start; its tail (shorter than a window)
and every record shorter than a window (sequencing reads) are pooled, in file order, into
windows of their own, with a break between reads so that no k-mer crosses from one read to
the next. Pooled windows count for the file only: a 150 bp read is too short to classify
alone. A window is skipped when more than MAX_AMBIGUOUS_FRACTION of its letters are N or other
ambiguity codes, or when it holds fewer than MIN_KMERS_PER_WINDOW valid 4-mers; input with no
window left answers "too little sequence to assess" rather than a guess.

No torch and no Django here: `import torch` alone costs about 2 s and 220 MB per process, and
inference is a few numpy passes over the bytes (tens of ms per MB).
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analysis.parser import RecordBatch, SequenceRecord
from analysis.report import RECORD_SUMMARY_LIMIT

CLASSES = ("Human", "Bacterial", "Plant", "Viral")
UNKNOWN = "Unknown"
K = 4
WINDOW_LENGTH = 1000
MAX_AMBIGUOUS_FRACTION = 0.1
"""A window with more N/ambiguity codes than this fraction of its letters is skipped."""
MIN_KMERS_PER_WINDOW = WINDOW_LENGTH // 2
"""A window needs this many 4-mers of A/C/G/T alone (very short reads have fewer)."""

DEFAULT_WEIGHTS_PATH = Path(__file__).resolve().parent / "weights" / "species.npz"
FORMAT_VERSION = 1

_FLUSH_BYTES = 4 << 20
"""Sequence bytes gathered from add() before they are profiled in one numpy pass."""
_ROWS_PER_PASS = 1024
"""Windows profiled per numpy pass (bounds the temporaries to about 10 MB)."""

# --- canonical 4-mers ------------------------------------------------------------------------

_SEPARATOR = 5
"""Digit of the break put between pooled reads (4 is any other non-ACGT letter)."""
_digits = bytearray([4]) * 256
for _letters, _digit in ((b"Aa", 0), (b"Cc", 1), (b"Gg", 2), (b"TtUu", 3)):
    for _letter in _letters:
        _digits[_letter] = _digit
_digits[ord("\n")] = _SEPARATOR
_DIGIT_TABLE = bytes(_digits)
"""bytes.translate table: A/C/G/T(U) in either case to 0-3, the read break to 5, others 4."""


def _reverse_complement_index(index: int) -> int:
    digits = [(index >> shift) & 3 for shift in range(2 * (K - 1), -1, -2)]
    return sum((3 - digit) << (2 * position) for position, digit in enumerate(digits))


_CANONICAL = sorted({min(i, _reverse_complement_index(i)) for i in range(4**K)})
_ALL_KMERS = ["".join(letters) for letters in itertools.product("ACGT", repeat=K)]
CANONICAL_KMERS = tuple(_ALL_KMERS[index] for index in _CANONICAL)
"""The 136 canonical 4-mers (the lexicographically smaller of a k-mer and its reverse
complement), in the order of the feature columns."""
FEATURES = len(CANONICAL_KMERS)
_BINS = FEATURES + 1  # the last bin takes the 4-mers that hold a non-ACGT letter or a break


def _column_of_code() -> np.ndarray:
    """Feature column of every 4-mer written as four 3-bit digits (0-5): one table lookup
    both maps a k-mer to its canonical column and sends invalid ones to the last bin."""
    column_of_index = {}
    for column, index in enumerate(_CANONICAL):
        column_of_index[index] = column_of_index[_reverse_complement_index(index)] = column
    table = np.full(8**K, FEATURES, dtype=np.uint8)
    for digits in itertools.product(range(4), repeat=K):
        code = index = 0
        for digit in digits:
            code = code << 3 | digit
            index = index << 2 | digit
        table[code] = column_of_index[index]
    return table


_COLUMN_OF_CODE = _column_of_code()


def profile_windows(data: bytes | memoryview) -> tuple[np.ndarray, np.ndarray]:
    """Canonical 4-mer counts of consecutive WINDOW_LENGTH-byte windows of `data`.

    `data` holds sequence letters, with b"\\n" as a break between pooled reads; its length
    is a multiple of WINDOW_LENGTH. Returns the counts (windows x 136, int64) and whether
    each window is assessed (few ambiguous letters, enough valid 4-mers). A 4-mer belongs to
    the window it starts in and never crosses a window's end or a break.
    """
    view = memoryview(data)
    windows = len(view) // WINDOW_LENGTH
    counts = np.empty((windows, FEATURES), dtype=np.int64)
    assessed = np.empty(windows, dtype=bool)
    span = WINDOW_LENGTH - K + 1
    for start in range(0, windows, _ROWS_PER_PASS):
        rows = min(_ROWS_PER_PASS, windows - start)
        chunk = bytes(view[start * WINDOW_LENGTH : (start + rows) * WINDOW_LENGTH])
        digits = np.frombuffer(chunk.translate(_DIGIT_TABLE), dtype=np.uint8)
        digits = digits.reshape(rows, WINDOW_LENGTH)
        wide = digits.astype(np.uint16)
        code = wide[:, :span] << 9
        code |= wide[:, 1 : span + 1] << 6
        code |= wide[:, 2 : span + 2] << 3
        code |= wide[:, 3 : span + 3]
        flat = _COLUMN_OF_CODE[code] + (np.arange(rows, dtype=np.intp) * _BINS)[:, None]
        block = np.bincount(flat.ravel(), minlength=rows * _BINS).reshape(rows, _BINS)
        counts[start : start + rows] = block[:, :FEATURES]
        acgt = np.count_nonzero(digits < 4, axis=1)
        letters = WINDOW_LENGTH - np.count_nonzero(digits == _SEPARATOR, axis=1)
        assessed[start : start + rows] = (letters - acgt <= MAX_AMBIGUOUS_FRACTION * letters) & (
            counts[start : start + rows].sum(axis=1) >= MIN_KMERS_PER_WINDOW
        )
    return counts, assessed


def kmer_frequencies(counts: np.ndarray) -> np.ndarray:
    """Rows of canonical 4-mer counts as frequencies (each row sums to 1)."""
    counts = np.asarray(counts, dtype=np.float64)
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)


# --- windows of a file -----------------------------------------------------------------------


@dataclass(slots=True)
class WindowBlock:
    """Profiled windows; `records` is (number, length, windows) per record in order, or None
    for pooled windows (reads and record tails), which belong to no record."""

    counts: np.ndarray
    assessed: np.ndarray
    records: list[tuple[int, int, int]] | None


class WindowCutter:
    """Cuts records into windows as they arrive and profiles them in batches (no model)."""

    def __init__(self) -> None:
        self._whole: list[memoryview] = []
        self._whole_records: list[tuple[int, int, int]] = []
        self._pool: list[bytes] = []
        self.pending_bytes = 0
        self.records = 0
        self.letters = 0
        self.pooled_records = 0
        """Records shorter than one window (only pooled; no prediction of their own)."""

    def add(self, record: SequenceRecord) -> None:
        sequence = record.sequence
        length = len(sequence)
        self.records += 1
        self.letters += length
        whole = length - length % WINDOW_LENGTH
        if whole:
            self._whole.append(memoryview(sequence)[:whole])
            self._whole_records.append((record.number, length, whole // WINDOW_LENGTH))
        else:
            self.pooled_records += 1
        if whole < length:
            self._pool.append(sequence[whole:])
        self.pending_bytes += length + 1

    def add_short(self, sequences: list[bytes]) -> None:
        """add() for records shorter than one window: pooled, no prediction of their own."""
        total = sum(map(len, sequences))
        self.records += len(sequences)
        self.letters += total
        self.pooled_records += len(sequences)
        self._pool.extend(sequences)
        self.pending_bytes += total + len(sequences)

    def drain(self) -> Iterator[WindowBlock]:
        """Profile the whole windows gathered so far; an incomplete pooled window waits for
        more reads (and is dropped at the end of the file: whole windows only)."""
        if self._whole:
            data = self._whole[0] if len(self._whole) == 1 else b"".join(self._whole)
            counts, assessed = profile_windows(data)
            yield WindowBlock(counts, assessed, self._whole_records)
            self._whole, self._whole_records = [], []
        pooled = b"\n".join(self._pool)
        whole = len(pooled) - len(pooled) % WINDOW_LENGTH
        rest = pooled[whole:]
        self._pool = [rest] if rest else []
        self.pending_bytes = len(rest)
        if whole:
            counts, assessed = profile_windows(memoryview(pooled)[:whole])
            yield WindowBlock(counts, assessed, None)


# --- the model -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SpeciesModel:
    """Weights of the species model; `window_probabilities` is the whole inference."""

    classes: tuple[str, ...]
    feature_mean: np.ndarray
    feature_scale: np.ndarray
    coefficients: np.ndarray
    """classes x features, on z-scored frequencies."""
    intercepts: np.ndarray
    temperature: float
    threshold: float
    """Below this file (or record) confidence the answer is Unknown."""
    sha256: str | None = None
    """SHA-256 of the weights file it was loaded from."""

    def window_logits(self, counts: np.ndarray) -> np.ndarray:
        """Uncalibrated logits (before the temperature) of windows given by 4-mer counts."""
        features = (kmer_frequencies(counts) - self.feature_mean) / self.feature_scale
        return features @ self.coefficients.T + self.intercepts

    def window_probabilities(self, counts: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities of windows given by canonical 4-mer counts."""
        return softmax(self.window_logits(counts) / self.temperature)

    def label(self, probabilities: np.ndarray) -> tuple[str, float]:
        """The answer for averaged probabilities: the class, or Unknown below the threshold."""
        best = int(np.argmax(probabilities))
        confidence = float(probabilities[best])
        return (self.classes[best] if confidence >= self.threshold else UNKNOWN), confidence

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as file:
            np.savez(
                file,
                format_version=np.int64(FORMAT_VERSION),
                classes=np.array(self.classes),
                k=np.int64(K),
                window_length=np.int64(WINDOW_LENGTH),
                canonical_kmers=np.array(CANONICAL_KMERS),
                feature_mean=self.feature_mean,
                feature_scale=self.feature_scale,
                coefficients=self.coefficients,
                intercepts=self.intercepts,
                temperature=np.float64(self.temperature),
                threshold=np.float64(self.threshold),
            )

    @classmethod
    def load(cls, path: Path) -> SpeciesModel:
        raw = path.read_bytes()
        with np.load(path, allow_pickle=False) as data:
            if int(data["format_version"]) != FORMAT_VERSION:
                raise ValueError(f"{path}: weights format {int(data['format_version'])}")
            if (
                int(data["k"]) != K
                or int(data["window_length"]) != WINDOW_LENGTH
                or tuple(data["canonical_kmers"]) != CANONICAL_KMERS
            ):
                raise ValueError(f"{path}: weights made for other features than this code's")
            return cls(
                classes=tuple(str(name) for name in data["classes"]),
                feature_mean=data["feature_mean"],
                feature_scale=data["feature_scale"],
                coefficients=data["coefficients"],
                intercepts=data["intercepts"],
                temperature=float(data["temperature"]),
                threshold=float(data["threshold"]),
                sha256=hashlib.sha256(raw).hexdigest(),
            )


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


_models: dict[Path, SpeciesModel] = {}
_models_lock = threading.Lock()


def load_species_model(path: Path | None = None) -> SpeciesModel:
    """The model from `path` (default analysis/weights/species.npz), loaded once per process."""
    resolved = (path or DEFAULT_WEIGHTS_PATH).resolve()
    with _models_lock:
        model = _models.get(resolved)
        if model is None:
            model = _models[resolved] = SpeciesModel.load(resolved)
    return model


# --- one file --------------------------------------------------------------------------------


@dataclass(eq=False)
class SpeciesConsumer:
    """A RecordConsumer (analysis.report) that predicts the species of the file it is fed.

    `add()` only gathers the sequence; windows are profiled in numpy batches of a few MB.
    `result()` gives the file's answer and the first `record_limit` records' answers (all
    records count towards the file's answer).
    """

    model: SpeciesModel = field(default_factory=load_species_model)
    record_limit: int = RECORD_SUMMARY_LIMIT
    _cutter: WindowCutter = field(default_factory=WindowCutter, init=False, repr=False)
    _probability_sum: np.ndarray = field(init=False, repr=False)
    _windows: int = field(default=0, init=False)
    _windows_assessed: int = field(default=0, init=False)
    _records: list[dict[str, Any]] = field(default_factory=list, init=False, repr=False)
    _records_with_windows: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._probability_sum = np.zeros(len(self.model.classes))

    def add(self, record: SequenceRecord) -> None:
        self._cutter.add(record)
        if self._cutter.pending_bytes >= _FLUSH_BYTES:
            self._profile()

    def add_batch(self, batch: RecordBatch) -> None:
        """Reads shorter than a window are only pooled, so a batch of them goes in as columns;
        a batch holding a longer record takes the per-record path (it has few records)."""
        if max(map(len, batch.sequences), default=0) < WINDOW_LENGTH:
            self._cutter.add_short(batch.sequences)
        else:
            for record in batch.records():
                self._cutter.add(record)
        if self._cutter.pending_bytes >= _FLUSH_BYTES:
            self._profile()

    def _profile(self) -> None:
        for block in self._cutter.drain():
            probabilities = self.model.window_probabilities(block.counts)
            probabilities[~block.assessed] = 0.0
            self._probability_sum += probabilities.sum(axis=0)
            self._windows += len(block.assessed)
            self._windows_assessed += int(block.assessed.sum())
            if block.records is not None:
                self._add_records(block.records, probabilities, block.assessed)

    def _add_records(
        self, records: list[tuple[int, int, int]], probabilities: np.ndarray, assessed: np.ndarray
    ) -> None:
        self._records_with_windows += len(records)
        room = self.record_limit - len(self._records)
        if room <= 0:
            return
        records = records[:room]
        windows = np.array([count for _, _, count in records])
        starts = np.concatenate(([0], np.cumsum(windows)[:-1]))
        sums = np.add.reduceat(probabilities[: windows.sum()], starts, axis=0)
        assessed_counts = np.add.reduceat(assessed[: windows.sum()].astype(np.int64), starts)
        for (number, length, _), total, count in zip(records, sums, assessed_counts, strict=True):
            if count:
                predicted, confidence = self.model.label(total / count)
            else:
                predicted, confidence = UNKNOWN, 0.0
            self._records.append(
                {
                    "number": number,
                    "length": length,
                    "predicted_species": predicted,
                    "confidence": round(confidence, 4),
                    "windows_assessed": int(count),
                }
            )

    def result(self) -> dict[str, Any]:
        """The file's answer: see docs/species_model.md for what every key means."""
        self._profile()
        classes = self.model.classes
        notes: list[str] = []
        cutter = self._cutter
        if cutter.pooled_records:
            notes.append(
                f"{cutter.pooled_records:,} record(s) shorter than {WINDOW_LENGTH:,} bases "
                "(reads, short contigs) were pooled into windows for the file's answer and "
                "have no prediction of their own"
            )
        if self._records_with_windows > len(self._records):
            notes.append(f"per-record predictions cover the first {len(self._records):,} records")
        if not self._windows_assessed:
            probabilities = np.full(len(classes), 1.0 / len(classes))
            predicted, confidence = UNKNOWN, 0.0
            notes.insert(
                0,
                f"too little sequence to assess: the species model needs at least one window "
                f"of {WINDOW_LENGTH:,} bases with at most {MAX_AMBIGUOUS_FRACTION:.0%} N or "
                f"other ambiguity codes ({cutter.letters:,} bases in {cutter.records:,} "
                f"record(s), {self._windows} whole window(s), none assessable)",
            )
        else:
            probabilities = self._probability_sum / self._windows_assessed
            predicted, confidence = self.model.label(probabilities)
            if predicted == UNKNOWN:
                notes.insert(
                    0,
                    f"confidence {confidence:.3f} is below the threshold "
                    f"{self.model.threshold:.3f}: the k-mer composition does not match one "
                    f"class clearly enough (best guess {classes[int(np.argmax(probabilities))]})",
                )
            skipped = self._windows - self._windows_assessed
            if skipped:
                notes.append(f"{skipped:,} window(s) skipped (N-rich or too few valid 4-mers)")
        return {
            "predicted_species": predicted,
            "confidence": round(confidence, 4),
            "probabilities": {
                name: float(p) for name, p in zip(classes, probabilities, strict=True)
            },
            "records": list(self._records),
            "windows_assessed": self._windows_assessed,
            "window_length": WINDOW_LENGTH,
            "threshold": self.model.threshold,
            "weights_sha256": self.model.sha256,
            "note": "; ".join(notes) or None,
        }
