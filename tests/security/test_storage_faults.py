"""Storage faults, injected at the OS boundary: a full disk while staging an upload or writing
the archive, a read-only archive area, and a staged file corrupted on disk. The user gets the
matrix's status and message, and no partial file stays behind.

Each fault runs two ways: a real tiny tmpfs mounted over the directory (when the tests run as
root and ``mount`` works), and the same fault made by replacing the file functions that
security.staging / security.vault call (``io.FileIO`` / ``open``) for the test's duration.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import shutil
import subprocess
import types
from pathlib import Path

import pytest

from jobs.models import Job
from jobs.runner import run_until_settled
from security import staging, vault
from tests.conftest import GENOMES, upload, wait_for_final

pytestmark = pytest.mark.django_db(transaction=True)

CHLOROPLAST = GENOMES / "plant" / "arabidopsis_chloroplast_NC_000932.fa"  # 157 kB
PAGE = 4096


def _storage_error(code: int) -> OSError:
    return OSError(code, os.strerror(code))


class _Budget:
    def __init__(self, capacity: int) -> None:
        self.remaining = capacity

    def take(self, wanted: int) -> int:
        if self.remaining <= 0:
            raise _storage_error(errno.ENOSPC)
        granted = min(wanted, self.remaining)
        self.remaining -= granted
        return granted


class _FullWriter:
    """A buffered file (what ``open`` returns) on a disk that fills up after the budget: like
    ``io.BufferedWriter`` it never writes short, it writes what fits and raises ENOSPC."""

    def __init__(self, handle, budget: _Budget) -> None:
        self._handle = handle
        self._budget = budget

    def write(self, data) -> int:
        with memoryview(data) as view:
            granted = self._budget.take(len(view))
            self._handle.write(view[:granted])
            if granted < len(view):
                raise _storage_error(errno.ENOSPC)
            return granted

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self._handle.close()


class StorageFaults:
    """Makes a directory full or read-only, by tmpfs or by replacing the module's file calls."""

    def __init__(self, how: str, monkeypatch) -> None:
        self.how = how
        self.monkeypatch = monkeypatch
        self.mounted: list[Path] = []

    def full(self, directory: Path, *, capacity: int, module: types.ModuleType) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        if self.how == "tmpfs":
            self._mount(directory, f"size={capacity},mode=0700")
        elif module is staging:
            self._patch_staging(_Budget(capacity))
        else:
            self._patch_vault_open(lambda handle: _FullWriter(handle, _Budget(capacity)))

    def read_only(self, directory: Path, *, module: types.ModuleType) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        if self.how == "tmpfs":
            self._mount(directory, "size=64k,mode=0700,ro")
        else:
            assert module is vault

            def refuse(handle):
                handle.close()
                raise _storage_error(errno.EROFS)

            self._patch_vault_open(refuse, check_before_open=True)

    def _mount(self, directory: Path, options: str) -> None:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "medgenomics-test", str(directory)],
            check=True,
            capture_output=True,
        )
        self.mounted.append(directory)

    def _patch_staging(self, budget: _Budget) -> None:
        class FullFileIO(io.FileIO):
            def write(self, data) -> int:
                with memoryview(data) as view:
                    return super().write(view[: budget.take(len(view))])

        patched_io = types.SimpleNamespace(
            **{name: getattr(io, name) for name in dir(io) if not name.startswith("__")}
        )
        patched_io.FileIO = FullFileIO
        self.monkeypatch.setattr(staging, "io", patched_io)

    def _patch_vault_open(self, wrap, *, check_before_open: bool = False) -> None:
        def vault_open(file, mode="r", *args, **kwargs):
            writing = any(flag in mode for flag in "wxa+")
            if writing and check_before_open:
                raise _storage_error(errno.EROFS)
            handle = builtins.open(file, mode, *args, **kwargs)
            return wrap(handle) if writing else handle

        self.monkeypatch.setattr(vault, "open", vault_open, raising=False)

    def undo(self) -> None:
        for directory in reversed(self.mounted):
            if subprocess.run(["umount", str(directory)], capture_output=True).returncode:
                subprocess.run(["umount", "-l", str(directory)], capture_output=True)


def _can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


@pytest.fixture(params=["tmpfs", "patched"])
def faults(request, monkeypatch, tmp_path):
    if request.param == "tmpfs":
        if not _can_mount():
            pytest.skip("mounting a tmpfs needs root and mount(8)")
        probe = tmp_path / "probe"
        probe.mkdir()
        if subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4k", "probe", str(probe)], capture_output=True
        ).returncode:
            pytest.skip("mount(8) is not permitted here")
        subprocess.run(["umount", str(probe)], check=True)
    injector = StorageFaults(request.param, monkeypatch)
    yield injector
    injector.undo()


