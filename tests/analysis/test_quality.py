"""FASTQ qualities: Phred offset detection, mean Q, Q20/Q30, per-position means and bins."""

from __future__ import annotations

import io
import random

import pytest

from analysis import quality as quality_module
from analysis.parser import MalformedSequenceError
from analysis.quality import QualityAccumulator, detect_phred_offset
from analysis.report import analyse


def fastq(*reads: tuple[str, str]) -> bytes:
    return "".join(
        f"@r{number}\n{sequence}\n+\n{quality}\n"
        for number, (sequence, quality) in enumerate(reads, start=1)
    ).encode()


def naive_per_position(qualities: list[bytes], offset: int) -> list[float]:
    longest = max(map(len, qualities))
    means = []
    for position in range(longest):
        scores = [quality[position] - offset for quality in qualities if len(quality) > position]
        means.append(sum(scores) / len(scores))
    return means


@pytest.mark.parametrize(
    ("lowest", "highest", "offset"),
    [
        ("!", "J", 33),  # Illumina 1.8+
        ("#", "F", 33),  # NovaSeq binned
        ("!", "~", 33),  # long reads up to Q93
        (";", "I", 33),  # high-quality Phred+33
        (";", "~", 33),
        ("B", "h", 64),  # Illumina 1.5
        ("@", "h", 64),
    ],
)
def test_it_detects_the_phred_offset(lowest, highest, offset):
    encoding = detect_phred_offset(ord(lowest), ord(highest))
    assert encoding.offset == offset
    assert encoding.warning is None


def test_it_warns_when_the_characters_fit_both_offsets():
    encoding = detect_phred_offset(ord("@"), ord("I"))
    assert encoding.offset == 33
    assert "fit both" in encoding.warning
    report = analyse(io.BytesIO(fastq(("ACGT", "IIII"))))
    assert report.phred_offset == 33
    assert any("fit both" in warning for warning in report.warnings)


def test_it_refuses_solexa_scores_that_fit_neither_offset():
    with pytest.raises(MalformedSequenceError) as caught:
        analyse(io.BytesIO(fastq(("ACGT", ";;hh"), ("ACGT", "hhhh"))))
    assert "fits neither" in caught.value.detail


def test_it_computes_mean_q20_and_q30():
    # Phred+33: '#' = 2, '5' = 20, '?' = 30, 'I' = 40
    report = analyse(io.BytesIO(fastq(("ACGT", "#5?I"), ("ACGT", "IIII"))))
    assert report.mean_quality == pytest.approx((2 + 20 + 30 + 40 + 4 * 40) / 8)
    assert report.q20_fraction == pytest.approx(7 / 8)
    assert report.q30_fraction == pytest.approx(6 / 8)
    assert report.quality_score == report.q30_fraction
    assert report.records[0].mean_quality == pytest.approx(23.0)


def test_it_averages_per_position_over_reads_of_different_lengths():
    generator = random.Random(5)
    reads = []
    for _ in range(200):
        length = generator.randrange(1, 60)
        quality = "".join(chr(generator.randrange(35, 75)) for _ in range(length))
        reads.append(("A" * length, quality))
    report = analyse(io.BytesIO(fastq(*reads)))
    expected = naive_per_position([quality.encode() for _, quality in reads], 33)
    assert report.per_position_bin_size == 1
    assert report.per_position_mean_quality == pytest.approx(expected)


def test_it_bins_positions_of_long_reads_to_bound_memory():
    accumulator = QualityAccumulator(max_bins=10)
    accumulator.add([b"I" * 5])
    accumulator.add([b"5" * 25, b"?" * 25])  # 25 positions > 10 bins: bins of 4 positions
    assert accumulator.bin_size == 4
    assert len(accumulator.bin_sums) == 7
    summary = accumulator.summary(33)
    first_bin = (4 * 40 + 4 * 20 + 4 * 30) / 12  # positions 0-3: 'I' read and both long reads
    assert summary.per_position_mean_quality[0] == pytest.approx(first_bin)
    assert summary.per_position_mean_quality[-1] == pytest.approx(25.0)


def test_it_bins_reads_longer_than_the_batch_limit_one_by_one(monkeypatch):
    monkeypatch.setattr(quality_module, "LONG_READ", 16)
    generator = random.Random(3)
    qualities = [
        bytes(generator.randrange(33, 74) for _ in range(generator.randrange(1, 40)))
        for _ in range(30)
    ]
    accumulator = QualityAccumulator(max_bins=100)
    accumulator.add(qualities)
    summary = accumulator.summary(33)
    assert summary.per_position_mean_quality == pytest.approx(naive_per_position(qualities, 33))
    assert summary.mean_quality == pytest.approx(
        sum(sum(quality) - 33 * len(quality) for quality in qualities) / sum(map(len, qualities))
    )


def test_it_gives_no_quality_figures_for_a_fastq_of_empty_reads():
    report = analyse(io.BytesIO(b"@r\n\n+\n\n"))
    assert report.phred_offset is None
    assert report.mean_quality is None
    assert report.quality_score is None
    assert report.per_position_mean_quality == []


def test_it_gives_no_quality_figures_for_fasta():
    report = analyse(io.BytesIO(b">a\nACGT\n"))
    assert report.phred_offset is None
    assert report.per_position_mean_quality is None
