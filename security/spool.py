"""A request-body spool that never holds plaintext on disk.

Django's ASGI handler spools every request body into a ``SpooledTemporaryFile`` that rolls over
to a plain temporary file beyond ``FILE_UPLOAD_MAX_MEMORY_SIZE``: an upload would sit there in
clear text. This spool keeps small bodies in memory and writes larger ones to an anonymous
temporary file as AES-256-CTR ciphertext under a key that exists only in this object. CTR (not
GCM) because the multipart parser seeks and re-reads; the file lives only as long as the
request, and confidentiality, not integrity, is what it must give (the upload is authenticated
again, chunk by chunk, by the staging format).
"""

from __future__ import annotations

import io
import os
import tempfile

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

_BLOCK = 16


class EncryptedSpool(io.RawIOBase):
    def __init__(self, *, memory_limit: int = 256 * 1024, directory: str | None = None) -> None:
        super().__init__()
        self._memory_limit = memory_limit
        self._directory = directory
        self._memory = bytearray()
        self._disk: io.BufferedRandom | None = None
        self._key = os.urandom(32)
        self._initial_counter = int.from_bytes(os.urandom(16), "big")
        self._position = 0
        self._size = 0

    @property
    def rolled_over(self) -> bool:
        return self._disk is not None

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._position + offset
        elif whence == io.SEEK_END:
            position = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if position < 0:
            raise ValueError("negative seek position")
        self._position = position
        return position

    def _keystream_at(self, offset: int):
        block, skip = divmod(offset, _BLOCK)
        counter = (self._initial_counter + block) % (1 << 128)
        cipher = Cipher(algorithms.AES(self._key), modes.CTR(counter.to_bytes(16, "big")))
        transform = cipher.encryptor()
        if skip:
            transform.update(bytes(skip))
        return transform

    def _roll_over(self) -> None:
        self._disk = tempfile.TemporaryFile(dir=self._directory)  # noqa: SIM115
        self._disk.write(self._keystream_at(0).update(bytes(self._memory)))
        self._memory = bytearray()

    def write(self, data: bytes) -> int:
        data = bytes(data)
        end = self._position + len(data)
        if self._disk is None and end > self._memory_limit:
            self._roll_over()
        if self._disk is None:
            if self._position > len(self._memory):
                self._memory.extend(bytes(self._position - len(self._memory)))
            self._memory[self._position : end] = data
        else:
            self._disk.seek(self._position)
            self._disk.write(self._keystream_at(self._position).update(data))
        self._position = end
        self._size = max(self._size, end)
        return len(data)

    def readinto(self, buffer) -> int:
        wanted = min(len(buffer), max(0, self._size - self._position))
        if wanted == 0:
            return 0
        if self._disk is None:
            chunk = bytes(self._memory[self._position : self._position + wanted])
        else:
            self._disk.seek(self._position)
            ciphertext = self._disk.read(wanted)
            chunk = self._keystream_at(self._position).update(ciphertext)
        buffer[: len(chunk)] = chunk
        self._position += len(chunk)
        return len(chunk)

    def close(self) -> None:
        if self._disk is not None:
            self._disk.close()
            self._disk = None
        self._memory = bytearray()
        self._key = b""
        super().close()
