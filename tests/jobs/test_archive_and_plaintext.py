"""The archive opens with standard tools, and no copy of an upload's plaintext outlives its job."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from jobs.models import Job
from tests.conftest import BAD_INPUTS, FASTQ, GENOMES, upload, wait_for_final

pytestmark = pytest.mark.django_db(transaction=True)


def crypt4gh_command() -> str:
    import shutil
    import sys

    candidate = Path(sys.executable).with_name("crypt4gh")
    return str(candidate) if candidate.exists() else shutil.which("crypt4gh")


def test_an_archive_decrypts_with_the_crypt4gh_and_zstd_commands(
    owner_client, inline_jobs, isolated_data_dir
):
    path = GENOMES / "plant" / "arabidopsis_chloroplast_NC_000932.fa"
    job_id = upload(owner_client, path).json()["job_id"]
    assert wait_for_final(owner_client, job_id)["status"] == "completed"
    job = Job.objects.get(pk=job_id)
    archive = Path(job.encrypted_path)
    secret_key = isolated_data_dir / "keys" / "custodian.c4gh.sec"

    with archive.open("rb") as encrypted:
        decrypted = subprocess.run(
            [crypt4gh_command(), "decrypt", "--sk", str(secret_key)],
            stdin=encrypted,
            capture_output=True,
            check=True,
            env={**os.environ, "C4GH_PASSPHRASE": ""},
        ).stdout
    original = subprocess.run(
        ["zstd", "-d", "-c"], input=decrypted, capture_output=True, check=True
    ).stdout
    assert original == path.read_bytes()
    assert job.compression_ratio > 3


def unique_read(number: int) -> tuple[bytes, bytes]:
    """A FASTQ record with a random 120-base sequence: a run of bytes no other file holds."""
    import random

    sequence = "".join(random.SystemRandom().choice("ACGT") for _ in range(120)).encode()
    return b"@extra_%d\n%s\n+\n%s\n" % (number, sequence, b"I" * 120), sequence[:64]


def _files_containing(run: bytes, *roots: Path) -> list[Path]:
    found = []
    for root in roots:
        for path in root.rglob("*"):
            try:
                if path.is_file() and not path.is_symlink() and path.stat().st_size < 200_000_000:
                    if run in path.read_bytes():
                        found.append(path)
            except OSError:
                continue
    return found


@pytest.mark.parametrize(
    "path, expected",
    [
        (FASTQ / "novaseq_800_reads_phred33.fq", "completed"),
        (BAD_INPUTS / "13_len_mismatch.fq", "failed"),
    ],
    ids=["completed", "failed"],
)
def test_no_plaintext_remains_after_a_job(
    owner_client, inline_jobs, isolated_data_dir, path, expected
):
    read, run = unique_read(0)
    data = read + path.read_bytes()
    job_id = upload(owner_client, path, content=data).json()["job_id"]
    assert wait_for_final(owner_client, job_id)["status"] == expected

    assert _files_containing(run, isolated_data_dir, Path(tempfile.gettempdir())) == []
    job = Job.objects.get(pk=job_id)
    assert not job.staging_path and job.wrapped_key is None
    assert list((isolated_data_dir / "staging").iterdir()) == []
    if expected == "failed":
        # A failed job keeps no archive at all, and still gets its certificate.
        archives = isolated_data_dir / "archives"
        assert not archives.exists() or not list(archives.iterdir())
        assert owner_client.get(f"/api/proof/{job_id}").status_code == 200
