"""Encrypted staging of uploads: plaintext never touches the disk.

File format (version 1), hand-written because no maintained library offers a seekable,
chunked AEAD file format for Python (Tink's streaming AEAD is close but not on PyPI for us)::

    header  = b"MGSTAGE" || version (1 byte, 1) || nonce prefix (7 random bytes)     15 bytes
    chunk i = AES-256-GCM(data key, nonce, plaintext chunk, aad=header)     <= 64 KiB + 16

    nonce   = nonce prefix || i (4 bytes, big endian) || final flag (1 byte: 1 last, 0 other)

This is the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015): the index in the
nonce makes reordering or dropping a chunk fail its tag, the final flag makes truncation at a
chunk boundary fail (the new last chunk was sealed as "not final"), and the header as
associated data binds every chunk to this file's version and prefix. Every plaintext chunk
is exactly 64 KiB except the last (which may be shorter, or empty for an empty upload), so a
reader finds chunk boundaries, and the last chunk, from the file size alone.

The data key is random per job and wrapped with the server's key-encryption key (KEK) bound to
the job id, so a worker on another machine can open it and a wrapped key cannot be moved to
another job.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from types import TracebackType

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"MGSTAGE"
VERSION = 1
NONCE_PREFIX_BYTES = 7
HEADER_BYTES = len(MAGIC) + 1 + NONCE_PREFIX_BYTES
CHUNK_BYTES = 64 * 1024
TAG_BYTES = 16
CIPHER_CHUNK_BYTES = CHUNK_BYTES + TAG_BYTES
MAX_CHUNKS = 2**32
DATA_KEY_BYTES = 32

_WRAP_VERSION = b"\x01"
_WRAP_NONCE_BYTES = 12
_WRAPPED_KEY_BYTES = 1 + _WRAP_NONCE_BYTES + DATA_KEY_BYTES + TAG_BYTES
# Domain separation: a wrapped staging key can never be confused with another use of the KEK.
_WRAP_AAD_PREFIX = b"medgenomics staging data key v1\x00"


class StagingIntegrityError(Exception):
    """The staged file or its wrapped key was altered, truncated, or opened with the wrong key."""


def new_data_key() -> bytes:
    """A fresh random AES-256 key for one job's staging file."""
    return os.urandom(DATA_KEY_BYTES)


def _check_key(key: bytes, what: str) -> None:
    if len(key) != DATA_KEY_BYTES:
        raise ValueError(f"{what} must be 32 bytes, got {len(key)}")


def wrap_key(kek: bytes, data_key: bytes, *, context: bytes) -> bytes:
    """Seal ``data_key`` under ``kek`` (AES-256-GCM), bound to ``context`` (the job id).

    Result: version (1 byte) || nonce (12) || ciphertext+tag (48) = 61 bytes.
    """
    _check_key(kek, "the key-encryption key")
    _check_key(data_key, "the data key")
    nonce = os.urandom(_WRAP_NONCE_BYTES)
    sealed = AESGCM(kek).encrypt(nonce, data_key, _WRAP_AAD_PREFIX + context)
    return _WRAP_VERSION + nonce + sealed


def unwrap_key(kek: bytes, wrapped: bytes, *, context: bytes) -> bytes:
    """Open a key sealed by :func:`wrap_key`; StagingIntegrityError if anything does not match."""
    _check_key(kek, "the key-encryption key")
    wrapped = bytes(wrapped)
    if len(wrapped) != _WRAPPED_KEY_BYTES or wrapped[:1] != _WRAP_VERSION:
        raise StagingIntegrityError("not a wrapped staging key (wrong length or version)")
    nonce, sealed = wrapped[1 : 1 + _WRAP_NONCE_BYTES], wrapped[1 + _WRAP_NONCE_BYTES :]
    try:
        return AESGCM(kek).decrypt(nonce, sealed, _WRAP_AAD_PREFIX + context)
    except InvalidTag:
        raise StagingIntegrityError(
            "the wrapped staging key does not open with this key-encryption key and job"
        ) from None


def _nonce(prefix: bytes, index: int, final: bool) -> bytes:
    return prefix + index.to_bytes(4, "big") + (b"\x01" if final else b"\x00")


