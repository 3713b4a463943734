"""Marker panel screening by k-mer containment (numpy, no Django).

A marker of the panel (BRCA1, HBB...) is *found* in an upload when at least `THRESHOLD` of
the distinct canonical k-mers of its reference sequence occur somewhere in the uploaded
sequences. The answer says that the upload contains that gene's sequence; it says nothing
about variants in it (docs/markers.md). A marker with no reference sequence is reported as
"not screened", never as absent.

Why k = 21 (docs/markers.md has the measurements):
- Specific: there are 4**21 / 2 = 2.2e12 canonical 21-mers and a 50 MB upload holds at most
  5e7 windows, so a marker k-mer turns up by chance with a probability of about 2e-5; real
  unrelated genomes (bacterial, viral, plant, other human loci) give containments below 0.01.
- Sensitive: every base that differs from the reference (a variant, a sequencing error)
  removes at most k windows, so the shorter k keeps more of them: 1% divergence keeps
  0.99**21 = 81% of the k-mers (73% at k = 31), and a transcript (mRNA) reference checked
  against genomic DNA loses only k - 1 windows per exon junction.
- Odd, so no k-mer is its own reverse complement, and 2k = 42 bits fit an unsigned 64-bit
  integer with room to spare.

Canonical k-mers make both strands count: a k-mer and its reverse complement are the same
marker k-mer. The upload side is scanned on its forward strand only; the marker index holds
both orientations of every marker k-mer, each pointing at the canonical one, which gives the
same answer for half the work.

Speed and memory: `add()` only gathers sequences; they are scanned in slices of
`SLICE_LETTERS` letters (tens of MB of temporaries, whatever the upload size). A slice is
turned into 2-bit codes by doubling (codes of 2, 4, 8, 16 letters from those of half the
length), a Fibonacci hash of each window's 16-letter prefix looks up a bit table of the
marker k-mers (so all but about 1% of windows are dismissed with one gather), and only the
windows that pass get their full 21-letter code (16 + 4 + 1) and are checked exactly with
np.searchsorted against the sorted marker codes. np.isin or np.searchsorted over every
window was more than ten times slower (docs/markers.md has the figures: about 0.6 s for the
20 Mb of a 50 MB FASTQ).
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

import numpy as np

from analysis.kmers import BREAK, DIGIT_TABLE
from analysis.parser import (
    NUCLEOTIDE_LETTERS,
    WHITESPACE,
    RecordBatch,
    SequenceFileError,
    SequenceRecord,
    iter_records,
    open_decompressed,
    open_record_batches,
)

K = 21
"""k-mer length of the screen (see the module docstring for why 21)."""

MAX_K = 31
"""Largest k whose 2-bit code (2k bits) fits an unsigned 64-bit integer."""

THRESHOLD = 0.5
"""Containment from which a marker counts as found. Measured (docs/markers.md): sequence
that holds the gene gives 1.0 (about 0.9-0.95 expected for transcript references against
genomic DNA, which lack the exon-junction k-mers); the HBB locus with HBB cut out (its
paralogs left) gives 0.12 and unrelated genomes below 0.01. Reads at depth d give about
1 - exp(-0.87 d) for 150 bp reads, so from about 2x the gene is found."""

SLICE_LETTERS = 1 << 21
"""Letters scanned per numpy pass: temporaries stay around 25 bytes a letter (~50 MB)."""

FLUSH_LETTERS = 1 << 21
"""Letters gathered by `add()` before they are scanned."""

MAX_REFERENCE_LETTERS = 2_500_000
"""Longest reference accepted for one marker: more than the largest human gene (DMD, about
2.2 Mb), and it keeps the marker index to tens of MB."""

Status = Literal["found", "not found", "not screened"]

_HASH_MULTIPLIER = np.uint32(0x9E3779B1)
"""Fibonacci hashing: the top bits of code * (2**32 / golden ratio) spread k-mers evenly,
low-complexity ones included (the low bits of the code alone would not)."""


@dataclass(frozen=True, slots=True)
class MarkerPanelEntry:
    """One marker of the panel. `reference` is FASTA text (one or more records, which all
    count) or a bare sequence, as bytes; None when the panel has no reference for it."""

    name: str
    location: str
    significance: str
    description: str
    reference: bytes | None = None


# --- 2-bit codes ---------------------------------------------------------------------------


def _code_dtype(letters: int) -> type[np.unsignedinteger]:
    bits = 2 * letters
    if bits <= 8:
        return np.uint8
    if bits <= 16:
        return np.uint16
    if bits <= 32:
        return np.uint32
    return np.uint64


PREFIX_LETTERS = 16
"""Longest window prefix coded for every window (32 bits); the rest only where needed."""


class WindowCodes:
    """2-bit codes (A=0, C=1, G=2, T=3, first letter most significant) of the len - k + 1
    windows of `digits` (values 0-3, uint8).

    Built by doubling: codes of 2**i letters come from two codes of 2**(i-1) letters, each
    in the narrowest integer type that holds it, which is about 2 log2(k) array passes
    instead of k. Every window gets the code of its first `prefix_letters` letters (the
    largest power of two up to min(k, 16), in at most 32 bits); `at()` joins the powers of
    two that make k into full 64-bit codes for the windows asked for only.
    """

    def __init__(self, digits: np.ndarray, k: int) -> None:
        self.k = k
        self.windows = max(len(digits) - k + 1, 0)
        self._powers = {1: digits}
        length = 1
        while 2 * length <= min(k, PREFIX_LETTERS):
            half = self._powers[length]
            dtype = _code_dtype(2 * length)
            doubled = half[:-length].astype(dtype)
            doubled <<= dtype(2 * length)
            doubled |= half[length:]
            self._powers[2 * length] = doubled
            length *= 2
        self.prefix_letters = length

    @property
    def prefix(self) -> np.ndarray:
        """Code of the first `prefix_letters` letters of every window."""
        return self._powers[self.prefix_letters][: self.windows]

    def at(self, positions: np.ndarray) -> np.ndarray:
        """Full k-letter codes (uint64) of the windows starting at `positions`."""
        code = self._powers[self.prefix_letters][positions].astype(np.uint64)
        offset = self.prefix_letters
        for power in sorted(self._powers, reverse=True):
            while self.k - offset >= power:
                code <<= np.uint64(2 * power)
                code |= self._powers[power][positions + offset]
                offset += power
        return code


def _reverse_complement_codes(codes: np.ndarray, k: int) -> np.ndarray:
    """Codes of the reverse complements of k-mers given by their codes."""
    x = ~codes.astype(np.uint64)  # complement: 3 - d for each 2-bit letter
    for shift, mask in (
        (2, 0x3333333333333333),
        (4, 0x0F0F0F0F0F0F0F0F),
        (8, 0x00FF00FF00FF00FF),
        (16, 0x0000FFFF0000FFFF),
    ):
        mask_array = np.uint64(mask)
        x = ((x >> np.uint64(shift)) & mask_array) | ((x & mask_array) << np.uint64(shift))
    x = (x >> np.uint64(32)) | (x << np.uint64(32))
    return x >> np.uint64(64 - 2 * k)


def sequence_kmers(sequence: bytes, k: int = K) -> np.ndarray:
    """Distinct canonical k-mer codes of one sequence, sorted; windows holding any letter
    other than A/C/G/T(U) are skipped."""
    digits = np.frombuffer(sequence.translate(DIGIT_TABLE), dtype=np.uint8)
    if len(digits) < k:
        return np.zeros(0, dtype=np.uint64)
    windows = WindowCodes(digits & 3, k)
    codes = windows.at(np.arange(windows.windows))
    breaks = np.concatenate(([0], np.cumsum(digits == BREAK, dtype=np.int64)))
    valid = breaks[k:] == breaks[:-k]
    codes = codes[valid]
    return np.unique(np.minimum(codes, _reverse_complement_codes(codes, k)))


# --- references ----------------------------------------------------------------------------


class MarkerReferenceError(ValueError):
    """A marker reference that cannot be screened with; the message says why."""


def reference_sequences(reference: bytes) -> list[bytes]:
    """Sequences of a marker reference: every record of FASTA text, or a bare sequence.

    Raises MarkerReferenceError for anything else (FASTQ, protein, stray symbols), naming the
    record and line as the parser does.
    """
    text = reference.removeprefix(b"\xef\xbb\xbf").strip(WHITESPACE)
    if text.startswith(b">"):
        try:
            return [record.sequence for record in iter_records(io.BytesIO(text))]
        except SequenceFileError as error:
            raise MarkerReferenceError(str(error)) from error
    sequence = text.translate(None, WHITESPACE)
    stray = sequence.translate(None, NUCLEOTIDE_LETTERS)
    if stray:
        raise MarkerReferenceError(
            f"not a nucleotide FASTA or sequence: unexpected {stray[:1]!r} "
            f"(a FASTA file starts with '>')"
        )
    return [sequence] if sequence else []


def reference_kmers(reference: bytes, k: int = K) -> np.ndarray:
    """Distinct canonical k-mers of a reference (all records together), sorted.

    Raises MarkerReferenceError when it is not a nucleotide sequence or is longer than
    MAX_REFERENCE_LETTERS.
    """
    sequences = reference_sequences(reference)
    letters = sum(map(len, sequences))
    if letters > MAX_REFERENCE_LETTERS:
        raise MarkerReferenceError(
            f"the reference holds {letters:,} letters; at most {MAX_REFERENCE_LETTERS:,} "
            "are screened per marker"
        )
    parts = [sequence_kmers(sequence, k) for sequence in sequences]
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.uint64)


@dataclass(frozen=True, slots=True)
class ReferenceFasta:
    """A reference FASTA file read and checked: `text` is normalised FASTA (LF line ends,
    60 letters a line), `sha256` the SHA-256 of that text."""

    text: str
    records: int
    letters: int
    sha256: str


def read_reference_fasta(stream: BinaryIO, *, k: int = K) -> ReferenceFasta:
    """Read a reference FASTA file (plain or gzip) with the upload parser and check it.

    Raises MarkerReferenceError when it is not a nucleotide FASTA file (FASTQ, protein, broken
    structure: the parser's message, naming the record and line), holds more than
    MAX_REFERENCE_LETTERS letters, or has no run of k unambiguous bases to screen with.
    """
    lines: list[str] = []
    records = letters = 0
    try:
        file_format, batches = open_record_batches(
            open_decompressed(stream, max_bytes=4 * MAX_REFERENCE_LETTERS)
        )
        if file_format != "fasta":
            raise MarkerReferenceError("a reference must be FASTA ('>' headers), not FASTQ")
        for batch in batches:
            for record in batch.records():
                records += 1
                letters += len(record.sequence)
                if letters > MAX_REFERENCE_LETTERS:
                    raise MarkerReferenceError(
                        f"more than {MAX_REFERENCE_LETTERS:,} letters; a marker reference is "
                        "one gene or transcript, not a genome"
                    )
                header = f"{record.identifier} {record.description}".strip()
                lines.append(f">{header}")
                sequence = record.sequence.decode("ascii")
                lines.extend(sequence[i : i + 60] for i in range(0, len(sequence), 60))
    except SequenceFileError as error:
        raise MarkerReferenceError(str(error)) from error
    text = "\n".join(lines) + "\n"
    if not len(reference_kmers(text.encode("ascii", "replace"), k)):
        raise MarkerReferenceError(f"no run of {k} unambiguous bases (A/C/G/T) to screen with")
    return ReferenceFasta(
        text=text,
        records=records,
        letters=letters,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
    )


# --- the index of marker k-mers ------------------------------------------------------------


class MarkerIndex:
    """Every k-mer of every marker reference in both orientations, for fast lookup.

    `codes` is sorted and `canonical_ids[i]` is the position of codes[i]'s canonical k-mer in
    the panel's distinct canonical k-mers; `marker_ids[m]` lists those positions for the
    m-th screened marker. `table` is a bit set (packed, little-endian bit order) over hashes
    of the codes' first `prefix_letters` letters: a window whose prefix hash is not in it
    cannot be a marker k-mer.
    """

    def __init__(self, marker_kmers: Sequence[np.ndarray], k: int) -> None:
        self.k = k
        canonical = (
            np.unique(np.concatenate(marker_kmers))
            if marker_kmers
            else np.zeros(0, dtype=np.uint64)
        )
        self.canonical_count = len(canonical)
        self.marker_ids = [np.searchsorted(canonical, kmers) for kmers in marker_kmers]
        both = np.concatenate((canonical, _reverse_complement_codes(canonical, k)))
        ids = np.concatenate((np.arange(len(canonical)),) * 2)
        # For odd k no k-mer is its own reverse complement; for even k a palindrome is in
        # `both` twice with the same id, which is harmless.
        order = np.argsort(both, kind="stable")
        self.codes = both[order]
        self.canonical_ids = ids[order]
        self.prefix_letters = WindowCodes(np.zeros(k, dtype=np.uint8), k).prefix_letters
        # About 128 bits per code, so fewer than 1% of unrelated windows pass: 1 MB for the
        # seeded panel, which stays in the CPU cache (a byte per entry was twice as slow).
        # At most 2**26 bits (8 MB); a larger panel only lets more windows through.
        self.hash_bits = int(min(26, max(16, np.ceil(np.log2(max(1, len(both)) * 128)))))
        entries = np.zeros(1 << self.hash_bits, dtype=bool)
        prefixes = self.codes >> np.uint64(2 * (k - self.prefix_letters))
        entries[self._hash(prefixes.astype(np.uint32))] = True
        self.table = np.packbits(entries, bitorder="little")

    def _hash(self, prefixes: np.ndarray) -> np.ndarray:
        """Fibonacci hash of prefix codes (at most 32 bits) to `hash_bits` bits."""
        return (prefixes * _HASH_MULTIPLIER) >> np.uint32(32 - self.hash_bits)

    def _in_table(self, prefixes: np.ndarray) -> np.ndarray:
        hashes = self._hash(prefixes)
        bytes_ = self.table[hashes >> np.uint32(3)]
        bytes_ >>= hashes.astype(np.uint8) & np.uint8(7)
        bytes_ &= np.uint8(1)
        return bytes_.view(bool)

    def scan(self, letters: bytes, seen: np.ndarray) -> int:
        """Mark in `seen` (one flag per canonical marker k-mer) the marker k-mers among the
        windows of `letters` (sequences joined by a byte that is not a base). Returns the
        number of windows made only of A/C/G/T."""
        k = self.k
        valid_windows = 0
        total = len(letters) - k + 1
        for start in range(0, max(total, 0), SLICE_LETTERS):
            count = min(SLICE_LETTERS, total - start)
            piece = letters[start : start + count + k - 1].translate(DIGIT_TABLE)
            digits = np.frombuffer(piece, dtype=np.uint8)
            breaks = digits == BREAK
            # Letters other than A/C/G/T are coded as 'A' below (runs of N would look like
            # poly-A): the windows that hold one are dropped with this mask.
            broken = _windows_touching(breaks, k) if breaks.any() else None
            valid_windows += count - (int(np.count_nonzero(broken)) if broken is not None else 0)
            if not self.canonical_count:
                continue
            windows = WindowCodes(digits & 3, k)
            passes = self._in_table(windows.prefix)
            if broken is not None:
                passes &= ~broken
            # Exact check of the few windows the table let through; sorted lookups are
            # several times faster (np.searchsorted reuses the previous answer).
            candidate_codes = np.sort(windows.at(np.flatnonzero(passes)))
            at = np.searchsorted(self.codes, candidate_codes)
            at[at == len(self.codes)] = 0
            exact = self.codes[at] == candidate_codes
            seen[self.canonical_ids[at[exact]]] = True
        return valid_windows


def _windows_touching(flags: np.ndarray, k: int) -> np.ndarray:
    """For each window of k positions, whether any of its `flags` is set (doubling the
    window length with OR, then joining the powers of two that make k)."""
    windows = len(flags) - k + 1
    powers = {1: flags}
    span = 1
    while 2 * span <= k:
        powers[2 * span] = powers[span][:-span] | powers[span][span:]
        span *= 2
    touching = powers[span][:windows].copy()
    offset = span
    for power in sorted(powers, reverse=True):
        while k - offset >= power:
            touching |= powers[power][offset : offset + windows]
            offset += power
    return touching


# --- the consumer --------------------------------------------------------------------------


class MarkerConsumer:
    """A RecordConsumer (analysis.report) that screens an upload against a marker panel.

    `add()` gathers sequences and scans them about every two megabases; `result()` gives one
    entry per panel marker, in panel order (see docs/markers.md for every key).
    """

    def __init__(
        self, panel: Iterable[MarkerPanelEntry], *, k: int = K, threshold: float = THRESHOLD
    ) -> None:
        if not 1 <= k <= MAX_K:
            raise ValueError(f"k must be between 1 and {MAX_K}, not {k}")
        self.panel = list(panel)
        self.k = k
        self.threshold = threshold
        self._kmers: dict[int, np.ndarray] = {}  # panel position -> its canonical k-mers
        self._problems: dict[int, str] = {}  # panel position -> why it cannot be screened
        for position, entry in enumerate(self.panel):
            if entry.reference is None or not entry.reference.strip():
                continue
            try:
                kmers = reference_kmers(entry.reference, k)
            except MarkerReferenceError as error:
                self._problems[position] = f"the reference cannot be used: {error}"
                continue
            if not len(kmers):
                self._problems[position] = (
                    f"the reference has no run of {k} unambiguous bases (A/C/G/T)"
                )
                continue
            self._kmers[position] = kmers
        # Position of each screened marker's k-mer list in the index, by panel position.
        self._index_of = {position: i for i, position in enumerate(self._kmers)}
        self._index = MarkerIndex(list(self._kmers.values()), k)
        self._seen = np.zeros(self._index.canonical_count, dtype=bool)
        self._pending: list[bytes] = []
        self._pending_letters = 0
        self.windows = 0
        """Windows of the upload made only of A/C/G/T (what could be compared)."""

    def add(self, record: SequenceRecord) -> None:
        if not self._kmers:
            return  # nothing to screen: every marker is "not screened" whatever the upload
        self._pending.append(record.sequence)
        self._pending_letters += len(record.sequence) + 1
        if self._pending_letters >= FLUSH_LETTERS:
            self._scan()

    def add_batch(self, batch: RecordBatch) -> None:
        """The same as add() for every record of the batch, without record objects."""
        if not self._kmers:
            return
        self._pending.extend(batch.sequences)
        self._pending_letters += sum(map(len, batch.sequences)) + len(batch.sequences)
        if self._pending_letters >= FLUSH_LETTERS:
            self._scan()

    def _scan(self) -> None:
        if self._pending:
            # A newline between records is a break: no window crosses from one to the next.
            self.windows += self._index.scan(b"\n".join(self._pending), self._seen)
            self._pending = []
            self._pending_letters = 0

    def result(self) -> list[dict[str, Any]]:
        """One dict per panel marker: name, location, significance, description, status
        ("found", "not found" or "not screened"), containment (None when not screened), k,
        threshold, and beside them the k-mer counts and a note saying why when not screened."""
        self._scan()
        results = []
        for position, entry in enumerate(self.panel):
            status: Status
            containment: float | None = None
            found = total = None
            note: str | None = None
            if position in self._kmers:
                ids = self._index.marker_ids[self._index_of[position]]
                total = len(ids)
                if self.windows:
                    found = int(self._seen[ids].sum())
                    containment = found / total
                    status = "found" if containment >= self.threshold else "not found"
                else:
                    status = "not screened"
                    note = f"the upload has no run of {self.k} unambiguous bases to compare"
            else:
                status = "not screened"
                note = self._problems.get(position, "no reference sequence in the panel")
            results.append(
                {
                    "name": entry.name,
                    "location": entry.location,
                    "significance": entry.significance,
                    "description": entry.description,
                    "status": status,
                    # Rounded down, so that a shown 1.0 is every k-mer and a shown value is
                    # at least the threshold exactly when the marker is found.
                    "containment": (
                        None if containment is None else math.floor(containment * 1e4) / 1e4
                    ),
                    "k": self.k,
                    "threshold": self.threshold,
                    "kmers_found": found,
                    "kmers_total": total,
                    "note": note,
                }
            )
        return results
