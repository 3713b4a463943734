"""`manage.py decrypt_archive`: a real job's archive gives back the original bytes, and any
damage is refused with a clear message and no output file at all."""

from __future__ import annotations

import gzip
import hashlib
from io import StringIO
from pathlib import Path

import pytest
from crypt4gh import SEGMENT_SIZE
from crypt4gh import header as crypt4gh_header
from django.core.management import CommandError, call_command

from jobs.models import Job
from security import keys
from tests.conftest import BAD_INPUTS, GENOMES, SHARED_DATA, upload, wait_for_final

pytestmark = pytest.mark.django_db(transaction=True)

# 300 kb of Arabidopsis chr1: its archive spans two Crypt4GH segments.
ARABIDOPSIS = SHARED_DATA / "genomes_extra" / "plant" / "Arabidopsis_thaliana_chr1_20Mb.fa"
PHIX = GENOMES / "viral" / "phiX174_NC_001422.fa"
CIPHER_SEGMENT_SIZE = SEGMENT_SIZE + 28  # nonce + MAC


def run_job(client, path: Path, **kwargs) -> Job:
    job_id = upload(client, path, **kwargs).json()["job_id"]
    wait_for_final(client, job_id)
    return Job.objects.get(pk=job_id)


@pytest.fixture
def archived(owner_client, inline_jobs) -> Job:
    job = run_job(owner_client, ARABIDOPSIS)
    assert job.status == "completed"
    return job


@pytest.fixture
def outdir(tmp_path) -> Path:
    """Where restored files go: nothing else is in it (the data directory is beside it)."""
    directory = tmp_path / "out"
    directory.mkdir()
    return directory


@pytest.fixture
def custodian_key(isolated_data_dir) -> Path:
    return isolated_data_dir / "keys" / "custodian.c4gh.sec"


def decrypt(job_id, sk: Path, *args: str) -> str:
    out = StringIO()
    call_command("decrypt_archive", str(job_id), "--sk", str(sk), *args, stdout=out)
    return out.getvalue()


def header_length(archive: Path) -> int:
    with archive.open("rb") as handle:
        list(crypt4gh_header.parse(handle))
        return handle.tell()


def leftovers(directory: Path) -> list[Path]:
    return sorted(directory.iterdir())


def test_the_archive_of_a_real_job_restores_the_original_bytes(archived, custodian_key, outdir):
    output = outdir / "restored.fa"
    message = decrypt(archived.job_id, custodian_key, "--output", str(output))
    original = ARABIDOPSIS.read_bytes()
    assert output.read_bytes() == original
    assert hashlib.sha256(original).hexdigest() in message
    assert output.stat().st_mode & 0o077 == 0  # plaintext: readable by its owner only
    assert leftovers(outdir) == [output]


def test_a_gzip_upload_comes_back_as_the_same_gzip_file(
    owner_client, inline_jobs, custodian_key, outdir
):
    compressed = gzip.compress(PHIX.read_bytes())
    job = run_job(owner_client, PHIX, name="phix.fa.gz", content=compressed)
    restored = outdir / "phix.fa.gz"
    decrypt(job.job_id, custodian_key, "--output", str(restored))
    assert restored.read_bytes() == compressed


def test_the_output_file_must_be_named(archived, custodian_key):
    with pytest.raises(CommandError, match="--output"):
        decrypt(archived.job_id, custodian_key)


def flip(archive: Path, position: int) -> None:
    data = bytearray(archive.read_bytes())
    data[position] ^= 0x01
    archive.write_bytes(bytes(data))


@pytest.mark.parametrize("where", ["custodian's header packet", "first segment", "last segment"])
def test_a_flipped_byte_is_refused_and_nothing_is_written(archived, custodian_key, outdir, where):
    archive = Path(archived.encrypted_path)
    start = header_length(archive)
    position = {
        # magic, version, packet count (16 bytes), then the first packet: the custodian's
        "custodian's header packet": 16 + 60,
        "first segment": start + 1000,
        "last segment": archive.stat().st_size - 20,
    }[where]
    flip(archive, position)
    output = outdir / "restored.fa"
    with pytest.raises(CommandError, match="is damaged") as failure:
        decrypt(archived.job_id, custodian_key, "--output", str(output))
    assert "Nothing was written" in str(failure.value)
    assert leftovers(outdir) == []