class StagingWriter:
    """Encrypts whatever is written, in any sizes, into a new staging file at ``path``.

    The file is created exclusively (mode 0600): an existing file is never overwritten.
    ``close()`` seals the last chunk with the final flag; without it the file is unreadable,
    which is what an interrupted upload should be. ``abort()`` closes and removes the file.
    As a context manager it closes on success and aborts on an exception.
    """

    def __init__(self, path: Path, data_key: bytes) -> None:
        _check_key(data_key, "the data key")
        self.path = Path(path)
        self.plaintext_length = 0
        self._aead = AESGCM(data_key)
        self._header = MAGIC + bytes([VERSION]) + os.urandom(NONCE_PREFIX_BYTES)
        self._prefix = self._header[-NONCE_PREFIX_BYTES:]
        self._buffer = bytearray()
        self._index = 0
        self._closed = False
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self._file: io.FileIO | None = io.FileIO(fd, "wb")
        try:
            self._write_all(self._header)
        except BaseException:
            self.abort()
            raise

    @property
    def closed(self) -> bool:
        return self._closed

    def _write_all(self, data: bytes) -> None:
        assert self._file is not None
        view = memoryview(data)
        while view:
            written = self._file.write(view)
            view = view[written:]

    def _seal(self, plaintext: bytes | memoryview, *, final: bool) -> None:
        if self._index >= MAX_CHUNKS:
            raise ValueError("staging file too large: chunk counter exhausted")
        nonce = _nonce(self._prefix, self._index, final)
        self._write_all(self._aead.encrypt(nonce, bytes(plaintext), self._header))
        self._index += 1

    def write(self, chunk: bytes) -> int:
        if self._closed:
            raise ValueError("write to a closed StagingWriter")
        self._buffer += chunk
        self.plaintext_length += len(chunk)
        # Keep at least one byte back: only close() knows which chunk is the last, and the
        # last one may be a full 64 KiB.
        full = (len(self._buffer) - 1) // CHUNK_BYTES
        if full > 0:
            try:
                with memoryview(self._buffer) as view:
                    for number in range(full):
                        start = number * CHUNK_BYTES
                        self._seal(view[start : start + CHUNK_BYTES], final=False)
            except BaseException:
                # Some chunks may be on disk and some not: the file can only be aborted now.
                self._closed = True
                raise
            del self._buffer[: full * CHUNK_BYTES]
        return len(chunk)

    def close(self) -> None:
        """Seal the last chunk (final flag), flush to disk and close; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._seal(self._buffer, final=True)
            assert self._file is not None
            os.fsync(self._file.fileno())
        finally:
            self._buffer = bytearray()
            self._release_file()

    def abort(self) -> None:
        """Close without sealing and remove the file; idempotent, safe after a failed close."""
        self._closed = True
        self._buffer = bytearray()
        try:
            self._release_file()
        except OSError:
            pass  # the file is going away; a failed flush of ciphertext does not matter
        destroy(self.path)

    def _release_file(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            file.close()

    def __enter__(self) -> StagingWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class StagingReader(io.RawIOBase):
    """Decrypts a staging file lazily, chunk by chunk, as a seekable read-only binary file.

    Every chunk is authenticated before a byte of it is returned; StagingIntegrityError on
    any alteration, truncation, reordering, a missing final chunk, or the wrong key. Reading
    to the end verifies the whole file (even an empty one); a position or length reached by
    ``seek`` alone proves nothing until the bytes are read.
    """

    def __init__(self, path: Path, data_key: bytes) -> None:
        super().__init__()
        _check_key(data_key, "the data key")
        self.path = Path(path)
        self._aead = AESGCM(data_key)
        self._file = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        try:
            self._header = self._file.read(HEADER_BYTES)
            if len(self._header) != HEADER_BYTES or not self._header.startswith(MAGIC):
                raise StagingIntegrityError("not a staging file (missing or wrong header)")
            if self._header[len(MAGIC)] != VERSION:
                raise StagingIntegrityError(
                    f"unsupported staging file version {self._header[len(MAGIC)]}"
                )
            self._prefix = self._header[-NONCE_PREFIX_BYTES:]
            body = os.fstat(self._file.fileno()).st_size - HEADER_BYTES
            self._chunk_count, last_cipher = divmod(body, CIPHER_CHUNK_BYTES)
            if last_cipher:
                self._chunk_count += 1
            else:
                last_cipher = CIPHER_CHUNK_BYTES
            if self._chunk_count == 0 or last_cipher < TAG_BYTES:
                raise StagingIntegrityError("staging file is truncated (no final chunk)")
            # Unauthenticated until the final chunk is read: any change fails its tag then.
            self._length = (self._chunk_count - 1) * CHUNK_BYTES + last_cipher - TAG_BYTES
        except BaseException:
            self._file.close()
            raise
        self._position = 0
        self._cached_index = -1
        self._cached = b""

    @property
    def plaintext_length(self) -> int:
        """The plaintext size implied by the file size (verified once the end has been read)."""
        return self._length

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._checkClosed()
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._position + offset
        elif whence == io.SEEK_END:
            position = self._length + offset
        else:
            raise ValueError(f"invalid whence ({whence})")
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        self._position = position
        return position

    def _chunk(self, index: int) -> bytes:
        if index != self._cached_index:
            final = index == self._chunk_count - 1
            self._file.seek(HEADER_BYTES + index * CIPHER_CHUNK_BYTES)
            sealed = self._file.read(CIPHER_CHUNK_BYTES)
            try:
                plaintext = self._aead.decrypt(
                    _nonce(self._prefix, index, final), sealed, self._header
                )
            except InvalidTag:
                raise StagingIntegrityError(
                    f"staging chunk {index} failed authentication: the file was altered, "
                    "truncated or reordered, or the key is wrong"
                ) from None
            self._cached_index, self._cached = index, plaintext
        return self._cached

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        self._checkClosed()
        with memoryview(buffer) as view, view.cast("B") as target:
            if self._position >= self._length:
                # Reaching the end is only trusted once the final chunk has authenticated
                # (this is also what verifies an empty upload).
                self._chunk(self._chunk_count - 1)
                return 0
            filled = 0
            while filled < len(target) and self._position < self._length:
                index, offset = divmod(self._position, CHUNK_BYTES)
                plaintext = self._chunk(index)
                count = min(len(target) - filled, len(plaintext) - offset)
                target[filled : filled + count] = plaintext[offset : offset + count]
                filled += count
                self._position += count
            return filled

    def close(self) -> None:
        if not self.closed:
            self._file.close()
            self._cached = b""
        super().close()


def destroy(path: Path) -> None:
    """Remove a staging file (idempotent).

    Overwriting before unlinking is deliberately not the guarantee: on SSDs (wear levelling),
    copy-on-write and journaling file systems, and in snapshots or backups, an overwrite does
    not reach the old blocks. The file only ever held AES-256-GCM ciphertext, so the deletion
    is the destruction of its key (crypto-shredding): once the wrapped data key is gone and
    the in-memory copies are dropped, whatever remains of the ciphertext is unreadable.
    """
    Path(path).unlink(missing_ok=True)
