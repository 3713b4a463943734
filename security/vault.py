"""The vault: compress (zstd) and encrypt (Crypt4GH) an upload into its archive, and verify it.

An archive is a standard Crypt4GH file whose plaintext is one zstd frame (with its content
checksum) of the upload, so ``crypt4gh decrypt --sk KEY < job.c4gh | zstd -d`` gives the
original bytes back with nothing but standard tools.

Two traps in crypt4gh 1.8.6 shape this module:

- ``lib.encrypt`` stops at the first ``readinto`` that returns less than a full segment, and
  ``lib.decrypt`` assumes full reads too: both are given readers that always fill the buffer.
- ``lib.decrypt`` is wrapped in ``close_on_broken_pipe``, which swallows *every* OSError
  (a full disk under the output included) and returns as if all went well; and an archive cut
  at a segment boundary decrypts without error. So output errors are carried past crypt4gh in
  a non-OSError and re-raised, and the end of the zstd frame must be seen before a decryption
  counts as complete.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import zstandard
from crypt4gh import lib as crypt4gh_lib

from security import keys

# crypt4gh logs the session key and the sender's secret key at DEBUG.
logging.getLogger("crypt4gh").setLevel(logging.WARNING)


def _drop_expected_packet_failures(record: logging.LogRecord) -> bool:
    # Decrypting tries our key on every header packet and logs an ERROR for each packet meant
    # for another recipient: expected on every archive (each has several recipients), so it
    # is noise; a key that opens no packet at all still fails loudly (ArchiveKeyError).
    return not record.getMessage().startswith("X25519 Packet Decryption failed")


logging.getLogger("crypt4gh.header").addFilter(_drop_expected_packet_failures)

_READ_BYTES = 256 * 1024
# zstd expands up to ~32,000 to 1 (an RLE block of 128 KiB costs 4 bytes), so a single 64 KiB
# segment could become 2 GB in one decompress() call. Feeding 1 KiB at a time bounds one
# call's output to ~32 MB, for ~0.1 s per 50 MB.
_DECOMPRESS_INPUT_BYTES = 1024
_STORAGE_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_X25519_METHOD = 0  # crypt4gh's header packet method for X25519 + ChaCha20-Poly1305


class VaultError(Exception):
    """Base of the vault's errors."""


class VaultStorageError(VaultError, OSError):
    """The disk (or quota) is full: the pipeline answers 507 Insufficient storage."""


class VaultEncryptionError(VaultError):
    """Anything else that went wrong while building the archive (the cause is chained)."""


class ArchiveVerificationError(VaultEncryptionError):
    """The archive just written does not decrypt to the same bytes; it has been removed."""


class ArchiveIntegrityError(VaultError):
    """An archive is altered, truncated, or does not match the expected length or hash."""


class ArchiveKeyError(ArchiveIntegrityError):
    """No header packet of the archive opens with the given secret key."""


@dataclass(frozen=True)
class ArchiveInfo:
    plaintext_sha256: str
    plaintext_length: int
    archive_size: int
    archive_sha256: str
    compression_ratio: float  # plaintext bytes per archive byte; 0.0 for an empty upload
    method: str  # e.g. "C4GH-ZSTD3"
    recipient_fingerprints: list[str] = field(default_factory=list)


def archive_method(zstd_level: int) -> str:
    """The ``encryption_method`` label for archives made at ``zstd_level``."""
    return f"C4GH-ZSTD{zstd_level}"


class _CompressingReader(io.RawIOBase):
    """source -> (SHA-256, byte count) -> zstd, read as one stream that always fills the buffer."""

    def __init__(self, source: BinaryIO, compressor: zstandard.ZstdCompressor) -> None:
        super().__init__()
        self._source = source
        self._compressor = compressor.compressobj()
        self._pending = bytearray()
        self._finished = False
        self.sha256 = hashlib.sha256()
        self.length = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        with memoryview(buffer) as view, view.cast("B") as target:
            while len(self._pending) < len(target) and not self._finished:
                chunk = self._source.read(_READ_BYTES)
                if chunk is None:
                    raise OSError(errno.EAGAIN, "the source is non-blocking")
                if chunk:
                    self.sha256.update(chunk)
                    self.length += len(chunk)
                    self._pending += self._compressor.compress(chunk)
                else:
                    self._pending += self._compressor.flush()
                    self._finished = True
            count = min(len(target), len(self._pending))
            target[:count] = self._pending[:count]
            del self._pending[:count]
            return count


