"""AML defence: is an upload real genomic sequence, or off-manifold / adversarial input?

Pure inference in numpy (no Django, no torch: ``import torch`` alone costs about 2 s and
220 MB per process). The weights come from ``security/weights/aml.npz`` and their metadata
(features, normalisation, thresholds, training files) from ``security/weights/aml.json``,
both written by ``python manage.py train_aml`` (security/aml_training.py); docs/aml_model.md
is the model card with the measured rates.

Two tests look at every window of WINDOW letters of the upload:

* Reconstruction: an autoencoder trained on canonical 4-mer profiles of real genomes
  reconstructs each SUB_WINDOW-letter part of the window; the window's error is the largest
  of its parts'. Low-complexity repeats and text or protein written as bases sit far off the
  manifold of real profiles and reconstruct badly. Uniformly random DNA does not: it looks
  like a blurred average genome.
* Structure: a chi-squared score of the window's 3-mer counts against the counts its own
  dinucleotide composition predicts (a first-order Markov chain fitted to each strand, both
  strands pooled, as reads come from both). Real DNA has far more 3-mer structure than
  that; random DNA and mono- or dinucleotide-preserving shuffles have none, so their score
  stays near 1.

A window is flagged when either test flags it; the upload fails when more than
``max_flagged_fraction`` of its assessed windows are flagged, so one odd window in a large
real genome does not fail it. Records are pooled, in file order, with a break between them
(no k-mer crosses from one record to the next), so 150 bp reads are assessed in windows of
about forty reads. Only whole windows count, and a window where fewer than
MIN_VALID_KMER_FRACTION of the positions start a 4-mer of A/C/G/T alone (N-rich, or reads too
short) is skipped: the structure score misfires on such windows. With fewer than
``min_windows`` assessed windows the answer is ``passed=None``, "too little sequence to
assess", which is not a failure.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from analysis.parser import SequenceRecord

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS_PATH = WEIGHTS_DIR / "aml.npz"
FORMAT_VERSION = 1

K = 4
"""k of the autoencoder's canonical k-mer profiles."""
STRUCTURE_K = 3
SUB_WINDOW = 2_000
"""Letters per autoencoder profile."""
SUB_WINDOWS_PER_WINDOW = 3
WINDOW = SUB_WINDOW * SUB_WINDOWS_PER_WINDOW
"""Letters per assessed window (the structure test needs about 6 kb: see the model card)."""
MIN_VALID_KMER_FRACTION = 0.8
"""A window is assessed only when at least this fraction of its positions start a 4-mer
made of A/C/G/T alone: N runs and very short reads (below about 20 bp) leave too little for
the structure test."""
PSEUDO_FREQUENCY = 3e-3
"""Added to every 4-mer frequency before the log (about 0.4 x the uniform 1/136): the log
brings out 4-mers missing or over-used, the pseudo-frequency keeps sampling noise of rare
4-mers in a 2 kb part from dominating."""
STRUCTURE_NULL_MEAN = 36.0
"""Mean of the structure chi-squared for sequence with no 3-mer structure beyond its
dinucleotides: 4 middle letters x (4-1) x (4-1) degrees of freedom of the Markov fit (the
strand-pooled table has 32 distinct cells counted twice, which keeps the mean near 36:
measured 0.97 x 36 on random sequence)."""

_FLUSH_LETTERS = 4 << 20
"""Letters gathered from add() before they are scored in one numpy pass."""
_ROWS_PER_PASS = 256
"""Windows scored per numpy pass (bounds the temporaries to a few tens of MB)."""

# --- letters to digits ---------------------------------------------------------------------

_AMBIGUOUS = 4
_SEPARATOR = 5
_digit_table = bytearray([_AMBIGUOUS]) * 256
for _letters, _digit in ((b"Aa", 0), (b"Cc", 1), (b"Gg", 2), (b"TtUu", 3)):
    for _letter in _letters:
        _digit_table[_letter] = _digit
