"""One streaming analysis pass over an upload: parse, composition, k-mers, quality (no Django).

`analyse()` reads the raw upload (plain or gzip) once. Records are fed one by one to the
consumers (species model, marker panel) and gathered in batches of about a megabyte for the
numpy counters, so the per-base work never runs in a Python loop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO, Protocol

import numpy as np

from analysis.composition import (
    CompositionAccumulator,
    gc_content,
    gc_from_histogram,
    n50,
)
from analysis.kmers import kmer_labels
from analysis.parser import (
    NotSequenceFileError,
    SequenceFormat,
    SequenceRecord,
    open_decompressed,
    open_record_batches,
)
from analysis.quality import QualityAccumulator

RECORD_SUMMARY_LIMIT = 1000
"""Per-record summaries kept in the report (the first records of the file)."""

PROGRESS_BYTES = 1 << 20
"""`on_progress` is called each time about this many more raw bytes have been read."""

KMER_PROFILE_MAX_K = 4
"""`to_dict()` lists the k-mer profile up to this k (256 entries); beyond, counts only."""


class RecordConsumer(Protocol):
    """Anything that wants every record of the file (species model, marker panel...)."""

    def add(self, record: SequenceRecord) -> None: ...


@dataclass(slots=True)
class RecordSummary:
    number: int
    length: int
    gc_content: float | None
    mean_quality: float | None


@dataclass
class SequenceReport:
    """What one analysis pass found; `to_dict()` is the JSON stored on the job."""

    format: SequenceFormat
    record_count: int
    sequence_length: int
    gap_count: int
    base_counts: dict[str, int]
    ambiguity_counts: dict[str, int]
    soft_masked_fraction: float | None
    gc_content: float | None
    k: int
    k_mer_count: int
    distinct_k_mers: int
    k_mer_counts: list[int] = field(repr=False)
    n50: int | None
    min_length: int
    max_length: int
    mean_length: float
    phred_offset: int | None
    mean_quality: float | None
    q20_fraction: float | None
    q30_fraction: float | None
    per_position_mean_quality: list[float] | None
    per_position_bin_size: int | None
    quality_score: float | None
    records: list[RecordSummary]
    records_capped: bool
    warnings: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary. It holds no header text: headers are identifiers."""
        data = asdict(self)
        counts = data.pop("k_mer_counts")
        data["k_mer_profile"] = (
            dict(zip(kmer_labels(self.k), counts, strict=True))
            if self.k <= KMER_PROFILE_MAX_K
            else None
        )
        return data


class _CountingReader:
    """Counts the raw bytes read and reports them every PROGRESS_BYTES, so that progress
    moves even inside one huge record."""

    def __init__(self, raw: BinaryIO, on_progress: Callable[[int], None] | None) -> None:
        self._raw = raw
        self._on_progress = on_progress
        self._next_report = PROGRESS_BYTES
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.bytes_read += len(data)
        if self._on_progress is not None and self.bytes_read >= self._next_report:
            self._next_report = self.bytes_read + PROGRESS_BYTES
            self._on_progress(self.bytes_read)
        return data


