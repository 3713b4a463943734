"""The encrypting upload handler: plaintext never touches the disk.

Installed globally in ``FILE_UPLOAD_HANDLERS`` because the CSRF middleware reads ``request.POST``
(and so parses the upload) before any view runs. Each chunk is AES-256-GCM encrypted into a
staging file as it arrives, with a fresh data key that is wrapped by the server's
key-encryption key. On the way it measures the *decompressed* size (gzip is inflated in
bounded steps only to count) and checks the first bytes look like FASTA/FASTQ, so an oversize
or foreign file stops being stored at once.
"""

from __future__ import annotations

import errno
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler

from analysis.parser import NotSequenceFileError, sniff_format
from jobs import errors
from security import staging
from security.keyring import staging_kek

GZIP_MAGIC = b"\x1f\x8b"
SNIFF_BYTES = 4096
# Inflate at most this much per step, so a decompression bomb never fills memory.
INFLATE_STEP = 1024 * 1024


class UploadRejected(Exception):
    def __init__(self, kind: errors.ErrorKind, detail: str | None = None) -> None:
        super().__init__(kind.message)
        self.kind = kind
        self.detail = detail


class DecompressedMeter:
    """Counts the decompressed size of a plain or gzip (multi-member) stream fed in chunks and
    sniffs its first bytes. Raises UploadRejected as soon as the stream is over the limit or is
    not FASTA/FASTQ. Stores nothing beyond the first few kilobytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.compressed: bool | None = None
        self.file_format: str | None = None
        self._head = bytearray()
        self._pending = b""
        self._inflater: zlib._Decompress | None = None
        self._member_open = False
        self._compressed_offset = 0

    def feed(self, data: bytes) -> None:
        self._compressed_offset += len(data)
        if self.compressed is None:
            self._pending += data
            if len(self._pending) < len(GZIP_MAGIC):
                return
            data, self._pending = self._pending, b""
            self.compressed = data.startswith(GZIP_MAGIC)
        if self.compressed:
            self._inflate(data)
        else:
            self._count(data)

    def finish(self) -> None:
        if self.compressed is None:  # fewer than two bytes arrived
            self.compressed = False
            self._count(self._pending)
        if self.compressed and self._member_open:
            raise UploadRejected(
                errors.MALFORMED, "truncated gzip stream: the last member has no end (CRC/ISIZE)"
            )
        if self.file_format is None:
            self._sniff()

    def _inflate(self, data: bytes) -> None:
        while data:
            if self._inflater is None:
                if not data.strip(b"\x00"):
                    return  # zero padding after the last member, as gzip itself accepts
                self._inflater = zlib.decompressobj(wbits=31)
                self._member_open = True
            try:
                plain = self._inflater.decompress(data, INFLATE_STEP)
            except zlib.error as exc:
                raise UploadRejected(
                    errors.MALFORMED,
                    f"invalid gzip stream within the first {self._compressed_offset} bytes",
                ) from exc
            self._count(plain)
            if self._inflater.eof:
                data = self._inflater.unused_data
                self._inflater = None
                self._member_open = False
            else:
                data = self._inflater.unconsumed_tail

    def _count(self, plain: bytes) -> None:
        self.size += len(plain)
        if self.size > self.limit:
            raise UploadRejected(errors.FILE_TOO_LARGE)
        if self.file_format is None:
            self._head += plain[: SNIFF_BYTES - len(self._head)]
            if len(self._head) >= SNIFF_BYTES:
                self._sniff()

    def _sniff(self) -> None:
        try:
            self.file_format = sniff_format(bytes(self._head))
        except NotSequenceFileError as exc:
            raise UploadRejected(errors.NOT_SEQUENCE_FILE, exc.detail) from exc


class StagedUpload(UploadedFile):
    """An upload held only as ciphertext in the staging directory.

    Reading it (``read()``, ``chunks()``) decrypts on the fly, so Django code that expects an
    UploadedFile (forms, admin) works unchanged. ``problem`` is set when the upload was refused
    while streaming; the view turns it into the matrix error.
    """

    def __init__(
        self,
        *,
        job_id: uuid.UUID,
        name: str,
        content_type: str,
        staging_path: Path,
        wrapped_key: bytes,
        size: int,
        decompressed_size: int,
        file_format: str | None,
        problem: UploadRejected | None,
    ) -> None:
        self._file: BinaryIO | None = None
        super().__init__(file=None, name=name, content_type=content_type, size=size)
        self.job_id = job_id
        self.staging_path = staging_path
        self.wrapped_key = wrapped_key
        self.decompressed_size = decompressed_size
        self.file_format = file_format
        self.problem = problem

    @property
    def file(self) -> BinaryIO | None:  # type: ignore[override]
        if self._file is None and self.problem is None and self.staging_path.exists():
            self._file = self.open_plaintext()
        return self._file

    @file.setter
    def file(self, value: BinaryIO | None) -> None:
        self._file = value

    def open_plaintext(self) -> BinaryIO:
        data_key = staging.unwrap_key(
            staging_kek(), self.wrapped_key, context=str(self.job_id).encode()
        )
        return staging.StagingReader(self.staging_path, data_key)

    def discard(self) -> None:
        """Destroy the staged ciphertext (used when the upload is refused)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        staging.destroy(self.staging_path)