_digit_table[ord("\n")] = _SEPARATOR
DIGIT_TABLE = bytes(_digit_table)
"""bytes.translate table: A/C/G/T(U) to 0-3, b"\\n" (the break between pooled records) to 5,
anything else (N and other IUPAC codes) to 4."""


def _reverse_complement(index: int, k: int) -> int:
    result = 0
    for _ in range(k):
        result = (result << 2) | (3 - (index & 3))
        index >>= 2
    return result


def canonical_columns(k: int) -> tuple[np.ndarray, int]:
    """Column of each of the 4**k k-mer codes (and of the invalid code 4**k, last)."""
    canonical = sorted({min(i, _reverse_complement(i, k)) for i in range(4**k)})
    column_of = np.full(4**k + 1, len(canonical), dtype=np.intp)
    for column, index in enumerate(canonical):
        column_of[index] = column
        column_of[_reverse_complement(index, k)] = column
    return column_of, len(canonical)


COLUMN_OF_CODE, FEATURES = canonical_columns(K)
"""FEATURES = 136 canonical 4-mers (the smaller of a 4-mer and its reverse complement)."""
_STRUCTURE_REVERSE_COMPLEMENT = np.array(
    [_reverse_complement(i, STRUCTURE_K) for i in range(4**STRUCTURE_K)]
)


def to_digits(data: bytes) -> np.ndarray:
    """Digits 0-5 of sequence letters (b"\\n" marks a break between records)."""
    return np.frombuffer(data.translate(DIGIT_TABLE), dtype=np.uint8)


def kmer_codes(rows: np.ndarray, k: int) -> np.ndarray:
    """Code 0..4**k-1 (2 bits a letter, first letter highest) of the k-mer starting at each
    position of each row of digits; 4**k when it holds a letter other than A/C/G/T or runs
    past the row's end."""
    length = rows.shape[1]
    span = length - k + 1
    pieces = [rows[:, offset : offset + span] for offset in range(k)]
    code = np.zeros(pieces[0].shape, dtype=np.uint16)
    flags = np.zeros(pieces[0].shape, dtype=np.uint8)
    for piece in pieces:
        code <<= 2
        code |= piece & 3
        flags |= piece  # digits 4 (ambiguous) and 5 (break) are the only ones with bit 2 set
    result = np.full(rows.shape, 4**k, dtype=np.uint16)
    result[:, :span] = np.where(flags & 4, np.uint16(4**k), code)
    return result


def _row_bincount(codes: np.ndarray, bins: int) -> np.ndarray:
    rows = codes.shape[0]
    flat = codes + (np.arange(rows, dtype=np.intp) * bins)[:, None]
    return np.bincount(flat.ravel(), minlength=rows * bins).reshape(rows, bins)


_CANONICAL_FOLD = np.zeros((4**K, FEATURES))
_CANONICAL_FOLD[np.arange(4**K), COLUMN_OF_CODE[: 4**K]] = 1.0
_WINDOW_KMERS = SUB_WINDOWS_PER_WINDOW * (SUB_WINDOW - K + 1)
"""4-mer start positions in a window with no N and no break."""


def part_kmer_counts(digits: np.ndarray) -> np.ndarray:
    """Counts of the 256 4-mers (not folded) of consecutive SUB_WINDOW-letter parts of
    `digits` (length a multiple of SUB_WINDOW). A 4-mer belongs to the part it starts in and
    never crosses a part's end."""
    parts = digits.reshape(-1, SUB_WINDOW)
    counts = np.empty((len(parts), 4**K), dtype=np.int64)
    rows_per_pass = _ROWS_PER_PASS * SUB_WINDOWS_PER_WINDOW
    for start in range(0, len(parts), rows_per_pass):
        rows = parts[start : start + rows_per_pass]
        counts[start : start + len(rows)] = _row_bincount(kmer_codes(rows, K), 4**K + 1)[:, : 4**K]
    return counts


