"""k-mer counting over A/C/G/T(U) windows with numpy (no Django).

A window counts only when all its k letters are A, C, G or T (U read as T, either case); any
other letter, or the boundary between two records, breaks the window. Counting is vectorised:
letters are mapped to digits 0-3 (4 for anything else) with bytes.translate, each window gets
a base-5 index (so a window holding a 4 never collides with a valid one), and np.bincount
counts them. Long inputs are cut into slices that overlap by k-1 letters, so memory stays a
few bytes per letter of one slice whatever the input size.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import numpy as np

MAX_K = 8
"""Largest supported k: 5**8 bins is 3 MB of counters; larger k needs hashing."""

SLICE_LETTERS = 1 << 20
"""Windows counted per numpy pass (bounds the temporaries to a few MB)."""

BASES = "ACGT"
BREAK = 4
"""Digit of a letter that breaks windows (ambiguity codes, gaps, record separators)."""

_DIGITS = bytearray([BREAK]) * 256
for _letters, _digit in ((b"Aa", 0), (b"Cc", 1), (b"Gg", 2), (b"TtUu", 3)):
    for _letter in _letters:
        _DIGITS[_letter] = _digit
DIGIT_TABLE = bytes(_DIGITS)
"""bytes.translate table: A/C/G/T(U) to 0-3, every other byte to 4."""


def _index_dtype(k: int) -> type[np.unsignedinteger]:
    if 5**k <= 1 << 8:
        return np.uint8
    if 5**k <= 1 << 16:
        return np.uint16
    return np.uint32


def kmer_labels(k: int) -> list[str]:
    """All 4**k k-mers in the order of the count vectors (lexicographic, A < C < G < T)."""
    return ["".join(letters) for letters in itertools.product(BASES, repeat=k)]


class KmerCounter:
    """Counts k-mers over many sequences; windows never cross from one sequence to the next."""

    def __init__(self, k: int) -> None:
        if not 1 <= k <= MAX_K:
            raise ValueError(f"k must be between 1 and {MAX_K}, not {k}")
        self.k = k
        self._base5_counts = np.zeros(5**k, dtype=np.int64)
        # Base-5 index of every valid k-mer, in lexicographic order of the k-mer.
        valid = np.zeros(1, dtype=np.int64)
        for _ in range(k):
            valid = (valid[:, None] * 5 + np.arange(4)).ravel()
        self._valid_indices = valid

    def add(self, sequences: Iterable[bytes]) -> None:
        """Count the windows of each sequence (a newline is put between them as a break)."""
        self.add_joined(b"\n".join(sequences))

    def add_joined(self, joined: bytes) -> None:
        """Count the windows of sequences joined by a byte that is not a base."""
        k = self.k
        dtype = _index_dtype(k)
        windows = len(joined) - k + 1
        for start in range(0, max(windows, 0), SLICE_LETTERS):
            count = min(SLICE_LETTERS, windows - start)
            piece = joined[start : start + count + k - 1].translate(DIGIT_TABLE)
            digits = np.frombuffer(piece, dtype=np.uint8)
            index = digits[:count].astype(dtype)
            for offset in range(1, k):
                index *= 5
                index += digits[offset : offset + count]
            self._base5_counts += np.bincount(index, minlength=5**k)

    @property
    def counts(self) -> np.ndarray:
        """Counts of the 4**k k-mers in the order of kmer_labels(k)."""
        return self._base5_counts[self._valid_indices]

    @property
    def total(self) -> int:
        """Number of windows made only of A/C/G/T (the analysis' `k_mer_count`)."""
        return int(self.counts.sum())

    @property
    def distinct(self) -> int:
        return int(np.count_nonzero(self.counts))


def count_kmers(sequence: bytes, k: int = 3) -> dict[str, int]:
    """Non-zero k-mer counts of one sequence, by k-mer (upper case, U read as T)."""
    counter = KmerCounter(k)
    counter.add([sequence])
    return {
        label: int(count)
        for label, count in zip(kmer_labels(k), counter.counts, strict=True)
        if count
    }