class _FullReader(io.RawIOBase):
    """Wraps a binary stream so every ``readinto`` fills the buffer unless at end of file."""

    def __init__(self, stream: BinaryIO, on_bytes: Callable[[bytes], None] | None = None) -> None:
        super().__init__()
        self._stream = stream
        self._on_bytes = on_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        with memoryview(buffer) as view, view.cast("B") as target:
            filled = 0
            while filled < len(target):
                try:
                    chunk = self._stream.read(len(target) - filled)
                except Exception as exc:  # crypt4gh would swallow an OSError
                    raise _CarriedError(exc) from exc
                if not chunk:
                    break
                target[filled : filled + len(chunk)] = chunk
                filled += len(chunk)
                if self._on_bytes is not None:
                    self._on_bytes(chunk)
            return filled


class _CarriedError(Exception):
    """Carries an exception out of crypt4gh.lib.decrypt, which would swallow an OSError."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(repr(original))
        self.original = original


class _DecompressingSink:
    """Receives the decrypted stream: zstd-decompresses, hashes, counts, forwards."""

    def __init__(
        self, forward: Callable[[bytes], None] | None, max_length: int | None = None
    ) -> None:
        self._decompressor = zstandard.ZstdDecompressor().decompressobj()
        self._forward = forward
        self._max_length = max_length
        self.sha256 = hashlib.sha256()
        self.length = 0

    @property
    def complete(self) -> bool:
        return self._decompressor.eof

    def write(self, data: bytes) -> int:
        try:
            with memoryview(data) as view:
                for start in range(0, len(view), _DECOMPRESS_INPUT_BYTES):
                    self._feed(view[start : start + _DECOMPRESS_INPUT_BYTES])
        except Exception as exc:
            raise _CarriedError(exc) from exc
        return len(data)

    def _feed(self, compressed: memoryview) -> None:
        if self._decompressor.eof:
            raise ArchiveIntegrityError("data follows the end of the compressed stream")
        try:
            plaintext = self._decompressor.decompress(compressed)
        except zstandard.ZstdError as exc:
            raise ArchiveIntegrityError(f"the compressed stream is corrupt: {exc}") from exc
        if self._decompressor.unused_data:
            raise ArchiveIntegrityError("data follows the end of the compressed stream")
        if plaintext:
            self.length += len(plaintext)
            if self._max_length is not None and self.length > self._max_length:
                raise ArchiveIntegrityError(
                    f"the archive decrypts to more than the expected {self._max_length} bytes"
                )
            self.sha256.update(plaintext)
            if self._forward is not None:
                self._forward(plaintext)


def _decrypt(
    archive: BinaryIO,
    forward: Callable[[bytes], None] | None,
    secret_key: bytes,
    sender_public_key: bytes | None = None,
    on_archive_bytes: Callable[[bytes], None] | None = None,
    max_length: int | None = None,
) -> tuple[int, str]:
    sink = _DecompressingSink(forward, max_length)
    try:
        crypt4gh_lib.decrypt(
            [(_X25519_METHOD, secret_key, None)],
            _FullReader(archive, on_archive_bytes),
            sink,
            sender_pubkey=sender_public_key,
        )
    except _CarriedError as failure:
        raise failure.original from None
    except ValueError as exc:
        if str(exc) == "No supported encryption method":
            raise ArchiveKeyError("no header packet of the archive opens with this key") from exc
        raise ArchiveIntegrityError(f"the archive does not decrypt: {exc}") from exc
    except Exception as exc:  # e.g. crypt4gh asserts on a runt last segment
        raise ArchiveIntegrityError(f"the archive does not decrypt: {exc!r}") from exc
    if not sink.complete:
        raise ArchiveIntegrityError(
            "the archive is truncated: its compressed stream ends before the end of its frame"
        )
    return sink.length, sink.sha256.hexdigest()


def _write_fully(output: BinaryIO) -> Callable[[bytes], None]:
    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = output.write(view)
            except OSError as exc:
                if exc.errno in _STORAGE_FULL_ERRNOS:
                    raise VaultStorageError(exc.errno, "Insufficient storage") from exc
                raise
            if not written:  # None: a non-blocking stream would block
                raise OSError(errno.EAGAIN, "the output accepted no bytes")
            view = view[written:]

    return write


def decrypt_archive(
    archive: BinaryIO,
    output: BinaryIO,
    *,
    secret_key: bytes,
    expected_length: int | None = None,
    expected_sha256: str | None = None,
) -> tuple[int, str]:
    """Decrypt and decompress ``archive`` into ``output``; returns (length, SHA-256 hex).

    Raises ArchiveKeyError if the key opens no header packet, ArchiveIntegrityError if the
    archive was altered or truncated (also at a segment boundary: the zstd frame must end) or
    does not match ``expected_length`` / ``expected_sha256``, VaultStorageError if ``output``
    hits a full disk. On any error ``output`` may hold a prefix of the plaintext: discard it.
    """
    length, sha256 = _decrypt(archive, _write_fully(output), secret_key, max_length=expected_length)
    if expected_length is not None and length != expected_length:
        raise ArchiveIntegrityError(
            f"the archive decrypts to {length} bytes, expected {expected_length}"
        )
    if expected_sha256 is not None and sha256 != expected_sha256.lower():
        raise ArchiveIntegrityError("the archive's plaintext SHA-256 differs from the expected")
    return length, sha256


def create_archive(
    source: BinaryIO,
    destination: Path,
    *,
    recipient_public_keys: list[bytes],
    zstd_level: int = 3,
) -> ArchiveInfo:
    """Stream ``source`` into a verified Crypt4GH archive at ``destination``.

    The archive is written to a temporary file beside ``destination`` and only renamed into
    place after it has been decrypted again, with a recipient key pair that exists only in
    memory during this call, to the same length and SHA-256 as ``source``. Nothing is left
    behind on failure. Raises ValueError for bad arguments (no recipient, a key that is not
    32 bytes, a level outside 1-22), VaultStorageError on a full disk, ArchiveVerificationError
    if the check fails, VaultEncryptionError for anything else (cause chained).
    """
    destination = Path(destination)
    recipients = list(dict.fromkeys(bytes(key) for key in recipient_public_keys))
    if not recipients:
        raise ValueError("an archive needs at least one recipient public key")
    fingerprints = [keys.fingerprint(key) for key in recipients]  # also checks the lengths
    if not 1 <= zstd_level <= zstandard.MAX_COMPRESSION_LEVEL:
        raise ValueError(f"zstd level must be 1-{zstandard.MAX_COMPRESSION_LEVEL}")

    # The sender key only authenticates header packets; a fresh one per archive means no
    # long-lived server secret is involved. The verifier pair is dropped when this returns.
    sender_secret, sender_public = keys.ephemeral_x25519_keypair()
    verifier_secret, verifier_public = keys.ephemeral_x25519_keypair()
    header_keys = [
        (_X25519_METHOD, sender_secret, recipient) for recipient in [*recipients, verifier_public]
    ]
    temporary = destination.with_name(f".{destination.name}.{secrets.token_hex(8)}.partial")
    try:
        # threads=-1: zstd compresses on every core while this thread encrypts; the output is
        # the same standard frame (`zstd -d` reads it), only made faster.
        reader = _CompressingReader(
            source, zstandard.ZstdCompressor(level=zstd_level, write_checksum=True, threads=-1)
        )
        with open(temporary, "xb", opener=_private_opener) as out:
            crypt4gh_lib.encrypt(header_keys, reader, out)
            out.flush()
            os.fsync(out.fileno())

        archive_hash = hashlib.sha256()
        with open(temporary, "rb") as archive:
            try:
                length, sha256 = _decrypt(
                    archive,
                    None,
                    verifier_secret,
                    sender_public_key=sender_public,
                    on_archive_bytes=archive_hash.update,
                    max_length=reader.length,
                )
            except ArchiveIntegrityError as exc:
                raise ArchiveVerificationError(f"the new archive does not decrypt: {exc}") from exc
        plaintext_sha256 = reader.sha256.hexdigest()
        if length != reader.length or sha256 != plaintext_sha256:
            raise ArchiveVerificationError(
                f"the new archive decrypts to {length} bytes with another SHA-256 "
                f"than the {reader.length} bytes encrypted"
            )
        archive_size = temporary.stat().st_size
        os.replace(temporary, destination)
        _fsync_directory(destination.parent)
    except BaseException as exc:
        with contextlib.suppress(OSError):  # a read-only volume must not hide the first error
            temporary.unlink(missing_ok=True)
        if isinstance(exc, VaultError) or not isinstance(exc, Exception):
            raise
        if isinstance(exc, OSError) and exc.errno in _STORAGE_FULL_ERRNOS:
            raise VaultStorageError(exc.errno, "Insufficient storage", str(destination)) from exc
        raise VaultEncryptionError(f"the archive could not be made: {exc!r}") from exc

    return ArchiveInfo(
        plaintext_sha256=plaintext_sha256,
        plaintext_length=reader.length,
        archive_size=archive_size,
        archive_sha256=archive_hash.hexdigest(),
        compression_ratio=reader.length / archive_size if archive_size else 0.0,
        method=archive_method(zstd_level),
        recipient_fingerprints=fingerprints,
    )


def _private_opener(path: str, flags: int) -> int:
    # Ciphertext, but still nobody else's business: owner-only, like the staging files.
    return os.open(path, flags | os.O_CLOEXEC, 0o600)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