def canonical_profiles(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Canonical 4-mer frequencies (rows sum to 1) of rows of 256 4-mer counts, and the
    number of valid 4-mers of each row."""
    folded = counts @ _CANONICAL_FOLD
    valid = counts.sum(axis=1)
    return folded / np.maximum(valid, 1)[:, None], valid


def part_profiles(digits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Canonical 4-mer frequencies of consecutive SUB_WINDOW-letter parts of `digits`, and the
    number of valid 4-mers of each part."""
    return canonical_profiles(part_kmer_counts(digits))


def window_features(digits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features of consecutive WINDOW-letter windows of `digits` (a tail shorter than a window
    is ignored).

    Returns (profiles, structure_scores, assessed): the part_profiles() of every SUB_WINDOW
    part (windows * SUB_WINDOWS_PER_WINDOW rows, the parts of a window in order), the
    structure score of every window, and whether each window has enough valid 4-mers to be
    assessed. The structure test counts the 3-mers that start a valid 4-mer, so both tests
    see the same positions.
    """
    windows = len(digits) // WINDOW
    counts = part_kmer_counts(digits[: windows * WINDOW])
    profiles, valid = canonical_profiles(counts)
    assessed = (
        valid.reshape(windows, SUB_WINDOWS_PER_WINDOW).sum(axis=1)
        >= MIN_VALID_KMER_FRACTION * _WINDOW_KMERS
    )
    triplets = counts.reshape(windows, SUB_WINDOWS_PER_WINDOW, 4**STRUCTURE_K, 4).sum(axis=(1, 3))
    return profiles, structure_scores(triplets), assessed


def structure_scores(triplet_counts: np.ndarray) -> np.ndarray:
    """Structure score of rows of 3-mer counts (64 columns, lexicographic order).

    Each strand's expected count of xyz is N(xy) N(yz) / N(y), a first-order Markov chain
    fitted to that strand's own counts; observed and expected counts of both strands are
    then pooled (reads come from both strands, and real DNA's excess 3-mer structure is
    about the same on both, while noise is not). Fitting each strand on its own matters: a
    sequence whose strands differ in composition (human mtDNA) would otherwise look
    structured, because a mixture of two chains is not one chain. The score is the
    chi-squared statistic of the pooled counts, its excess over STRUCTURE_NULL_MEAN scaled to
    a full window of valid 3-mers, divided by STRUCTURE_NULL_MEAN: sequence with no structure
    beyond its dinucleotides scores about 1.
    """
    counts = np.asarray(triplet_counts, dtype=np.float64)
    table = counts.reshape(-1, 4, 4, 4)
    left = table.sum(axis=3)  # N(xy)
    right = table.sum(axis=1)  # N(yz)
    middle = table.sum(axis=(1, 3))  # N(y)
    expected = left[:, :, :, None] * right[:, None, :, :] / np.maximum(middle, 1)[:, None, :, None]
    expected = expected.reshape(-1, 4**STRUCTURE_K)
    observed = counts + counts[:, _STRUCTURE_REVERSE_COMPLEMENT]
    expected = expected + expected[:, _STRUCTURE_REVERSE_COMPLEMENT]
    cells = expected > 0
    chi_squared = np.where(
        cells, (observed - expected) ** 2 / np.where(cells, expected, 1.0), 0.0
    ).sum(axis=1)
    # The chi-squared is about STRUCTURE_NULL_MEAN + n x (structure per 3-mer) for n 3-mers.
    # Scaling the excess alone to a full window keeps windows with a few N or many read
    # breaks comparable with the others, without inflating the score of random sequence.
    valid = counts.sum(axis=1)
    excess = (chi_squared - STRUCTURE_NULL_MEAN) * _WINDOW_KMERS / np.maximum(valid, 1)
    return (STRUCTURE_NULL_MEAN + excess) / STRUCTURE_NULL_MEAN


# --- the model -----------------------------------------------------------------------------


def log_profiles(profiles: np.ndarray) -> np.ndarray:
    """The autoencoder's features: log(frequency + PSEUDO_FREQUENCY), before z-scoring."""
    return np.log(profiles + PSEUDO_FREQUENCY)


@dataclass(frozen=True, eq=False)
class AmlModel:
    """Autoencoder weights, normalisation and metadata; `reconstruction_errors` is inference."""

    feature_mean: np.ndarray
    feature_scale: np.ndarray
    """Mean and standard deviation of the training features (log_profiles)."""
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]
    """(weight: inputs x outputs, bias) per layer; tanh between layers, linear output."""
    metadata: Mapping[str, Any]
    sha256: str | None = None

    def reconstruction_errors(self, profiles: np.ndarray) -> np.ndarray:
        """Mean squared reconstruction error (in z-scored units) of each profile row."""
        inputs = (log_profiles(profiles) - self.feature_mean) / self.feature_scale
        hidden = inputs
        for index, (weight, bias) in enumerate(self.layers):
            hidden = hidden @ weight + bias
            if index < len(self.layers) - 1:
                hidden = np.tanh(hidden)
        return np.mean((hidden - inputs) ** 2, axis=1)

    def window_errors(self, profiles: np.ndarray) -> np.ndarray:
        """Error of each window: the largest error of its SUB_WINDOW parts."""
        errors = self.reconstruction_errors(profiles)
        return errors.reshape(-1, SUB_WINDOWS_PER_WINDOW).max(axis=1)

    def save(self, path: Path) -> None:
        """Write the weights (.npz) and the metadata (.json beside it)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {
            "format_version": np.int64(FORMAT_VERSION),
            "feature_mean": self.feature_mean,
            "feature_scale": self.feature_scale,
        }
        for index, (weight, bias) in enumerate(self.layers):
            arrays[f"layer{index}_weight"] = weight
            arrays[f"layer{index}_bias"] = bias
        with path.open("wb") as file:
            np.savez(file, **arrays)
        metadata = dict(self.metadata)
        metadata["weights_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        path.with_suffix(".json").write_text(json.dumps(metadata, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path = DEFAULT_WEIGHTS_PATH) -> AmlModel:
        raw = path.read_bytes()
        metadata = json.loads(path.with_suffix(".json").read_text())
        features = metadata["features"]
        expected = {
            "k": K,
            "sub_window": SUB_WINDOW,
            "window": WINDOW,
            "structure_k": STRUCTURE_K,
            "min_valid_kmer_fraction": MIN_VALID_KMER_FRACTION,
            "pseudo_frequency": PSEUDO_FREQUENCY,
        }
        if {name: features.get(name) for name in expected} != expected:
            raise ValueError(f"{path}: weights made for other features than this code's")
        with np.load(path, allow_pickle=False) as data:
            if int(data["format_version"]) != FORMAT_VERSION:
                raise ValueError(f"{path}: weights format {int(data['format_version'])}")
            count = sum(1 for name in data.files if name.endswith("_weight"))
            layers = tuple(
                (data[f"layer{index}_weight"], data[f"layer{index}_bias"]) for index in range(count)
            )
            return cls(
                feature_mean=data["feature_mean"],
                feature_scale=data["feature_scale"],
                layers=layers,
                metadata=metadata,
                sha256=hashlib.sha256(raw).hexdigest(),
            )


_models: dict[Path, AmlModel] = {}
_models_lock = threading.Lock()


def load_aml_model(path: Path | None = None) -> AmlModel:
    """The model from `path` (default security/weights/aml.npz), loaded once per process."""
    resolved = (path or DEFAULT_WEIGHTS_PATH).resolve()
    with _models_lock:
        model = _models.get(resolved)
        if model is None:
            model = _models[resolved] = AmlModel.load(resolved)
    return model


# --- thresholds and verdict ----------------------------------------------------------------


@dataclass(frozen=True)
class AmlThresholds:
    """The decision's numbers; the policy optimiser (GA) tunes them per policy version.

    Defaults come from the model's metadata (`from_metadata`), where training wrote them by
    the rule the model card pre-registers.
    """

    reconstruction_error: float
    """A window whose autoencoder error is above this is flagged."""
    structure_score: float
    """A window whose structure score is below this is flagged."""
    min_windows: int
    """Fewer assessed windows than this: "too little sequence to assess" (passed=None)."""
    max_flagged_fraction: float
    """The upload fails when more than this fraction of its assessed windows is flagged."""

    def __post_init__(self) -> None:
        if self.min_windows < 1:
            raise ValueError("min_windows must be at least 1")
        if not 0.0 <= self.max_flagged_fraction < 1.0:
            raise ValueError("max_flagged_fraction must be in [0, 1)")
        if self.reconstruction_error <= 0 or self.structure_score < 0:
            raise ValueError("thresholds must be positive")

    @classmethod
    def from_metadata(
        cls, metadata: Mapping[str, Any] | None = None, **overrides: float | int
    ) -> AmlThresholds:
        """The defaults stored with the weights (the loaded model's unless given), with
        `overrides` (field name = value) applied."""
        if metadata is None:
            metadata = load_aml_model().metadata
        stored = metadata["thresholds"]
        thresholds = cls(
            reconstruction_error=float(stored["reconstruction_error"]),
            structure_score=float(stored["structure_score"]),
            min_windows=int(stored["min_windows"]),
            max_flagged_fraction=float(stored["max_flagged_fraction"]),
        )
        return replace(thresholds, **overrides) if overrides else thresholds


@dataclass(frozen=True)
class AmlVerdict:
    """What the AML stage concluded; `passed` is None for "too little sequence to assess"."""

    passed: bool | None
    reason: str
    windows_assessed: int
    flagged_windows: int
    reconstruction_flagged_windows: int
    structure_flagged_windows: int
    windows_skipped: int
    """Whole windows left out (N-rich, or reads too short for enough valid 4-mers)."""
    letters: int
    max_reconstruction_error: float | None
    median_reconstruction_error: float | None
    min_structure_score: float | None
    median_structure_score: float | None
    thresholds: AmlThresholds

    @property
    def flagged_fraction(self) -> float | None:
        if not self.windows_assessed:
            return None
        return self.flagged_windows / self.windows_assessed

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable; holds no sequence or header text."""
        data = asdict(self)
        data["flagged_fraction"] = self.flagged_fraction
        data["window_length"] = WINDOW
        return data


@dataclass(frozen=True, eq=False)
class AmlWindowScores:
    """Per-window scores of one upload; `verdict` can be asked for any thresholds (the GA
    re-decides stored scores without reading the file again)."""

    reconstruction_errors: np.ndarray
    structure_scores: np.ndarray
    windows_skipped: int
    letters: int

    def verdict(self, thresholds: AmlThresholds | None = None) -> AmlVerdict:
        if thresholds is None:
            thresholds = AmlThresholds.from_metadata()
        errors = self.reconstruction_errors
        scores = self.structure_scores
        assessed = len(errors)
        by_reconstruction = errors > thresholds.reconstruction_error
        by_structure = scores < thresholds.structure_score
        flagged = int(np.count_nonzero(by_reconstruction | by_structure))
        summary: dict[str, Any] = {
            "windows_assessed": assessed,
            "flagged_windows": flagged,
            "reconstruction_flagged_windows": int(by_reconstruction.sum()),
            "structure_flagged_windows": int(by_structure.sum()),
            "windows_skipped": self.windows_skipped,
            "letters": self.letters,
            "max_reconstruction_error": float(errors.max()) if assessed else None,
            "median_reconstruction_error": float(np.median(errors)) if assessed else None,
            "min_structure_score": float(scores.min()) if assessed else None,
            "median_structure_score": float(np.median(scores)) if assessed else None,
            "thresholds": thresholds,
        }
        if assessed < thresholds.min_windows:
            skipped = (
                f", {self.windows_skipped:,} skipped as N-rich or too fragmented"
                if self.windows_skipped
                else ""
            )
            reason = (
                f"too little sequence to assess: {assessed:,} assessable window(s) of "
                f"{WINDOW:,} letters{skipped}; at least {thresholds.min_windows:,} needed"
            )
            return AmlVerdict(passed=None, reason=reason, **summary)
        fraction = flagged / assessed
        counts = (
            f"{flagged:,} of {assessed:,} windows off-manifold "
            f"({summary['reconstruction_flagged_windows']:,} by reconstruction error, "
            f"{summary['structure_flagged_windows']:,} by missing 3-mer structure)"
        )
        if fraction > thresholds.max_flagged_fraction:
            reason = f"{counts}: more than {thresholds.max_flagged_fraction:.0%} allowed"
            return AmlVerdict(passed=False, reason=reason, **summary)
        return AmlVerdict(passed=True, reason=f"{counts}: within the limit", **summary)


@dataclass
class AmlConsumer:
    """A RecordConsumer (analysis.report) that scores the upload it is fed, window by window.

    `add()` only gathers letters; they are scored in numpy passes of a few MB, so memory
    stays bounded by one pass plus two floats per window whatever the file size.
    """

    model: AmlModel = field(default_factory=load_aml_model)
    _pending: list[bytes] = field(default_factory=list, init=False, repr=False)
    _pending_letters: int = field(default=0, init=False)
    _errors: list[np.ndarray] = field(default_factory=list, init=False, repr=False)
    _scores: list[np.ndarray] = field(default_factory=list, init=False, repr=False)
    _skipped: int = field(default=0, init=False)
    _letters: int = field(default=0, init=False)

    def add(self, record: SequenceRecord) -> None:
        self.add_sequence(record.sequence)

    def add_sequence(self, sequence: bytes) -> None:
        """Add one record's letters (a break is put before the next record)."""
        self._pending.append(sequence)
        self._pending_letters += len(sequence) + 1
        self._letters += len(sequence)
        if self._pending_letters >= _FLUSH_LETTERS:
            self._score_whole_windows()

    def _score_whole_windows(self) -> None:
        if not self._pending:
            return
        joined = b"\n".join(self._pending) + b"\n"
        whole = len(joined) - len(joined) % WINDOW
        rest = joined[whole:]
        # The break after the last record is kept at the head of the remainder by leaving
        # the trailing newline in it; an empty remainder means the next record starts clean.
        self._pending = [rest[:-1]] if rest else []
        self._pending_letters = len(rest)
        if not whole:
            return
        profiles, scores, assessed = window_features(to_digits(joined[:whole]))
        errors = self.model.window_errors(profiles)
        self._errors.append(errors[assessed])
        self._scores.append(scores[assessed])
        self._skipped += int(np.count_nonzero(~assessed))

    def scores(self) -> AmlWindowScores:
        """Scores of every whole window so far (a final partial window is not assessed)."""
        self._score_whole_windows()
        return AmlWindowScores(
            reconstruction_errors=np.concatenate([np.zeros(0), *self._errors]),
            structure_scores=np.concatenate([np.zeros(0), *self._scores]),
            windows_skipped=self._skipped,
            letters=self._letters,
        )

    def verdict(self, thresholds: AmlThresholds | None = None) -> AmlVerdict:
        """The AML verdict on everything added so far (thresholds default to the metadata's)."""
        if thresholds is None:
            thresholds = AmlThresholds.from_metadata(self.model.metadata)
        return self.scores().verdict(thresholds)


def assess_sequences(
    sequences: Iterable[bytes],
    thresholds: AmlThresholds | None = None,
    model: AmlModel | None = None,
) -> AmlVerdict:
    """The AML verdict on sequences given as bytes (one per record, pooled in order)."""
    consumer = AmlConsumer(model or load_aml_model())
    for sequence in sequences:
        consumer.add_sequence(sequence)
    return consumer.verdict(thresholds)
