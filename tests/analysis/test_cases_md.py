"""Every expected value of shared/data/badinputs/CASES.md, one test per row (or per value)."""

from __future__ import annotations

import gzip
import io
import json
import tracemalloc
from pathlib import Path

import pytest

from analysis.parser import (
    FileTooLargeError,
    MalformedSequenceError,
    SequenceRecord,
    iter_records,
    open_decompressed,
)
from analysis.report import SequenceReport, analyse

BAD_INPUTS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "badinputs"


def analyse_file(name: str, **options) -> SequenceReport:
    with open(BAD_INPUTS / name, "rb") as stream:
        return analyse(stream, **options)


def records_of(name: str) -> list[SequenceRecord]:
    with open(BAD_INPUTS / name, "rb") as stream:
        return list(iter_records(open_decompressed(stream)))


def gc_of(record: SequenceRecord) -> float | None:
    return analyse(io.BytesIO(b">x\n" + record.sequence + b"\n")).gc_content


# 01_crlf.fq


def test_it_reads_crlf_fastq_without_counting_carriage_returns():
    first, second = records_of("01_crlf.fq")
    assert len(first.sequence) == 8
    assert first.description == "crlf"
    assert b"\r" not in first.sequence + first.quality
    assert len(second.sequence) == 5
    report = analyse_file("01_crlf.fq")
    assert report.record_count == 2
    assert [summary.gc_content for summary in report.records] == [75.0, 40.0]
    assert report.records[0].mean_quality == pytest.approx(39.5)
    assert report.records[0].length == 8


# 03_utf8_bom.fa


def test_it_strips_a_utf8_bom_before_the_first_header():
    records = records_of("03_utf8_bom.fa")
    assert len(records) == 2
    assert records[0].identifier == "seq1"
    assert len(records[0].sequence) == 10
    assert analyse_file("03_utf8_bom.fa").records[0].gc_content == 50.0


# 05_empty_seq.fa, 05b_empty_read.fq


def test_it_keeps_fasta_records_without_sequence_and_gives_them_no_gc():
    report = analyse_file("05_empty_seq.fa")
    assert report.record_count == 3
    assert [summary.length for summary in report.records] == [0, 4, 0]
    assert [summary.gc_content for summary in report.records] == [None, 50.0, None]
    assert report.gc_content == 50.0


def test_it_keeps_a_zero_length_read_with_no_mean_quality():
    report = analyse_file("05b_empty_read.fq")
    assert report.record_count == 2
    assert report.records[0].length == 0
    assert report.records[0].mean_quality is None
    assert report.records[1].mean_quality == 40.0


# 07_softmasked.fa


def test_it_counts_soft_masked_bases_case_insensitively():
    report = analyse_file("07_softmasked.fa")
    assert report.sequence_length == 24
    assert report.gc_content == 50.0
    assert report.soft_masked_fraction == 0.5


def test_it_upper_cases_k_mers_before_counting():
    report = analyse_file("07_softmasked.fa")
    profile = report.to_dict()["k_mer_profile"]
    assert "acg" not in profile
    assert profile["ACG"] == 2  # ACGTacgt... : once in upper, once in lower case
    assert report.k_mer_count == 22


# 08_iupac_gaps.fa


def test_it_excludes_ambiguity_codes_from_gc_and_counts_them_separately():
    with open(BAD_INPUTS / "08_iupac_gaps.fa", "rb") as stream:
        first_record = stream.read().split(b">gapped")[0]
    report = analyse(io.BytesIO(first_record))
    assert report.sequence_length == 16
    assert report.gc_content == 50.0
    assert report.base_counts["N"] == 4
    assert report.base_counts["other"] == 4
    assert report.ambiguity_counts == {"R": 1, "Y": 1, "S": 1, "W": 1}


def test_it_counts_only_k_mers_made_of_acgt():
    with open(BAD_INPUTS / "08_iupac_gaps.fa", "rb") as stream:
        first_record = stream.read().split(b">gapped")[0]
    report = analyse(io.BytesIO(first_record))
    assert report.k_mer_count == 4
    profile = report.to_dict()["k_mer_profile"]
    assert {kmer for kmer, count in profile.items() if count} == {"GGC", "GCC", "AAT", "ATT"}


def test_it_refuses_a_stop_symbol_naming_record_two():
    with pytest.raises(MalformedSequenceError) as caught:
        analyse_file("08_iupac_gaps.fa")
    assert caught.value.record == 2
    assert caught.value.line == 4
    assert caught.value.detail.startswith("record 2: '*'")
    assert "gapped" not in str(caught.value)


def test_it_counts_gaps_separately_when_there_is_no_stop_symbol():
    with open(BAD_INPUTS / "08_iupac_gaps.fa", "rb") as stream:
        without_stop = stream.read().replace(b"*", b"")
    report = analyse(io.BytesIO(without_stop))
    gapped = report.records[1]
    assert gapped.length == 7
    assert gapped.gc_content == pytest.approx(57.1, abs=0.05)
    assert report.gap_count == 3


# 11_multiline.fq


