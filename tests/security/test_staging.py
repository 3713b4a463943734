"""Encrypted staging: uploads round-trip, and any tampering is refused."""

from __future__ import annotations

import base64
import errno
import hashlib
import io
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from security import keys, staging
from security.staging import (
    CHUNK_BYTES,
    CIPHER_CHUNK_BYTES,
    HEADER_BYTES,
    StagingIntegrityError,
    StagingReader,
    StagingWriter,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CHLOROPLAST = DATA / "genomes" / "plant" / "arabidopsis_chloroplast_NC_000932.fa"
JOB_ID = b"3f1c2a9e-8d4b-4c61-9a57-2f0e6b1d7c35"


@pytest.fixture
def data_key() -> bytes:
    return staging.new_data_key()


def stage(path: Path, data_key: bytes, data: bytes, sizes: list[int] | None = None) -> Path:
    sizes = sizes or [len(data) or 1]
    with StagingWriter(path, data_key) as writer:
        position, turn = 0, 0
        while position < len(data):
            size = sizes[turn % len(sizes)]
            writer.write(data[position : position + size])
            position += size
            turn += 1
    return path


def read_all(path: Path, data_key: bytes) -> bytes:
    with StagingReader(path, data_key) as reader:
        return reader.read()


def pattern(length: int) -> bytes:
    """Deterministic, non-repeating bytes (a chunk swap must change the content)."""
    out = bytearray()
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:length])


@pytest.mark.parametrize(
    "length",
    [1, 100, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1, 2 * CHUNK_BYTES, 200_003],
)
def test_it_round_trips_odd_write_sizes(tmp_path, data_key, length):
    data = pattern(length)
    path = stage(tmp_path / "upload.stage", data_key, data, sizes=[1, 7, 4093, 65537, 3])
    assert read_all(path, data_key) == data


def test_it_round_trips_an_empty_upload(tmp_path, data_key):
    path = stage(tmp_path / "empty.stage", data_key, b"")
    assert path.stat().st_size == HEADER_BYTES + 16  # one empty final chunk: just its tag
    assert read_all(path, data_key) == b""


def test_it_round_trips_3_mb_through_small_odd_reads(tmp_path, data_key):
    data = pattern(3 * 1024 * 1024 + 17)
    path = stage(tmp_path / "big.stage", data_key, data, sizes=[65_000, 131_073, 999])
    out = bytearray()
    with StagingReader(path, data_key) as reader:
        while piece := reader.read(50_001):
            out += piece
        assert reader.plaintext_length == len(data)
    assert out == data


def test_readinto_fills_as_much_as_asked_across_chunks(tmp_path, data_key):
    data = pattern(3 * CHUNK_BYTES + 5)
    path = stage(tmp_path / "upload.stage", data_key, data)
    with StagingReader(path, data_key) as reader:
        buffer = bytearray(2 * CHUNK_BYTES + 100)
        assert reader.readinto(buffer) == len(buffer)
        assert bytes(buffer) == data[: len(buffer)]
        assert reader.read() == data[len(buffer) :]


def test_it_works_as_a_buffered_seekable_file(tmp_path, data_key):
    data = pattern(5 * CHUNK_BYTES + 123)
    path = stage(tmp_path / "upload.stage", data_key, data)
    with io.BufferedReader(StagingReader(path, data_key)) as reader:
        assert reader.readline() == data[: data.index(b"\n") + 1]
        reader.seek(3 * CHUNK_BYTES - 10)
        assert reader.read(20) == data[3 * CHUNK_BYTES - 10 : 3 * CHUNK_BYTES + 10]
        reader.seek(0)  # a second pass (Django's File.chunks() rewinds first)
        assert reader.read() == data


def test_the_staging_file_never_contains_the_plaintext(tmp_path, data_key):
    distinctive = b"ACGTTGCA" * 4 + b"PATIENT-0042-DISTINCTIVE-RUN-0123456789abcdef"[:32]
    assert len(distinctive) == 64
    fasta = CHLOROPLAST.read_bytes()
    data = fasta[:100_000] + distinctive * 50 + fasta[100_000:]
    path = stage(tmp_path / "upload.stage", data_key, data, sizes=[8191])
    stored = path.read_bytes()
    assert distinctive not in stored
    for offset in range(0, len(fasta) - 64, 997):
        assert fasta[offset : offset + 64] not in stored
    assert read_all(path, data_key) == data


