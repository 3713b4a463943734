"""Parser behaviour: format sniffing, structure errors with record and line, chunk boundaries,
gzip, privacy of error messages."""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
from pathlib import Path

import pytest

from analysis import parser
from analysis.parser import (
    MalformedSequenceError,
    NotSequenceFileError,
    SequenceFileError,
    SequenceRecord,
    iter_records,
    open_decompressed,
    sniff_format,
)
from analysis.report import analyse

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def parse(data: bytes) -> list[SequenceRecord]:
    return list(iter_records(open_decompressed(io.BytesIO(data))))


def parse_error(data: bytes) -> SequenceFileError:
    with pytest.raises(SequenceFileError) as caught:
        parse(data)
    return caught.value


class TrickleReader(io.RawIOBase):
    """A reader that hands out a few bytes per call, like a slow socket."""

    def __init__(self, data: bytes, step: int = 3) -> None:
        self._data = data
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        piece = self._data[: min(self._step, len(buffer))]
        buffer[: len(piece)] = piece
        self._data = self._data[len(piece) :]
        return len(piece)


# --- sniffing ------------------------------------------------------------------------------


def test_it_tells_fasta_from_fastq_by_the_first_character():
    assert sniff_format(b">seq\nACGT\n") == "fasta"
    assert sniff_format(b"@read\nACGT\n+\nIIII\n") == "fastq"


def test_it_sniffs_past_a_bom_and_blank_lines():
    assert sniff_format(b"\xef\xbb\xbf\n  \r\n\t\n>seq\nACGT\n") == "fasta"


def test_it_calls_an_empty_file_empty():
    for content in (b"", b"\n\n  \n", b"\xef\xbb\xbf"):
        with pytest.raises(NotSequenceFileError) as caught:
            sniff_format(content)
        assert caught.value.detail == "the file is empty"
        assert caught.value.message == "Only FASTA/FASTQ allowed"


def test_it_refuses_binary_content_with_its_offset():
    with pytest.raises(NotSequenceFileError) as caught:
        sniff_format(b">seq\nAC\x00GT\n")
    assert caught.value.detail == "binary content at byte 7"
    with pytest.raises(NotSequenceFileError) as caught:
        sniff_format(b"\x89PNG\r\n\x1a\n rest")
    assert caught.value.detail.startswith("binary content at byte")


def test_it_refuses_text_that_is_not_fasta_or_fastq():
    for content in (b"name,age\nbob,3\n", b"hello world\n", b"%PDF-1.7\n"):
        with pytest.raises(NotSequenceFileError):
            sniff_format(content)


def test_it_refuses_an_empty_gzip_file_as_empty():
    error = parse_error(gzip.compress(b""))
    assert isinstance(error, NotSequenceFileError)
    assert error.detail == "the file is empty"


# --- data before the first header ----------------------------------------------------------


def test_it_refuses_sequence_before_the_first_fasta_header_with_its_line():
    error = parse_error(b"\nACGT\n>seq\nACGT\n")
    assert isinstance(error, MalformedSequenceError)
    assert error.detail == "line 2: data before the first header"
    assert (error.record, error.line) == (None, 2)


def test_it_refuses_sequence_before_the_first_fastq_header_with_its_line():
    error = parse_error(b"ACGT\n@r\nACGT\n+\nIIII\n")
    assert isinstance(error, MalformedSequenceError)
    assert error.detail == "line 1: data before the first header"


# --- alphabet ------------------------------------------------------------------------------


def test_it_refuses_protein_naming_record_and_line():
    error = parse_error(b">dna\nACGT\n>prot\nACGT\nMEEPQSDPSVEPPLSQ\n")
    assert isinstance(error, MalformedSequenceError)
    assert (error.record, error.line) == (2, 5)
    assert "protein" in error.detail
    assert error.detail.startswith("record 2:")


def test_it_refuses_protein_in_fastq():
    error = parse_error(b"@r1\nACGT\n+\nIIII\n@r2\nMELP\n+\nIIII\n")
    assert (error.record, error.line) == (2, 6)
    assert "protein" in error.detail


