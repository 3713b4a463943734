"""Property tests: whatever bytes arrive, analyse() either reports or raises a SequenceFileError;
generated records read back exactly, whatever the wrapping, line ends and chunk size."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis import parser
from analysis.parser import SequenceFileError, iter_records, open_decompressed
from analysis.report import analyse

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SEEDS = [
    path.read_bytes()
    for path in sorted((DATA / "badinputs").iterdir())
    if path.suffix in {".fa", ".fq", ".gz"} and path.stat().st_size < 10_000
] + [(DATA / "fastq/illumina_phred64.fq").read_bytes()[:1500]]

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def analyse_or_refuse(data: bytes) -> None:
    """The property: a report that serialises to JSON, or a SequenceFileError."""
    try:
        report = analyse(io.BytesIO(data))
    except SequenceFileError as error:
        assert error.message
        return
    json.dumps(report.to_dict())
    assert report.record_count >= 1


@st.composite
def mutated_files(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    if data[:2] == b"\x1f\x8b" and draw(st.booleans()):
        with contextlib.suppress(EOFError):  # 15b_truncated.fq.gz stays compressed
            data = bytearray(gzip.decompress(bytes(data)))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "truncate", "duplicate"]))
        if action == "insert":
            data[position:position] = draw(
                st.binary(max_size=8)
                | st.sampled_from(
                    [b"\n", b"\r", b"@", b">", b"+", b"+x", b"\n+\n", b"\n@\n", b"\n@x\n", b"*"]
                )
            )
        elif action == "delete":
            del data[position : position + draw(st.integers(1, 10))]
        elif action == "replace" and position < len(data):
            data[position] = draw(st.integers(0, 255))
        elif action == "truncate":
            del data[position:]
        elif action == "duplicate":
            data += data[position:]
    if draw(st.booleans()):
        return gzip.compress(bytes(data), mtime=0)
    return bytes(data)


@contextlib.contextmanager
def chunk_size(size: int) -> Iterator[None]:
    saved = parser.CHUNK_SIZE, parser.SNIFF_BYTES
    parser.CHUNK_SIZE = parser.SNIFF_BYTES = size
    try:
        yield
    finally:
        parser.CHUNK_SIZE, parser.SNIFF_BYTES = saved


@SETTINGS
@given(st.binary(max_size=3000))
def test_it_reports_or_refuses_random_bytes(data):
    analyse_or_refuse(data)


@SETTINGS
@given(st.sampled_from([b">", b"@", b"\x1f\x8b", b"\xef\xbb\xbf>"]), st.binary(max_size=500))
def test_it_reports_or_refuses_random_bytes_after_a_plausible_start(start, data):
    analyse_or_refuse(start + data)


@SETTINGS
@given(mutated_files())
def test_it_reports_or_refuses_mutated_real_files(data):
    analyse_or_refuse(data)


sequences = st.text(alphabet="ACGTNacgtnRYU", max_size=120)


@st.composite
def fastq_files(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, str, str]]]:
    reads = draw(
        st.lists(
            st.tuples(
                st.from_regex(r"[A-Za-z0-9_:.|]{1,12}", fullmatch=True),
                sequences,
            ),
            min_size=1,
            max_size=12,
        )
    )
    line_end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    width = draw(st.integers(1, 80))
    lines: list[str] = []
    expected = []
    for identifier, sequence in reads:
        quality = "".join(
            draw(
                st.lists(
                    st.sampled_from("!#+5?@I~"), min_size=len(sequence), max_size=len(sequence)
                )
            )
        )
        expected.append((identifier, sequence, quality))
        lines.append("@" + identifier)
        lines += [sequence[i : i + width] for i in range(0, len(sequence), width)] or [""]
        lines.append("+")
        lines += [quality[i : i + width] for i in range(0, len(quality), width)] or [""]
    text = line_end.join(lines) + (line_end if draw(st.booleans()) else "")
    return text.encode(), expected


@st.composite
def fasta_files(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, str]]]:
    records = draw(
        st.lists(
            st.tuples(st.from_regex(r"[A-Za-z0-9_|]{1,12}", fullmatch=True), sequences),
            min_size=1,
            max_size=12,
        )
    )
    line_end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    width = draw(st.integers(1, 80))
    lines: list[str] = []
    for identifier, sequence in records:
        lines.append(">" + identifier + draw(st.sampled_from(["", " some description"])))
        lines += [sequence[i : i + width] for i in range(0, len(sequence), width)]
        if draw(st.booleans()):
            lines.append("")
    text = line_end.join(lines) + (line_end if draw(st.booleans()) else "")
    return text.encode(), records


@SETTINGS
@given(fastq_files(), st.integers(1, 40))
def test_it_reads_generated_fastq_back_whatever_the_wrapping_and_chunks(generated, size):
    data, expected = generated
    with chunk_size(size):
        records = list(iter_records(open_decompressed(io.BytesIO(data))))
    found = [
        (record.identifier, record.sequence.decode(), record.quality.decode()) for record in records
    ]
    assert found == expected


@SETTINGS
@given(fasta_files(), st.integers(1, 40))
def test_it_reads_generated_fasta_back_whatever_the_wrapping_and_chunks(generated, size):
    data, expected = generated
    with chunk_size(size):
        records = list(iter_records(open_decompressed(io.BytesIO(data))))
    assert [(record.identifier, record.sequence.decode()) for record in records] == expected


@SETTINGS
@given(st.one_of(fastq_files(), fasta_files()), st.integers(1, 40))
def test_it_gives_the_same_report_whatever_the_chunk_size(generated, size):
    data, _ = generated
    expected = analyse(io.BytesIO(data)).to_dict()
    with chunk_size(size):
        assert analyse(io.BytesIO(data)).to_dict() == expected
