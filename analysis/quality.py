"""FASTQ base qualities: Phred offset, mean Q, Q20/Q30, per-position means (no Django).

Everything is accumulated on the raw quality characters and turned into Phred scores only at
the end, because the offset (33 or 64) is known only once every character has been seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from analysis.composition import byte_histogram
from analysis.parser import MalformedSequenceError

MAX_POSITION_BINS = 1000
"""Per-position means use at most this many bins; reads longer than that share bins of
2, 4, 8... positions, so memory does not grow with the read length."""

LONG_READ = 1 << 16
"""Reads at least this long are binned one by one instead of in a batch matrix."""

ILLUMINA_PHRED33_MAX = ord("K")
"""Highest character of Phred+33 Illumina data (Q42)."""
SOLEXA_LOW = ord(";")
"""Solexa scores start at -5 (';' with offset 64)."""


@dataclass(frozen=True, slots=True)
class PhredEncoding:
    offset: int
    warning: str | None = None


def detect_phred_offset(lowest: int, highest: int) -> PhredEncoding:
    """Choose the Phred offset from the lowest and highest quality character seen.

    - a character below ';' only fits Phred+33;
    - ';' to '?' with a maximum in 'L'..'h' fits neither: as Phred+33 the scores run far
      above any short-read instrument, as Phred+64 they go negative (Solexa scores);
    - everything from '@' up with a maximum above 'K' (Q42, the Phred+33 Illumina maximum)
      is Phred+64 (Illumina 1.3-1.7, 'B' to 'h');
    - everything from '@' up to 'K' fits both: Phred+33 is assumed, with a warning.
    The parser has already refused any character outside '!'..'~'.
    """
    if lowest < SOLEXA_LOW:
        return PhredEncoding(33)
    if lowest < ord("@"):
        if highest <= ILLUMINA_PHRED33_MAX or highest > ord("h"):
            return PhredEncoding(33)
        raise MalformedSequenceError(
            f"quality characters run from '{chr(lowest)}' to '{chr(highest)}', which fits "
            "neither Phred+33 nor Phred+64 (Solexa scores are not supported)"
        )
    if highest > ILLUMINA_PHRED33_MAX:
        return PhredEncoding(64)
    return PhredEncoding(
        33,
        f"quality characters '{chr(lowest)}' to '{chr(highest)}' fit both Phred+33 and "
        "Phred+64; Phred+33 assumed",
    )


class QualityAccumulator:
    """Adds up quality characters over batches of reads."""

    def __init__(self, max_bins: int = MAX_POSITION_BINS) -> None:
        self.histogram = np.zeros(256, dtype=np.int64)
        self.max_bins = max_bins
        self.bin_size = 1
        self.bin_sums = np.zeros(0, dtype=np.int64)
        self.bin_counts = np.zeros(0, dtype=np.int64)

    def add(self, qualities: Sequence[bytes]) -> None:
        """Add the quality strings of a batch of reads."""
        lengths = list(map(len, qualities))
        if not lengths:
            return
        longest = max(lengths)
        if longest >= LONG_READ:
            short = []
            for quality in qualities:
                if len(quality) >= LONG_READ:
                    self._add_long(quality)
                else:
                    short.append(quality)
            self.add(short)
            return
        joined = b"".join(qualities)
        if not joined:
            return
        self.histogram += byte_histogram(joined)
        values = np.frombuffer(joined, dtype=np.uint8)
        if min(lengths) == longest:
            # Reads of one length (most short-read files): a matrix, summed down the columns.
            sums = values.reshape(len(lengths), longest).sum(axis=0, dtype=np.int64)
            counts = np.full(longest, len(lengths), dtype=np.int64)
        else:
            read_lengths = np.array(lengths, dtype=np.int64)
            starts = np.cumsum(read_lengths) - read_lengths
            positions = np.arange(len(values), dtype=np.int64) - np.repeat(starts, read_lengths)
            sums = np.bincount(positions, weights=values, minlength=longest).astype(np.int64)
            counts = np.bincount(positions, minlength=longest)
        self._add_positions(sums, counts)

    def _add_long(self, quality: bytes) -> None:
        self.histogram += byte_histogram(quality)
        self._ensure_bins(len(quality))
        values = np.frombuffer(quality, dtype=np.uint8)
        width = self.bin_size
        full = len(values) // width * width
        sums = values[:full].reshape(-1, width).sum(axis=1, dtype=np.int64)
        counts = np.full(len(sums), width, dtype=np.int64)
        if full < len(values):
            sums = np.append(sums, int(values[full:].sum(dtype=np.int64)))
            counts = np.append(counts, len(values) - full)
        self.bin_sums[: len(sums)] += sums
        self.bin_counts[: len(counts)] += counts

    def _add_positions(self, sums: np.ndarray, counts: np.ndarray) -> None:
        """Add per-position sums and counts (index = position in the read) to the bins."""
        self._ensure_bins(len(sums))
        width = self.bin_size
        if width > 1:
            padded = -(-len(sums) // width) * width
            sums = np.pad(sums, (0, padded - len(sums))).reshape(-1, width).sum(axis=1)
            counts = np.pad(counts, (0, padded - len(counts))).reshape(-1, width).sum(axis=1)
        self.bin_sums[: len(sums)] += sums
        self.bin_counts[: len(counts)] += counts

    def _ensure_bins(self, read_length: int) -> None:
        """Make the bins cover `read_length` positions, doubling their width as needed."""
        while -(-read_length // self.bin_size) > self.max_bins:
            if len(self.bin_sums) % 2:
                self.bin_sums = np.append(self.bin_sums, 0)
                self.bin_counts = np.append(self.bin_counts, 0)
            self.bin_sums = self.bin_sums.reshape(-1, 2).sum(axis=1)
            self.bin_counts = self.bin_counts.reshape(-1, 2).sum(axis=1)
            self.bin_size *= 2
        needed = -(-read_length // self.bin_size)
        if needed > len(self.bin_sums):
            grow = needed - len(self.bin_sums)
            self.bin_sums = np.append(self.bin_sums, np.zeros(grow, dtype=np.int64))
            self.bin_counts = np.append(self.bin_counts, np.zeros(grow, dtype=np.int64))

    @property
    def base_count(self) -> int:
        return int(self.histogram.sum())

    def encoding(self) -> PhredEncoding | None:
        """The detected Phred encoding, or None when no quality character was seen."""
        seen = np.flatnonzero(self.histogram)
        if not len(seen):
            return None
        return detect_phred_offset(int(seen[0]), int(seen[-1]))

    def summary(self, offset: int) -> QualitySummary:
        total = self.base_count
        if not total:
            return QualitySummary(None, None, None, [])
        characters = np.arange(256)
        mean = float((characters * self.histogram).sum()) / total - offset
        q20 = float(self.histogram[offset + 20 :].sum()) / total
        q30 = float(self.histogram[offset + 30 :].sum()) / total
        covered = self.bin_counts > 0
        per_position = np.zeros(len(self.bin_sums))
        per_position[covered] = self.bin_sums[covered] / self.bin_counts[covered] - offset
        return QualitySummary(mean, q20, q30, [float(value) for value in per_position])


@dataclass(frozen=True, slots=True)
class QualitySummary:
    mean_quality: float | None
    q20_fraction: float | None
    q30_fraction: float | None
    per_position_mean_quality: list[float]