@pytest.mark.parametrize("cut", ["at a segment boundary", "mid-segment", "inside the header"])
def test_a_truncated_archive_is_refused_and_nothing_is_written(
    archived, custodian_key, outdir, cut
):
    archive = Path(archived.encrypted_path)
    start = header_length(archive)
    assert archive.stat().st_size > start + CIPHER_SEGMENT_SIZE  # more than one segment
    keep = {
        "at a segment boundary": start + CIPHER_SEGMENT_SIZE,  # crypt4gh alone says nothing
        "mid-segment": start + CIPHER_SEGMENT_SIZE + 5000,
        "inside the header": start - 10,
    }[cut]
    archive.write_bytes(archive.read_bytes()[:keep])
    output = outdir / "restored.fa"
    with pytest.raises(CommandError, match="damaged, truncated or altered|is damaged"):
        decrypt(archived.job_id, custodian_key, "--output", str(output))
    assert leftovers(outdir) == []


def test_a_key_that_is_not_a_recipient_is_named(archived, outdir):
    stranger = outdir.parent / "stranger" / "stranger.sec"
    keys.load_or_create_custodian_keypair(stranger, stranger.with_suffix(".pub"))
    output = outdir / "restored.fa"
    with pytest.raises(CommandError, match="is not a recipient of this archive"):
        decrypt(archived.job_id, stranger, "--output", str(output))
    assert not output.exists()


def test_an_existing_file_is_not_overwritten_without_force(archived, custodian_key, outdir):
    output = outdir / "restored.fa"
    output.write_bytes(b"keep me")
    with pytest.raises(CommandError, match="exists"):
        decrypt(archived.job_id, custodian_key, "--output", str(output))
    assert output.read_bytes() == b"keep me"
    decrypt(archived.job_id, custodian_key, "--output", str(output), "--force")
    assert output.read_bytes() == ARABIDOPSIS.read_bytes()


def test_jobs_without_an_archive_are_explained(owner_client, inline_jobs, custodian_key, outdir):
    failed = run_job(owner_client, BAD_INPUTS / "13_len_mismatch.fq")
    with pytest.raises(CommandError, match="has no archive"):
        decrypt(failed.job_id, custodian_key, "--output", str(outdir / "x"))
    with pytest.raises(CommandError, match="Invalid UUID format"):
        decrypt("not-a-job", custodian_key, "--output", str(outdir / "x"))
    with pytest.raises(CommandError, match="Job ID not found"):
        decrypt(
            "3f1c2a9e-8d4b-4c61-9a57-2f0e6b1d7c35", custodian_key, "--output", str(outdir / "x")
        )
    assert leftovers(outdir) == []


def test_a_destroyed_archive_is_explained(archived, custodian_key, outdir):
    from datetime import timedelta

    from security.retention import purge_expired

    assert purge_expired(now=archived.archive_expires + timedelta(seconds=1)) == 1
    with pytest.raises(CommandError, match="was destroyed at the end of its retention period"):
        decrypt(archived.job_id, custodian_key, "--output", str(outdir / "x"))


# --- the owner's download -----------------------------------------------------------------


def test_the_owner_downloads_the_archive_and_it_decrypts_to_the_original(
    owner_client, archived, custodian_key, outdir
):
    from security.vault import decrypt_archive

    response = owner_client.get(f"/jobs/{archived.job_id}/archive")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert f"{archived.filename}.zst.c4gh" in response["Content-Disposition"]
    downloaded = outdir / "download.c4gh"
    downloaded.write_bytes(b"".join(response.streaming_content))
    assert downloaded.read_bytes() == Path(archived.encrypted_path).read_bytes()

    restored = outdir / "restored.fa"
    with downloaded.open("rb") as archive, restored.open("wb") as out:
        decrypt_archive(archive, out, secret_key=keys.load_crypt4gh_secret_key(custodian_key))
    assert restored.read_bytes() == ARABIDOPSIS.read_bytes()


def test_only_the_owner_downloads_and_only_while_the_archive_is_kept(
    client, owner, other_user, archived, inline_jobs
):
    from django.utils import timezone

    path = f"/jobs/{archived.job_id}/archive"
    failed = run_job(client, BAD_INPUTS / "13_len_mismatch.fq")  # `client` is the owner's
    assert client.get(f"/jobs/{failed.job_id}/archive").status_code == 404  # no archive kept

    client.force_login(other_user)
    assert client.get(path).status_code == 404
    client.logout()
    assert client.get(path).status_code == 302  # to the login page

    client.force_login(owner)
    assert client.get(path).status_code == 200
    # Past its retention date the archive is no longer served, even before the purge runs.
    Job.objects.filter(pk=archived.pk).update(archive_expires=timezone.now())
    assert client.get(path).status_code == 404