def test_it_refuses_a_greater_than_sign_inside_a_sequence_line():
    error = parse_error(b">a\nACGT\nAC>GT\n>b\nAC\n")
    assert error.detail == "record 1: unexpected '>' in the sequence (line 3)"


def test_it_names_an_unprintable_byte_by_its_code():
    error = parse_error(b">a\nAC\x1bGT\n")
    assert "0x1B" in error.detail
    assert (error.record, error.line) == (1, 2)


def test_it_accepts_every_iupac_code_in_either_case_and_u():
    (record,) = parse(b">x\nACGTURYSWKMBDHVN\nacgturyswkmbdhvn\n")
    assert len(record.sequence) == 32


def test_it_counts_gaps_in_fastq_and_keeps_their_quality():
    (record,) = parse(b"@r\nAC-GT\n+\nIIIII\n")
    assert record.sequence == b"ACGT"
    assert record.gaps == 1
    assert record.quality == b"IIIII"


# --- FASTQ structure -----------------------------------------------------------------------


def test_it_accepts_a_plus_line_repeating_the_header_or_its_identifier():
    records = parse(b"@r1 lane=1\nACGT\n+r1 lane=1\nIIII\n@r2 lane=1\nACGT\n+r2\nIIII\n")
    assert [record.identifier for record in records] == ["r1", "r2"]


def test_it_refuses_a_plus_line_naming_another_read():
    error = parse_error(b"@r1\nACGT\n+\nIIII\n@r2\nACGT\n+r3\nIIII\n")
    assert (error.record, error.line) == (2, 7)
    assert "r3" not in error.detail


def test_it_refuses_a_plus_line_with_a_title_after_an_empty_header():
    error = parse_error(b"@\nACGT\n+r1\nIIII\n")
    assert (error.record, error.line) == (1, 3)


def test_it_refuses_a_record_that_does_not_start_with_at():
    error = parse_error(b"@r1\nACGT\n+\nIIII\nr2\nACGT\n+\nIIII\n")
    assert error.detail == "record 2: expected a header starting with '@' (line 5)"


def test_it_refuses_a_quality_character_outside_the_phred_range():
    error = parse_error(b"@r1\nACGT\n+\nII\x7fI\n")
    assert error.detail == "record 1: byte 0x7F is not a quality character (line 4)"


def test_it_refuses_a_quality_longer_than_the_sequence():
    error = parse_error(b"@ok\nACGT\n+\nIIII\n@long\nACGT\n+\nIIIIII\n")
    assert error.detail == "record 2: sequence 4 ≠ quality 6 (lines 5–8)"


def test_it_refuses_a_quality_cut_short_by_the_end_of_the_file():
    error = parse_error(b"@r1\nACGTACGT\n+\nIIII")
    assert error.detail == "record 1: sequence 8 ≠ quality 4 (lines 1–4)"


def test_it_refuses_a_record_without_a_quality_line():
    error = parse_error(b"@r1\nACGT\n+\n")
    assert error.detail == "record 1: the file ends inside the record (lines 1–3)"


def test_it_tolerates_blank_lines_between_and_after_fastq_records():
    records = parse(b"\n@r1\nACGT\n+\nIIII\n\n\n@r2\nGG\n+\nII\n\n")
    assert [record.sequence for record in records] == [b"ACGT", b"GG"]
    assert [record.line for record in records] == [2, 8]


def test_it_hands_out_the_records_before_an_error():
    seen = []
    stream = open_decompressed(io.BytesIO(b">a\nAC\n>b\nGG\n>c\nQQ\n"))
    with pytest.raises(MalformedSequenceError):
        for record in iter_records(stream):
            seen.append(record.identifier)
    assert seen == ["a", "b"]


# --- text handling -------------------------------------------------------------------------


def test_it_reads_headers_that_are_not_utf8():
    (record,) = parse(b">seq\xff\xfe caf\xe9\nACGT\n")
    assert record.identifier == "seq\ufffd\ufffd"
    assert record.description == "caf\ufffd"


def test_it_reads_cr_only_line_ends():
    records = parse(b">a desc\rACGT\rAC\r>b\rGG\r")
    assert [(record.identifier, record.sequence) for record in records] == [
        ("a", b"ACGTAC"),
        ("b", b"GG"),
    ]


