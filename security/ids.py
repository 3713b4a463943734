"""Intrusion detection for uploaded FASTA/FASTQ content (pure Python, no Django).

The pipeline decompresses an upload and hands the bytes to :func:`scan`, which reads them once,
in bounded memory, and reports every finding with its record and line. Two kinds of check run:

* Signatures: one Aho-Corasick automaton (pyahocorasick, built once per process) of lower-cased
  keywords for SQL, script/HTML, path traversal, shell, template and PHP injection and for
  binary magic numbers. Only text goes through it: headers, FASTQ ``+`` lines, lines before the
  first header or outside the record structure, and sequence or quality lines that hold
  characters a sequence or a quality string never holds. Clean sequence lines only get a
  ``bytes.translate`` alphabet count, and quality lines are never searched for signatures while
  they hold only quality characters: ``'``, ``$``, ``(``, ``<``, ``{``, a backtick and ``-`` are
  all ordinary Phred scores.
* Structure: control bytes anywhere, text before the first header, non-IUPAC characters in
  sequence lines, a record whose letters are not nucleotides, absurd header or line lengths,
  and a flood of keywords too dense to examine one by one.

Text lines are queued and searched together once per 1 MiB chunk, and runs of clean FASTA
sequence lines are checked as one block, so the cost per line stays small: about a second for
50 MB of real reads or genomes. The worst case is a file of millions of one-base records,
which costs about a microsecond per line.

Many keywords are ordinary in genomic headers when they stand alone (a pipe in
``gi|123|ref|NC_1|``, a quote in ``5' UTR``, ``;`` in ``key=value; key2=value2``, the species
``Python regius`` after an NCBI pipe), so a keyword counts only in the context that makes it
an attack, checked by a small rule attached to the signature (see ``_SIGNATURES``).

A finding names its signature by a fixed label from the signature table, never by the text
around it: headers are identifiers and must not leak into job messages or logs.
"""

from __future__ import annotations

import html
import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cache
from itertools import accumulate, islice
from typing import BinaryIO
from urllib.parse import unquote

import ahocorasick

SQL_INJECTION = "sql_injection"
SCRIPT_INJECTION = "script_injection"
HTML_INJECTION = "html_injection"
PATH_TRAVERSAL = "path_traversal"
COMMAND_INJECTION = "command_injection"
TEMPLATE_INJECTION = "template_injection"
PHP_INJECTION = "php_injection"
EMBEDDED_BINARY = "embedded_binary"
CONTROL_BYTES = "control_bytes"
NON_IUPAC_SEQUENCE = "non_iupac_sequence"
NON_NUCLEOTIDE_ALPHABET = "non_nucleotide_alphabet"
DATA_BEFORE_HEADER = "data_before_header"
OVERSIZED_HEADER = "oversized_header"
OVERSIZED_LINE = "oversized_line"
SIGNATURE_FLOOD = "signature_flood"

SIGNATURE_THREAT_TYPES = (
    SQL_INJECTION,
    SCRIPT_INJECTION,
    HTML_INJECTION,
    PATH_TRAVERSAL,
    COMMAND_INJECTION,
    TEMPLATE_INJECTION,
    PHP_INJECTION,
    EMBEDDED_BINARY,
)
STRUCTURAL_THREAT_TYPES = (
    CONTROL_BYTES,
    NON_IUPAC_SEQUENCE,
    NON_NUCLEOTIDE_ALPHABET,
    DATA_BEFORE_HEADER,
    OVERSIZED_HEADER,
    OVERSIZED_LINE,
    SIGNATURE_FLOOD,
)
THREAT_TYPES = SIGNATURE_THREAT_TYPES + STRUCTURAL_THREAT_TYPES


