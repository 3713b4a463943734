from __future__ import annotations

import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
GENOMES = SHARED_DATA / "genomes"
FASTQ = SHARED_DATA / "fastq"
BAD_INPUTS = SHARED_DATA / "badinputs"


def real_sequence_files() -> list[Path]:
    return sorted(
        p
        for p in [*GENOMES.rglob("*"), *FASTQ.rglob("*")]
        if p.is_file() and p.suffix in {".fa", ".fq"}
    )


@pytest.fixture(autouse=True)
def isolated_data_dir(settings, tmp_path):
    """Every test gets its own data directory, with fresh keys generated on first use."""
    from security import keyring

    data_dir = tmp_path / "data"
    keys_dir = data_dir / "keys"
    settings.DATA_DIR = data_dir
    settings.STAGING_DIR = data_dir / "staging"
    settings.ARCHIVE_DIR = data_dir / "archives"
    settings.KEYS_DIR = keys_dir
    settings.MEDGENOMICS_KEK_FILE = keys_dir / "staging-kek.bin"
    settings.MEDGENOMICS_SIGNING_KEY_FILE = keys_dir / "certificate-signing-ed25519.pem"
    settings.MEDGENOMICS_CUSTODIAN_PUBLIC_KEYS = [keys_dir / "custodian.c4gh.pub"]
    settings.MEDGENOMICS_GENERATE_MISSING_KEYS = True
    settings.MEDGENOMICS_PSEUDONYM_SECRET = None
    keyring.reset_caches()
    yield data_dir
    keyring.reset_caches()


@pytest.fixture
def inline_jobs(settings):
    """Jobs run in the request thread right after the upload commits (deterministic tests)."""
    settings.MEDGENOMICS_JOB_RUNNER = "inline"


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user(username="alice", password="correct horse battery")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user(username="mallory", password="another long phrase")


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


def upload(client, path: Path, *, name: str | None = None, content: bytes | None = None):
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = path.read_bytes() if content is None else content
    file = SimpleUploadedFile(name or path.name, data)
    return client.post("/api/upload", {"file": file})


def wait_for_final(client, job_id: str, *, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/status/{job_id}").json()
        if body["status"] in {"completed", "failed", "deleted"}:
            return body
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish within {timeout} s: {body}")


@pytest.fixture(autouse=True)
def seeded_marker_panel(request):
    """Transactional tests flush every table after they run, the seed migration's markers
    included; put the seeded panel back for tests that use the database."""
    if "django_db_setup" not in request.fixturenames and not request.node.get_closest_marker(
        "django_db"
    ):
        yield
        return
    request.getfixturevalue("django_db_blocker")
    from importlib import import_module

    from django.apps import apps

    from analysis.models import MarkerReference

    if not MarkerReference.objects.exists():
        import_module("analysis.migrations.0002_seed_markers").seed_markers(apps, None)
    yield