def test_it_reads_mixed_line_ends():
    records = parse(b"@a\r\nACGT\n+\rIIII\r\n@b\nGG\r\n+\nII")
    assert [(record.identifier, record.quality) for record in records] == [
        ("a", b"IIII"),
        ("b", b"II"),
    ]


def test_it_splits_identifier_and_description_on_any_whitespace():
    (record,) = parse(b">id1\tsome  description  \nAC\n")
    assert (record.identifier, record.description) == ("id1", "some  description")


def test_it_numbers_records_and_their_header_lines():
    records = parse(b">a\nAC\nGT\n\n>b\n>c\nA\n")
    assert [(record.number, record.line) for record in records] == [(1, 1), (2, 5), (3, 6)]


# --- chunk boundaries ----------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 7, 64])
@pytest.mark.parametrize(
    "name",
    [
        "badinputs/01_crlf.fq",
        "badinputs/11_multiline.fq",
        "badinputs/18_huge_line.fa",
        "badinputs/20_blank_lines.fa",
        "fastq/roche454_longreads_phred33.fq",
        "genomes/human/human_hg38_fragments.fa",
    ],
)
def test_it_gives_the_same_records_whatever_the_chunk_size(monkeypatch, name, chunk_size):
    data = (DATA / name).read_bytes()
    if chunk_size < 5 and len(data) > 20_000:
        assert data.startswith(b">")  # any cut of a FASTA file is still FASTA
        data = data[:20_000]  # tiny chunks are slow; the start of the file is enough
    expected = parse(data)
    monkeypatch.setattr(parser, "CHUNK_SIZE", chunk_size)
    monkeypatch.setattr(parser, "SNIFF_BYTES", chunk_size)
    assert parse(data) == expected


def test_it_keeps_a_crlf_split_between_two_reads_as_one_line_end(monkeypatch):
    data = b"@a\r\nACGT\r\n+\r\nIIII\r\n"
    for chunk_size in range(1, len(data) + 1):
        monkeypatch.setattr(parser, "CHUNK_SIZE", chunk_size)
        (record,) = parse(data)
        assert record.quality == b"IIII"


def test_it_reads_lines_many_times_longer_than_a_chunk(monkeypatch):
    monkeypatch.setattr(parser, "CHUNK_SIZE", 1000)
    header = b"r" + b"x" * 50_000
    sequence = b"ACGT" * 25_000
    records = parse(b"@" + header + b"\n" + sequence + b"\n+\n" + b"I" * 100_000 + b"\n")
    assert records[0].identifier == header.decode()
    assert records[0].sequence == sequence


def test_it_reads_from_a_reader_that_returns_a_few_bytes_at_a_time():
    data = (DATA / "badinputs/11_multiline.fq").read_bytes()
    trickled = list(iter_records(open_decompressed(TrickleReader(data))))
    assert trickled == parse(data)
    compressed = gzip.compress(data)
    assert list(iter_records(open_decompressed(TrickleReader(compressed, 1)))) == trickled


def test_it_names_the_right_line_deep_in_a_multi_chunk_file(monkeypatch):
    monkeypatch.setattr(parser, "CHUNK_SIZE", 4096)
    records = [b"@r%d\nACGTACGT\n+\nIIIIIIII\n" % number for number in range(1, 10_001)]
    records[7776] = b"@r7777\nACGTACGT\n+\nIIIIIII\n"  # record 7777 has a short quality
    error = parse_error(b"".join(records))
    first_line = 4 * 7776 + 1
    assert (
        error.detail == f"record 7777: sequence 8 ≠ quality 7 (lines {first_line}–{first_line + 3})"
    )


def test_it_names_the_line_of_a_bad_letter_in_a_wrapped_fasta_record(monkeypatch):
    monkeypatch.setattr(parser, "CHUNK_SIZE", 64)
    lines = [b">r1", *([b"ACGTACGTAC"] * 30), b">r2", *([b"GGCCGGCCGG"] * 30)]
    lines[50] = b"GGCCGJCCGG"
    error = parse_error(b"\n".join(lines) + b"\n")
    assert (error.record, error.line) == (2, 51)