def test_it_reads_wrapped_fastq_whose_quality_lines_start_with_at_and_plus():
    records = records_of("11_multiline.fq")
    assert [record.identifier for record in records] == ["m1", "m2"]
    assert [len(record.sequence) for record in records] == [16, 6]
    assert records[0].quality == b"@IIIIIIIII+IIIII"
    assert records[1].quality == b"@@@@##"


# 13_len_mismatch.fq


def test_it_stops_at_a_length_mismatch_naming_record_and_lines():
    with pytest.raises(MalformedSequenceError) as caught:
        analyse_file("13_len_mismatch.fq")
    assert caught.value.detail == "record 2: sequence 10 ≠ quality 9 (lines 5–8)"
    assert (caught.value.record, caught.value.line) == (2, 5)
    assert caught.value.message == "Malformed sequence file"


def test_it_neither_drops_the_bad_record_nor_goes_on_to_record_three():
    seen: list[int] = []
    with open(BAD_INPUTS / "13_len_mismatch.fq", "rb") as stream:
        with pytest.raises(MalformedSequenceError):
            for record in iter_records(open_decompressed(stream)):
                seen.append(record.number)
    assert seen == [1]


# 14_phred64.fq


def test_it_detects_phred64_and_gives_plausible_mean_qualities():
    report = analyse_file("14_phred64.fq")
    assert report.phred_offset == 64
    assert [summary.mean_quality for summary in report.records] == [
        pytest.approx(35.5),
        pytest.approx(28.9),
    ]


# 15_truncated.fq, 15b_truncated.fq.gz


def test_it_refuses_a_truncated_last_record_naming_it():
    seen: list[SequenceRecord] = []
    with open(BAD_INPUTS / "15_truncated.fq", "rb") as stream:
        with pytest.raises(MalformedSequenceError) as caught:
            for record in iter_records(open_decompressed(stream)):
                seen.append(record)
    assert caught.value.record == 2
    assert "record 2" in caught.value.detail
    assert "t2" not in caught.value.detail
    assert [record.identifier for record in seen] == ["t1"]  # never t2 with an empty quality


def test_it_refuses_a_truncated_gzip_stream_without_a_partial_result():
    with pytest.raises(MalformedSequenceError) as caught:
        analyse_file("15b_truncated.fq.gz")
    assert "truncated gzip stream" in caught.value.detail


# 16_no_final_newline.fq, 16b_no_final_newline.fa


def test_it_keeps_the_last_line_of_fastq_without_final_newline():
    records = records_of("16_no_final_newline.fq")
    assert records[1].sequence == b"GGCCA"
    assert records[1].quality == b"IIIIH"
    assert analyse_file("16_no_final_newline.fq").records[1].mean_quality == pytest.approx(39.8)


def test_it_keeps_the_last_line_of_fasta_without_final_newline():
    records = records_of("16b_no_final_newline.fa")
    assert records[1].identifier == "f2"
    assert records[1].sequence == b"GGCCAAT"


# 18_huge_line.fa


def test_it_reads_a_huge_header_and_a_200000_base_line():
    records = records_of("18_huge_line.fa")
    assert [record.identifier for record in records] == ["big", "small"]
    assert len(">big " + records[0].description) == 66_005
    assert len(records[0].sequence) == 200_000
    assert len(records[1].sequence) == 4
    report = analyse_file("18_huge_line.fa")
    assert report.records[0].gc_content == 50.0


def test_it_keeps_memory_bounded_on_the_huge_line_file():
    size = (BAD_INPUTS / "18_huge_line.fa").stat().st_size
    tracemalloc.start()
    try:
        analyse_file("18_huge_line.fa")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # One read chunk (1 MiB) plus a few copies of the 266 kB record and the numpy counters.
    assert peak < (1 << 20) + 12 * size


# 20_blank_lines.fa


def test_it_ignores_blank_and_whitespace_only_lines():
    records = records_of("20_blank_lines.fa")
    assert [record.sequence for record in records] == [b"ACGTACGT", b"GGCC"]


# 23_multimember.fq.gz


def test_it_reads_every_gzip_member_like_zcat():
    records = records_of("23_multimember.fq.gz")
    assert [record.identifier for record in records] == ["z1", "z2", "z3"]


def test_it_counts_the_decompressed_size_against_the_limit():
    compressed = (BAD_INPUTS / "23_multimember.fq.gz").read_bytes()
    decompressed_size = len(gzip.decompress(compressed))
    with pytest.raises(FileTooLargeError) as caught:
        analyse_file("23_multimember.fq.gz", max_bytes=decompressed_size - 1)
    assert caught.value.message == "File exceeds 50MB limit"
    assert analyse_file("23_multimember.fq.gz", max_bytes=decompressed_size).record_count == 3


# 26_injection_header.fa


def test_it_parses_hostile_headers_as_plain_text():
    records = records_of("26_injection_header.fa")
    assert [len(record.sequence) for record in records] == [8, 8]
    assert "$(echo pwned)" in records[0].description


def test_it_keeps_header_text_out_of_the_stored_report():
    stored = json.dumps(analyse_file("26_injection_header.fa").to_dict())
    for fragment in ("ctg7", "DROP TABLE", "<script>", "NC_000000", "pwned"):
        assert fragment not in stored
