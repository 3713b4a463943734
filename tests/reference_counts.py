"""An independent, deliberately simple count of sequence length and GC, to check the product
against. It shares no code with analysis/ and is written for clarity, not speed."""

from __future__ import annotations

from pathlib import Path

NUCLEOTIDE_LETTERS = set("ACGTURYSWKMBDHVN")


def _sequences(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    sequences: list[str] = []
    if lines and lines[0].startswith("@"):
        index = 0
        while index < len(lines):
            if not lines[index].strip():
                index += 1
                continue
            assert lines[index].startswith("@")
            index += 1
            sequence = ""
            while not lines[index].startswith("+"):
                sequence += lines[index].strip()
                index += 1
            index += 1  # the '+' line
            quality = ""
            while len(quality) < len(sequence):
                quality += lines[index].strip()
                index += 1
            sequences.append(sequence)
        return sequences
    for line in lines:
        if line.startswith(">"):
            sequences.append("")
        elif sequences:
            sequences[-1] += "".join(line.split())
    return sequences


def independent_counts(path: Path) -> tuple[int, float | None, int]:
    """(sequence length, GC percent of A/C/G/T/U bases, record count)."""
    sequences = _sequences(path)
    length = gc = acgt = 0
    for sequence in sequences:
        for letter in sequence.upper():
            if letter in NUCLEOTIDE_LETTERS:
                length += 1
            if letter in "GC":
                gc += 1
            if letter in "ACGTU":
                acgt += 1
    return length, (100.0 * gc / acgt if acgt else None), len(sequences)


def independent_kmer_windows(path: Path, k: int = 3) -> int:
    """Windows of k letters that are all A/C/G/T (U as T), never crossing records."""
    windows = 0
    for sequence in _sequences(path):
        run = 0
        for letter in sequence.upper():
            run = run + 1 if letter in "ACGTU" else 0
            if run >= k:
                windows += 1
    return windows