# --- gzip ----------------------------------------------------------------------------------


def test_it_reads_gzip_by_magic_whatever_the_name():
    data = (DATA / "fastq/illumina_phred64.fq").read_bytes()
    assert parse(gzip.compress(data)) == parse(data)


def test_it_refuses_a_gzip_stream_with_a_bad_checksum():
    compressed = bytearray(gzip.compress(b">a\nACGT\n"))
    compressed[-8] ^= 0xFF  # the CRC-32 of the member
    error = parse_error(bytes(compressed))
    assert isinstance(error, MalformedSequenceError)
    assert "invalid gzip stream" in error.detail


def test_it_refuses_garbage_after_a_gzip_member():
    error = parse_error(gzip.compress(b">a\nACGT\n") + b"garbage")
    assert isinstance(error, MalformedSequenceError)


def test_it_refuses_binary_content_past_the_first_chunk(monkeypatch):
    monkeypatch.setattr(parser, "CHUNK_SIZE", 16)
    monkeypatch.setattr(parser, "SNIFF_BYTES", 16)
    error = parse_error(b">a\n" + b"ACGT" * 20 + b"\x00\x01\x02")
    assert isinstance(error, NotSequenceFileError)
    assert error.detail == "binary content at byte 83"


# --- privacy -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b">PATIENT_SMITH_1234 dob=1970\nACGT*\n",
        b">PATIENT_SMITH_1234\nMEEPQ\n",
        b"@PATIENT_SMITH_1234\nACGT\n+\nIII\n",
        b"@PATIENT_SMITH_1234\nACGT\n+PATIENT_SMITH_9999\nIIII\n",
        b"@PATIENT_SMITH_1234\nACGT\n",
        b"@PATIENT_SMITH_1234\nACGT\n+\nII I\x01\n",
    ],
)
def test_it_never_puts_header_text_in_an_error(content):
    error = parse_error(content)
    assert "SMITH" not in str(error)
    assert error.detail.startswith("record 1:")
    assert error.record == 1


def test_it_keeps_the_matrix_message_on_every_error():
    assert parse_error(b"").message == "Only FASTA/FASTQ allowed"
    assert parse_error(b">a\nAC*\n").message == "Malformed sequence file"
    assert str(parse_error(b">a\nAC*\n")).startswith("Malformed sequence file: record 1")


def test_it_analyses_what_it_parses():
    report = analyse(io.BytesIO(b">a\nACGT\n>b\nGGCC\n"))
    assert (report.record_count, report.sequence_length) == (2, 8)


def test_it_feeds_consumers_every_record_in_order_across_batches(monkeypatch):
    class Numbers:
        def __init__(self) -> None:
            self.seen: list[tuple[int, int, str]] = []

        def add(self, record: SequenceRecord) -> None:
            self.seen.append((record.number, record.line, record.identifier))

    monkeypatch.setattr(parser, "CHUNK_SIZE", 100)
    data = b"".join(b"@r%d x\nACGT\n+\nIIII\n" % number for number in range(1, 301))
    data += b"@wrapped\nAC\nGT\n+\nII\nII\n"  # the line-by-line path too
    consumer = Numbers()
    report = analyse(io.BytesIO(data), consumers=[consumer])
    assert report.record_count == 301
    assert consumer.seen[:2] == [(1, 1, "r1"), (2, 5, "r2")]
    assert [number for number, _, _ in consumer.seen] == list(range(1, 302))
    assert [line for _, line, _ in consumer.seen] == list(range(1, 1202, 4))
    assert consumer.seen[-1][2] == "wrapped"


def test_it_imports_no_django():
    code = (
        "import sys, analysis.parser, analysis.kmers, analysis.composition, analysis.quality, "
        "analysis.report; print(sorted(name for name in sys.modules if name.startswith('django')))"
    )
    root = Path(__file__).resolve().parents[2]
    output = subprocess.run(
        [sys.executable, "-c", code], cwd=root, check=True, capture_output=True, text=True
    ).stdout
    assert output.strip() == "[]"