@pytest.fixture
def quick_retries(settings):
    settings.MEDGENOMICS_RETRY_BASE_SECONDS = 0.01


def files_in(directory: Path) -> list[Path]:
    return sorted(directory.iterdir()) if directory.exists() else []


def assert_matrix_error(response, status: int, message: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"] == body["message"] == message
    return body


def test_a_full_disk_while_staging_answers_507_and_leaves_nothing(owner_client, settings, faults):
    faults.full(settings.STAGING_DIR, capacity=16 * PAGE, module=staging)
    response = upload(owner_client, CHLOROPLAST)
    assert_matrix_error(response, 507, "Insufficient storage")
    assert files_in(settings.STAGING_DIR) == []
    assert not Job.objects.exists()


def test_a_full_disk_while_archiving_fails_the_job_with_507_and_leaves_nothing(
    owner_client, inline_jobs, quick_retries, settings, faults
):
    faults.full(settings.ARCHIVE_DIR, capacity=PAGE, module=vault)
    job_id = upload(owner_client, CHLOROPLAST).json()["job_id"]

    status = wait_for_final(owner_client, job_id)
    assert status["status"] == "failed"
    assert status["message"] == "Insufficient storage"
    assert status["attempts"] == 4  # the first try and three retries: storage is transient
    assert_matrix_error(owner_client.get(f"/api/result/{job_id}"), 507, "Insufficient storage")

    assert files_in(settings.ARCHIVE_DIR) == []  # no partial archive
    assert files_in(settings.STAGING_DIR) == []  # and the staged upload is gone too
    job = Job.objects.get(pk=job_id)
    assert job.encrypted_path == "" and job.wrapped_key is None
    proof = owner_client.get(f"/api/proof/{job_id}").json()
    assert proof["archive"] is None and "No archive of this file was kept" in proof["statement"]


def test_an_archive_area_that_cannot_be_written_is_an_encryption_error(
    owner_client, inline_jobs, quick_retries, settings, faults
):
    """A volume remounted read-only after an I/O error (ext4 ``errors=remount-ro``)."""
    faults.read_only(settings.ARCHIVE_DIR, module=vault)
    job_id = upload(owner_client, CHLOROPLAST).json()["job_id"]

    status = wait_for_final(owner_client, job_id)
    assert status["status"] == "failed"
    assert status["message"] == "Encryption error occurred"
    assert status["attempts"] == 1  # permanent: no retry
    assert_matrix_error(owner_client.get(f"/api/result/{job_id}"), 500, "Encryption error occurred")
    assert files_in(settings.ARCHIVE_DIR) == []
    assert files_in(settings.STAGING_DIR) == []


def test_a_staged_upload_corrupted_on_disk_is_an_encryption_error(owner_client, settings):
    settings.MEDGENOMICS_JOB_RUNNER = "none"  # stage now, run after the disk "rots"
    job_id = upload(owner_client, CHLOROPLAST).json()["job_id"]
    [staged] = files_in(settings.STAGING_DIR)
    data = bytearray(staged.read_bytes())
    data[len(data) // 2] ^= 0x20
    staged.write_bytes(bytes(data))

    run_until_settled(job_id)
    status = owner_client.get(f"/api/status/{job_id}").json()
    assert status["status"] == "failed"
    assert status["message"] == "Encryption error occurred"
    assert_matrix_error(owner_client.get(f"/api/result/{job_id}"), 500, "Encryption error occurred")
    assert files_in(settings.STAGING_DIR) == []
    assert files_in(settings.ARCHIVE_DIR) == []


def test_an_unusable_staging_key_answers_500_encryption_error(owner_client, settings):
    """The key-encryption key file is damaged on disk: nothing can be encrypted, so the
    upload is refused with the matrix's encryption error, in JSON, and nothing is stored."""
    settings.MEDGENOMICS_KEK_FILE.parent.mkdir(parents=True, exist_ok=True)
    settings.MEDGENOMICS_KEK_FILE.write_bytes(b"truncated")
    owner_client.raise_request_exception = False
    response = upload(owner_client, CHLOROPLAST)
    assert_matrix_error(response, 500, "Encryption error occurred")
    assert files_in(settings.STAGING_DIR) == []
    assert not Job.objects.exists()