def test_the_staging_file_is_private_and_never_overwritten(tmp_path, data_key):
    path = stage(tmp_path / "upload.stage", data_key, b">seq\nACGT\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        StagingWriter(path, data_key)
    assert read_all(path, data_key) == b">seq\nACGT\n"


def test_abort_and_an_exception_in_the_with_block_leave_no_file(tmp_path, data_key):
    writer = StagingWriter(tmp_path / "aborted.stage", data_key)
    writer.write(pattern(100_000))
    writer.abort()
    writer.abort()  # idempotent
    assert not (tmp_path / "aborted.stage").exists()

    with pytest.raises(RuntimeError), StagingWriter(tmp_path / "failed.stage", data_key) as w:
        w.write(b">seq\nACGT\n")
        raise RuntimeError("client went away")
    assert list(tmp_path.iterdir()) == []


def test_writing_after_close_is_refused(tmp_path, data_key):
    writer = StagingWriter(tmp_path / "upload.stage", data_key)
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(ValueError):
        writer.write(b"more")


def test_a_full_disk_surfaces_as_enospc_and_the_writer_can_only_abort(tmp_path, data_key):
    # /dev/full answers ENOSPC to every write, as the staging disk would when full.
    writer = StagingWriter(tmp_path / "upload.stage", data_key)
    writer._file.close()  # the disk fills up right after the header:
    writer._file = io.FileIO("/dev/full", "wb")
    with pytest.raises(OSError) as raised:
        writer.write(pattern(3 * CHUNK_BYTES))
    assert raised.value.errno == errno.ENOSPC
    with pytest.raises(ValueError):
        writer.write(b"more")  # never a file with a hole in its chunk sequence
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_an_unclosed_file_is_unreadable(tmp_path, data_key):
    # An upload cut off mid-stream has no final chunk: it must not read as a shorter file.
    path = tmp_path / "interrupted.stage"
    writer = StagingWriter(path, data_key)
    writer.write(pattern(3 * CHUNK_BYTES))
    snapshot = tmp_path / "snapshot.stage"  # what a crash before close() leaves on disk
    snapshot.write_bytes(path.read_bytes())
    writer.abort()
    assert snapshot.stat().st_size > HEADER_BYTES + CIPHER_CHUNK_BYTES
    with pytest.raises(StagingIntegrityError):
        read_all(snapshot, data_key)


# --- Tampering ------------------------------------------------------------------------------


@pytest.fixture
def staged(tmp_path, data_key) -> Path:
    # 3 full chunks and a short final one.
    return stage(tmp_path / "upload.stage", data_key, pattern(3 * CHUNK_BYTES + 1000))


def chunk_span(index: int) -> slice:
    start = HEADER_BYTES + index * CIPHER_CHUNK_BYTES
    return slice(start, start + CIPHER_CHUNK_BYTES)


@pytest.mark.parametrize(
    "offset",
    [0, 7, 9, HEADER_BYTES, HEADER_BYTES + CHUNK_BYTES + 3, -1],
    ids=["magic", "version", "nonce-prefix", "first-chunk", "first-tag", "last-byte"],
)
def test_a_flipped_byte_is_detected(staged, data_key, offset):
    content = bytearray(staged.read_bytes())
    content[offset] ^= 0x01
    staged.write_bytes(content)
    with pytest.raises(StagingIntegrityError):
        read_all(staged, data_key)


@pytest.mark.parametrize(
    "keep",
    [
        HEADER_BYTES + 3 * CIPHER_CHUNK_BYTES + 500,  # inside the final chunk
        HEADER_BYTES + 3 * CIPHER_CHUNK_BYTES,  # at a chunk boundary: final chunk dropped
        HEADER_BYTES + 2 * CIPHER_CHUNK_BYTES,  # at an earlier chunk boundary
        HEADER_BYTES + CIPHER_CHUNK_BYTES + 10,  # a runt shorter than a tag
        HEADER_BYTES,  # header only
        5,  # not even a header
    ],
)
def test_truncation_is_detected(staged, data_key, keep):
    staged.write_bytes(staged.read_bytes()[:keep])
    with pytest.raises(StagingIntegrityError):
        read_all(staged, data_key)


def test_swapped_chunks_are_detected(staged, data_key):
    content = bytearray(staged.read_bytes())
    first, second = content[chunk_span(0)], content[chunk_span(1)]
    content[chunk_span(0)], content[chunk_span(1)] = second, first
    staged.write_bytes(content)
    with pytest.raises(StagingIntegrityError):
        read_all(staged, data_key)


def test_appended_bytes_are_detected(staged, data_key):
    with open(staged, "ab") as handle:
        handle.write(os.urandom(100))
    with pytest.raises(StagingIntegrityError):
        read_all(staged, data_key)


def test_a_chunk_from_another_staging_file_is_detected(tmp_path, staged, data_key):
    # Same key (worst case), another file: its random nonce prefix differs.
    other = stage(tmp_path / "other.stage", data_key, pattern(3 * CHUNK_BYTES + 1000))
    content = bytearray(staged.read_bytes())
    content[chunk_span(1)] = other.read_bytes()[chunk_span(1)]
    staged.write_bytes(content)
    with pytest.raises(StagingIntegrityError):
        read_all(staged, data_key)


def test_the_wrong_data_key_is_detected(staged):
    with pytest.raises(StagingIntegrityError):
        read_all(staged, staging.new_data_key())


# --- Wrapped data keys ----------------------------------------------------------------------


def test_a_wrapped_key_round_trips_for_its_job_only():
    kek, data_key = os.urandom(32), staging.new_data_key()
    wrapped = staging.wrap_key(kek, data_key, context=JOB_ID)
    assert data_key not in wrapped
    assert staging.unwrap_key(kek, wrapped, context=JOB_ID) == data_key

    with pytest.raises(StagingIntegrityError):
        staging.unwrap_key(kek, wrapped, context=b"7d2f0c1e-0000-4000-8000-000000000000")
    with pytest.raises(StagingIntegrityError):
        staging.unwrap_key(os.urandom(32), wrapped, context=JOB_ID)
    tampered = bytearray(wrapped)
    tampered[20] ^= 0x80
    with pytest.raises(StagingIntegrityError):
        staging.unwrap_key(kek, bytes(tampered), context=JOB_ID)
    with pytest.raises(StagingIntegrityError):
        staging.unwrap_key(kek, wrapped[:-1], context=JOB_ID)


def test_destroying_the_file_is_idempotent(staged):
    staging.destroy(staged)
    staging.destroy(staged)
    assert not staged.exists()


# --- The key-encryption key file ------------------------------------------------------------


def test_the_kek_is_created_once_private_and_reloaded(tmp_path):
    path = tmp_path / "keys" / "staging-kek.bin"
    kek = keys.load_or_create_kek(path)
    assert len(kek) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keys.load_or_create_kek(path) == kek
    assert [p.name for p in path.parent.iterdir()] == ["staging-kek.bin"]  # no temp left


def test_workers_starting_together_agree_on_one_kek(tmp_path):
    # A KEK replaced by a second worker would orphan every upload staged under the first.
    path = tmp_path / "keys" / "staging-kek.bin"
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: keys.load_or_create_kek(path), range(16)))
    assert len(set(results)) == 1
    assert results[0] == path.read_bytes()
    assert [p.name for p in path.parent.iterdir()] == ["staging-kek.bin"]


def test_a_kek_written_by_an_operator_as_hex_or_base64_is_accepted(tmp_path):
    kek = os.urandom(32)
    hex_file, base64_file = tmp_path / "kek.hex", tmp_path / "kek.b64"
    hex_file.write_text(kek.hex() + "\n")
    base64_file.write_text(base64.b64encode(kek).decode() + "\n")
    assert keys.load_or_create_kek(hex_file) == kek
    assert keys.load_or_create_kek(base64_file) == kek


def test_a_kek_of_the_wrong_size_is_refused(tmp_path):
    path = tmp_path / "kek"
    path.write_bytes(os.urandom(16))
    with pytest.raises(ValueError, match="32 bytes"):
        keys.load_or_create_kek(path)
