"""Streaming FASTA/FASTQ parser (plain or gzip) with errors that name a record and a line.

Pure Python, no Django. Memory stays bounded by one record plus one read chunk, whatever the
line length: lines are cut from fixed-size chunks and a line longer than a chunk is gathered
in pieces, never re-concatenated chunk by chunk.

Error messages name records by their number (1-based) and line, never by header text: headers
are patient identifiers and these messages are stored on the job and logged.

Written by hand because no maintained library does all of: multi-line FASTQ whose quality lines
may start with '@' or '+', CR/CRLF, BOM, record-and-line errors, bounded memory for huge lines,
and per-record speed close to C parsers (Biopython's parsers are several times slower and
report errors by content, not by line).
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Literal

SequenceFormat = Literal["fasta", "fastq"]

CHUNK_SIZE = 1 << 20
"""Bytes read from the decompressed stream at a time."""
BATCH_BYTES = 1 << 20
"""Sequence and header bytes gathered into one RecordBatch (slow paths and FASTA)."""
SNIFF_BYTES = 1 << 16
"""Bytes gathered before the format is told (more when they are all blank)."""

GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"

NUCLEOTIDE_LETTERS = b"ACGTURYSWKMBDHVNacgturyswkmbdhvn"
"""IUPAC nucleotide codes, either case (U counts as T in the analysis)."""
GAP_SYMBOLS = b"-."
PROTEIN_ONLY_LETTERS = frozenset(b"EFIJLOPQXZefijlopqxz")
"""Letters of the protein alphabet that are not nucleotide codes."""
WHITESPACE = b" \t\n\r\v\f"
QUALITY_CHARACTERS = bytes(range(33, 127))
"""'!' to '~': every character that can encode a Phred score (Phred+33 Q0 to Q93)."""
_INLINE_WHITESPACE = b" \t\v\f"


class SequenceFileError(ValueError):
    """A file the analysis refuses; `message` is the user-facing message of the error matrix."""

    message = "Malformed sequence file"

    def __init__(
        self, detail: str | None = None, *, record: int | None = None, line: int | None = None
    ) -> None:
        self.detail = detail
        self.record = record
        self.line = line
        super().__init__(f"{self.message}: {detail}" if detail else self.message)


class NotSequenceFileError(SequenceFileError):
    """The content is not FASTA/FASTQ at all (empty, binary, other text)."""

    message = "Only FASTA/FASTQ allowed"


class MalformedSequenceError(SequenceFileError):
    """FASTA/FASTQ with a structural or alphabet error; `detail` names the record and line."""

    message = "Malformed sequence file"


class FileTooLargeError(SequenceFileError):
    """The decompressed content passes the upload limit (a gzip file can expand a lot)."""

    message = "File exceeds 50MB limit"


@dataclass(slots=True)
class SequenceRecord:
    """One FASTA/FASTQ record; `sequence` holds sequence letters only (gaps removed)."""

    number: int
    line: int
    identifier: str
    description: str
    sequence: bytes
    gaps: int
    quality: bytes | None


# --- decompression -------------------------------------------------------------------------


class _PrefixedReader(io.RawIOBase):
    """Gives back bytes already read from `raw` (to look at the magic) before the rest."""

    def __init__(self, prefix: bytes, raw: BinaryIO) -> None:
        self._prefix = prefix
        self._raw = raw

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            return super().read(size)
        return self._raw.read(size)  # no copy through a buffer once the prefix is given back

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        view = memoryview(buffer).cast("B")
        taken = self._prefix[: len(view)]
        view[: len(taken)] = taken
        self._prefix = self._prefix[len(taken) :]
        data = self._raw.read(len(view) - len(taken)) if len(taken) < len(view) else b""
        view[len(taken) : len(taken) + len(data)] = data
        return len(taken) + len(data)


class _CheckedReader(io.RawIOBase):
    """Turns gzip failures into MalformedSequenceError and counts the decompressed bytes."""

    def __init__(self, inner: BinaryIO, *, compressed: bool, max_bytes: int | None) -> None:
        self._inner = inner
        self._compressed = compressed
        self._max_bytes = max_bytes
        self.bytes_out = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._inner.read(size)
        except EOFError as error:
            raise MalformedSequenceError(
                "truncated gzip stream: the file ends before the end-of-stream marker "
                "(missing CRC/ISIZE)"
            ) from error
        except (OSError, zlib.error) as error:
            if not self._compressed:
                raise
            raise MalformedSequenceError(f"invalid gzip stream ({error})") from error
        self.bytes_out += len(data)
        if self._max_bytes is not None and self.bytes_out > self._max_bytes:
            raise FileTooLargeError(f"the decompressed content passes {self._max_bytes:,} bytes")
        return data

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)


def open_decompressed(raw: BinaryIO, *, max_bytes: int | None = None) -> BinaryIO:
    """Return a reader of the decompressed bytes of `raw` (gzip by magic, else passthrough).

    Multi-member gzip and BGZF (including EOF blocks mid-file) read like `zcat`. A truncated
    or corrupt stream raises MalformedSequenceError when the reader reaches it: reading is
    lazy, so the caller sees the error before any result is complete. `max_bytes` limits the
    decompressed size (FileTooLargeError).
    """
    magic = raw.read(2)
    while 0 < len(magic) < 2:
        more = raw.read(2 - len(magic))
        if not more:
            break
        magic += more
    source: BinaryIO = _PrefixedReader(magic, raw)  # type: ignore[assignment]
    compressed = magic == GZIP_MAGIC
    if compressed:
        source = gzip.GzipFile(fileobj=source, mode="rb")  # type: ignore[assignment]
    return _CheckedReader(source, compressed=compressed, max_bytes=max_bytes)  # type: ignore[return-value]


# --- format detection ----------------------------------------------------------------------


def _looks_like_sequence(text: bytes) -> bool:
    """True when `text` holds only sequence symbols and whitespace (data before a header)."""
    return not text.translate(None, NUCLEOTIDE_LETTERS + GAP_SYMBOLS + b"*" + WHITESPACE)


def sniff_format(head: bytes) -> SequenceFormat:
    """Tell FASTA from FASTQ by the first bytes of the decompressed content.

    After an optional UTF-8 BOM and blank lines, '>' means FASTA and '@' FASTQ. Sequence
    letters before the first header line still count as that format, so that the parser can
    refuse them as "data before the first header" with a line number. Anything else (empty,
    binary, other text) raises NotSequenceFileError.
    """
    if not head:
        raise NotSequenceFileError("the file is empty")
    binary_at = head.find(b"\x00")
    if binary_at >= 0:
        raise NotSequenceFileError(f"binary content at byte {binary_at}")
    content = head.removeprefix(UTF8_BOM).lstrip(WHITESPACE)
    if not content:
        raise NotSequenceFileError("the file is empty")
    first = content[:1]
    if first == b">":
        return "fasta"
    if first == b"@":
        return "fastq"
    for marker, file_format in ((b"\n>", "fasta"), (b"\n@", "fastq"), (b"\r>", "fasta")):
        at = content.find(marker)
        if at >= 0 and _looks_like_sequence(content[:at]):
            return file_format  # type: ignore[return-value]
    control = next((i for i, byte in enumerate(head[:4096]) if byte < 9 or 13 < byte < 32), -1)
    if control >= 0:
        raise NotSequenceFileError(f"binary content at byte {control}")
    raise NotSequenceFileError("no FASTA ('>') or FASTQ ('@') header at the start")


# --- chunking ------------------------------------------------------------------------------


def _read_head(stream: BinaryIO) -> bytes:
    """Read the first chunk, and on until a non-blank byte shows, to tell the format.

    Keeps reading after a short read so that a reader returning a few bytes at a time still
    gives sniff_format() enough to look at.
    """
    head = stream.read(CHUNK_SIZE)
    while head and (len(head) < SNIFF_BYTES or not head.removeprefix(UTF8_BOM).strip(WHITESPACE)):
        more = stream.read(CHUNK_SIZE)
        if not more:
            break
        head += more
    return head


def _normalised_chunks(stream: BinaryIO, head: bytes) -> Iterator[bytes]:
    """Yield the content in chunks with the BOM removed and CR/CRLF turned into LF.

    A chunk that ends in CR keeps it back until the next chunk shows whether an LF follows,
    so a CRLF split across two reads still counts as one line end.
    """
    carry_cr = False
    chunk = head.removeprefix(UTF8_BOM)
    offset = len(head) - len(chunk)
    while chunk:
        nul = chunk.find(b"\x00")
        if nul >= 0:
            raise NotSequenceFileError(f"binary content at byte {offset + nul}")
        offset += len(chunk)
        if carry_cr:
            chunk = b"\r" + chunk
            carry_cr = False
        if b"\r" in chunk:
            if chunk.endswith(b"\r"):
                chunk = chunk[:-1]
                carry_cr = True
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if chunk:
            yield chunk
        chunk = stream.read(CHUNK_SIZE)
    if carry_cr:
        yield b"\n"


# --- shared record checks ------------------------------------------------------------------


def _describe_byte(byte: int) -> str:
    if 33 <= byte < 127:
        return f"'{chr(byte)}'"
    return f"byte 0x{byte:02X}"


def _sequence_symbol_error(record: int, byte: int, line: int) -> MalformedSequenceError:
    if byte == ord("*"):
        problem = "'*' is not a nucleotide"
    elif byte in PROTEIN_ONLY_LETTERS:
        problem = f"'{chr(byte)}' is not a nucleotide code; this looks like a protein sequence"
    else:
        problem = f"unexpected {_describe_byte(byte)} in the sequence"
    return MalformedSequenceError(
        f"record {record}: {problem} (line {line})", record=record, line=line
    )


def _clean_sequence(raw: bytes, record: int, first_line: int) -> tuple[bytes, int]:
    """Sequence letters of `raw` (which may hold newlines) and the number of gap symbols.

    Whitespace is dropped, gaps are counted and dropped, anything else that is not an IUPAC
    nucleotide code raises MalformedSequenceError naming the record and the line.
    """
    # Newlines are the only whitespace in almost every file, and bytes.replace drops them
    # twice as fast as a deleting translate; anything else shows up in `leftover`.
    sequence = raw.replace(b"\n", b"")
    leftover = sequence.translate(None, NUCLEOTIDE_LETTERS)
    if not leftover:
        return sequence, 0
    sequence = sequence.translate(None, WHITESPACE)
    leftover = leftover.translate(None, WHITESPACE)
    if not leftover:
        return sequence, 0
    gaps = leftover.count(b"-") + leftover.count(b".")
    if gaps != len(leftover):
        invalid = leftover.translate(None, GAP_SYMBOLS)
        position = min(raw.find(bytes([byte])) for byte in set(invalid))
        line = first_line + raw.count(b"\n", 0, position)
        raise _sequence_symbol_error(record, raw[position], line)
    return sequence.translate(None, GAP_SYMBOLS), gaps


# --- batches -------------------------------------------------------------------------------


@dataclass(slots=True)
class RecordBatch:
    """Consecutive records as columns, so that the analysis can count them without a
    per-record Python loop; `records()` gives them one by one."""

    first_number: int
    lines: list[int]
    headers: list[bytes]  # header lines, '>' or '@' included
    sequences: list[bytes]
    gaps: list[int]
    qualities: list[bytes] | None

    def __len__(self) -> int:
        return len(self.sequences)

    def records(self) -> Iterator[SequenceRecord]:
        # One decode for the whole batch: a header holds no newline, and invalid UTF-8 is
        # replaced without swallowing the newline that follows it. The records are built by
        # map() rather than a Python loop: this runs once per read when consumers want them.
        texts = b"\n".join(self.headers).decode("utf-8", "replace").split("\n")
        parts = [text[1:].split(None, 1) for text in texts]
        identifiers = [part[0] if part else "" for part in parts]
        descriptions = [part[1].rstrip() if len(part) > 1 else "" for part in parts]
        qualities: Sequence[bytes | None] = (
            self.qualities if self.qualities is not None else [None] * len(self.sequences)
        )
        return map(
            SequenceRecord,
            range(self.first_number, self.first_number + len(self.sequences)),
            self.lines,
            identifiers,
            descriptions,
            self.sequences,
            self.gaps,
            qualities,
        )


class _BatchBuilder:
    """Collects records one at a time (the slow paths) into a RecordBatch."""

    __slots__ = ("first_number", "lines", "headers", "sequences", "gaps", "qualities", "size")

    def __init__(self, *, fastq: bool) -> None:
        self.first_number = 0
        self.lines: list[int] = []
        self.headers: list[bytes] = []
        self.sequences: list[bytes] = []
        self.gaps: list[int] = []
        self.qualities: list[bytes] | None = [] if fastq else None
        self.size = 0

    def add(
        self,
        number: int,
        line: int,
        header: bytes,
        sequence: bytes,
        gaps: int,
        quality: bytes | None,
    ) -> None:
        if not self.sequences:
            self.first_number = number
        self.lines.append(line)
        self.headers.append(header)
        self.sequences.append(sequence)
        self.gaps.append(gaps)
        if self.qualities is not None and quality is not None:
            self.qualities.append(quality)
        self.size += len(sequence) + len(header)

    def __len__(self) -> int:
        return len(self.sequences)

    def build(self) -> RecordBatch:
        return RecordBatch(
            self.first_number, self.lines, self.headers, self.sequences, self.gaps, self.qualities
        )


# --- FASTA ---------------------------------------------------------------------------------


def _fasta_preamble_check(preamble: bytes) -> None:
    """Only blank lines may come before the first header."""
    content = preamble.lstrip(WHITESPACE)
    if content:
        line = 1 + preamble.count(b"\n", 0, len(preamble) - len(content))
        raise MalformedSequenceError(f"line {line}: data before the first header", line=line)


def _iter_fasta(chunks: Iterator[bytes]) -> Iterator[RecordBatch]:
    """FASTA by regions: find header lines with bytes.find and take everything between two
    headers as one sequence, so a genome with short lines costs no per-line Python work."""
    number = 0  # records started so far (the current one included)
    lines_before = 0  # newlines before the current position
    at_line_start = True
    in_header = False
    header_parts: list[bytes] = []
    header: bytes | None = None  # header of the current record, None before the first
    header_line = 0
    body_parts: list[bytes] = []
    batch = _BatchBuilder(fastq=False)

    def finish() -> None:
        """Check the body of the current record and add the record to the batch."""
        body = b"".join(body_parts)
        body_parts.clear()
        if header is None:
            _fasta_preamble_check(body)
            return
        sequence, gaps = _clean_sequence(body, number, header_line + 1)
        batch.add(number, header_line, header, sequence, gaps, None)

    try:
        for chunk in chunks:
            position = 0
            end = len(chunk)
            while position < end:
                if in_header:
                    newline = chunk.find(b"\n", position)
                    if newline < 0:
                        header_parts.append(chunk[position:])
                        at_line_start = False
                        break
                    header_parts.append(chunk[position:newline])
                    header = b"".join(header_parts)
                    header_parts = []
                    lines_before += 1
                    position = newline + 1
                    at_line_start = True
                    in_header = False
                    continue
                # The next '>' that starts a line (memchr-fast: '>' is rare elsewhere; one
                # inside a line stays in the sequence, where the alphabet check refuses it).
                start = chunk.find(b">", position)
                while start >= 0 and not (chunk[start - 1] == 0x0A if start else at_line_start):
                    start = chunk.find(b">", start + 1)
                if start < 0:
                    body_parts.append(chunk[position:])
                    lines_before += chunk.count(b"\n", position)
                    at_line_start = chunk[-1] == 0x0A
                    break
                if start > position:
                    body_parts.append(chunk[position:start])
                    lines_before += chunk.count(b"\n", position, start)
                finish()
                number += 1
                header_line = lines_before + 1
                in_header = True
                position = start
                at_line_start = False
            if batch.size >= BATCH_BYTES:
                yield batch.build()
                batch = _BatchBuilder(fastq=False)
        if in_header:
            header = b"".join(header_parts)
        finish()
    except SequenceFileError:
        if len(batch):
            yield batch.build()  # the records before the error still reach the consumers
        raise
    if len(batch):
        yield batch.build()


# --- FASTQ ---------------------------------------------------------------------------------


class _LineReader:
    """Complete lines (without '\n') of a chunk stream, with their line numbers."""

    __slots__ = ("_chunks", "lines", "index", "first_number", "_tail", "_eof")

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self.lines: list[bytes] = []
        self.index = 0
        self.first_number = 1  # line number of lines[0]
        self._tail: list[bytes] = []
        self._eof = False

    def refill(self) -> bool:
        """Drop consumed lines and read until at least one more line is complete."""
        remaining = self.lines[self.index :]
        self.first_number += self.index
        self.index = 0
        while not self._eof:
            chunk = next(self._chunks, None)
            if chunk is None:
                self._eof = True
                if self._tail:
                    remaining.append(b"".join(self._tail))
                    self._tail = []
                break
            parts = chunk.split(b"\n")
            if len(parts) == 1:
                self._tail.append(chunk)  # a line longer than a chunk: gather its pieces
                continue
            if self._tail:
                self._tail.append(parts[0])
                parts[0] = b"".join(self._tail)
                self._tail = []
            last = parts.pop()
            if last:
                self._tail.append(last)
            if remaining:
                remaining.extend(parts)
            else:
                remaining = parts
            break
        self.lines = remaining
        return bool(remaining)

    def next_line(self) -> bytes | None:
        if self.index >= len(self.lines) and not self.refill():
            return None
        line = self.lines[self.index]
        self.index += 1
        return line

    def peek(self) -> bytes | None:
        if self.index >= len(self.lines) and not self.refill():
            return None
        return self.lines[self.index]

    @property
    def last_number(self) -> int:
        """Line number of the line most recently returned by next_line()."""
        return self.first_number + self.index - 1


def _plus_line_matches(plus: bytes, header: bytes) -> bool:
    """A '+' line is bare or repeats the header (the whole title or its identifier)."""
    title = plus[1:].rstrip()
    if not title:
        return True
    full = header[1:].rstrip()
    return title == full or title == (full.split(None, 1) or [b""])[0]


def _quality_error(record: int, parts: list[bytes], first_line: int) -> MalformedSequenceError:
    for offset, part in enumerate(parts):
        leftover = part.translate(None, QUALITY_CHARACTERS)
        if leftover:
            line = first_line + offset
            return MalformedSequenceError(
                f"record {record}: {_describe_byte(leftover[0])} is not a quality character "
                f"(line {line})",
                record=record,
                line=line,
            )
    raise AssertionError("no invalid quality character found")  # pragma: no cover


def _read_fastq_record(reader: _LineReader, number: int, batch: _BatchBuilder) -> bool:
    """Parse record `number` line by line into `batch` (multi-line sequence and quality,
    every check); False at the end of the input."""
    while True:
        header = reader.next_line()
        if header is None:
            return False
        if header.strip(WHITESPACE):
            break  # blank lines between records are harmless
    header_line = reader.last_number
    if header[:1] != b"@":
        if number == 1:
            raise MalformedSequenceError(
                f"line {header_line}: data before the first header", line=header_line
            )
        raise MalformedSequenceError(
            f"record {number}: expected a header starting with '@' (line {header_line})",
            record=number,
            line=header_line,
        )

    def truncated() -> MalformedSequenceError:
        last = max(reader.last_number, header_line)
        return MalformedSequenceError(
            f"record {number}: the file ends inside the record (lines {header_line}–{last})",
            record=number,
            line=header_line,
        )

    sequence_parts: list[bytes] = []
    while True:
        line = reader.next_line()
        if line is None:
            raise truncated()
        if line[:1] == b"+":
            break
        sequence_parts.append(line)
    plus_line = reader.last_number
    if not _plus_line_matches(line, header):
        raise MalformedSequenceError(
            f"record {number}: the '+' line does not repeat the header (line {plus_line})",
            record=number,
            line=plus_line,
        )
    sequence, gaps = _clean_sequence(b"\n".join(sequence_parts), number, header_line + 1)
    symbols = len(sequence) + gaps  # a gap keeps its quality character

    # The quality goes on over the following lines while it is shorter than the sequence, so
    # a quality line may start with '@' or '+'; a line that would make it longer is not part
    # of it (it is the next header) and the record fails with a length mismatch.
    first_quality = reader.next_line()
    if first_quality is None:
        if symbols:
            raise truncated()
        first_quality = b""  # an empty read at the very end: its empty quality line is moot
    quality_parts = [first_quality.translate(None, _INLINE_WHITESPACE)]
    quality_length = len(quality_parts[0])
    while quality_length < symbols:
        following = reader.peek()
        if following is None:
            break
        following = following.translate(None, _INLINE_WHITESPACE)
        if quality_length + len(following) > symbols:
            break
        reader.next_line()
        quality_parts.append(following)
        quality_length += len(following)
    if quality_length != symbols:
        raise MalformedSequenceError(
            f"record {number}: sequence {symbols} ≠ quality {quality_length} "
            f"(lines {header_line}–{reader.last_number})",
            record=number,
            line=header_line,
        )
    quality = b"".join(quality_parts)
    if quality.translate(None, QUALITY_CHARACTERS):
        raise _quality_error(number, quality_parts, plus_line + 1)
    batch.add(number, header_line, header, sequence, gaps, quality)
    return True


def _fast_block(lines: list[bytes], start: int, count: int) -> tuple[list[bytes], ...] | None:
    """The next `count` plain four-line records from lines[start:], checked with a few
    C-level passes over all of them; None when any needs the line-by-line path."""
    block = lines[start : start + 4 * count]
    headers = block[0::4]
    sequences = block[1::4]
    pluses = block[2::4]
    qualities = block[3::4]
    joined_headers = b"\n" + b"\n".join(headers)
    if joined_headers.count(b"\n@") != count:
        return None
    joined_pluses = b"\n" + b"\n".join(pluses)
    if joined_pluses.count(b"\n+") != count:
        return None
    if len(joined_pluses) != 2 * count and (
        joined_pluses.replace(b"\n+", b"\n@") != joined_headers
    ):
        return None  # '+' lines that neither are bare nor repeat the header exactly
    if list(map(len, sequences)) != list(map(len, qualities)):
        return None
    if b"".join(sequences).translate(None, NUCLEOTIDE_LETTERS):
        return None
    if b"".join(qualities).translate(None, QUALITY_CHARACTERS):
        return None
    return headers, sequences, qualities


def _iter_fastq(chunks: Iterator[bytes]) -> Iterator[RecordBatch]:
    reader = _LineReader(chunks)
    number = 0  # records parsed so far
    more = True
    while more:
        # Fast path: every complete plain four-line record in the lines at hand, checked
        # together by _fast_block. When any of them needs more (wrapped lines, gaps,
        # whitespace, an error), the lines at hand go record by record instead.
        available = (len(reader.lines) - reader.index) // 4
        block = _fast_block(reader.lines, reader.index, available) if available else None
        if block is not None:
            headers, sequences, qualities = block
            first_line = reader.first_number + reader.index
            yield RecordBatch(
                number + 1,
                list(range(first_line, first_line + 4 * available, 4)),
                headers,
                sequences,
                [0] * available,
                qualities,
            )
            number += available
            reader.index += 4 * available
        batch = _BatchBuilder(fastq=True)
        try:
            if block is None:
                lines = reader.lines
                while reader.lines is lines and reader.index < len(lines) - 3:
                    if not _read_fastq_record(reader, number + 1, batch):
                        break
                    number += 1
            # The next record crosses the end of the lines at hand (or the input ends).
            more = _read_fastq_record(reader, number + 1, batch)
            if more:
                number += 1
        except SequenceFileError:
            if len(batch):
                yield batch.build()  # the records before the error still reach the consumers
            raise
        if len(batch):
            yield batch.build()


# --- entry points --------------------------------------------------------------------------


def open_record_batches(stream: BinaryIO) -> tuple[SequenceFormat, Iterator[RecordBatch]]:
    """Sniff the format of a decompressed stream and return it with an iterator of batches."""
    head = _read_head(stream)
    file_format = sniff_format(head)
    chunks = _normalised_chunks(stream, head)
    batches = _iter_fasta(chunks) if file_format == "fasta" else _iter_fastq(chunks)
    return file_format, batches


def iter_records(stream: BinaryIO) -> Iterator[SequenceRecord]:
    """Yield the records of a decompressed FASTA/FASTQ stream, checking each as it goes."""
    _, batches = open_record_batches(stream)
    for batch in batches:
        yield from batch.records()