def analyse(
    stream: BinaryIO,
    *,
    k: int = 3,
    consumers: Sequence[RecordConsumer] = (),
    on_progress: Callable[[int], None] | None = None,
    max_bytes: int | None = None,
) -> SequenceReport:
    """Analyse a raw upload (plain or gzip FASTA/FASTQ) in one streaming pass.

    Every record goes to each consumer's `add()`, or, when the consumer has `add_batch()`,
    each RecordBatch as columns (much cheaper for many short reads). `on_progress` gets the
    number of raw
    (compressed, if gzip) bytes read so far, once per MiB read and once at the end. Raises a
    SequenceFileError subclass for content the analysis refuses: NotSequenceFileError,
    MalformedSequenceError (naming the record and line), FileTooLargeError when the
    decompressed content passes `max_bytes`.
    """
    raw = _CountingReader(stream, on_progress)
    decompressed = open_decompressed(raw, max_bytes=max_bytes)  # type: ignore[arg-type]
    file_format, batches = open_record_batches(decompressed)
    composition = CompositionAccumulator(k)
    quality = QualityAccumulator() if file_format == "fastq" else None

    summaries: list[RecordSummary] = []
    raw_quality_sums: list[int] = []  # per summary: sum of its quality characters
    record_count = 0
    gap_count = 0
    for batch in batches:
        if consumers:
            records: list[SequenceRecord] | None = None
            for consumer in consumers:
                add_batch = getattr(consumer, "add_batch", None)
                if add_batch is not None:
                    add_batch(batch)  # takes the columns: no record object per read
                    continue
                if records is None:
                    records = list(batch.records())
                deque(map(consumer.add, records), maxlen=0)  # a C loop over the records
        histogram = composition.add(batch.sequences)
        if quality is not None and batch.qualities is not None:
            quality.add(batch.qualities)
        gap_count += sum(batch.gaps)
        wanted = RECORD_SUMMARY_LIMIT - record_count
        if wanted > 0:
            for offset, sequence in enumerate(batch.sequences[:wanted]):
                gc = gc_from_histogram(histogram) if len(batch) == 1 else gc_content(sequence)
                summaries.append(
                    RecordSummary(batch.first_number + offset, len(sequence), gc, None)
                )
            if batch.qualities is not None:
                raw_quality_sums.extend(
                    int(np.frombuffer(quality_string, np.uint8).sum(dtype=np.int64))
                    for quality_string in batch.qualities[:wanted]
                )
        record_count += len(batch)
    if not record_count:  # pragma: no cover - sniffing already refuses a file without records
        raise NotSequenceFileError("the file holds no records")
    if on_progress is not None:
        on_progress(raw.bytes_read)

    warnings: list[str] = []
    phred_offset = mean_quality = q20 = q30 = per_position = bin_size = None
    if quality is not None:
        encoding = quality.encoding()
        if encoding is not None:
            phred_offset = encoding.offset
            if encoding.warning:
                warnings.append(encoding.warning)
            result = quality.summary(phred_offset)
            mean_quality, q20, q30 = result.mean_quality, result.q20_fraction, result.q30_fraction
            per_position = result.per_position_mean_quality
            bin_size = quality.bin_size
            for summary, total in zip(summaries, raw_quality_sums, strict=True):
                if summary.length:
                    summary.mean_quality = total / summary.length - phred_offset
        else:
            per_position = []

    lengths = composition.length_counts
    empty = lengths.get(0, 0)
    if empty:
        warnings.append(f"{empty} record(s) with no sequence")
    if record_count > RECORD_SUMMARY_LIMIT:
        warnings.append(f"per-record summaries cover the first {RECORD_SUMMARY_LIMIT} records")
    if bin_size and bin_size > 1:
        warnings.append(f"per-position quality is averaged over bins of {bin_size} positions")

    kmer_counts = composition.kmers.counts
    sequence_length = composition.sequence_length
    return SequenceReport(
        format=file_format,
        record_count=record_count,
        sequence_length=sequence_length,
        gap_count=gap_count,
        base_counts=composition.base_counts,
        ambiguity_counts=composition.ambiguity_counts,
        soft_masked_fraction=composition.soft_masked_fraction,
        gc_content=composition.gc_content,
        k=k,
        k_mer_count=int(kmer_counts.sum()),
        distinct_k_mers=int((kmer_counts > 0).sum()),
        k_mer_counts=[int(count) for count in kmer_counts],
        n50=n50(lengths) if file_format == "fasta" else None,
        min_length=min(lengths),
        max_length=max(lengths),
        mean_length=sequence_length / record_count,
        phred_offset=phred_offset,
        mean_quality=mean_quality,
        q20_fraction=q20,
        q30_fraction=q30,
        per_position_mean_quality=per_position,
        per_position_bin_size=bin_size,
        quality_score=q30 if file_format == "fastq" else composition.unambiguous_fraction,
        records=summaries,
        records_capped=record_count > RECORD_SUMMARY_LIMIT,
        warnings=warnings,
    )
