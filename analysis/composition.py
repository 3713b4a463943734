"""Base composition: letter counts, GC content, soft-masking, lengths, k-mers (no Django).

Definitions (DESIGN.md, "Analysis definitions"): GC% = (G+C)/(A+C+G+T+U), case-insensitive;
N and the other IUPAC ambiguity codes count towards the length but are excluded from both
sides of the GC ratio and reported separately; U counts as T.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from analysis.kmers import KmerCounter

AMBIGUITY_CODES = "RYSWKMBDHV"
"""IUPAC ambiguity codes other than N."""

SLICE_BYTES = 1 << 22
"""Bytes histogrammed per numpy pass (np.bincount widens its input to 8 bytes a value);
must be even."""

HISTOGRAM_FROM = 4096
"""Sequences longer than this get their GC from a byte histogram."""

_UNAMBIGUOUS = b"ACGTUacgtu"
_GC = b"GCgc"


def gc_content(sequence: bytes) -> float | None:
    """GC percentage (0-100) of one sequence, or None when it has no A/C/G/T/U."""
    if len(sequence) > HISTOGRAM_FROM:
        # Deleting half the letters with bytes.translate runs at ~70 MB/s; a histogram at GB/s.
        return gc_from_histogram(byte_histogram(sequence))
    else:
        unambiguous = len(sequence) - len(sequence.translate(None, _UNAMBIGUOUS))
        gc = len(sequence) - len(sequence.translate(None, _GC))
    if not unambiguous:
        return None
    return 100.0 * gc / unambiguous


def gc_from_histogram(histogram: np.ndarray) -> float | None:
    """GC percentage from a byte histogram, or None when it has no A/C/G/T/U."""
    unambiguous = int(histogram[list(_UNAMBIGUOUS)].sum())
    if not unambiguous:
        return None
    return 100.0 * int(histogram[list(_GC)].sum()) / unambiguous


def byte_histogram(data: bytes) -> np.ndarray:
    """Occurrences of each of the 256 byte values in `data`.

    Counts byte pairs (uint16, 65,536 bins) and folds them back: np.bincount widens every
    value to 8 bytes, so half as many values make it about three times faster.
    """
    values = np.frombuffer(data, dtype=np.uint8)
    histogram = np.zeros(256, dtype=np.int64)
    paired = len(values) // 2 * 2
    for start in range(0, paired, SLICE_BYTES):
        pairs = values[start : min(start + SLICE_BYTES, paired)].view(np.uint16)
        counts = np.bincount(pairs, minlength=1 << 16).reshape(256, 256)
        histogram += counts.sum(axis=0)
        histogram += counts.sum(axis=1)
    if paired < len(values):
        histogram[values[-1]] += 1
    return histogram


def n50(length_counts: Counter[int]) -> int | None:
    """N50 from a histogram of record lengths: the length at which half the bases are covered
    by records at least that long (same definition as seqkit stats)."""
    total = sum(length * count for length, count in length_counts.items())
    if not total:
        return None
    covered = 0
    for length in sorted(length_counts, reverse=True):
        covered += length * length_counts[length]
        if 2 * covered >= total:
            return length
    raise AssertionError("unreachable")  # pragma: no cover


class CompositionAccumulator:
    """Adds up letter counts, lengths and k-mers over batches of sequences."""

    def __init__(self, k: int = 3) -> None:
        self.kmers = KmerCounter(k)
        self.histogram = np.zeros(256, dtype=np.int64)
        self.length_counts: Counter[int] = Counter()

    def add(self, sequences: Sequence[bytes]) -> np.ndarray:
        """Add a batch of sequences (letters only, as SequenceRecord.sequence holds them);
        returns the byte histogram of the batch."""
        joined = b"\n".join(sequences)  # the newline keeps k-mer windows inside each record
        histogram = byte_histogram(joined)
        self.histogram += histogram
        self.kmers.add_joined(joined)
        self.length_counts.update(map(len, sequences))
        return histogram

    def count(self, letter: str) -> int:
        """Occurrences of a letter, upper and lower case together."""
        return int(self.histogram[ord(letter.upper())] + self.histogram[ord(letter.lower())])

    @property
    def sequence_length(self) -> int:
        """Every sequence letter (the newline separators are not letters)."""
        return int(self.histogram.sum() - self.histogram[ord("\n")])

    @property
    def base_counts(self) -> dict[str, int]:
        """A, C, G, T, U, N and `other` (the remaining IUPAC ambiguity codes), any case."""
        counts = {letter: self.count(letter) for letter in "ACGTUN"}
        counts["other"] = sum(self.count(letter) for letter in AMBIGUITY_CODES)
        return counts

    @property
    def ambiguity_counts(self) -> dict[str, int]:
        """Each IUPAC ambiguity code other than N that occurs, with its count."""
        counts = {letter: self.count(letter) for letter in AMBIGUITY_CODES}
        return {letter: count for letter, count in counts.items() if count}

    @property
    def unambiguous_count(self) -> int:
        return sum(self.count(letter) for letter in "ACGTU")

    @property
    def gc_content(self) -> float | None:
        unambiguous = self.unambiguous_count
        if not unambiguous:
            return None
        return 100.0 * (self.count("G") + self.count("C")) / unambiguous

    @property
    def soft_masked_fraction(self) -> float | None:
        """Share of the sequence letters in lower case (soft-masked repeats), 0-1."""
        length = self.sequence_length
        if not length:
            return None
        return int(self.histogram[ord("a") : ord("z") + 1].sum()) / length

    @property
    def unambiguous_fraction(self) -> float | None:
        """Share of the letters that are A/C/G/T/U: the FASTA `quality_score`, 0-1."""
        length = self.sequence_length
        if not length:
            return None
        return self.unambiguous_count / length
