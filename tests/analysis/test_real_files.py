"""Every real genome and read file in shared/data parses, and its figures match an independent
plain-Python count (and seqkit, where it is installed and its definitions agree with ours)."""

from __future__ import annotations

import csv
import gzip
import io
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from analysis.report import SequenceReport, analyse

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
FASTA_FILES = sorted(
    path.relative_to(DATA)
    for folder in ("genomes", "genomes_extra")
    for path in (DATA / folder).rglob("*")
    if path.suffix in {".fa", ".fasta", ".fna"}
)
FASTQ_FILES = sorted(path.relative_to(DATA) for path in (DATA / "fastq").glob("*.fq"))
SEQKIT = shutil.which("seqkit")


@dataclass
class PlainCount:
    lengths: list[int]
    gc: int
    unambiguous: int
    qualities: list[str]


def count_fasta(path: Path) -> PlainCount:
    """The simplest FASTA reading there is: a '>' line starts a record."""
    sequences: list[str] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(">"):
            sequences.append("")
        else:
            sequences[-1] += "".join(line.split()).upper()
    text = "".join(sequences)
    return PlainCount(
        lengths=[len(sequence) for sequence in sequences],
        gc=text.count("G") + text.count("C"),
        unambiguous=sum(text.count(letter) for letter in "ACGTU"),
        qualities=[],
    )


def count_fastq(path: Path) -> PlainCount:
    """Header, sequence lines up to '+', quality lines until they are as long."""
    lines = path.read_text().splitlines()
    sequences: list[str] = []
    qualities: list[str] = []
    index = 0
    while index < len(lines):
        assert lines[index].startswith("@")
        index += 1
        sequence = ""
        while not lines[index].startswith("+"):
            sequence += lines[index].strip()
            index += 1
        index += 1
        quality = ""
        while len(quality) < len(sequence):
            quality += lines[index].strip()
            index += 1
        sequences.append(sequence.upper())
        qualities.append(quality)
    text = "".join(sequences)
    return PlainCount(
        lengths=[len(sequence) for sequence in sequences],
        gc=text.count("G") + text.count("C"),
        unambiguous=sum(text.count(letter) for letter in "ACGTU"),
        qualities=qualities,
    )


def analyse_path(path: Path, consumers: tuple = ()) -> SequenceReport:
    with open(path, "rb") as stream:
        return analyse(stream, consumers=consumers)


def seqkit_stats(path: Path) -> dict[str, str]:
    output = subprocess.run(
        [SEQKIT, "stats", "-a", "-T", str(path)], check=True, capture_output=True, text=True
    ).stdout
    return next(csv.DictReader(io.StringIO(output), delimiter="\t"))


@pytest.mark.parametrize("name", FASTA_FILES, ids=str)
def test_it_reads_every_real_genome_like_a_plain_count(name):
    report = analyse_path(DATA / name)
    expected = count_fasta(DATA / name)
    assert report.format == "fasta"
    assert report.record_count == len(expected.lengths)
    assert report.sequence_length == sum(expected.lengths)
    assert [summary.length for summary in report.records] == expected.lengths[:1000]
    assert report.gc_content == pytest.approx(100 * expected.gc / expected.unambiguous)
    assert report.min_length == min(expected.lengths)
    assert report.max_length == max(expected.lengths)


@pytest.mark.parametrize("name", FASTQ_FILES, ids=str)
def test_it_reads_every_real_fastq_like_a_plain_count(name):
    report = analyse_path(DATA / name)
    expected = count_fastq(DATA / name)
    offset = 64 if "phred64" in str(name) else 33
    scores = [ord(character) - offset for quality in expected.qualities for character in quality]
    assert report.format == "fastq"
    assert report.record_count == len(expected.lengths)
    assert report.sequence_length == sum(expected.lengths)
    assert report.gc_content == pytest.approx(100 * expected.gc / expected.unambiguous)
    assert report.phred_offset == offset
    assert report.mean_quality == pytest.approx(sum(scores) / len(scores))
    assert report.q20_fraction == pytest.approx(sum(score >= 20 for score in scores) / len(scores))
    assert report.q30_fraction == pytest.approx(sum(score >= 30 for score in scores) / len(scores))
    assert report.quality_score == report.q30_fraction
    first = expected.qualities[0]
    assert report.records[0].mean_quality == pytest.approx(
        sum(ord(character) - offset for character in first) / len(first)
    )


@pytest.mark.parametrize("name", [FASTA_FILES[0], *FASTQ_FILES], ids=str)
def test_it_gives_the_same_report_for_a_gzip_copy(name):
    data = (DATA / name).read_bytes()
    plain = analyse(io.BytesIO(data)).to_dict()
    assert analyse(io.BytesIO(gzip.compress(data, mtime=0))).to_dict() == plain


def test_it_reports_progress_in_raw_bytes():
    path = DATA / "genomes_extra/plant/Arabidopsis_lyrata_petraea_chr1.fa"
    seen: list[int] = []
    with open(path, "rb") as stream:
        analyse(stream, on_progress=seen.append)
    assert seen == sorted(seen)
    assert seen[-1] == path.stat().st_size


def test_it_reports_progress_inside_one_huge_record():
    genome = (DATA / "genomes_extra/plant/Arabidopsis_lyrata_petraea_chr1.fa").read_bytes()
    header, _, body = genome.partition(b"\n")
    data = header + b"\n" + body * 12  # one record of 3.6 MB
    seen: list[int] = []
    report = analyse(io.BytesIO(data), on_progress=seen.append)
    assert report.record_count == 1
    assert len(seen) >= 3
    assert seen[-1] == len(data)


def test_it_feeds_every_record_to_every_consumer():
    class Collector:
        def __init__(self) -> None:
            self.identifiers: list[str] = []

        def add(self, record) -> None:
            self.identifiers.append(record.identifier)

    first, second = Collector(), Collector()
    report = analyse_path(DATA / "fastq/novaseq_800_reads_phred33.fq", (first, second))
    assert len(first.identifiers) == report.record_count == 800
    assert first.identifiers == second.identifiers
    assert first.identifiers[0] == "A00129:183:H77K2DMXX:1:1101:6804:1031"


@pytest.mark.skipif(SEQKIT is None, reason="seqkit is not installed")
@pytest.mark.parametrize("name", FASTA_FILES, ids=str)
def test_it_agrees_with_seqkit_on_genomes(name):
    report = analyse_path(DATA / name)
    stats = seqkit_stats(DATA / name)
    assert report.sequence_length == int(stats["sum_len"])
    assert report.n50 == int(stats["N50"])
    if report.base_counts["N"] + report.base_counts["other"] == 0:
        # seqkit counts ambiguity codes in the GC denominator: compare only without them
        assert round(report.gc_content, 2) == pytest.approx(float(stats["GC(%)"]), abs=0.006)


@pytest.mark.skipif(SEQKIT is None, reason="seqkit is not installed")
@pytest.mark.parametrize("name", [name for name in FASTQ_FILES if "phred33" in str(name)], ids=str)
def test_it_agrees_with_seqkit_on_phred33_reads(name):
    report = analyse_path(DATA / name)
    stats = seqkit_stats(DATA / name)
    assert report.sequence_length == int(stats["sum_len"])
    assert 100 * report.q20_fraction == pytest.approx(float(stats["Q20(%)"]), abs=0.006)
    assert 100 * report.q30_fraction == pytest.approx(float(stats["Q30(%)"]), abs=0.006)