def stage_stream(
    source: BinaryIO,
    *,
    name: str,
    limit: int | None = None,
    on_chunk: Callable[[bytes], None] | None = None,
) -> StagedUpload:
    """Stage a file-like object exactly as an HTTP upload would be (used by `manage.py process`)."""
    handler = EncryptingUploadHandler()
    if limit is not None:
        handler.limit = limit
    handler.new_file("file", name, "application/octet-stream", None)
    offset = 0
    while chunk := source.read(handler.chunk_size):
        handler.receive_data_chunk(chunk, offset)
        offset += len(chunk)
    return handler.file_complete(offset)


class EncryptingUploadHandler(FileUploadHandler):
    chunk_size = 64 * 1024

    def __init__(self, request=None) -> None:
        super().__init__(request)
        self.limit = settings.MEDGENOMICS_MAX_UPLOAD_BYTES
        self._writer: staging.StagingWriter | None = None

    def new_file(
        self,
        field_name,
        file_name,
        content_type,
        content_length,
        charset=None,
        content_type_extra=None,
    ):  # noqa: E501
        super().new_file(
            field_name, file_name, content_type, content_length, charset, content_type_extra
        )
        self.job_id = uuid.uuid4()
        self.staging_path = settings.STAGING_DIR / f"{self.job_id}.stage"
        self.meter = DecompressedMeter(self.limit)
        self.problem: UploadRejected | None = None
        self.raw_size = 0
        self.wrapped_key = b""
        try:
            self.data_key = staging.new_data_key()
            self.wrapped_key = staging.wrap_key(
                staging_kek(), self.data_key, context=str(self.job_id).encode()
            )
        except (ValueError, OSError):
            # A missing or damaged key-encryption key: refuse rather than store unprotected.
            self._reject(UploadRejected(errors.ENCRYPTION_FAILED))
            return
        try:
            settings.STAGING_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._writer = staging.StagingWriter(self.staging_path, self.data_key)
        except OSError as exc:
            self._reject(self._storage_problem(exc))

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.raw_size += len(raw_data)
        if self.problem is not None:
            return None  # keep draining the body, store nothing more
        try:
            self.meter.feed(raw_data)
            self._writer.write(raw_data)
        except UploadRejected as rejected:
            self._reject(rejected)
        except OSError as exc:
            self._reject(self._storage_problem(exc))
        return None

    def file_complete(self, file_size: int) -> StagedUpload:
        if self.problem is None:
            try:
                self.meter.finish()
                self._writer.close()
            except UploadRejected as rejected:
                self._reject(rejected)
            except OSError as exc:
                self._reject(self._storage_problem(exc))
        self._writer = None
        return StagedUpload(
            job_id=self.job_id,
            name=self.file_name,
            content_type=self.content_type,
            staging_path=self.staging_path,
            wrapped_key=self.wrapped_key,
            size=self.raw_size,
            decompressed_size=self.meter.size,
            file_format=self.meter.file_format,
            problem=self.problem,
        )

    def upload_interrupted(self) -> None:
        self._abort_writer()

    def upload_complete(self) -> None:
        # A parse that stopped half-way (client gone, malformed multipart) leaves a writer open.
        self._abort_writer()

    def _reject(self, rejected: UploadRejected) -> None:
        self.problem = rejected
        self._abort_writer()

    def _abort_writer(self) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer = None

    @staticmethod
    def _storage_problem(exc: OSError) -> UploadRejected:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return UploadRejected(errors.STORAGE_FULL)
        return UploadRejected(errors.STORAGE_FULL, "the staging area could not be written")