@dataclass(frozen=True)
class IdsLimits:
    """Numeric thresholds of the scan; the policy optimiser (GA) tunes them per policy version.

    The defaults let every real genome and read set in ``shared/data`` through, including a
    66,005-character header and a 200,000-bp single-line sequence (CASES.md, 18_huge_line.fa).
    """

    # Headers of assemblies carry long key=value lists; 256 KiB is far beyond any real one.
    max_header_length: int = 262_144
    # A single-line FASTA holds a whole chromosome on one line (human chr21 is 46.7 Mbp), so
    # the default sits above the 50 MiB upload limit; the scan itself never holds a line whole.
    max_line_length: int = 67_108_864
    # A few stray characters (a `*` stop, a typo) are the parser's business; a line of text
    # hidden among the bases is not.
    max_non_iupac_per_record: int = 10
    max_control_bytes: int = 0
    # Share of A/C/G/T/U/N among the letters of a record; proteins have about 0.25.
    min_nucleotide_fraction: float = 0.7
    # Below this many letters the nucleotide fraction says nothing.
    min_letters_for_alphabet_check: int = 20
    # A run of base64 characters at least this long (and not DNA-like) is an embedded blob.
    min_base64_run: int = 128
    # Scanning stops after this many findings; the report says it was truncated.
    max_findings: int = 100

    def __post_init__(self) -> None:
        for name in (
            "max_header_length",
            "max_line_length",
            "max_non_iupac_per_record",
            "max_control_bytes",
            "min_letters_for_alphabet_check",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.min_base64_run < 16:
            raise ValueError("min_base64_run must be at least 16")
        if self.max_findings < 1:
            raise ValueError("max_findings must be at least 1")
        if not 0.0 <= self.min_nucleotide_fraction <= 1.0:
            raise ValueError("min_nucleotide_fraction must be between 0 and 1")


@dataclass(frozen=True)
class Finding:
    """One detection. ``pattern`` is a fixed label of the signature, never the input's text."""

    threat_type: str
    pattern: str
    record: int | None
    line: int


@dataclass
class IdsReport:
    findings: list[Finding]
    bytes_scanned: int
    records_scanned: int
    format: str | None = None
    truncated: bool = False

    @property
    def passed(self) -> bool:
        return not self.findings

    @property
    def threat_types(self) -> list[str]:
        return sorted({finding.threat_type for finding in self.findings})

    def to_dict(self) -> dict[str, object]:
        return {
            "passed": self.passed,
            "bytes_scanned": self.bytes_scanned,
            "records_scanned": self.records_scanned,
            "format": self.format,
            "truncated": self.truncated,
            "threat_types": self.threat_types,
            "findings": [asdict(finding) for finding in self.findings],
        }


# --------------------------------------------------------------------------------------------
# Signatures

# A check receives the lower-cased text, the keyword's start and end (exclusive) and the end of
# the keyword's line: the scanned text holds many lines, and no rule may read into the next.
Check = Callable[[str, int, int, int], bool]


@dataclass(frozen=True)
class _Signature:
    threat_type: str
    keyword: str  # as it appears in lower-cased latin-1 text
    label: str  # what a Finding shows
    word_start: bool = False  # the character before must not be a letter, digit or `_`
    word_end: bool = False  # the character after must not be a letter, digit or `_`
    line_start: bool = False  # only at the very start of a line
    check: Check | None = None


def _followed_by(pattern: str) -> Check:
    regex = re.compile(pattern)
    return lambda text, start, end, stop: regex.match(text, end, stop) is not None


def _matches_from_start(pattern: str) -> Check:
    regex = re.compile(pattern)
    return lambda text, start, end, stop: regex.match(text, start, stop) is not None


def _sql_tautology(text: str, start: int, end: int, stop: int) -> bool:
    """`' or 1=1`, `" or "a"="a`, `' or true--`; not `5' or 3' end`."""
    match = _TAUTOLOGY.match(text, start, stop)
    if match is None:
        return False
    return match.group("left") is None or match.group("left") == match.group("right")


_TAUTOLOGY = re.compile(
    r"""['"]\s*(?:(?:or|and)\b|\|\|)\s*(?:
        (?P<q1>['"]?)(?P<left>[\w.]+)(?P=q1)\s*(?:==?|<=>|like\b)\s*
            (?P<q2>['"]?)(?P<right>[\w.]+)
      | (?:true|1)\s*(?:--|\#|;|$)
    )""",
    re.VERBOSE,
)

# Shell words that make an operator before them an attack. Kept to commands: `env`, `time`,
# `test`, `sort`, `host`, `date`, `source`, `at` are also header keys, gene or field names.
_COMMANDS = (
    "sh bash zsh ksh csh tcsh python python2 python3 perl ruby php lua nc ncat netcat socat "
    "telnet ssh scp sftp tftp curl wget rm rmdir chmod chown chgrp sudo su nohup base64 xxd "
    "xargs tee cat echo printf id whoami uname hostname ifconfig ipconfig netstat ps ls pwd "
    "export eval exec kill pkill killall crontab mkfifo mknod dd cp mv touch mkdir ln find "
    "grep awk sed tar unzip gzip powershell pwsh cmd reg certutil bitsadmin mshta rundll32 "
    "wscript cscript sleep ping nslookup shutdown reboot halt systemctl useradd passwd"
).split()

# Programs that run what is piped into them: `curl x | sh` needs no argument after `sh`.
_INTERPRETERS = frozenset(
    "sh bash zsh ksh csh tcsh python python2 python3 perl ruby php lua nc ncat netcat socat "
    "telnet powershell pwsh cmd sudo xargs".split()
)

# After `;`, `|` or a single `&` the word must look like a command being run: followed by
# another shell operator or an argument (option, path, variable, quoted string); after `;` and
# `&` also the end of the text. That keeps `| Python regius` (an NCBI description),
# `; id=gene1`, `|cat|` or `|cp` (a gene or organelle field) apart from `| sh`, `; rm -rf /`
# and `& whoami`. An interpreter after a pipe counts at the end of the text or before a pipe.
_ARGUMENT_OR_OPERATOR = r"\s*[;&)`>]|\s+[-/$'\"~.<>*]"
_SHELL_USE_AFTER_SEMICOLON = rf"(?:$|\s*\||{_ARGUMENT_OR_OPERATOR})"
_SHELL_USE_AFTER_PIPE = rf"(?:{_ARGUMENT_OR_OPERATOR})"
_INTERPRETER_AFTER_PIPE = rf"(?:$|\s*\||{_ARGUMENT_OR_OPERATOR})"

_TEXT_TAG_STARTS = (
    "iframe img svg object embed link meta style form base body input video audio details "
    "marquee frame frameset applet math textarea button isindex"
).split()
_EVENT_HANDLERS = (
    "onerror onload onclick ondblclick onmouseover onmouseout onmouseenter onmousedown "
    "onmouseup onfocus onfocusin onblur onchange oninput onsubmit onreset onkeydown onkeyup "
    "onkeypress onanimationstart onanimationend ontransitionend ontoggle onbegin onpageshow "
    "onwheel onpointerdown onpointerover onresize onscroll onunload onbeforeunload "
    "onhashchange onmessage oncopy onpaste oncut ondrag ondrop onplay onended"
).split()

# Magic numbers of executables, archives and documents, looked for where a file would start:
# at the start of a line.
_BINARY_MAGICS: tuple[tuple[bytes, str, Check | None], ...] = (
    (b"\x7fELF", "ELF magic", None),
    # "MZ" alone starts ordinary words; a PE header follows it with binary bytes.
    (b"MZ", "PE magic", _matches_from_start(r"mz[\x00-\x08\x0e-\x1f\x80-\xff]")),
    (b"PK\x03\x04", "ZIP magic", None),
    (b"PK\x05\x06", "ZIP magic", None),
    (b"PK\x07\x08", "ZIP magic", None),
    (b"\x1f\x8b\x08", "gzip magic", None),
    (b"#!/", "shebang", None),
    (b"#! /", "shebang", None),
    (b"%PDF-", "PDF magic", None),
    (b"\xca\xfe\xba\xbe", "Mach-O/class magic", None),
    (b"\xfe\xed\xfa\xce", "Mach-O magic", None),
    (b"\xfe\xed\xfa\xcf", "Mach-O magic", None),
    (b"\xce\xfa\xed\xfe", "Mach-O magic", None),
    (b"\xcf\xfa\xed\xfe", "Mach-O magic", None),
    (b"7z\xbc\xaf\x27\x1c", "7z magic", None),
    (b"Rar!\x1a\x07", "RAR magic", None),
    (b"\xfd7zXZ\x00", "xz magic", None),
    (b"\x28\xb5\x2f\xfd", "zstd magic", None),
    (b"\x89PNG", "PNG magic", None),
    (b"\xff\xd8\xff", "JPEG magic", None),
    (b"\x00asm", "WebAssembly magic", None),
    (b"BZh", "bzip2 magic", _matches_from_start(r"bzh[1-9]1ay&sy")),
)


def _lowered(raw: bytes) -> str:
    # The same transformation the scanned text goes through.
    return raw.decode("latin-1").lower()


def _build_signatures() -> list[_Signature]:
    signatures: list[_Signature] = []

    def add(
        threat_type: str,
        keyword: str,
        *,
        label: str | None = None,
        word_start: bool | None = None,
        word_end: bool = False,
        check: Check | None = None,
    ) -> None:
        keyword = keyword.lower()
        signatures.append(
            _Signature(
                threat_type=threat_type,
                keyword=keyword,
                label=label or keyword,
                word_start=keyword[0].isalnum() if word_start is None else word_start,
                word_end=word_end,
                check=check,
            )
        )

    # SQL injection. Statements count with word boundaries; `--` only right after a quote or
    # a semicolon (`K-12`, `chr1--chr2` and `5'-ACGT-3'` stay clean).
    for statement in (
        "union select",
        "union all select",
        "union distinct select",
        "drop table",
        "drop database",
        "truncate table",
        "alter table",
        "select * from",
        "select @@",
        "xp_cmdshell",
        "sp_executesql",
        "exec master",
        "exec xp_",
        "waitfor delay",
        "pg_sleep",
        "information_schema",
        "load_file(",
        "into outfile",
        "into dumpfile",
    ):
        add(SQL_INJECTION, statement, word_end=statement[-1].isalnum())
    add(SQL_INJECTION, "@@version")
    add(SQL_INJECTION, "benchmark(")
    add(SQL_INJECTION, "sleep(", check=_followed_by(r"\s*\d"))
    add(
        SQL_INJECTION,
        "insert into",
        check=_followed_by(r"\s+[\w.`\"\[\]]+\s*(?:\(|values\b|select\b)"),
    )
    add(SQL_INJECTION, "delete from", check=_followed_by(r"\s+[\w.`\"\[\]]+\s*(?:;|--|where\b)"))
    add(
        SQL_INJECTION,
        "update",
        label="update ... set",
        word_end=True,
        check=_followed_by(r"\s+[\w.`\"\[\]]+\s+set\s+[\w.`\"]+\s*="),
    )
    add(SQL_INJECTION, "or 1=1", word_end=True)
    add(SQL_INJECTION, "'='")
    for anchor in ("' or", "'or", '" or', '"or', "' and", "'and", '" and', "' ||", "'||"):
        add(SQL_INJECTION, anchor, label=f"{anchor[0]} or/and tautology", check=_sql_tautology)
    for comment in ("'--", "' --", '"--', '" --', ";--"):
        add(SQL_INJECTION, comment)

    # Script injection: what executes in a browser.
    for keyword in (
        "<script",
        "javascript:",
        "vbscript:",
        "livescript:",
        "data:text/html",
        "document.cookie",
        "document.write",
        "document.domain",
        "window.location",
        ".innerhtml",
        "fromcharcode",
        "srcdoc=",
        "\\x3cscript",
        "\\u003cscript",
    ):
        add(SCRIPT_INJECTION, keyword)
    for call in ("eval(", "alert(", "expression("):
        add(SCRIPT_INJECTION, call, word_start=True)
    for handler in _EVENT_HANDLERS:
        add(SCRIPT_INJECTION, handler, label=f"{handler}=", check=_followed_by(r"\s*="))

    # HTML injection: markup that changes the page. `<` alone (`p<0.05`) is not markup.
    for tag in _TEXT_TAG_STARTS:
        add(HTML_INJECTION, f"<{tag}", word_end=True)
    add(HTML_INJECTION, "<a href")
    add(HTML_INJECTION, "<!--")
    add(HTML_INJECTION, "<![cdata[")
    add(HTML_INJECTION, "<!doctype")
    add(HTML_INJECTION, "<!entity")
    add(HTML_INJECTION, "</", label="</tag>", check=_followed_by(r"[a-z][a-z0-9]*\s*>"))

    # Path traversal. `..` alone is a range (`1..100`); `../` is not.
    for keyword in (
        "../",
        "..\\",
        "..%2f",
        "..%5c",
        "%2e%2e%2f",
        "%2e%2e%5c",
        "%2e%2e/",
        "%2e%2e\\",
        ".%2e/",
        "%2e./",
        "..%c0%af",
        "..%c1%9c",
        "%c0%ae%c0%ae",
        "%252e%252e",
        "/etc/passwd",
        "/etc/shadow",
        "/etc/hosts",
        "/proc/self/",
        "c:\\windows",
        "\\windows\\system32",
        "win.ini",
        "boot.ini",
        "file://",
        "~/.ssh",
        "/.ssh/",
        "web-inf/",
    ):
        add(PATH_TRAVERSAL, keyword)

    # Command injection. A pipe, `;` or `&` is harmless alone; followed by a command in use,
    # it is not. `$(`, `&&` and a backtick followed by a command are never a header's. Bare
    # command lines count only when unmistakable (`rm -rf`, `wget http`, `/bin/sh`): `curl -`
    # would catch "leaf curl - virus" names.
    add(COMMAND_INJECTION, "$(")
    after_semicolon = _followed_by(_SHELL_USE_AFTER_SEMICOLON)
    after_pipe = _followed_by(_SHELL_USE_AFTER_PIPE)
    interpreter_after_pipe = _followed_by(_INTERPRETER_AFTER_PIPE)
    for command in _COMMANDS:
        pipe_rule = interpreter_after_pipe if command in _INTERPRETERS else after_pipe
        for space in ("", " "):
            add(COMMAND_INJECTION, f"`{space}{command}", label=f"`{command}", word_end=True)
            add(COMMAND_INJECTION, f"&&{space}{command}", label=f"&& {command}", word_end=True)
            for operator, rule in (
                (";", after_semicolon),
                ("&", after_semicolon),
                ("|", pipe_rule),
                ("||", after_semicolon),
            ):
                add(
                    COMMAND_INJECTION,
                    f"{operator}{space}{command}",
                    label=f"{operator} {command}",
                    word_end=True,
                    check=rule,
                )
    for keyword in (
        "rm -rf",
        "rm -fr",
        "/bin/sh",
        "/bin/bash",
        "/bin/zsh",
        "/dev/tcp/",
        "/dev/udp/",
        "nc -e",
        "ncat -e",
        "bash -i",
        "bash -c",
        "sh -c",
        "sh -i",
        "python -c",
        "python3 -c",
        "perl -e",
        "ruby -e",
        "php -r",
        "chmod +x",
        "chmod 777",
        "wget http",
        "wget ftp",
        "curl http",
        "curl ftp",
        "base64 -d",
        "base64 --decode",
        "cmd.exe",
        "cmd /c",
        "powershell",
        "> /dev/null",
        "2>&1",
        "expect://",
    ):
        add(COMMAND_INJECTION, keyword)

    # Template injection (Jinja/Django, JS/shell interpolation, Ruby, ERB/JSP).
    for keyword in ("{{", "{%", "${", "#{", "<%="):
        add(TEMPLATE_INJECTION, keyword)

    for keyword in ("<?php", "<?=", "php://", "phar://"):
        add(PHP_INJECTION, keyword)

    for magic, label, check in _BINARY_MAGICS:
        signatures.append(
            _Signature(
                threat_type=EMBEDDED_BINARY,
                keyword=_lowered(magic),
                label=label,
                line_start=True,
                check=check,
            )
        )
    return signatures


_SIGNATURES = _build_signatures()


def _build_automaton() -> ahocorasick.Automaton:
    """The one automaton of the process; keywords that coincide share an entry."""
    by_keyword: dict[str, list[_Signature]] = {}
    for signature in _SIGNATURES:
        by_keyword.setdefault(signature.keyword, []).append(signature)
    automaton = ahocorasick.Automaton()
    for keyword, signatures in by_keyword.items():
        automaton.add_word(keyword, tuple(signatures))
    automaton.make_automaton()
    return automaton


# Built at import (a few milliseconds), so that worker threads share one finished automaton;
# it is only read afterwards.
_AUTOMATON = _build_automaton()


def _is_word_character(character: str) -> bool:
    return character.isalnum() or character == "_"


_SPACE_RUN = re.compile(r"[ \t]{2,}|\t")
_HTML_ENTITY = re.compile(r"&(?:#|[a-z]{2,8})")
_NEWLINE = re.compile("\n")


def _collapse_blanks(text: str) -> str:
    """Runs of blanks become one space, so that `union<TAB> select` meets `union select`."""
    if "  " in text or "\t" in text:
        return _SPACE_RUN.sub(" ", text)
    return text


# Decoding must not add lines, or a hit would be charged to the wrong line: encoded line feeds
# are turned into encoded spaces first.
_ENCODED_LINE_FEED = re.compile(r"%0a")
_ENTITY_LINE_FEED = re.compile(r"&#(?:0*10|x0*a)(?![0-9a-f])")
# SQL comments used as blanks (`union/**/select`, MySQL's `/*!50000union*/`).
_SQL_COMMENT_MARK = re.compile(r"/\*!?\d*|\*/")


def _alternative_views(lowered: str, text: str) -> list[str]:
    """Other readings of the text that an interpreter downstream would see.

    ``lowered`` is the lower-cased text, ``text`` the same with blanks collapsed. Browsers drop
    tabs inside `java<TAB>script:`; SQL reads comments as blanks; URL (twice, for `%252e`) and
    HTML-entity decoding undo the usual filter bypasses.
    """
    views = []
    if "\t" in lowered:
        views.append(lowered.replace("\t", ""))
    if "/*" in text or "*/" in text:
        views.append(_collapse_blanks(_SQL_COMMENT_MARK.sub(" ", text)))
    if "%" in text:
        decoded = text
        for _ in range(2):  # double encoding (%252e) is a classic filter bypass
            next_decoded = unquote(_ENCODED_LINE_FEED.sub("%20", decoded), encoding="latin-1")
            next_decoded = next_decoded.lower()
            if next_decoded == decoded:
                break
            decoded = next_decoded
            views.append(decoded)
    if "&" in text and _HTML_ENTITY.search(text):
        unescaped = html.unescape(_ENTITY_LINE_FEED.sub("&#32", text)).lower()
        if unescaped != text:
            views.append(unescaped)
    # A view with more or fewer lines would charge hits to the wrong line.
    lines = text.count("\n")
    return [view for view in views if view.count("\n") == lines]


# --------------------------------------------------------------------------------------------
# Byte classes

_ALL_BYTES = bytes(range(256))
_CONTROL = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_NOT_CONTROL = bytes(b for b in _ALL_BYTES if b not in _CONTROL)
_NUCLEOTIDES = b"ACGTUNacgtun"
_NUCLEOTIDES_AND_NEWLINE = _NUCLEOTIDES + b"\n"
_FASTA_TEXT_LINE = re.compile(rb"^[>;][^\n]*", re.MULTILINE)
_OTHER_IUPAC = b"RYSWKMBDHVryswkmbdhv"
_GAPS = b"-."
_BLANKS = b" \t"
_ASCII_LETTERS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_QUALITY_CHARACTERS = bytes(range(0x21, 0x7F))
_BOM = b"\xef\xbb\xbf"

_CHUNK_SIZE = 1 << 20
# Text carried from one piece of a very long line into the next, so that a keyword (and the
# context its rule reads) cut by a piece boundary is still seen whole.
_OVERLAP = 256
# Keyword occurrences per batch of text (one chunk's text lines) beyond which the batch is
# reported as a flood instead of examined further: real headers hold a handful of keywords at
# most, and checking each one of millions (a line of `$($($(` or `|cat|cat|`) would let one
# upload buy minutes of CPU.
_FLOOD_BASE = 4096
_FLOOD_PER_LINE = 16


@cache
def _base64_run(min_length: int) -> re.Pattern[bytes]:
    return re.compile(rb"[A-Za-z0-9+/]{%d,}={0,2}" % min_length)


def _looks_like_base64(run: bytes) -> bool:
    """Base64 of binary data mixes cases and digits; DNA (even soft-masked) and protein do not
    hold enough letters outside the IUPAC alphabet, and hex digests have one case only."""
    if run.translate(None, b"0123456789") == run:
        return False
    letters_only = run.translate(None, b"0123456789+/=")
    if letters_only.upper() == letters_only or letters_only.lower() == letters_only:
        return False
    outside_iupac = len(run.translate(None, _NUCLEOTIDES + _OTHER_IUPAC))
    return outside_iupac >= 0.3 * len(run)


# --------------------------------------------------------------------------------------------
# The scan

_BLANK, _HEADER, _TEXT, _SEQUENCE, _QUALITY = range(5)
# FASTQ: what the next line should be.
_EXPECT_HEADER, _EXPECT_SEQUENCE, _EXPECT_QUALITY = range(3)


class _Stop(Exception):
    """Raised when the findings limit is reached."""


@dataclass(slots=True)
class _Scanner:
    """Line state machine; text lines are queued and searched in one batch per chunk."""

    limits: IdsLimits
    findings: list[Finding] = field(default_factory=list)
    format: str | None = None
    records: int = 0
    truncated: bool = False
    _seen: set[tuple[str, str, int | None, int]] = field(default_factory=set)
    # Text lines waiting for the automaton, and where each comes from: (line, record, whether
    # it starts its line).
    _text_raws: list[bytes] = field(default_factory=list)
    _text_origins: list[tuple[int, int | None, bool]] = field(default_factory=list)
    _fastq_state: int = _EXPECT_HEADER
    _control_bytes: int = 0
    _data_before_header_reported: bool = False
    # The record being read.
    _record_line: int = 0
    _sequence_length: int = 0
    _quality_length: int = 0
    _nucleotides: int = 0
    _letters: int = 0
    _non_iupac: int = 0
    # The line being read (it may arrive in pieces).
    _kind: int = _BLANK
    _line_length: int = 0
    _length_reported: bool = False
    _overlap: bytes = b""
    _shortest_length_limit: int = field(init=False)

    def __post_init__(self) -> None:
        self._shortest_length_limit = min(
            self.limits.max_header_length, self.limits.max_line_length
        )

    def report(self, threat_type: str, pattern: str, line: int, record: int | None) -> None:
        key = (threat_type, pattern, record, line)
        if key in self._seen:
            return
        if len(self.findings) >= self.limits.max_findings:
            self.truncated = True
            raise _Stop
        self._seen.add(key)
        self.findings.append(Finding(threat_type, pattern, record, line))

    def _report_here(self, threat_type: str, pattern: str, line: int) -> None:
        self.report(threat_type, pattern, line, self.records or None)

    def lines(self, data: bytes, line: int, has_control: bool) -> int:
        """Take whole lines (``data`` ends with a newline); return the next line's number."""
        position = 0
        while self.format is None and position < len(data):
            end = data.index(b"\n", position)
            self.piece(line, data[position:end], True, True, has_control)
            line += 1
            position = end + 1
        if position:
            data = data[position:]
        if self.format == "fasta" and not has_control:
            return self._fasta_lines(data, line)
        piece = self.piece
        for text in data.split(b"\n")[:-1]:
            piece(line, text, True, True, has_control)
            line += 1
        return line

    def _fasta_lines(self, data: bytes, line: int) -> int:
        # Between two header (or comment) lines, the sequence lines go through as one block.
        position = 0
        for match in _FASTA_TEXT_LINE.finditer(data):
            if match.start() > position:
                line = self._sequence_block(data[position : match.start()], line)
            text = match.group()
            if text[:1] == b">":
                self._fasta_header(text, line)
            else:
                self.piece(line, text, True, True, False)
            line += 1
            position = match.end() + 1
        if position < len(data):
            line = self._sequence_block(data[position:], line)
        return line

    def _fasta_header(self, data: bytes, line: int) -> None:
        # What piece() does for a FASTA header without control bytes, minus its dispatch: a
        # file of millions of tiny records spends its time here.
        self._start_record(line)
        if len(data) > self.limits.max_header_length:
            self._report_here(
                OVERSIZED_HEADER, f"header > {self.limits.max_header_length} chars", line
            )
        self._text_raws.append(data)
        self._text_origins.append((line, self.records, True))

    def _sequence_block(self, block: bytes, line: int) -> int:
        """FASTA sequence lines, each ending with a newline; A/C/G/T/U/N only take one step."""
        line_count = block.count(b"\n")
        limit = self.limits.max_line_length
        if not block.translate(None, _NUCLEOTIDES_AND_NEWLINE) and (
            len(block) <= limit or max(map(len, block.split(b"\n"))) <= limit
        ):
            bases = len(block) - line_count
            self._sequence_length += bases
            self._nucleotides += bases
            self._letters += bases
            return line + line_count
        for text in block.split(b"\n")[:-1]:
            self.piece(line, text, True, True, False)
            line += 1
        return line

    def piece(self, line: int, data: bytes, first: bool, last: bool, has_control: bool) -> None:
        """Take the next ``data`` of line ``line``; ``first`` and ``last``: it starts or ends it."""
        if first:
            self._kind = kind = self._classify(data, line)
            self._line_length = len(data)
            self._length_reported = False
            self._overlap = b""
        else:
            kind = self._kind
            self._line_length += len(data)
        if self._line_length > self._shortest_length_limit and not self._length_reported:
            self._check_length(kind, line)
        if has_control:
            control = data.translate(None, _NOT_CONTROL)
            if control:
                self._control_bytes += len(control)
                if self._control_bytes > self.limits.max_control_bytes:
                    self._report_here(CONTROL_BYTES, f"0x{control[0]:02x}", line)

        if kind == _SEQUENCE:
            rest = data.translate(None, _NUCLEOTIDES)
            self._sequence_length += len(data)
            nucleotides = len(data) - len(rest)
            self._nucleotides += nucleotides
            self._letters += nucleotides
            if rest:  # anything beyond A/C/G/T/U/N, the uncommon case
                self._sequence_beyond_nucleotides(rest, data, line, first)
        elif kind == _QUALITY:
            self._quality_length += len(data)
            if self._quality_length >= self._sequence_length:
                self._fastq_state = _EXPECT_HEADER
            if data.translate(None, _QUALITY_CHARACTERS):
                # Not a quality string after all (blanks, non-ASCII, control bytes): text.
                self._queue_text(data, line, first)
        elif kind != _BLANK:
            self._queue_text(data, line, first)
        if not last:
            self._overlap = (self._overlap + data)[-_OVERLAP:]

    def finish(self) -> None:
        self.flush()
        self._finish_record()

    def _check_length(self, kind: int, line: int) -> None:
        limits = self.limits
        if kind in (_HEADER, _TEXT):
            if self._line_length <= limits.max_header_length:
                return
            self._report_here(OVERSIZED_HEADER, f"header > {limits.max_header_length} chars", line)
            self._length_reported = True
        elif self._line_length > limits.max_line_length:
            self._report_here(OVERSIZED_LINE, f"line > {limits.max_line_length} chars", line)
            self._length_reported = True

    def _classify(self, data: bytes, line: int) -> int:
        start = data[:1]
        if self.format == "fasta":
            if start == b">":
                self._start_record(line)
                return _HEADER
            if start == b";":  # old-style FASTA comment line
                return _TEXT
            if not data.strip(_BLANKS):
                return _BLANK
            return _SEQUENCE

        if self.format is None:
            if not data.strip(_BLANKS):
                return _BLANK
            if start == b">":
                self.format = "fasta"
            elif start == b"@":
                self.format = "fastq"
                self._fastq_state = _EXPECT_SEQUENCE
            else:
                if not self._data_before_header_reported:
                    self._data_before_header_reported = True
                    self._report_here(DATA_BEFORE_HEADER, "text before first header", line)
                return _TEXT
            self._start_record(line)
            return _HEADER

        # FASTQ, following DESIGN.md: quality continues while it is shorter than the sequence,
        # so a quality line may start with `@` or `+`; a line that would make it longer is not
        # quality (the parser reports the length mismatch) and is read as what it looks like.
        state = self._fastq_state
        if state == _EXPECT_QUALITY:
            if self._quality_length + len(data) <= self._sequence_length:
                return _QUALITY
            state = self._fastq_state = _EXPECT_HEADER
        if state == _EXPECT_SEQUENCE:
            if start == b"+":
                self._quality_length = 0
                self._fastq_state = _EXPECT_QUALITY if self._sequence_length > 0 else _EXPECT_HEADER
                return _TEXT
            return _SEQUENCE
        if start == b"@":
            self._start_record(line)
            self._fastq_state = _EXPECT_SEQUENCE
            return _HEADER
        if not data.strip(_BLANKS):
            return _BLANK
        return _TEXT

    def _start_record(self, line: int) -> None:
        if self._letters >= self.limits.min_letters_for_alphabet_check:
            self._finish_record()
        self.records += 1
        self._record_line = line
        self._sequence_length = 0
        self._quality_length = 0
        self._nucleotides = 0
        self._letters = 0
        self._non_iupac = 0

    def _finish_record(self) -> None:
        if not self.records or self._letters < self.limits.min_letters_for_alphabet_check:
            return
        fraction = self._nucleotides / self._letters
        if fraction < self.limits.min_nucleotide_fraction:
            self.report(
                NON_NUCLEOTIDE_ALPHABET,
                f"nucleotide fraction {fraction:.2f}",
                self._record_line,
                self.records,
            )

    def _sequence_beyond_nucleotides(
        self, rest: bytes, data: bytes, line: int, first: bool
    ) -> None:
        beyond_iupac = rest.translate(None, _OTHER_IUPAC)
        self._letters += len(rest) - len(beyond_iupac)
        if not beyond_iupac:
            return
        without_blanks = beyond_iupac.translate(None, _BLANKS)
        self._sequence_length -= len(beyond_iupac) - len(without_blanks)
        odd = without_blanks.translate(None, _GAPS)
        if not odd:
            return
        self._letters += len(odd) - len(odd.translate(None, _ASCII_LETTERS))
        before = self._non_iupac
        self._non_iupac += len(odd)
        limit = self.limits.max_non_iupac_per_record
        if before <= limit < self._non_iupac:
            self._report_here(NON_IUPAC_SEQUENCE, f"> {limit} non-IUPAC characters", line)
        # IUPAC letters, gaps and blanks alone cannot spell an attack; anything else may.
        self._queue_text(data, line, first)

    def _queue_text(self, data: bytes, line: int, first: bool) -> None:
        raw = data if first else self._overlap + data
        self._text_raws.append(raw)
        self._text_origins.append((line, self.records or None, first))

    def flush(self) -> None:
        """Search the queued text lines, joined by newlines, in one pass of the automaton."""
        raws, origins = self._text_raws, self._text_origins
        if not raws:
            return
        self._text_raws, self._text_origins = [], []
        raw = b"\n".join(raws)
        lowered = raw.decode("latin-1").lower()
        text = _collapse_blanks(lowered)
        self._search(text, origins, decoded=False)
        budget = _FLOOD_BASE + _FLOOD_PER_LINE * len(origins)
        for escape in ("%", "&"):
            # Decoding is paid per escape: text made mostly of escapes is itself the finding.
            if text.count(escape) > budget:
                beyond = next(islice(re.finditer(re.escape(escape), text), budget, None))
                line, record, _ = origins[bisect_right(_line_starts(text), beyond.start()) - 1]
                self.report(SIGNATURE_FLOOD, "escape flood", line, record)
                text = text.replace(escape, " ")
        for view in _alternative_views(lowered, text):
            self._search(view, origins, decoded=True)

        min_run = self.limits.min_base64_run
        if len(raw) >= min_run:
            raw_starts: list[int] | None = None
            for match in _base64_run(min_run).finditer(raw):
                if not _looks_like_base64(match.group()):
                    continue
                if raw_starts is None:
                    raw_starts = [0, *accumulate(len(entry) + 1 for entry in raws)]
                line, record, _ = origins[bisect_right(raw_starts, match.start()) - 1]
                self.report(EMBEDDED_BINARY, "base64 blob", line, record)

    def _search(
        self, text: str, origins: list[tuple[int, int | None, bool]], *, decoded: bool
    ) -> None:
        """Report the signatures of ``text`` (queued lines joined, lower-cased, maybe decoded)."""
        length = len(text)
        line_starts: list[int] = []
        # Hits are charged to the line they fall in; a keyword already reported for a line is
        # skipped for the rest of that line without locating it again.
        reported_until: dict[int, int] = {}
        budget = _FLOOD_BASE + _FLOOD_PER_LINE * len(origins)
        for last, signatures in _AUTOMATON.iter(text):
            budget -= 1
            if budget < 0:
                if not line_starts:
                    line_starts = _line_starts(text)
                line, record, _ = origins[bisect_right(line_starts, last) - 1]
                self.report(SIGNATURE_FLOOD, "keyword flood", line, record)
                return
            end = last + 1
            for signature in signatures:
                start = end - len(signature.keyword)
                if start < reported_until.get(id(signature), -1):
                    continue
                before = text[start - 1] if start else "\n"
                if signature.line_start and (decoded or before != "\n"):
                    continue
                if signature.word_start and _is_word_character(before):
                    continue
                if signature.word_end and end < length and _is_word_character(text[end]):
                    continue
                if not line_starts:
                    line_starts = _line_starts(text)
                index = bisect_right(line_starts, start) - 1
                stop = line_starts[index + 1] - 1 if index + 1 < len(line_starts) else length
                if signature.check is not None and not signature.check(text, start, end, stop):
                    continue
                line, record, starts_line = origins[index]
                if signature.line_start and not starts_line:
                    continue
                self.report(signature.threat_type, signature.label, line, record)
                reported_until[id(signature)] = stop


def _line_starts(text: str) -> list[int]:
    return [0, *(match.end() for match in _NEWLINE.finditer(text))]


DEFAULT_LIMITS = IdsLimits()


def scan(stream: BinaryIO, *, limits: IdsLimits = DEFAULT_LIMITS) -> IdsReport:
    """Scan decompressed FASTA/FASTQ bytes for attacks and structural anomalies.

    Reads ``stream`` once in 1 MiB chunks; lines longer than a chunk are handled in pieces, so
    memory stays bounded whatever the input. CRLF, CR and a UTF-8 BOM are accepted. Records
    are numbered from 1 in order of their headers; lines from 1 (after the BOM). Scanning stops
    at ``limits.max_findings`` findings (``truncated`` in the report).
    """
    scanner = _Scanner(limits)
    bytes_scanned = 0
    line = 1
    continuing = False  # the pending line already had pieces handed over
    pending = b""
    at_start = True
    try:
        while True:
            chunk = stream.read(_CHUNK_SIZE)
            if not chunk:
                break
            bytes_scanned += len(chunk)
            data = pending + chunk
            if at_start:
                if len(data) < len(_BOM) and _BOM.startswith(data):
                    pending = data
                    continue
                if data.startswith(_BOM):
                    data = data[len(_BOM) :]
                at_start = False
            # A CR at the end may be the first half of a CRLF: keep it for the next chunk.
            carry = b""
            if data.endswith(b"\r"):
                data, carry = data[:-1], b"\r"
            if b"\r" in data:
                data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            has_control = bool(data.translate(None, _NOT_CONTROL))
            cut = data.rfind(b"\n") + 1
            complete, pending = data[:cut], data[cut:]
            if complete and continuing:
                # The first line here ends a line whose start was handed over in pieces.
                end = complete.index(b"\n")
                scanner.piece(line, complete[:end], False, True, has_control)
                line += 1
                continuing = False
                complete = complete[end + 1 :]
            line = scanner.lines(complete, line, has_control)
            if len(pending) >= _CHUNK_SIZE:
                scanner.piece(line, pending, not continuing, False, has_control)
                continuing = True
                pending = b""
            pending += carry
            scanner.flush()

        if at_start and pending.startswith(_BOM):
            pending = pending[len(_BOM) :]
        pending = pending.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        has_control = bool(pending.translate(None, _NOT_CONTROL))
        lines = pending.split(b"\n")
        if lines[-1] == b"" and (len(lines) > 1 or not continuing):
            lines.pop()
        for text in lines:
            scanner.piece(line, text, not continuing, True, has_control)
            line += 1
            continuing = False
        scanner.finish()
    except _Stop:
        pass
    findings = sorted(scanner.findings, key=lambda finding: finding.line)
    return IdsReport(
        findings=findings,
        bytes_scanned=bytes_scanned,
        records_scanned=scanner.records,
        format=scanner.format,
        truncated=scanner.truncated,
    )
